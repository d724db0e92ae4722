"""Streaming safetensors writing (one tensor in memory at a time) and reading of HF weight folders.

A safetensors file is an 8-byte little-endian header length, a JSON header mapping each tensor
name to its dtype, shape and byte range, then the raw bytes. Every shape and dtype is known before
the first tensor is loaded, so the header is written first and tensors follow one by one; the
output is deterministic (same input -> same bytes).
"""

from __future__ import annotations

import json
import re
import struct
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch

from .config import HFInteropError

SINGLE_FILE = "model.safetensors"
INDEX_FILE = "model.safetensors.index.json"

_DTYPE_CODES = {
    torch.float64: "F64",
    torch.float32: "F32",
    torch.float16: "F16",
    torch.bfloat16: "BF16",
    torch.int64: "I64",
    torch.int32: "I32",
    torch.int16: "I16",
    torch.int8: "I8",
    torch.uint8: "U8",
    torch.bool: "BOOL",
    torch.float8_e4m3fn: "F8_E4M3",
    torch.float8_e5m2: "F8_E5M2",
}
_CODE_DTYPES = {code: dtype for dtype, code in _DTYPE_CODES.items()}

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}


def dtype_name(dtype: torch.dtype) -> str:
    return str(dtype).removeprefix("torch.")


def format_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if abs(n) < 1000 or unit == "TB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1000
    raise AssertionError


def parse_size(text: str | int) -> int:
    """'5GB' -> 5e9, '500MB', '2GiB', or a plain byte count."""
    if isinstance(text, int):
        return text
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(i?)B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise HFInteropError(f"cannot read size {text!r}; write e.g. 5GB, 500MB or 2GiB")
    number, prefix, binary = match.groups()
    base = 1024 if binary else 1000
    power = " KMGT".index(prefix.upper() or " ")
    return int(float(number) * base**power)


@dataclass(frozen=True)
class TensorEntry:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]

    @property
    def nbytes(self) -> int:
        numel = 1
        for size in self.shape:
            numel *= size
        return numel * torch.empty((), dtype=self.dtype).element_size()


def plan_shards(entries: Sequence[TensorEntry], max_shard_bytes: int) -> list[list[TensorEntry]]:
    """Split entries (in order) into files of at most max_shard_bytes (a bigger tensor gets its own)."""
    shards: list[list[TensorEntry]] = [[]]
    size = 0
    for entry in entries:
        if shards[-1] and size + entry.nbytes > max_shard_bytes:
            shards.append([])
            size = 0
        shards[-1].append(entry)
        size += entry.nbytes
    return shards


def shard_file_names(n_shards: int) -> list[str]:
    if n_shards == 1:
        return [SINGLE_FILE]
    return [f"model-{i:05d}-of-{n_shards:05d}.safetensors" for i in range(1, n_shards + 1)]


def _header(entries: Sequence[TensorEntry]) -> bytes:
    header: dict[str, object] = {"__metadata__": {"format": "pt"}}
    offset = 0
    for entry in entries:
        header[entry.name] = {
            "dtype": _DTYPE_CODES[entry.dtype],
            "shape": list(entry.shape),
            "data_offsets": [offset, offset + entry.nbytes],
        }
        offset += entry.nbytes
    raw = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return raw + b" " * (-len(raw) % 8)  # data starts 8-byte aligned


def write_safetensors(
    path: Path,
    entries: Sequence[TensorEntry],
    tensors: Iterable[torch.Tensor],
    on_tensor: Callable[[TensorEntry], None] | None = None,
) -> int:
    """Write ``entries`` to ``path``, taking their values one by one from ``tensors``. Returns bytes written."""
    header = _header(entries)
    with open(path, "wb") as handle:
        handle.write(struct.pack("<Q", len(header)))
        handle.write(header)
        source = iter(tensors)  # not zip(): it would hold on to the previous tensor
        for entry in entries:
            tensor = next(source)
            if tensor.dtype != entry.dtype or tuple(tensor.shape) != entry.shape:
                raise AssertionError(
                    f"{entry.name}: got {tensor.dtype} {list(tensor.shape)}, planned {entry.dtype} {list(entry.shape)}"
                )
            flat = tensor.detach().contiguous().reshape(-1).view(torch.uint8)
            handle.write(memoryview(flat.numpy()))
            del tensor, flat  # let the producer free it before it loads the next one
            if on_tensor is not None:
                on_tensor(entry)
        handle.flush()
        return handle.tell()


def write_index(out_dir: Path, weight_map: dict[str, str], total_size: int) -> Path:
    path = out_dir / INDEX_FILE
    index = {"metadata": {"total_size": total_size}, "weight_map": dict(sorted(weight_map.items()))}
    path.write_text(json.dumps(index, indent=2) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Reading an HF weights folder.


@dataclass(frozen=True)
class StoredTensor:
    name: str
    file: Path
    dtype: torch.dtype
    shape: tuple[int, ...]


def _read_header(path: Path) -> dict:
    try:
        with open(path, "rb") as handle:
            (length,) = struct.unpack("<Q", handle.read(8))
            if length > 100_000_000:
                raise ValueError(f"header length {length} is implausible")
            return json.loads(handle.read(length))
    except (OSError, ValueError, struct.error) as err:
        raise HFInteropError(f"{path}: not a readable safetensors file: {err}") from None


def list_hf_weights(hf_dir: Path) -> dict[str, StoredTensor]:
    """Every tensor of an HF folder (model.safetensors, or the shards its index names), without loading."""
    hf_dir = Path(hf_dir)
    index_path = hf_dir / INDEX_FILE
    if index_path.is_file():
        try:
            weight_map = json.loads(index_path.read_text(encoding="utf-8"))["weight_map"]
        except (json.JSONDecodeError, KeyError, TypeError) as err:
            raise HFInteropError(f"{index_path}: not a safetensors index ({err!r})") from None
        files = sorted(set(weight_map.values()))
    elif (hf_dir / SINGLE_FILE).is_file():
        files = [SINGLE_FILE]
    else:
        files = sorted(p.name for p in hf_dir.glob("*.safetensors"))
        if not files:
            found = sorted(p.name for p in hf_dir.iterdir()) if hf_dir.is_dir() else []
            hint = (
                " (PyTorch *.bin weights are not read: convert them to safetensors)"
                if any(name.endswith(".bin") for name in found)
                else ""
            )
            raise HFInteropError(f"{hf_dir}: no {SINGLE_FILE}, {INDEX_FILE} or *.safetensors; found {found[:12]}{hint}")
    stored: dict[str, StoredTensor] = {}
    for file_name in files:
        path = hf_dir / file_name
        if not path.is_file():
            raise HFInteropError(f"{index_path}: names {file_name}, which is missing from {hf_dir}")
        for name, info in _read_header(path).items():
            if name == "__metadata__":
                continue
            if info["dtype"] not in _CODE_DTYPES:
                raise HFInteropError(f"{path}: tensor {name} has unsupported dtype {info['dtype']}")
            if name in stored:
                raise HFInteropError(f"{hf_dir}: tensor {name} is stored twice ({stored[name].file.name}, {file_name})")
            stored[name] = StoredTensor(name, path, _CODE_DTYPES[info["dtype"]], tuple(info["shape"]))
    return stored
