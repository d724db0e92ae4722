"""Best-fit packing of whole conversations into fixed-length rows, with a short look-ahead.

Filling rows strictly in arrival order ("next fit") leaves the tail of a row empty whenever the next
conversation does not fit; with reasoning traces of thousands of tokens that tail averages a large
part of a conversation. ``BestFitPacker`` keeps up to ``lookahead`` conversations waiting: each row
starts with the *oldest* waiting one (so none waits longer than about ``lookahead`` rows and the
order stays close to the stream's), then takes the longest waiting one that still fits, until none
does. Everything is deterministic; the waiting list is part of the loader's checkpoint state.

``row_quota`` caps the conversations per row at that number *on average*: when one rank's share of a
step is smaller than a row (many data-parallel ranks, short conversations), the quota keeps a step
at its number of conversations and pads the rest of the row instead. It is a running quota: row k
may take up to round(quota x k) minus the conversations taken so far (at least one), so a row that
could not reach its share leaves it to the next ones.

The packer only sees lengths (``len(item.inputs)``), so ``simulate_rows`` runs the same algorithm on
measured lengths to predict how full rows will be before training starts.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Generic, Protocol, TypeVar


class _HasInputs(Protocol):
    inputs: list[int]


T = TypeVar("T", bound=_HasInputs)


def round_up(n: int, multiple: int) -> int:
    """The smallest multiple of ``multiple`` that is >= ``n``."""
    return -(-n // multiple) * multiple


class SourceExhausted(Exception):
    """Raised by the ``pull`` callable when no conversation is left (a finite, one-pass dataset)."""


class BestFitPacker(Generic[T]):
    def __init__(self, row_tokens: int, lookahead: int = 64, row_quota: float | None = None):
        if row_tokens < 1 or lookahead < 1 or (row_quota is not None and row_quota <= 0):
            raise ValueError(
                f"row_tokens and lookahead must be >= 1 and row_quota > 0, got {row_tokens}, {lookahead}, {row_quota}"
            )
        self.row_tokens, self.lookahead, self.row_quota = row_tokens, lookahead, row_quota
        self.waiting: list[T] = []
        self.exhausted = False
        self.rows = self.taken = 0  # rows made and conversations placed (the running quota's state)

    def _allowed(self) -> int | None:
        if self.row_quota is None:
            return None
        return max(1, int(self.row_quota * (self.rows + 1) + 0.5) - self.taken)

    def _refill(self, pull: Callable[[], T]) -> None:
        while not self.exhausted and len(self.waiting) < self.lookahead:
            try:
                self.waiting.append(pull())
            except SourceExhausted:
                self.exhausted = True

    def next_row(self, pull: Callable[[], T]) -> list[T]:
        """The conversations of the next row, in row order (raises SourceExhausted when none is left)."""
        self._refill(pull)
        if not self.waiting:
            raise SourceExhausted
        row = [self.waiting.pop(0)]
        free = self.row_tokens - len(row[0].inputs)
        allowed = self._allowed()
        while allowed is None or len(row) < allowed:
            self._refill(pull)
            best = -1
            for i, item in enumerate(self.waiting):
                size = len(item.inputs)
                if size <= free and (best < 0 or size > len(self.waiting[best].inputs)):
                    best = i
            if best < 0:
                break
            item = self.waiting.pop(best)
            row.append(item)
            free -= len(item.inputs)
        self.rows, self.taken = self.rows + 1, self.taken + len(row)
        return row


class _Length:
    __slots__ = ("inputs",)

    def __init__(self, n: int):
        self.inputs = range(n)


def simulate_rows(lengths: Sequence[int], row_tokens: int, lookahead: int = 64, row_quota: float | None = None) -> int:
    """Rows ``BestFitPacker`` fills with conversations of these lengths (in this order)."""
    packer: BestFitPacker = BestFitPacker(row_tokens, lookahead, row_quota)
    stream = iter(lengths)

    def pull():
        for n in stream:
            return _Length(n)
        raise SourceExhausted

    rows = 0
    try:
        while True:
            packer.next_row(pull)
            rows += 1
    except SourceExhausted:
        return rows
