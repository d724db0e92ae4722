"""``TokenChunkedLoss``: ``lm_head`` + loss over chunks of at most ``chunk_tokens`` tokens.

torchtitan's ``ChunkedLossWrapper`` splits each sequence into ``num_chunks`` equal parts, so a chunk
holds ``local_batch x seq_len / num_chunks`` tokens: its [tokens, V] logits grow with the batch and
the sequence, and seq_len must divide evenly. This wrapper flattens the [B, L] tokens and cuts them
into pieces of at most ``chunk_tokens`` (the last may be shorter), so the logits memory is bounded by
``chunk_tokens x V`` whatever the batch, sequence length or stage (4k mid-training, 32k SFT).

Everything else is torchtitan's design, reused: the model skips ``lm_head`` (the trainer sees a
``ChunkedLossWrapper``), hidden states are detached at the boundary, ``lm_head`` + the inner loss +
backward run per chunk with the FSDP-sharded ``lm_head`` kept gathered and its gradient reduced
once, and the accumulated hidden-state gradient re-enters the decoder through torchtitan's
``_DecoderOutputGradientBackProp``. Tensor-valued loss inputs of shape [B, L, ...] (``positions``,
the teacher's hidden states) are cut the same way. DTensor hidden states (full_dtensor backend)
go to torchtitan's sequence chunking with the smallest chunk count that respects the bound.

Shape legend: B batch, L sequence, D model dim, N = B x L tokens, n tokens of one chunk.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import spmd_types as spmd
import torch
from torch.distributed.tensor import DTensor
from torchtitan.components.loss import BaseLoss, ChunkedLossWrapper, CrossEntropyLoss
from torchtitan.config import CompileConfig
from torchtitan.distributed.utils import get_spmd_backend


class TokenChunkedLoss(ChunkedLossWrapper):
    @dataclass(kw_only=True, slots=True)
    class Config(BaseLoss.Config):
        chunk_tokens: int = 2048
        """Most tokens (batch x sequence, flattened) per lm_head + loss chunk."""
        loss_fn: BaseLoss.Config = field(default_factory=CrossEntropyLoss.Config)
        """Loss applied to each chunk's logits."""

    def __init__(self, config: Config, *, compile_config: CompileConfig | None = None):
        if config.chunk_tokens < 1:
            raise ValueError(f"chunk_tokens must be >= 1, got {config.chunk_tokens}")
        self.chunk_tokens = config.chunk_tokens
        self.num_chunks = 1  # used only by torchtitan's sequence chunking (DTensor inputs)
        self.loss_fn = config.loss_fn.build(compile_config=compile_config)
        self.lm_head = None

    def __call__(
        self,
        pred: torch.Tensor,
        labels: torch.Tensor,
        global_valid_tokens: torch.Tensor | None = None,
        **loss_inputs: Any,
    ) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
        if isinstance(pred, DTensor):
            L = pred.to_local().shape[1]
            want = -(-pred.to_local().shape[:2].numel() // self.chunk_tokens)
            # the fewest equal sequence chunks within the bound (L chunks of one position if none is)
            self.num_chunks = next((k for k in range(max(1, want), L + 1) if L % k == 0), L)
            return ChunkedLossWrapper.__call__(self, pred, labels, global_valid_tokens, **loss_inputs)
        return self._token_chunked(pred, labels, global_valid_tokens, loss_inputs)

    def _token_chunked(self, h_BLD, labels_BL, global_valid_tokens, loss_inputs):
        from torch.distributed._composable.fsdp import FSDPModule

        lm_head = self.lm_head
        assert lm_head is not None, "set_lm_head before calling TokenChunkedLoss"
        B, L, D = h_BLD.shape
        N = B * L
        requires_grad = h_BLD.requires_grad
        bounds = [(s, min(s + self.chunk_tokens, N)) for s in range(0, N, self.chunk_tokens)]
        fsdp_enabled = isinstance(lm_head, FSDPModule)

        with spmd.local():
            h_ND = h_BLD.detach().reshape(N, D)
            labels_N = labels_BL.reshape(N)
            flat_inputs = {
                key: value.reshape(N, *value.shape[2:])
                if isinstance(value, torch.Tensor) and value.shape[:2] == (B, L)
                else value
                for key, value in loss_inputs.items()
            }
            grad_ND = torch.zeros(N, D, dtype=torch.float32, device=h_BLD.device) if requires_grad else None
            total_loss = h_BLD.new_zeros((), dtype=torch.float32)
            if get_spmd_backend() == "spmd_types" and spmd.is_type_checking():
                for axis_name, dst in {"dp": spmd.P, "cp": spmd.P, "tp": spmd.I}.items():
                    total_loss = spmd.mutate_type(total_loss, axis_name, src=spmd.R, dst=dst)
            metrics: dict[str, torch.Tensor] = {}

            if fsdp_enabled:
                # One all-gather of lm_head for all chunks, one gradient reduce-scatter at the last.
                lm_head.set_reshard_after_forward(False)
                lm_head.set_reshard_after_backward(False)
                lm_head.set_requires_gradient_sync(False, recurse=False)
                with spmd.no_typecheck():
                    lm_head.unshard()

            for i, (start, end) in enumerate(bounds):
                if fsdp_enabled and i == len(bounds) - 1:
                    lm_head.set_requires_gradient_sync(True, recurse=False)
                # [1, n, ...]: the inner losses take [batch, seq, ...] tensors.
                h_1nD = h_ND[start:end].detach().unsqueeze(0).requires_grad_(requires_grad)
                chunk_inputs = {
                    key: value[start:end].unsqueeze(0) if isinstance(value, torch.Tensor) and value.shape[0] == N
                    else value
                    for key, value in flat_inputs.items()
                }  # fmt: skip
                chunk_loss, chunk_metrics = self.loss_fn(
                    lm_head(h_1nD), labels_N[start:end].unsqueeze(0), global_valid_tokens, **chunk_inputs
                )
                metrics = self._combine_chunk_metrics(metrics, chunk_metrics)
                total_loss = total_loss + chunk_loss.detach()
                if requires_grad:
                    with spmd.no_typecheck():
                        chunk_loss.backward()
                    grad_ND[start:end] = h_1nD.grad[0]

            if fsdp_enabled:
                lm_head.set_reshard_after_forward(True)
                lm_head.set_reshard_after_backward(True)
                lm_head.set_requires_gradient_sync(True, recurse=False)
                lm_head.reshard()
            if not requires_grad:
                return total_loss, metrics
            accumulated_BLD = grad_ND.view(B, L, D).to(h_BLD.dtype)

        with spmd.no_typecheck():
            loss = self._gradient_backprop(h_BLD, accumulated_BLD, total_loss, lm_head, fsdp_enabled)
        return loss, metrics
