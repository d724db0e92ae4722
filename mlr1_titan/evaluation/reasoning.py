"""Split an R1-style completion into its reasoning and its final answer.

Rules (documented in docs/evaluation.md, "Reasoning and truncation"):

- ``</think>`` present: the answer is the text after the *last* ``</think>``; status ``closed``.
- ``<think>`` opened and never closed: the reasoning ran out of budget (or the model stopped inside
  it). Status ``truncated``; there is no answer, so the sample scores 0 even if a ``\\boxed{}``
  appears mid-reasoning.
- Neither tag: an answer given without reasoning; status ``no_reasoning`` and the whole completion
  is the answer. If the chat template itself opens ``<think>`` in the generation prompt
  (``think_prefilled``), the completion starts inside the reasoning, so a missing ``</think>`` means
  ``truncated`` instead.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

THINK_OPEN = "<think>"
THINK_CLOSE = "</think>"

Status = Literal["closed", "truncated", "no_reasoning"]


@dataclass(frozen=True, slots=True)
class ReasoningSplit:
    status: Status
    """How the reasoning ended: ``closed``, ``truncated`` or ``no_reasoning``."""
    answer: str | None
    """Text after the reasoning; None when the reasoning never closed."""

    @property
    def truncated(self) -> bool:
        return self.status == "truncated"


def split_reasoning(completion: str, *, think_prefilled: bool = False) -> ReasoningSplit:
    """Return the final-answer part of ``completion`` and how its reasoning ended."""
    if not isinstance(completion, str):
        raise TypeError(f"completion must be a str, got {type(completion).__name__}")
    _, sep, tail = completion.rpartition(THINK_CLOSE)
    if sep:
        return ReasoningSplit("closed", tail.strip())
    if think_prefilled or THINK_OPEN in completion:
        return ReasoningSplit("truncated", None)
    return ReasoningSplit("no_reasoning", completion.strip())
