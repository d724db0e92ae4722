"""``mlr1 export-hf``: a torchtitan DCP checkpoint -> a Hugging Face ``Llama4ForCausalLM`` folder.

The folder loads with ``AutoModelForCausalLM`` / ``AutoTokenizer`` (no ``trust_remote_code``) and in
vLLM: ``model.safetensors`` (or shards + index), ``config.json``, ``generation_config.json``,
``tokenizer.json`` + ``tokenizer_config.json`` (with the chat template).

Works offline in one CPU process from any DCP checkpoint (a seed, an interval checkpoint with
optimizer state, a model-only last save; saved by any number of FSDP / TP ranks). Tensors are read
and written one small group at a time, so memory stays near one tensor, not the model.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import torch

from mlr1_titan.model.flavors import MLR1Flavor
from mlr1_titan.resources import chat_template_file
from mlr1_titan.tokenizer import Llama3Tokenizer, save_hf_tokenizer

from .config import (
    HFInteropError,
    Log,
    SpecialTokenIds,
    describe_flavor,
    generation_config_dict,
    hf_config_dict,
    named_flavor,
    print_progress,
    write_json,
)
from .dcp_io import DCPCheckpoint, resolve_dcp_dir
from .safetensors_io import (
    DTYPES,
    INDEX_FILE,
    TensorEntry,
    dtype_name,
    format_bytes,
    parse_size,
    plan_shards,
    shard_file_names,
    write_index,
    write_safetensors,
)
from .shapes import (
    MODEL_TOML_NAME,
    check_shapes,
    detect_flavor,
    flavor_from_model_toml,
    hf_write_order,
    titan_shapes,
    titan_to_hf_names,
)

DEFAULT_MAX_SHARD_SIZE = "5GB"
HF_FOLDER_FILES = (
    "config.json",
    "generation_config.json",
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "chat_template.jinja",
    INDEX_FILE,
)


@dataclass
class ExportResult:
    out_dir: Path
    checkpoint: Path
    flavor: MLR1Flavor
    flavor_source: str
    dtype: torch.dtype
    chat_template: str
    files: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def weights_bytes(self) -> int:
        return sum(size for name, size in self.files.items() if name.endswith(".safetensors"))


# ---------------------------------------------------------------------------------------------
# Inputs: model shape, tokenizer, chat template.


def resolve_flavor(
    ckpt_dir: Path,
    shapes: dict[str, tuple[int, ...]],
    *,
    flavor: MLR1Flavor | None = None,
    flavor_source: str = "the given model shape",
    head_dim: int | None = None,
    rope_theta: float | None = None,
    max_position_embeddings: int | None = None,
) -> tuple[MLR1Flavor, str]:
    """The model shape of a checkpoint: ``flavor`` if given, else its mlr1_model.toml, else detected.

    ``head_dim`` is only needed for detection (no tensor carries it; 64 is assumed).
    """
    model_toml = ckpt_dir / MODEL_TOML_NAME
    if flavor is not None:
        source = flavor_source
    elif model_toml.is_file():
        flavor = flavor_from_model_toml(model_toml)
        source = f"{model_toml}"
    else:
        flavor = detect_flavor(shapes, head_dim=head_dim or 64, where=str(ckpt_dir))
        name = named_flavor(flavor)
        source = (
            f"detected from tensor shapes (head_dim {flavor.head_dim}{' assumed' if head_dim is None else ''}"
            f"{', = flavor ' + name if name else ''}; base-model rope_theta / context unless "
            "--config or --rope-theta / --max-position-embeddings say otherwise)"
        )
    overrides = {}
    if rope_theta is not None:
        overrides["rope_theta"] = float(rope_theta)
    if max_position_embeddings is not None:
        overrides["max_seq_len"] = int(max_position_embeddings)
    if head_dim is not None and head_dim != flavor.head_dim:
        raise HFInteropError(f"--head-dim {head_dim} contradicts the {source}: head_dim {flavor.head_dim}")
    return (flavor.replace(**overrides) if overrides else flavor), source


def load_tokenizer(tokenizer=None) -> Llama3Tokenizer:
    """A Llama3Tokenizer: the given one, or one from the given path, else Llama-3's."""
    if isinstance(tokenizer, Llama3Tokenizer):
        return tokenizer
    path = str(tokenizer) if tokenizer else None
    try:
        return Llama3Tokenizer(Llama3Tokenizer.Config(path=path))
    except (OSError, ValueError) as err:
        raise HFInteropError(f"tokenizer {path or '(Llama-3 default)'}: {err}") from None


