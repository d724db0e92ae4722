"""What a GPU cluster needs checked before the first step: a valid TP degree, attention memory,
float8 (torchao, hardware), and a visible proof that TP sharded the weights."""

from __future__ import annotations

from typing import TYPE_CHECKING

import torch
from torchtitan.tools.logging import logger

from mlr1_titan.model.settings import ModelSettings

if TYPE_CHECKING:
    from mlr1_titan.trainer import MLR1Trainer


def check_tensor_parallel_degree(model: ModelSettings, tp: int) -> None:
    """TP shards the query heads, the KV heads, the FFN and the vocabulary: the degree divides all four."""
    if tp <= 1:
        return
    shape = model.shape()
    sizes = {
        "query heads": shape.n_heads,
        "KV heads": shape.n_kv_heads,
        "FFN width": shape.ffn_hidden_dim,
        "vocabulary rows": shape.vocab_size,
    }
    bad = [f"{n} {what}" for what, n in sizes.items() if n % tp]
    if bad:
        valid = [d for d in range(1, shape.n_kv_heads + 1) if all(n % d == 0 for n in sizes.values())]
        raise ValueError(
            f"parallelism.tensor_parallel_degree {tp} does not divide the {model.label()} model's "
            f"{', '.join(bad)}; valid tensor-parallel degrees: {valid}"
        )


SDPA_DOC_MAX_MASK_BYTES = 1 << 30
"""Largest dense document mask (local batch x seq x seq booleans) ``sdpa_doc`` may build on a GPU:
1 GiB (e.g. 16 x 8k or 4 x 16k); flex and varlen attention need no such mask."""


def check_attention_memory(config: MLR1Trainer.Config, *, on_cuda: bool) -> None:
    if not on_cuda or config.model.resolved_attn_backend() != "sdpa_doc":
        return
    t, p = config.training, config.parallelism
    rows = p.pipeline_parallel_microbatch_size if p.pipeline_parallel_degree > 1 else t.local_batch_size
    data = config.dataloader.selected()
    length = getattr(data, "row_tokens", None) or t.seq_len  # packed chat rows may be longer than seq_len
    mask_bytes = rows * length * length
    if mask_bytes > SDPA_DOC_MAX_MASK_BYTES:
        raise ValueError(
            f"model.attn_backend sdpa_doc builds a {rows} x {length} x {length} boolean mask "
            f"({mask_bytes / 2**30:.1f} GiB) per micro-batch on the GPU, above its "
            f"{SDPA_DOC_MAX_MASK_BYTES / 2**30:.0f} GiB limit; use model.attn_backend flex (the GPU default) "
            "or varlen, or a smaller training.local_batch_size"
        )


def apply_float8(config: MLR1Trainer.Config) -> None:
    """Swap the Linear layers (all but ``float8_filter_fqns``) for torchao's float8 ones before the model
    is built; a missing torchao or a GPU without float8 support is an error here, before training."""
    compile_model = config.compile.enable and "model" in config.compile.components
    converter = config.model.float8_converter(compile_enabled=compile_model)
    if converter is None:
        return
    try:
        built = converter.build()
    except ImportError as err:
        raise ValueError(
            f"model.float8 = {config.model.float8!r} needs torchao: pip install 'mlr1_titan[float8]' ({err})"
        ) from None
    except ValueError as err:  # no SM89+ GPU (and not emulating)
        raise ValueError(f"model.float8 = {config.model.float8!r}: {err}") from None
    config.model_spec.model = built.convert(config.model_spec.model)


def log_float8_layers(model_parts, float8: str) -> None:
    """One line naming how many Linear layers the built model runs in float8, and which it kept."""
    if float8 == "none":
        return
    from torchtitan.components.quantization.float8 import Float8Linear  # deferred: needs torchao

    converted, kept = 0, []
    for part in model_parts:
        for name, module in part.named_modules():
            if isinstance(module, Float8Linear):
                converted += 1
            elif isinstance(module, torch.nn.Linear):
                kept.append(name)
    logger.info(f"float8 ({float8}): {converted} Linear layers in float8; kept in high precision: {kept}")


def log_tensor_parallel_layout(model_parts, tp: int) -> None:
    """One line showing that TP really sharded the weights: a projection's placements and local shape."""
    if tp <= 1:
        return
    for name, param in model_parts[0].named_parameters():
        if name.endswith("feed_forward.w1.weight"):
            local = param.to_local() if hasattr(param, "to_local") else param
            logger.info(
                f"tensor parallel: {name} placements {getattr(param, 'placements', None)}, "
                f"local shape {tuple(local.shape)} of {tuple(param.shape)}"
            )
            return
