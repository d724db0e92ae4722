"""``mlr1 import-hf``: a Hugging Face MobileLLM-R1 folder -> a torchtitan DCP checkpoint.

Reads the layout of the released checkpoints (``facebook/MobileLLM-R1-*``: ``Llama4ForCausalLM`` /
``llama4_text``, ``model.safetensors`` or shards + index) and of our own exports. The model shape
comes from ``config.json``; every tensor is checked against it before anything is written. The
output is what ``--checkpoint.initial_load_path`` reads (with ``--checkpoint.initial_load_model_only``),
plus ``mlr1_model.toml``: the detected shape as a model config to train it with.
"""

from __future__ import annotations

import time
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import safe_open
from tokenizers import Tokenizer

from mlr1_titan.llama3_vocab import VOCAB_SIZE
from mlr1_titan.model.flavors import MLR1Flavor
from mlr1_titan.model.state_dict_adapter import MLR1StateDictAdapter
from mlr1_titan.resources import config_search_dirs, model_configs_dir

from .config import (
    HFInteropError,
    Log,
    describe_flavor,
    flavor_from_hf_config,
    named_flavor,
    print_progress,
    read_hf_config,
)
from .dcp_io import METADATA_FILE, save_dcp
from .safetensors_io import DTYPES, dtype_name, format_bytes, list_hf_weights
from .shapes import (
    MODEL_TOML_NAME,
    check_flavor_matches,
    check_shapes,
    hf_shapes,
    model_config,
    model_toml_text,
    titan_shapes,
)


@dataclass
class ImportResult:
    out_dir: Path
    source: Path
    flavor: MLR1Flavor
    dtype: torch.dtype
    n_tensors: int
    nbytes: int
    seconds: float
    model_toml: Path


def _recipe_for(flavor: MLR1Flavor) -> Path:
    """The shipped recipe TOML of this size (mlr1_950m.toml ...), else the base pre-training recipe."""
    name = named_flavor(flavor)
    for directory in config_search_dirs() if name else ():
        recipe = directory / f"mlr1_{name.lower()}.toml"
        if recipe.is_file():
            return recipe
    return model_configs_dir() / "base" / "pretrain.toml"


def _tokenizer_vocab(hf_dir: Path) -> tuple[int, str]:
    path = hf_dir / "tokenizer.json"
    if path.is_file():
        try:
            return Tokenizer.from_file(str(path)).get_vocab_size(with_added_tokens=True), str(path)
        except Exception as err:  # tokenizers raises plain Exception
            raise HFInteropError(f"{path}: cannot load: {err}") from None
    return VOCAB_SIZE, "the Llama-3 tokenizer training uses"


def prepare_dcp_out_dir(out_dir: Path, overwrite: bool) -> None:
    if out_dir.exists() and not out_dir.is_dir():
        raise HFInteropError(f"output {out_dir} exists and is not a directory")
    if out_dir.is_dir() and any(out_dir.iterdir()):
        if not overwrite:
            raise HFInteropError(f"output folder {out_dir} is not empty; pass --force to overwrite it")
        for path in [out_dir / METADATA_FILE, out_dir / MODEL_TOML_NAME, *out_dir.glob("*.distcp")]:
            path.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)