def resolve_chat_template(chat_template: str | Path | bool | None) -> tuple[str | None, str]:
    """(template text or None, what it is). ``False``: none; a path: that file; ``None``: the SFT template."""
    if chat_template is False:
        return None, "none (disabled)"
    path = chat_template_file() if chat_template in (None, True) else Path(chat_template)
    if not path.is_file():
        raise HFInteropError(f"chat template file not found: {path}")
    label = f"{path} (the SFT template)" if chat_template in (None, True) else str(path)
    return path.read_text(encoding="utf-8"), label


def check_vocab(flavor: MLR1Flavor, tokenizer, where: str, tensor: str) -> None:
    if flavor.vocab_size != tokenizer.vocab_size:
        raise HFInteropError(
            f"vocab mismatch: {where} tensor {tensor} has {flavor.vocab_size} rows, but the tokenizer "
            f"{tokenizer.tokenizer_file} has {tokenizer.vocab_size} ids; pass the matching --tokenizer"
        )


# ---------------------------------------------------------------------------------------------
# Writing.


class Progress:
    """Byte progress over a long write: a line every ``every`` seconds and at each file end."""

    def __init__(self, total: int, log: Log, every: float = 5.0):
        self.total, self.log, self.every = total, log, every
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, nbytes: int, label: str, force: bool = False) -> None:
        self.done += nbytes
        now = time.monotonic()
        if force or now - self.last >= self.every:
            self.last = now
            elapsed = now - self.start
            rate = self.done / elapsed if elapsed > 0 else 0.0
            self.log(
                f"  [{100 * self.done / max(self.total, 1):5.1f}%] {format_bytes(self.done)} / "
                f"{format_bytes(self.total)}  {label}  {elapsed:.0f} s ({format_bytes(rate)}/s)"
            )


def prepare_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise HFInteropError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise HFInteropError(f"output folder {out_dir} is not empty; pass --force to overwrite it")
        for path in [*out_dir.glob("model*.safetensors"), *(out_dir / name for name in HF_FOLDER_FILES)]:
            path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def complete_hf_folder(
    out_dir: Path,
    flavor: MLR1Flavor,
    *,
    dtype: torch.dtype,
    tokenizer,
    chat_template: str | None,
) -> list[str]:
    """Write config.json, generation_config.json and the tokenizer files next to the weights."""
    ids = SpecialTokenIds.of(tokenizer)
    write_json(out_dir / "config.json", hf_config_dict(flavor, dtype=dtype_name(dtype), token_ids=ids))
    write_json(out_dir / "generation_config.json", generation_config_dict(ids))
    # "" (not None) keeps save_hf_tokenizer from falling back to the tokenizer's own template.
    save_hf_tokenizer(tokenizer, out_dir, chat_template=chat_template or "", model_max_length=flavor.max_seq_len)
    return ["config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"]


def _digest(tensor: torch.Tensor) -> bytes:
    return hashlib.blake2b(memoryview(tensor.contiguous().reshape(-1).view(torch.uint8).numpy())).digest()


def _cast_stream(
    ckpt: DCPCheckpoint, plan: list[TensorEntry], hf_to_titan: dict[str, str], verify_tied: bool
) -> Iterator[torch.Tensor]:
    """The planned tensors, read from the checkpoint and cast, one at a time.

    With ``verify_tied``, the stored lm_head must equal the embedding bit for bit (MobileLLM-R1 ties
    them; HF stores only the embedding). Compared by digest so the two never sit in memory together.
    """
    # next() rather than zip(): zip keeps its last tuple, which would pin the previous tensor.
    stream = ckpt.iter_tensors([hf_to_titan[entry.name] for entry in plan])
    for entry in plan:
        name, tensor = next(stream)
        check_tie = verify_tied and name == "tok_embeddings.weight"
        digest = _digest(tensor) if check_tie else b""
        out = tensor.to(entry.dtype)
        del tensor
        yield out
        del out
        if check_tie:
            head = ckpt.load(["lm_head.weight"])["lm_head.weight"]
            tied = _digest(head) == digest
            del head
            if not tied:
                raise HFInteropError(
                    f"{ckpt.path}: lm_head.weight differs from tok_embeddings.weight, but MobileLLM-R1 "
                    "ties them (HF tie_word_embeddings); this checkpoint is not a tied MobileLLM-R1 model"
                )


