"""``[loss]``: next-token cross-entropy, chunked along the sequence by default.

torchtitan's ``ChunkedLossWrapper`` runs the 128,256-way ``lm_head`` and the loss one sequence
chunk at a time, so the full [B, L, V] logits never exist at once.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro
from torchtitan.components.loss import ChunkedLossWrapper, CrossEntropyLoss
from torchtitan.config import Configurable


class MLR1Loss(Configurable):
    """Builds torchtitan's loss; the trainer asks ``config.loss.build(compile_config=...)``."""

    @dataclass(kw_only=True, slots=True)
    class Config(Configurable.Config):
        chunked: bool = True
        """Run lm_head + cross-entropy per sequence chunk (torchtitan's ChunkedLossWrapper)."""
        num_chunks: int = 8
        """Chunks per sequence when chunked; training.seq_len must be a multiple of it."""
        vocab_size: Annotated[int | None, tyro.conf.Suppress] = None
        """Derived from the model by the trainer config (vocab-parallel loss under TP)."""

        def __post_init__(self) -> None:
            if self.num_chunks < 1:
                raise ValueError(f"loss.num_chunks must be >= 1, got {self.num_chunks}")

        def torchtitan_config(self) -> CrossEntropyLoss.Config | ChunkedLossWrapper.Config:
            ce = CrossEntropyLoss.Config(global_vocab_size=self.vocab_size)
            if not self.chunked:
                return ce
            return ChunkedLossWrapper.Config(num_chunks=self.num_chunks, loss_fn=ce)

        def build(self, **kwargs):
            return self.torchtitan_config().build(**kwargs)
