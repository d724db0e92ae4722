"""Progress lines with rate and ETA for the scoring commands (rank 0 prints for the whole job)."""

from __future__ import annotations

import sys
import time


def hms(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class Progress:
    """`done` of `total` samples; a line at most every `every` seconds (always when `verbose`)."""

    def __init__(self, label: str, total: int, *, enabled: bool, world: int = 1, every: float = 10.0, stream=None):
        self.label, self.total, self.enabled, self.world, self.every = label, total, enabled, world, every
        self.stream = stream or sys.stderr
        self.done = 0
        self.start = self.last = time.monotonic()

    def advance(self, samples: int, what: str = "") -> None:
        """This rank scored `samples` more; the job's progress is estimated as world x this rank's."""
        self.done += samples
        now = time.monotonic()
        if not self.enabled or (
            now - self.last < self.every and (not self.total or self.done * self.world < self.total)
        ):
            return
        self.last = now
        elapsed = now - self.start
        if not self.total:  # the amount of work is not known in advance
            rate = self.done * self.world / elapsed if elapsed > 0 else float("nan")
            print(
                f"{self.label}: {self.done * self.world} sample-scorings, {rate:.1f}/s, elapsed {hms(elapsed)}"
                f"{'  ' + what if what else ''}",
                file=self.stream,
                flush=True,
            )
            return
        job_done = min(self.done * self.world, self.total)
        rate = job_done / elapsed if elapsed > 0 else float("nan")
        eta = (self.total - job_done) / rate if rate and rate == rate else float("inf")
        print(
            f"{self.label}: {job_done}/{self.total} sample-scorings ({100 * job_done / self.total:.1f}%), "
            f"{rate:.1f}/s, elapsed {hms(elapsed)}, ETA {hms(eta)}{'  ' + what if what else ''}",
            file=self.stream,
            flush=True,
        )
