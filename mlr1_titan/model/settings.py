"""``ModelSettings``: the ``[model]`` table (and ``--model.*`` flags) -> a flavor -> a ``ModelSpec``.

A run names a size (``flavor = "950M"``, paper Table 1) and may override any shape field, or gives
the whole shape itself; the stage adds its numerics (the reasoning-SFT stage multiplies RoPE theta
by 8 over 32k positions, ``docs/paper_facts.md`` §1.3). Fields left ``None`` come from the flavor.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Literal

from torchtitan.protocols.model_spec import ModelSpec

from mlr1_titan.model import default_attn_backend, model_registry
from mlr1_titan.model.flavors import MLR1_FLAVORS, MLR1Flavor, get_flavor

if TYPE_CHECKING:
    from torchtitan.components.quantization.float8 import Float8LinearConverter

AttnBackend = Literal["auto", "flex", "flex_flash", "varlen", "sdpa_doc"]
Float8Recipe = Literal["none", "tensorwise", "rowwise", "rowwise_with_gw_hp"]


@dataclass(kw_only=True, slots=True)
class ModelSettings:
    """Which MobileLLM-R1 decoder a run trains."""

    flavor: str | None = None
    """Named size: 140M, 360M, 950M (paper Table 1) or tiny; None: the shape fields below give the whole shape."""
    name: str | None = None
    """Label of the model in logs and checkpoints; None: the flavor name ("custom" for a whole shape)."""
    n_layers: int | None = None
    """Transformer blocks; None: the flavor's."""
    dim: int | None = None
    """Residual-stream width; None: the flavor's."""
    n_heads: int | None = None
    """Query heads; None: the flavor's."""
    n_kv_heads: int | None = None
    """Key/value heads (grouped-query attention); None: the flavor's."""
    ffn_hidden_dim: int | None = None
    """SwiGLU width ("Hidden Dim" of Table 1); None: the flavor's."""
    head_dim: int | None = None
    """Per-head width; None: the flavor's (64 for every released size)."""
    vocab_size: int | None = None
    """Embedding rows, tied with the output projection; None: the flavor's (128,256)."""
    rope_theta: float | None = None
    """RoPE base before rope_theta_multiplier; None: the flavor's (1e6)."""
    max_seq_len: int | None = None
    """Context the stage records (HF max_position_embeddings); None: the flavor's (4096)."""
    norm_eps: float | None = None
    """Epsilon of the RMSNorms and the weight-free QK L2-norm; None: the flavor's (1e-5)."""
    init_std: float | None = None
    """Std of the N(0, std) init of every Linear / Embedding; None: the flavor's (0.02)."""
    rope_theta_multiplier: float = 1.0
    """Context extension: the stage's RoPE theta is rope_theta x this (8 for reasoning SFT)."""
    attn_backend: AttnBackend = "auto"
    """Attention kernel: auto = flex on GPUs, sdpa_doc (dense document mask) on CPU-only hosts."""
    float8: Float8Recipe = "none"
    """float8 training of the Linear layers (torchao recipe; needs `pip install mlr1_titan[float8]`, SM89+)."""
    float8_filter_fqns: list[str] = field(default_factory=lambda: ["lm_head"])
    """Linear layers kept in bf16 under float8 (the tied 128,256-row lm_head by default)."""
    float8_emulate: bool = False
    """Emulate the float8 matmuls (tests on CPU or older GPUs; eager mode only, slow)."""

    def __post_init__(self) -> None:
        if self.flavor is not None and self.flavor not in MLR1_FLAVORS:
            get_flavor(self.flavor)  # raises, naming the known flavors
        if self.flavor is None:
            missing = [f for f in _REQUIRED_SHAPE_FIELDS if getattr(self, f) is None]
            if missing:
                raise ValueError(
                    f"model: set flavor (one of {sorted(MLR1_FLAVORS)}) or every shape field; missing {missing}"
                )
        if self.rope_theta_multiplier <= 0:
            raise ValueError(f"model.rope_theta_multiplier must be > 0, got {self.rope_theta_multiplier}")
        self.shape()  # an impossible shape (0 layers, 3 query heads over 2 KV heads, ...) fails here

    def shape(self) -> MLR1Flavor:
        """The decoder this table describes, the stage's RoPE theta applied."""
        overrides = {f: getattr(self, f) for f in _SHAPE_FIELDS if getattr(self, f) is not None}
        if self.flavor is not None:
            shape = get_flavor(self.flavor).replace(**overrides)
        else:
            shape = MLR1Flavor(**overrides)
        if self.rope_theta_multiplier != 1.0:
            shape = shape.replace(rope_theta=shape.rope_theta * self.rope_theta_multiplier)
        return shape

    def label(self) -> str:
        if self.name:
            return self.name
        if self.flavor is None:
            return "custom"
        customised = any(getattr(self, f) is not None for f in _SHAPE_FIELDS)
        return f"{self.flavor}-custom" if customised else self.flavor

    def resolved_attn_backend(self) -> str:
        return default_attn_backend() if self.attn_backend == "auto" else self.attn_backend

    def build_spec(self) -> ModelSpec:
        """The ModelSpec without float8: the converter needs the device, so the trainer applies it."""
        return model_registry(self.shape(), attn_backend=self.resolved_attn_backend(), name=self.label())

    def float8_converter(self, *, compile_enabled: bool) -> Float8LinearConverter.Config | None:
        if self.float8 == "none":
            return None
        # deferred: importing it imports torchao (optional, and noisy at import time)
        from torchtitan.components.quantization.float8 import Float8LinearConverter

        return Float8LinearConverter.Config(
            # torchtitan's annotation lists the rowwise recipes; torchao's recipe lookup takes all three
            recipe_name=self.float8,  # type: ignore[arg-type]
            filter_fqns=list(self.float8_filter_fqns),
            emulate=self.float8_emulate,
            model_compile_enabled=compile_enabled,
        )


_SHAPE_FIELDS = tuple(f.name for f in dataclasses.fields(MLR1Flavor))
_REQUIRED_SHAPE_FIELDS = tuple(f.name for f in dataclasses.fields(MLR1Flavor) if f.default is dataclasses.MISSING)
