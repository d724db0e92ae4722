"""Tensor names and shapes of a flavor, flavor detection from shapes, and the checkpoint's model TOML.

Names are translated with the committed ``MLR1StateDictAdapter`` only (no second table here): the
adapter is applied to a dict of placeholders to learn which HF name each torchtitan name gets.
"""

from __future__ import annotations

import functools
import re
import tomllib
from collections.abc import Mapping, Sequence
from pathlib import Path

import torch

from mlr1_titan.model import build_model_config, model_registry
from mlr1_titan.model.flavors import MLR1Flavor
from mlr1_titan.model.settings import ModelSettings
from mlr1_titan.model.state_dict_adapter import MLR1StateDictAdapter

from .config import SHAPE_FIELDS, HFInteropError, describe_flavor, named_flavor

MODEL_TOML_NAME = "mlr1_model.toml"
"""Model shape written next to a DCP checkpoint (by import-hf and by the trainer's checkpointer)."""

Shape = tuple[int, ...]


@functools.lru_cache(maxsize=16)
def _titan_shapes_cached(flavor: MLR1Flavor) -> tuple[tuple[str, Shape], ...]:
    spec = model_registry(flavor, attn_backend="sdpa_doc")
    with torch.device("meta"):
        model = spec.model.build()
    return tuple((name, tuple(t.shape)) for name, t in model.state_dict().items())


def titan_shapes(flavor: MLR1Flavor) -> dict[str, Shape]:
    """torchtitan state-dict name -> shape, as the trainer's model (and its DCP checkpoints) hold them."""
    return dict(_titan_shapes_cached(flavor))


def model_config(flavor: MLR1Flavor):
    return build_model_config(flavor, "sdpa_doc")


def titan_to_hf_names(flavor: MLR1Flavor) -> dict[str, str]:
    """torchtitan name -> HF name for every tensor HF stores (the tied lm_head is not stored)."""
    adapter = MLR1StateDictAdapter(model_config(flavor), None)
    hf = adapter.to_hf({name: name for name in titan_shapes(flavor)})
    return {titan: hf_name for hf_name, titan in hf.items()}


def hf_shapes(flavor: MLR1Flavor) -> dict[str, Shape]:
    shapes = titan_shapes(flavor)
    return {hf: shapes[titan] for titan, hf in titan_to_hf_names(flavor).items()}


_NUMBER = re.compile(r"(\d+)")


def natural_key(name: str) -> list:
    """'model.layers.10.x' sorts after 'model.layers.9.x'."""
    return [int(part) if part.isdigit() else part for part in _NUMBER.split(name)]


def hf_write_order(names: Sequence[str]) -> list[str]:
    """Embedding first, layers in order, final norm and head last (so shards split between layers)."""

    def key(name: str):
        rank = 0 if "embed_tokens" in name else 2 if not name.startswith("model.layers.") else 1
        return (rank, natural_key(name))

    return sorted(names, key=key)


# ---------------------------------------------------------------------------------------------
# Flavor detection from the tensors of a torchtitan checkpoint.


def _layer_indices(names: Sequence[str]) -> list[int]:
    return sorted({int(m.group(1)) for n in names if (m := re.match(r"layers\.(\d+)\.", n))})


def detect_flavor(
    shapes: Mapping[str, Sequence[int]],
    *,
    head_dim: int = 64,
    base: MLR1Flavor | None = None,
    where: str = "checkpoint",
) -> MLR1Flavor:
    """The flavor whose tensors have these shapes (torchtitan names).

    Layer count, width, FFN and vocabulary follow from the shapes; the head count needs the head
    width, which no tensor carries (the QK-norm has no weights): ``head_dim`` (64 for every released
    size) is assumed. Stage numerics (rope_theta, max_seq_len, norm_eps) come from ``base``.
    """

    def shape_of(name: str) -> tuple[int, ...]:
        if name not in shapes:
            raise HFInteropError(
                f"{where}: cannot detect the model shape: tensor {name!r} is missing "
                f"(found {len(shapes)} model tensors, e.g. {sorted(shapes)[:4]})"
            )
        return tuple(shapes[name])

    layers = _layer_indices(list(shapes))
    if not layers:
        raise HFInteropError(f"{where}: no 'layers.N.*' tensors; is this a MobileLLM-R1 checkpoint?")
    if layers != list(range(len(layers))):
        raise HFInteropError(f"{where}: layer indices are not 0..{len(layers) - 1}: {layers}")
    embed_name = "tok_embeddings.weight" if "tok_embeddings.weight" in shapes else "lm_head.weight"
    vocab, dim = shape_of(embed_name)
    q_rows, q_cols = shape_of("layers.0.attention.qkv_linear.wq.weight")
    k_rows, _ = shape_of("layers.0.attention.qkv_linear.wk.weight")
    ffn, _ = shape_of("layers.0.feed_forward.w1.weight")
    for rows, tensor in ((q_rows, "wq"), (k_rows, "wk")):
        if rows % head_dim:
            raise HFInteropError(
                f"{where}: layers.0.attention.qkv_linear.{tensor}.weight has {rows} rows, not a multiple of "
                f"head_dim {head_dim}; pass the model config (--config NAME_or_TOML) or --head-dim"
            )
    base = base or MLR1Flavor(n_layers=1, dim=1, n_heads=1, n_kv_heads=1, ffn_hidden_dim=1)
    return base.replace(
        n_layers=len(layers),
        dim=dim,
        n_heads=q_rows // head_dim,
        n_kv_heads=k_rows // head_dim,
        ffn_hidden_dim=ffn,
        head_dim=head_dim,
        vocab_size=vocab,
    )


