"""MobileLLM-R1 model for torchtitan: ``model_registry(flavor) -> ModelSpec``.

The per-flavor config tree is built from torchtitan's common pieces (``make_gqa_config``,
``make_ffn_config``, ``RMSNorm``, ``Embedding``, ``Linear``, ``ComplexRoPE``) so its FSDP2, TP/SP,
activation checkpointing, torch.compile and float8 converters apply unchanged.
"""

from __future__ import annotations

import dataclasses
from functools import partial

import torch
import torch.nn as nn
from torchtitan.distributed.pipeline_parallel import pipeline_llm
from torchtitan.models.common import ComplexRoPE, Embedding, Linear
from torchtitan.models.common.config_utils import (
    get_attention_config,
    make_ffn_config,
    make_gqa_config,
)
from torchtitan.models.common.nn_modules import RMSNorm
from torchtitan.models.common.param_init import skip_param_init
from torchtitan.models.utils import validate_converter_order
from torchtitan.protocols.model import ModelConfigConverter
from torchtitan.protocols.model_spec import ModelSpec

from .attention import DocumentCausalSDPA, MLR1Attention, document_causal_mask
from .flavors import MLR1_FLAVORS, MLR1Flavor, get_flavor
from .model import MLR1Model, MLR1TransformerBlock
from .parallelize import parallelize_mlr1
from .state_dict_adapter import MLR1StateDictAdapter

__all__ = [
    "ATTN_BACKENDS",
    "DocumentCausalSDPA",
    "MLR1_FLAVORS",
    "MLR1Flavor",
    "MLR1Model",
    "build_model_config",
    "build_on_cpu",
    "default_attn_backend",
    "document_causal_mask",
    "inner_attention_config",
    "model_registry",
]

ATTN_BACKENDS = ("flex", "flex_flash", "varlen", "sdpa_doc")


def default_attn_backend() -> str:
    """flex on accelerators (torchtitan's default); the dense-mask SDPA backend on CPU-only hosts."""
    return "flex" if torch.cuda.is_available() else "sdpa_doc"


def inner_attention_config(backend: str):
    """torchtitan inner-attention config of a backend name (``ATTN_BACKENDS``)."""
    if backend == "sdpa_doc":
        return DocumentCausalSDPA.Config()
    if backend not in ATTN_BACKENDS:
        raise ValueError(f"Unknown attn_backend {backend!r}; choose one of {ATTN_BACKENDS}.")
    return get_attention_config(backend)


def build_model_config(flavor: MLR1Flavor, attn_backend: str) -> MLR1Model.Config:
    """The config tree of one MobileLLM-R1 decoder."""
    f = flavor
    normal = partial(nn.init.normal_, std=f.init_std)
    linear_init = {"weight": normal}
    norm_init = {"weight": nn.init.ones_}

    def rmsnorm() -> RMSNorm.Config:
        return RMSNorm.Config(normalized_shape=f.dim, eps=f.norm_eps, param_init=norm_init)

    rope = ComplexRoPE.Config(dim=f.head_dim, max_seq_len=f.max_seq_len, theta=f.rope_theta)
    layers = []
    for _ in range(f.n_layers):
        gqa = make_gqa_config(
            dim=f.dim,
            n_heads=f.n_heads,
            n_kv_heads=f.n_kv_heads,
            head_dim=f.head_dim,
            wqkv_param_init=linear_init,
            wo_param_init=linear_init,
            inner_attention=inner_attention_config(attn_backend),
            fuse_qkv=True,
            rope=rope,
        )
        # Same fields, our attention class: adds the post-RoPE weight-free QK norm.
        attention = MLR1Attention.Config(
            **{fld.name: getattr(gqa, fld.name) for fld in dataclasses.fields(gqa) if fld.init},
            qk_l2_norm_eps=f.norm_eps,
        )
        layers.append(
            MLR1TransformerBlock.Config(
                attention=attention,
                feed_forward=make_ffn_config(
                    dim=f.dim,
                    hidden_dim=f.ffn_hidden_dim,
                    w1_param_init=linear_init,
                    w2w3_param_init=linear_init,
                ),
                attention_norm=rmsnorm(),
                ffn_norm=rmsnorm(),
            )
        )
    return MLR1Model.Config(
        dim=f.dim,
        vocab_size=f.vocab_size,
        layers=layers,
        norm=rmsnorm(),
        # Tied input/output embedding: the lm_head weight is initialised, the embedding points at it.
        enable_weight_tying=True,
        tok_embeddings=Embedding.Config(
            num_embeddings=f.vocab_size,
            embedding_dim=f.dim,
            param_init={"weight": skip_param_init},
        ),
        lm_head=Linear.Config(in_features=f.dim, out_features=f.vocab_size, param_init=linear_init),
    )


def model_registry(
    flavor: str | MLR1Flavor,
    attn_backend: str | None = None,
    converters: list[ModelConfigConverter.Config] | None = None,
    name: str | None = None,
) -> ModelSpec:
    """ModelSpec for a named flavor ("140M", "360M", "950M", "tiny") or an explicit ``MLR1Flavor``."""
    if isinstance(flavor, str):
        flavor_name, shape = flavor, get_flavor(flavor)
    else:
        flavor_name, shape = name or "custom", flavor
    config = build_model_config(shape, attn_backend or default_attn_backend())
    if converters:
        validate_converter_order(converters)
        for converter in converters:
            config = converter.build().convert(config)
    return ModelSpec(
        name="mobilellm_r1",
        flavor=flavor_name,
        model=config,
        parallelize_fn=parallelize_mlr1,
        pipelining_fn=pipeline_llm,
        post_optimizer_build_fn=None,
        state_dict_adapter=MLR1StateDictAdapter,
    )


def build_on_cpu(flavor: str | MLR1Flavor, *, attn_backend: str = "sdpa_doc", seed: int = 0):
    """(ModelSpec, model) with initialised weights on the CPU, outside the trainer: tests,
    benchmarks and conversion tools. Built on meta first, exactly as the trainer does."""
    spec = model_registry(flavor, attn_backend=attn_backend)
    with torch.device("meta"):
        model = spec.model.build()
    model.to_empty(device="cpu")
    torch.manual_seed(seed)
    with torch.no_grad():
        model.init_weights()
    return spec, model