def import_hf(
    hf_dir: str | Path,
    out_dir: str | Path,
    *,
    expected: tuple[MLR1Flavor, str] | None = None,
    dtype: str = "auto",
    overwrite: bool = False,
    log: Log = print_progress,
) -> ImportResult:
    """Convert the HF folder ``hf_dir`` into a DCP checkpoint at ``out_dir``.

    ``expected`` = (flavor, where it comes from), when given, must be the same shape (checked field by field).
    ``dtype``: "auto" keeps the stored dtype (bit-exact); float32 / bfloat16 / float16 cast.
    """
    begin = time.monotonic()
    hf_dir, out_dir = Path(hf_dir), Path(out_dir)
    if not hf_dir.is_dir():
        raise HFInteropError(f"HF folder not found: {hf_dir}")
    if dtype != "auto" and dtype not in DTYPES:
        raise HFInteropError(f"dtype {dtype!r}: choose auto or one of {sorted(DTYPES)}")
    config_path = hf_dir / "config.json"
    hf_config = read_hf_config(hf_dir)
    flavor, warnings = flavor_from_hf_config(hf_config, where=str(config_path))
    for warning in warnings:
        log(f"warning: {warning}")
    if expected is not None:
        wanted, path = expected
        check_flavor_matches(wanted, flavor, where=str(config_path), expected_from=path)
        for field, label in (("rope_theta", "rope_theta"), ("max_seq_len", "max_position_embeddings")):
            if getattr(wanted, field) != getattr(flavor, field):
                log(
                    f"note: {label} is {getattr(flavor, field)} in {config_path}, {getattr(wanted, field)} in {path}; "
                    "keeping the checkpoint's"
                )

    stored = list_hf_weights(hf_dir)
    ignored = sorted(name for name in stored if name.endswith("rotary_emb.inv_freq"))
    expected = hf_shapes(flavor)
    weights = {name: t for name, t in stored.items() if name not in ignored and name != "lm_head.weight"}
    check_shapes(
        expected,
        {name: t.shape for name, t in weights.items()},
        where=f"HF folder {hf_dir}",
        expected_from=f"its config.json ({describe_flavor(flavor)})",
        files={name: t.file.name for name, t in weights.items()},
    )
    tied = bool(hf_config.get("tie_word_embeddings", False))
    head = stored.get("lm_head.weight")
    if head is not None and head.shape != expected["model.embed_tokens.weight"]:
        raise HFInteropError(
            f"{head.file}: tensor lm_head.weight: expected shape "
            f"{list(expected['model.embed_tokens.weight'])}, found {list(head.shape)}"
        )
    if not tied and head is None:
        raise HFInteropError(
            f"{config_path}: tie_word_embeddings is false but there is no lm_head.weight; "
            "MobileLLM-R1 ties the output head to model.embed_tokens.weight"
        )
    vocab, vocab_source = _tokenizer_vocab(hf_dir)
    if vocab != flavor.vocab_size:
        raise HFInteropError(
            f"vocab mismatch: model.embed_tokens.weight has {flavor.vocab_size} rows, {vocab_source} has {vocab} ids"
        )
    prepare_dcp_out_dir(out_dir, overwrite)

    out_dtype = None if dtype == "auto" else DTYPES[dtype]
    stored_dtypes = sorted({dtype_name(t.dtype) for t in weights.values()})
    log(f"import-hf {hf_dir} -> {out_dir}")
    log(f"  model: {describe_flavor(flavor)}")
    total = 0
    by_file: dict[Path, list[str]] = defaultdict(list)
    for name, t in weights.items():
        by_file[t.file].append(name)
    hf_state: dict[str, torch.Tensor] = {}
    for file, names in sorted(by_file.items()):
        with safe_open(str(file), framework="pt", device="cpu") as handle:
            for name in names:
                tensor = handle.get_tensor(name)
                hf_state[name] = tensor if out_dtype is None else tensor.to(out_dtype)
                total += hf_state[name].numel() * hf_state[name].element_size()
        log(f"  read {file.name}: {len(names)} tensors ({format_bytes(total)} so far)")
    if head is not None:
        with safe_open(str(head.file), framework="pt", device="cpu") as handle:
            head_tensor = handle.get_tensor("lm_head.weight")
        embed = hf_state["model.embed_tokens.weight"]
        if not torch.equal(head_tensor.to(embed.dtype), embed):
            if not tied:
                raise HFInteropError(
                    f"{head.file}: lm_head.weight differs from model.embed_tokens.weight and "
                    f"tie_word_embeddings is false: an untied model, which MobileLLM-R1 is not"
                )
            log("note: lm_head.weight is stored but tie_word_embeddings is true; transformers ignores it, so do we")
        del head_tensor
    elif not tied:
        log("note: tie_word_embeddings is false but lm_head equals the embedding; importing as tied")

    adapter = MLR1StateDictAdapter(model_config(flavor), None)
    state = adapter.from_hf(hf_state)
    del hf_state
    check_shapes(
        titan_shapes(flavor),
        {k: tuple(v.shape) for k, v in state.items()},
        where="the converted state dict",
        expected_from="the torchtitan model",
    )
    log(f"  writing DCP ({', '.join(stored_dtypes)} -> {dtype_name(out_dtype) if out_dtype else 'as stored'})")
    save_dcp(state, out_dir)
    model_toml = out_dir / MODEL_TOML_NAME
    header = (
        f"Written by `mlr1 import-hf` from {hf_dir.resolve()}.\n"
        "The model shape of the DCP checkpoint in this folder, as a model config. Train from it with\n"
        f"  --config {model_toml.resolve()} --checkpoint.initial_load_path {out_dir.resolve()} "
        "--checkpoint.initial_load_model_only\n"
        "(`extends` = this size's pre-training recipe) or copy the [model] table into your own recipe."
    )
    model_toml.write_text(model_toml_text(flavor, header=header, extends=str(_recipe_for(flavor))), encoding="utf-8")
    seconds = time.monotonic() - begin
    result = ImportResult(
        out_dir, hf_dir, flavor, out_dtype or weights["model.norm.weight"].dtype, len(state), total, seconds, model_toml
    )
    log(f"wrote {out_dir} ({len(state)} tensors, {format_bytes(total)} of weights) in {seconds:.1f} s")
    log(f"  model config: {model_toml}")
    log(
        "  train from it: torchrun ... -m torchtitan.train --module mlr1_titan "
        f"--config {model_toml.resolve()} --checkpoint.enable "
        f"--checkpoint.initial_load_path {out_dir.resolve()} --checkpoint.initial_load_model_only"
    )
    return result
