"""MobileLLM-R1 decoder on torchtitan's common pieces (pre-norm GQA + SwiGLU, tied embeddings)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn as nn
from torchtitan.models.common.attention import AttentionMasksType
from torchtitan.models.common.decoder import Decoder, TransformerBlock
from torchtitan.models.utils import get_dense_model_nparams_and_flops

from mlr1_titan.llama3_vocab import VOCAB_SIZE

from .attention import DocumentCausalSDPA, document_causal_mask
from .sharding import set_mlr1_sharding_config


class MLR1TransformerBlock(TransformerBlock):
    """x + attn(norm(x)); x + ffn(norm(x)). Dense only: MobileLLM-R1 has no MoE layers."""

    @dataclass(kw_only=True, slots=True)
    class Config(TransformerBlock.Config):
        pass

    def __init__(self, config: Config):
        super().__init__()
        if config.moe is not None or config.feed_forward is None:
            raise ValueError("MobileLLM-R1 blocks are dense: set feed_forward, not moe.")
        self.attention = config.attention.build()
        self.feed_forward = config.feed_forward.build()
        self.attention_norm = config.attention_norm.build()
        self.ffn_norm = config.ffn_norm.build()

    def forward(
        self,
        x: torch.Tensor,
        attention_masks: AttentionMasksType | None,
        positions: torch.Tensor | None = None,
    ) -> torch.Tensor:
        x = x + self.attention(self.attention_norm(x), attention_masks, positions)
        return x + self.feed_forward(self.ffn_norm(x))


class MLR1Model(Decoder):
    @dataclass(kw_only=True, slots=True)
    class Config(Decoder.Config):
        dim: int = 1536
        vocab_size: int = VOCAB_SIZE

        def update_from_config(self, *, config, **kwargs) -> None:
            Decoder.Config.update_from_config(self, config=config, **kwargs)
            parallelism = config.parallelism
            if parallelism.context_parallel_degree > 1:
                raise ValueError(
                    f"parallelism.context_parallel_degree={parallelism.context_parallel_degree}: "
                    "context parallel is not supported for MobileLLM-R1 (sequences <= 32k fit with "
                    "TP + FSDP + activation checkpointing); set it to 1."
                )

            set_mlr1_sharding_config(self, enable_sp=parallelism.enable_sequence_parallel)

        def get_nparams_and_flops(self, model: nn.Module, seq_len: int) -> tuple[int, int]:
            attention = self.layers[0].attention
            return get_dense_model_nparams_and_flops(
                model,
                n_layers=len(self.layers),
                n_heads=attention.n_heads,
                head_dims=2 * attention.head_dim,
                seq_len=seq_len,
                enable_weight_tying=self.enable_weight_tying,
            )

    def __init__(self, config: Config):
        super().__init__(config)
        # The dense-mask CPU backend needs its mask from positions; flex/varlen get theirs
        # from the trainer (Trainer.post_dataloading_process -> get_attention_masks).
        self._dense_document_mask = isinstance(config.first_attention.inner_attention, DocumentCausalSDPA.Config)

    def get_attention_masks(self, positions: torch.Tensor) -> AttentionMasksType | None:
        if self._dense_document_mask:
            return document_causal_mask(positions)
        return Decoder.get_attention_masks(self, positions)

    def forward(
        self,
        tokens: torch.Tensor,
        positions: torch.Tensor | None = None,
        attention_masks: AttentionMasksType | None = None,
    ):
        if self._dense_document_mask and attention_masks is None and positions is not None:
            attention_masks = document_causal_mask(positions)
        return super().forward(tokens, positions, attention_masks)
