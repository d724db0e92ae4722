"""Reading model tensors out of a torchtitan DCP checkpoint, and writing one, in a single process.

torch.distributed.checkpoint stores global shapes in ``.metadata`` and each rank's pieces in
``__<rank>_0.distcp``; loading into plain CPU tensors with ``no_dist=True`` reassembles FSDP/TP
shards without a process group. Tensors are read in small groups, so memory stays near the size
of the largest tensor rather than of the model.
"""

from __future__ import annotations

import contextlib
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp
from torch.distributed.checkpoint.metadata import TensorStorageMetadata

from .config import HFInteropError
from .safetensors_io import INDEX_FILE, SINGLE_FILE

METADATA_FILE = ".metadata"

# Top-level module names of the MobileLLM-R1 model: a checkpoint key under one of them is a weight.
# Everything else (optimizer.*, lr_scheduler.*, dataloader.*, train_state.*, ...) is training state.
MODEL_PREFIXES = ("tok_embeddings", "layers", "norm", "lm_head")


def is_model_key(key: str) -> bool:
    return key.split(".", 1)[0] in MODEL_PREFIXES


def resolve_dcp_dir(path: str | Path, log=print) -> Path:
    """``path`` itself if it is a DCP checkpoint; for a ``checkpoint/`` folder, its latest ``step-N``."""
    path = Path(path)
    if not path.exists():
        raise HFInteropError(f"checkpoint not found: {path}")
    if (path / METADATA_FILE).is_file():
        return path
    if path.is_dir():
        steps = []
        for child in path.iterdir():
            match = re.fullmatch(r"step-(\d+)", child.name)
            if match and (child / METADATA_FILE).is_file():
                steps.append((int(match.group(1)), child))
        if steps:
            latest = max(steps)[1]
            log(f"{path} holds {len(steps)} DCP checkpoints; using the latest, {latest.name}")
            return latest
        if (path / "config.json").is_file() or (path / SINGLE_FILE).is_file() or (path / INDEX_FILE).is_file():
            raise HFInteropError(
                f"{path} is a Hugging Face folder, not a torchtitan DCP checkpoint; "
                "`mlr1 import-hf` converts it the other way"
            )
    found = sorted(p.name for p in path.iterdir())[:12] if path.is_dir() else []
    raise HFInteropError(
        f"{path} is not a torchtitan DCP checkpoint: no {METADATA_FILE} (found {found}); pass a "
        "checkpoint/step-N folder, or a checkpoint/ folder holding step-N folders"
    )


@dataclass(frozen=True)
class DCPTensor:
    name: str
    dtype: torch.dtype
    shape: tuple[int, ...]


class DCPCheckpoint:
    """The model tensors of a DCP checkpoint: listed from metadata, loaded a few at a time."""

    def __init__(self, path: Path):
        self.path = Path(path)
        try:
            self.metadata = dcp.FileSystemReader(str(self.path)).read_metadata()
        except Exception as err:  # corrupt or foreign .metadata
            raise HFInteropError(f"{self.path / METADATA_FILE}: cannot read DCP metadata: {err}") from None
        self.tensors: dict[str, DCPTensor] = {}
        self.other_keys: list[str] = []
        for key, meta in self.metadata.state_dict_metadata.items():
            if isinstance(meta, TensorStorageMetadata) and is_model_key(key):
                self.tensors[key] = DCPTensor(key, meta.properties.dtype, tuple(meta.size))
            else:
                self.other_keys.append(key)
        if not self.tensors:
            raise HFInteropError(
                f"{self.path}: no model weights in this checkpoint (keys start with "
                f"{sorted({k.split('.')[0] for k in self.other_keys})}; expected {list(MODEL_PREFIXES)})"
            )

    @property
    def shapes(self) -> dict[str, tuple[int, ...]]:
        return {name: t.shape for name, t in self.tensors.items()}

    def has_training_state(self) -> bool:
        return any(key.startswith("optimizer.") for key in self.other_keys)

    def load(self, names: Sequence[str]) -> dict[str, torch.Tensor]:
        """Load ``names`` in their stored dtype (FSDP / TP shards are reassembled)."""
        state = {name: torch.empty(self.tensors[name].shape, dtype=self.tensors[name].dtype) for name in names}
        with _single_process():
            dcp.load(state, storage_reader=dcp.FileSystemReader(str(self.path)), no_dist=True)
        return state

    def iter_tensors(self, names: Sequence[str], group_bytes: int = 256 * 2**20) -> Iterator[tuple[str, torch.Tensor]]:
        """Yield (name, tensor) in order, reading groups of about ``group_bytes`` per DCP call."""
        group: list[str] = []
        size = 0
        for name in names:
            meta = self.tensors[name]
            nbytes = torch.empty((), dtype=meta.dtype).element_size() * _numel(meta.shape)
            if group and size + nbytes > group_bytes:
                yield from self._load_group(group)
                group, size = [], 0
            group.append(name)
            size += nbytes
        if group:
            yield from self._load_group(group)

    def _load_group(self, group: list[str]) -> Iterator[tuple[str, torch.Tensor]]:
        loaded = self.load(group)
        for name in group:
            yield name, loaded.pop(name)


def _numel(shape: Sequence[int]) -> int:
    numel = 1
    for size in shape:
        numel *= size
    return numel


def save_dcp(state_dict: dict[str, torch.Tensor], out_dir: Path) -> None:
    """Write a single-rank DCP checkpoint (what ``--checkpoint.initial_load_path`` reads)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    writer = dcp.FileSystemWriter(str(out_dir), single_file_per_rank=True, thread_count=1)
    with _single_process():
        dcp.save(state_dict, storage_writer=writer, no_dist=True)


@contextlib.contextmanager
def _single_process():
    """Silence DCP's notice that it runs without a process group: that is the point here."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled", category=UserWarning)
        yield
