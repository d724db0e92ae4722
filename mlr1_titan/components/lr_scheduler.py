"""``[lr_scheduler]``: torchtitan's warmup-stable-decay schedule plus a warmup given as a ratio.

The paper's SFT stages state their warmup as a fraction of the run (Table 2: 3% and 10%), whose
length is only known once ``training.steps`` is (it may be derived from the data at start-up).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace

from torchtitan.components.optimizer.lr_scheduler import LRSchedulersContainer
from torchtitan.tools.logging import logger


class MLR1LRSchedulers(LRSchedulersContainer):
    @dataclass(kw_only=True, slots=True)
    class Config(LRSchedulersContainer.Config):
        warmup_ratio: float | None = None
        """If set, warmup_steps = ceil(warmup_ratio x total steps), overriding warmup_steps."""

        def __post_init__(self) -> None:
            if self.warmup_ratio is not None and not 0.0 <= self.warmup_ratio < 1.0:
                raise ValueError(f"lr_scheduler.warmup_ratio must be in [0, 1), got {self.warmup_ratio}")

        def resolved_warmup_steps(self, training_steps: int) -> int:
            if self.warmup_ratio is None:
                return self.warmup_steps
            total = self.total_steps if self.total_steps is not None else training_steps
            return max(1, math.ceil(self.warmup_ratio * total))

        def build(self, *, optimizers, training_steps):
            warmup = self.resolved_warmup_steps(training_steps)
            if self.warmup_ratio is not None:
                logger.info(f"warmup: {warmup} steps (warmup_ratio {self.warmup_ratio} x {training_steps} steps)")
            plain = LRSchedulersContainer.Config(**{name: getattr(self, name) for name in _TORCHTITAN_FIELDS})
            return replace(plain, warmup_steps=warmup).build(optimizers=optimizers, training_steps=training_steps)


_TORCHTITAN_FIELDS = tuple(f.name for f in fields(LRSchedulersContainer.Config))
