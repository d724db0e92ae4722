"""``[loss]``: next-token cross-entropy, or logit distillation when ``[distill]`` names a teacher.

The 128,256-way ``lm_head`` and the loss run on at most ``chunk_tokens`` tokens at a time
(``TokenChunkedLoss``, torchtitan's chunked-loss design with a token bound), so the full [B, L, V]
logits never exist; under distillation the teacher's ``lm_head`` runs inside the same chunk loop
(``mlr1_titan.distill.kd_loss``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import tyro
from torchtitan.components.loss import CrossEntropyLoss
from torchtitan.config import Configurable

from mlr1_titan.components.token_chunked_loss import TokenChunkedLoss
from mlr1_titan.distill.kd_loss import DistillationLoss


class MLR1Loss(Configurable):
    """Builds torchtitan's loss; the trainer asks ``config.loss.build(compile_config=...)``."""

    @dataclass(kw_only=True, slots=True)
    class Config(Configurable.Config):
        chunked: bool = True
        """Run lm_head + the loss on chunks of tokens, never on the whole [batch, seq, vocab] logits."""
        chunk_tokens: int = 2048
        """Most tokens per chunk (local batch x seq_len, flattened): logits memory <= chunk_tokens x vocab."""
        vocab_size: Annotated[int | None, tyro.conf.Suppress] = None
        """Derived from the model by the trainer config (vocab-parallel loss under TP)."""
        distillation: Annotated[DistillationLoss.Config | None, tyro.conf.Suppress] = None
        """Derived from [distill] by the trainer config: the inner loss when a teacher is set."""

        def __post_init__(self) -> None:
            if self.chunk_tokens < 1:
                raise ValueError(f"loss.chunk_tokens must be >= 1, got {self.chunk_tokens}")

        def torchtitan_config(self):
            inner = self.distillation or CrossEntropyLoss.Config(global_vocab_size=self.vocab_size)
            if not self.chunked:
                return inner
            return TokenChunkedLoss.Config(chunk_tokens=self.chunk_tokens, loss_fn=inner)

        def build(self, **kwargs):
            return self.torchtitan_config().build(**kwargs)