def check_shapes(
    expected: Mapping[str, Sequence[int]],
    actual: Mapping[str, Sequence[int]],
    *,
    where: str,
    expected_from: str,
    optional: Sequence[str] = (),
    files: Mapping[str, str] | None = None,
) -> None:
    """Raise naming every missing / unexpected tensor and every shape mismatch (expected vs actual).

    ``files`` (tensor -> file name) adds where each offending tensor is stored.
    """
    files = files or {}

    def at(name: str) -> str:
        return f" [{files[name]}]" if name in files else ""

    problems = []
    for name, shape in expected.items():
        if name not in actual:
            if name not in optional:
                problems.append(f"missing tensor {name} (expected shape {list(shape)})")
        elif tuple(actual[name]) != tuple(shape):
            problems.append(f"tensor {name}: expected shape {list(shape)}, found {list(actual[name])}{at(name)}")
    extra = [name for name in actual if name not in expected]
    problems += [f"unexpected tensor {name} (shape {list(actual[name])}){at(name)}" for name in sorted(extra)]
    if problems:
        shown = "\n  ".join(problems[:12])
        more = f"\n  ... and {len(problems) - 12} more" if len(problems) > 12 else ""
        raise HFInteropError(f"{where} does not match {expected_from}:\n  {shown}{more}")


def check_flavor_matches(expected: MLR1Flavor, actual: MLR1Flavor, *, where: str, expected_from: str) -> None:
    diffs = [
        f"{field} {getattr(expected, field)} expected, {getattr(actual, field)} found"
        for field in SHAPE_FIELDS
        if getattr(expected, field) != getattr(actual, field)
    ]
    if diffs:
        raise HFInteropError(f"{where} is a different model than {expected_from}: " + "; ".join(diffs))


# ---------------------------------------------------------------------------------------------
# The model TOML beside a DCP checkpoint.


def flavor_from_model_config(model_cfg) -> MLR1Flavor:
    """Recover the MLR1Flavor of a built ``MLR1Model.Config`` (before the trainer resizes RoPE)."""
    first = model_cfg.layers[0]
    attention = first.attention
    rope = attention.rope
    init = model_cfg.lm_head.param_init.get("weight") if model_cfg.lm_head.param_init else None
    std = getattr(init, "keywords", {}).get("std", 0.02) if init is not None else 0.02
    return MLR1Flavor(
        n_layers=len(model_cfg.layers),
        dim=model_cfg.dim,
        n_heads=attention.n_heads,
        n_kv_heads=attention.n_kv_heads or attention.n_heads,
        ffn_hidden_dim=first.feed_forward.w1.out_features,
        head_dim=attention.head_dim,
        vocab_size=model_cfg.vocab_size,
        rope_theta=float(rope.theta),
        max_seq_len=int(rope.max_seq_len),
        norm_eps=float(model_cfg.norm.eps),
        init_std=float(std),
    )


def flavor_from_model_toml(path: Path) -> MLR1Flavor:
    """The flavor in the [model] table of a checkpoint's mlr1_model.toml (its ``extends`` is not needed)."""
    try:
        with open(path, "rb") as handle:
            table = tomllib.load(handle).get("model", {})
        return ModelSettings(**table).shape()
    except (OSError, tomllib.TOMLDecodeError, TypeError, ValueError) as err:
        raise HFInteropError(f"{path}: cannot read the model shape from its [model] table: {err}") from None


def model_toml_text(flavor: MLR1Flavor, *, header: str, extends: str | None = None) -> str:
    """A model-config TOML (valid for ``--config``) whose [model] table spells out every field."""
    name = named_flavor(flavor)
    lines = [f"# {line}" if line else "#" for line in header.splitlines()]
    lines.append(f"# Shape: {describe_flavor(flavor)}")
    if extends:
        lines.append(f"extends = {_toml_string(extends)}")
    lines += ["", "[model]"]
    if name:
        lines.append(f'flavor = "{name}"')
        lines.append(f'name = "{name}"')
    for field in ("n_layers", "dim", "n_heads", "n_kv_heads", "ffn_hidden_dim", "head_dim", "vocab_size"):
        lines.append(f"{field} = {getattr(flavor, field)}")
    lines.append(f"rope_theta = {_toml_float(flavor.rope_theta)}")
    lines.append(f"max_seq_len = {flavor.max_seq_len}")
    lines.append(f"norm_eps = {_toml_float(flavor.norm_eps)}")
    lines.append(f"init_std = {_toml_float(flavor.init_std)}")
    return "\n".join(lines) + "\n"


def _toml_float(value: float) -> str:
    text = repr(float(value))
    return text if any(c in text for c in ".en") else text + ".0"


def _toml_string(value: str) -> str:
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
