"""``DistillStats``: the distillation metrics of one training step, logged under ``distill/``.

The loss adds each chunk's sums (on the device, no host sync); the trainer resets them at the start
of a step, times the teacher's forward on logging steps, and at logging reduces the sums over the
data-parallel ranks into:

* ``distill/kd_loss``: T^2 * KL(teacher || student) per token (the trained term);
* ``distill/ce``: the student's next-token cross-entropy per token (monitoring, or the mixed-in term);
* ``distill/top1_agreement``: fraction of tokens where the student's argmax is the teacher's;
* ``distill/teacher_tokens_per_s``: tokens per second of the teacher forward on this rank.
"""

from __future__ import annotations

import torch
import torch.distributed as dist

_SUMS = ("kd_sum", "ce_sum", "agree", "tokens")


class DistillStats:
    def __init__(self) -> None:
        self._sums: torch.Tensor | None = None
        # Count top-1 agreement (two argmax passes over the logits); the trainer sets it on log steps only.
        self.collect_agreement = True
        self.teacher_tokens = 0
        self.teacher_seconds = 0.0

    def reset(self) -> None:
        self._sums = None
        self.teacher_tokens, self.teacher_seconds = 0, 0.0

    def add_chunk(self, **sums: torch.Tensor) -> None:
        values = torch.stack([sums[k].detach().to(torch.float64) for k in _SUMS])
        self._sums = values if self._sums is None else self._sums + values

    def add_teacher_time(self, tokens: int, seconds: float) -> None:
        self.teacher_tokens += tokens
        self.teacher_seconds += seconds

    def reduce(self, group: dist.ProcessGroup | None = None) -> dict[str, float]:
        """The metrics over all ranks of ``group`` (None: this rank only); {} if nothing was added."""
        if self._sums is None:
            return {}
        sums = self._sums.clone()
        if group is not None:
            dist.all_reduce(sums, group=group)
        kd_sum, ce_sum, agree, tokens = sums.tolist()
        tokens = max(tokens, 1.0)
        metrics = {"distill/kd_loss": kd_sum / tokens, "distill/ce": ce_sum / tokens}
        if self.collect_agreement:
            metrics["distill/top1_agreement"] = agree / tokens
        if self.teacher_seconds > 0:
            metrics["distill/teacher_tokens_per_s"] = self.teacher_tokens / self.teacher_seconds
        return metrics