def export_hf(
    checkpoint: str | Path,
    out_dir: str | Path,
    *,
    flavor: MLR1Flavor | None = None,
    flavor_source: str = "the given model shape",
    dtype: str = "float32",
    tokenizer=None,
    chat_template: str | Path | bool | None = None,
    max_shard_size: str | int = DEFAULT_MAX_SHARD_SIZE,
    head_dim: int | None = None,
    rope_theta: float | None = None,
    max_position_embeddings: int | None = None,
    overwrite: bool = False,
    verify_tied: bool = True,
    log: Log = print_progress,
) -> ExportResult:
    """Convert a DCP checkpoint (``checkpoint/step-N`` or its parent) into an HF folder at ``out_dir``.

    ``flavor`` (e.g. a model config's, with ``flavor_source`` naming it) gives the shape and stage
    (rope_theta, context); without it the checkpoint's ``mlr1_model.toml`` is used, else the shape is
    detected from the tensors. ``tokenizer``: a Llama3Tokenizer or a path; None: Llama-3's.
    ``dtype``: float32 (default, as torchtitan's ``checkpoint.export_dtype``), bfloat16 or float16.
    ``chat_template``: a Jinja file, ``False`` for none, ``None`` for the SFT template if it exists.
    """
    begin = time.monotonic()
    if dtype not in DTYPES:
        raise HFInteropError(f"dtype {dtype!r}: choose one of {sorted(DTYPES)}")
    out_dtype = DTYPES[dtype]
    max_shard_bytes = parse_size(max_shard_size)
    out_dir = Path(out_dir)
    ckpt_dir = resolve_dcp_dir(checkpoint, log=log)
    ckpt = DCPCheckpoint(ckpt_dir)

    flavor, flavor_source = resolve_flavor(
        ckpt_dir,
        ckpt.shapes,
        flavor=flavor,
        flavor_source=flavor_source,
        head_dim=head_dim,
        rope_theta=rope_theta,
        max_position_embeddings=max_position_embeddings,
    )
    expected = titan_shapes(flavor)
    check_shapes(
        expected,
        ckpt.shapes,
        where=f"checkpoint {ckpt_dir}",
        expected_from=f"the model shape ({flavor_source})",
        optional=("lm_head.weight", "tok_embeddings.weight"),
    )
    embed_source = "tok_embeddings.weight" if "tok_embeddings.weight" in ckpt.tensors else "lm_head.weight"
    if embed_source not in ckpt.tensors:
        raise HFInteropError(f"{ckpt_dir}: neither tok_embeddings.weight nor lm_head.weight is stored")
    tok = load_tokenizer(tokenizer)
    check_vocab(flavor, tok, f"checkpoint {ckpt_dir}", embed_source)
    template, template_source = resolve_chat_template(chat_template)
    prepare_out_dir(out_dir, overwrite)

    titan_to_hf = titan_to_hf_names(flavor)
    hf_to_titan = {hf: titan for titan, hf in titan_to_hf.items()}
    hf_to_titan["model.embed_tokens.weight"] = embed_source
    entries = [
        TensorEntry(name, out_dtype, tuple(expected[hf_to_titan[name]])) for name in hf_write_order(list(hf_to_titan))
    ]
    shards = plan_shards(entries, max_shard_bytes)
    file_names = shard_file_names(len(shards))
    total = sum(entry.nbytes for entry in entries)

    log(f"export-hf {ckpt_dir} -> {out_dir}")
    log(f"  model: {describe_flavor(flavor)}")
    log(f"  shape from: {flavor_source}")
    stored = sorted({dtype_name(t.dtype) for t in ckpt.tensors.values()})
    log(
        f"  weights: {len(entries)} tensors, stored {'/'.join(stored)} -> {dtype_name(out_dtype)}, "
        f"{format_bytes(total)} in {len(shards)} file(s)"
        + ("" if not ckpt.has_training_state() else " (optimizer / dataloader state in the checkpoint is skipped)")
    )
    progress = Progress(total, log)
    result = ExportResult(out_dir, ckpt_dir, flavor, flavor_source, out_dtype, template_source)
    weight_map: dict[str, str] = {}
    check_tie = verify_tied and embed_source == "tok_embeddings.weight" and "lm_head.weight" in ckpt.tensors
    try:
        for file_name, shard in zip(file_names, shards, strict=True):
            size = write_safetensors(
                out_dir / file_name,
                shard,
                _cast_stream(ckpt, shard, hf_to_titan, check_tie),
                on_tensor=lambda entry, f=file_name: progress.advance(entry.nbytes, f),
            )
            progress.advance(0, f"{file_name} done", force=True)
            result.files[file_name] = size
            weight_map.update({entry.name: file_name for entry in shard})
    except BaseException:
        for file_name in file_names:  # no half-written folder that looks like a model
            (out_dir / file_name).unlink(missing_ok=True)
        raise
    if len(shards) > 1:
        write_index(out_dir, weight_map, total)

    log(f"  chat template: {template_source}")
    complete_hf_folder(out_dir, flavor, dtype=out_dtype, tokenizer=tok, chat_template=template)
    for path in sorted(out_dir.iterdir()):
        if path.is_file() and path.name not in result.files:
            result.files[path.name] = path.stat().st_size
    result.seconds = time.monotonic() - begin
    log(f"wrote {out_dir} in {result.seconds:.1f} s:")
    for name, size in sorted(result.files.items()):
        log(f"  {name:32s} {format_bytes(size):>10s}")
    return result
