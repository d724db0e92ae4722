"""MobileLLM-R1 attention: GQA + interleaved RoPE + weight-free QK L2-norm *after* RoPE.

Shape suffixes (as in torchtitan): B batch, L sequence, D model dim, N heads, H head dim.

torchtitan's ``GQAttention`` applies its optional (learnable) QK-norm *before* RoPE, Qwen3 style.
The Llama-4 text block that the released checkpoints use normalises q and k *after* RoPE with a
parameter-free RMS ("L2") norm, so we subclass and only reorder that step. Everything else
(fused QKV, sharding hooks, inner-attention backends) is torchtitan's.

``DocumentCausalSDPA`` is the CPU inner-attention backend: torchtitan's FlexAttention has no CPU
backward and varlen is CUDA-only, and its SDPA backend ignores document boundaries. This one takes
the dense block-causal mask that ``MLR1Model`` derives from ``positions`` (documents start where
positions reset to 0), so packed sequences never attend across documents on CPU either.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torchtitan.models.common.attention import AttentionMasksType, GQAttention
from torchtitan.protocols.module import Module


def qk_l2_norm(x_BLNH: torch.Tensor, eps: float) -> torch.Tensor:
    """x * rsqrt(mean(x^2) + eps) over the head dim, in fp32, no weight (Llama-4 ``L2Norm``)."""
    x = x_BLNH.float()
    return (x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps)).type_as(x_BLNH)


class MLR1Attention(GQAttention):
    @dataclass(kw_only=True, slots=True)
    class Config(GQAttention.Config):
        qk_l2_norm_eps: float | None = 1e-5
        """Epsilon of the weight-free QK norm applied after RoPE; None disables it."""

    def __init__(self, config: Config):
        if config.qk_norm is not None:
            raise ValueError(
                "MLR1Attention uses a weight-free QK norm after RoPE (qk_l2_norm_eps); "
                "the learnable pre-RoPE `qk_norm` of GQAttention must be None."
            )
        super().__init__(config)
        self.qk_l2_norm_eps = config.qk_l2_norm_eps

    def forward(
        self,
        x_BLD: torch.Tensor,
        attention_masks: AttentionMasksType | None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        xq_BLNH, xk_BLNH, xv_BLNH = self.qkv_linear(x_BLD)
        xq_BLNH, xk_BLNH = self.rope(xq_BLNH, xk_BLNH, positions)
        if self.qk_l2_norm_eps is not None:
            xq_BLNH = qk_l2_norm(xq_BLNH, self.qk_l2_norm_eps)
            xk_BLNH = qk_l2_norm(xk_BLNH, self.qk_l2_norm_eps)
        out_BLNH = self.inner_attention(
            xq_BLNH,
            xk_BLNH,
            xv_BLNH,
            attention_masks=attention_masks,
            scale=self.scaling,
            enable_gqa=self.enable_gqa,
        ).contiguous()
        return self.wo(out_BLNH.flatten(2))


def document_causal_mask(positions_BL: torch.Tensor) -> torch.Tensor:
    """Boolean [B, 1, L, L] mask: causal, and only within the document of the query.

    A document starts wherever ``positions`` is 0 (torchtitan's packing convention).
    """
    doc_id_BL = torch.cumsum((positions_BL == 0).to(torch.int32), dim=1)
    same_doc_BLL = doc_id_BL.unsqueeze(2) == doc_id_BL.unsqueeze(1)
    L = positions_BL.shape[1]
    causal_LL = torch.ones(L, L, dtype=torch.bool, device=positions_BL.device).tril()
    return (same_doc_BLL & causal_LL).unsqueeze(1)


class DocumentCausalSDPA(Module):
    """SDPA inner attention honouring a dense document mask; the CPU backend (``attn_backend='sdpa_doc'``)."""

    @dataclass(kw_only=True, slots=True)
    class Config(Module.Config):
        pass

    def __init__(self, config: Config):
        super().__init__()

    def forward(
        self,
        q_BLNH: torch.Tensor,
        k_BLNH: torch.Tensor,
        v_BLNH: torch.Tensor,
        *,
        attention_masks: torch.Tensor | None = None,
        scale: float | None = None,
        enable_gqa: bool = False,
        **kwargs,
    ) -> torch.Tensor:
        if attention_masks is not None and not isinstance(attention_masks, torch.Tensor):
            raise TypeError(
                "DocumentCausalSDPA expects a dense boolean mask from MLR1Model, got "
                f"{type(attention_masks).__name__}; use attn_backend='flex' or 'varlen' for those masks."
            )
        q_BNLH, k_BNLH, v_BNLH = (t.transpose(1, 2) for t in (q_BLNH, k_BLNH, v_BLNH))
        out_BNLH = F.scaled_dot_product_attention(
            q_BNLH,
            k_BNLH,
            v_BNLH,
            attn_mask=attention_masks,
            is_causal=attention_masks is None,
            scale=scale,
            enable_gqa=enable_gqa,
        )
        return out_BNLH.transpose(1, 2)
