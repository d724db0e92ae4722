"""Run one demo stage as a child process: its whole output to a log file, one progress line on the
console (stage, step, loss, elapsed, ETA), and the stage's wall time."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TRAIN_STEP = re.compile(r"(?<!validate )step:\s*(\d+)\s+loss:\s*([0-9.]+|nan|inf)")
"""torchtitan's training metrics line (rank 0), not its ``validate step:`` line."""
_TOTAL_STEPS = re.compile(r"total steps (\d+)")
"""torchtitan's start-up line (the step count of a chat stage comes from its data)."""
_N_OF_M = re.compile(r"\bstep (\d+)/(\d+)|\b(\d+)/(\d+) sample-scorings")
"""`n/m` progress of the side tools (tiny teacher; mix score and filter)."""
_LOSS = re.compile(r"loss\s+([0-9.]+)")


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 60}:{seconds % 60:02d}"


@dataclass
class StageResult:
    name: str
    returncode: int
    seconds: float
    log: Path


class ProgressLine:
    """The one console line of a running stage: rewritten in place on a terminal, otherwise printed
    about every tenth of the stage (so CI logs stay short)."""

    def __init__(self, label: str, total_steps: int | None, stream=None):
        self.label, self.total = label, total_steps
        self.stream = stream or sys.stdout
        self.tty = self.stream.isatty()
        self.start = time.monotonic()
        self.step, self.loss, self.last_printed = 0, None, -1
        self.first: tuple[int, float] | None = None
        """(step, time) of the first progress report: the rate excludes start-up."""

    def update(self, line: str) -> None:
        line = _ANSI.sub("", line)
        if m := _TOTAL_STEPS.search(line):
            self.total = int(m.group(1))
            return
        if m := _TRAIN_STEP.search(line):
            self.step, self.loss = int(m.group(1)), float(m.group(2))
        elif m := _N_OF_M.search(line):
            done, total = (g for g in m.groups() if g is not None)
            self.step, self.total = int(done), int(total)
            if lm := _LOSS.search(line):
                self.loss = float(lm.group(1))
        else:
            return
        if self.first is None:
            self.first = (self.step, time.monotonic())
        self._show()

    def text(self) -> str:
        elapsed = time.monotonic() - self.start
        parts = [self.label]
        if self.total:
            parts.append(f"step {self.step}/{self.total}")
        elif self.step:
            parts.append(f"step {self.step}")
        if self.loss is not None:
            parts.append(f"loss {self.loss:.3f}")
        parts.append(f"elapsed {_clock(elapsed)}")
        if self.total and self.first and self.step > self.first[0]:
            rate = (time.monotonic() - self.first[1]) / (self.step - self.first[0])
            parts.append(f"ETA {_clock(rate * (self.total - self.step))}")
        return "  ".join(parts)

    def _show(self) -> None:
        if self.tty:
            self.stream.write("\r\x1b[2K" + self.text())
            self.stream.flush()
            return
        tenth = max(1, (self.total or 10) // 10)
        if self.step // tenth != self.last_printed:
            self.last_printed = self.step // tenth
            print(self.text(), file=self.stream, flush=True)

    def finish(self, ok: bool) -> float:
        elapsed = time.monotonic() - self.start
        end = f"{self.label}  {'done' if ok else 'FAILED'} in {_clock(elapsed)}"
        if self.loss is not None:
            end += f"  (last loss {self.loss:.3f})"
        print(("\r\x1b[2K" if self.tty else "") + end, file=self.stream, flush=True)
        return elapsed


def run_stage(label: str, cmd: list[str], log: Path, total_steps: int | None = None, env=None) -> StageResult:
    """Run ``cmd``, its stdout and stderr to ``log``, with a progress line; never raises on failure."""
    log.parent.mkdir(parents=True, exist_ok=True)
    line = ProgressLine(label, total_steps)
    with open(log, "w") as out:
        out.write("+ " + " ".join(cmd) + "\n")
        out.flush()
        proc = subprocess.Popen(
            cmd,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            errors="replace",
            env={**(env or os.environ), "PYTHONUNBUFFERED": "1"},  # lines as they happen, for the progress line
        )
        assert proc.stdout is not None
        for text in proc.stdout:
            out.write(text)
            line.update(text)
        rc = proc.wait()
    return StageResult(label, rc, line.finish(rc == 0), log)
