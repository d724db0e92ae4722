"""MobileLLM-R1 model sizes as data.

The three released sizes come from paper Table 1 (arXiv 2509.24945); everything the paper does not
print is marked as inferred, with the reasoning in ``docs/paper_facts.md`` (architecture).
A new size needs no Python: a model-config TOML's ``[model]`` table may name a flavor and override any
field below, or give every field itself (``mlr1_titan.model.settings``).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from mlr1_titan.llama3_vocab import VOCAB_SIZE


@dataclass(kw_only=True, frozen=True)
class MLR1Flavor:
    """Shape of one MobileLLM-R1 decoder."""

    n_layers: int
    """Number of transformer blocks."""
    dim: int
    """Model (residual stream) width."""
    n_heads: int
    """Query heads."""
    n_kv_heads: int
    """Key/value heads (grouped-query attention)."""
    ffn_hidden_dim: int
    """Width of the SwiGLU feed-forward ("Hidden Dim" in Table 1)."""
    head_dim: int = 64
    """Per-head width; 64 for all released sizes."""
    vocab_size: int = VOCAB_SIZE
    """Embedding rows; tied with the output projection."""
    rope_theta: float = 1.0e6
    """RoPE base. 1e6 is inferred (post-trained config has 8e6 after the x8 extension, docs/paper_facts.md)."""
    max_seq_len: int = 4096
    """Longest context the RoPE cache covers before training sets it to ``training.seq_len``."""
    norm_eps: float = 1e-5
    """Epsilon of the RMSNorms and of the weight-free QK L2-norm (Llama-4 default, inferred)."""
    init_std: float = 0.02
    """Std of the N(0, std) init of every Linear/Embedding (HF ``initializer_range``, docs/paper_facts.md)."""

    def __post_init__(self) -> None:
        sizes = ("n_layers", "dim", "n_heads", "n_kv_heads", "ffn_hidden_dim", "head_dim", "vocab_size", "max_seq_len")
        bad = [f"{name} = {getattr(self, name)}" for name in sizes if getattr(self, name) < 1]
        bad += [
            f"{name} = {getattr(self, name)}"
            for name in ("rope_theta", "norm_eps", "init_std")
            if getattr(self, name) <= 0
        ]
        if bad:
            raise ValueError(
                f"model shape: {', '.join(bad)}; every size must be >= 1 and rope_theta, norm_eps, init_std > 0"
            )
        if self.n_heads % self.n_kv_heads:
            raise ValueError(
                f"model shape: n_heads {self.n_heads} is not a multiple of n_kv_heads {self.n_kv_heads} "
                "(grouped-query attention shares each KV head among a whole number of query heads)"
            )

    def replace(self, **overrides) -> "MLR1Flavor":
        return dataclasses.replace(self, **overrides)

    def num_params(self) -> int:
        """Exact parameter count (tied embedding counted once, QK-norm has no weights)."""
        attn = 2 * self.dim * self.n_heads * self.head_dim + 2 * self.dim * self.n_kv_heads * self.head_dim
        ffn = 3 * self.dim * self.ffn_hidden_dim
        per_layer = attn + ffn + 2 * self.dim
        return self.n_layers * per_layer + self.vocab_size * self.dim + self.dim


# Paper Table 1: layers / dim / heads / KV heads / FFN hidden. head_dim = dim / heads = 64.
MLR1_FLAVORS: dict[str, MLR1Flavor] = {
    "140M": MLR1Flavor(n_layers=15, dim=576, n_heads=9, n_kv_heads=3, ffn_hidden_dim=2048),
    "360M": MLR1Flavor(n_layers=15, dim=1024, n_heads=16, n_kv_heads=4, ffn_hidden_dim=4096),
    "950M": MLR1Flavor(n_layers=22, dim=1536, n_heads=24, n_kv_heads=6, ffn_hidden_dim=6144),
    # Not in the paper: a few million non-embedding parameters, for CPU tests and `make demo`.
    # Keeps the real vocabulary so the real tokenizer and HF export work unchanged.
    "tiny": MLR1Flavor(n_layers=4, dim=256, n_heads=4, n_kv_heads=2, ffn_hidden_dim=768),
}


def get_flavor(name: str) -> MLR1Flavor:
    try:
        return MLR1_FLAVORS[name]
    except KeyError:
        raise ValueError(
            f"Unknown MobileLLM-R1 flavor {name!r}; available: {sorted(MLR1_FLAVORS)}. "
            "A new size can be described field by field in a model-config TOML's [model] table."
        ) from None
