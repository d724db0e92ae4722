"""Math-answer equivalence with math-verify, under a hard per-answer timeout that works in any thread.

math-verify's own timeout uses ``signal.alarm`` and so only works in the main thread. We call
``parse(..., parsing_timeout=None)`` and ``verify(..., timeout_seconds=None)`` (its documented way
to switch the signal off) inside a long-lived worker *process*, and enforce the timeout from the
parent: if no verdict arrives in time the worker is killed, the answer counts as not equivalent,
and a fresh worker starts on the next request. Some inputs really hang sympy for tens of seconds
(e.g. ``(x+1)^{2000}`` vs ``(x+2)^{2000}``), so this is not hypothetical.

The worker is this file run as a script (JSON lines on stdin/stdout), so it needs no
``multiprocessing`` start method and works the same under pytest, lm-eval or a thread pool.
"""

from __future__ import annotations

import atexit
import json
import logging
import os
import select
import subprocess
import sys
import threading
import time
from dataclasses import dataclass

# Worker start-up (importing sympy and the LaTeX grammar) is not charged to the first answer.
_STARTUP_TIMEOUT_S = 120.0


@dataclass(frozen=True, slots=True)
class Verdict:
    equivalent: bool
    timed_out: bool = False
    error: str | None = None


def as_latex(answer: str) -> str:
    """Wrap a bare answer string in ``$...$`` so math-verify's LaTeX extractor sees it whole."""
    answer = answer.strip()
    if "$" in answer or "\\boxed" in answer:
        return answer
    return f"${answer}$"


class MathJudge:
    """Thread-safe math-verify front end with a per-answer wall-clock timeout."""

    def __init__(self, timeout_s: float = 5.0):
        if timeout_s <= 0:
            raise ValueError(f"math judge timeout must be > 0 seconds, got {timeout_s}")
        self.timeout_s = float(timeout_s)
        self._proc: subprocess.Popen | None = None
        self._lock = threading.Lock()
        self._cache: dict[tuple[str, str], Verdict] = {}
        self.timeouts = 0

    def equivalent(self, gold: str, predicted: str) -> Verdict:
        """Is ``predicted`` mathematically equal to ``gold``? (gold first: math-verify is asymmetric)."""
        key = (gold, predicted)
        with self._lock:
            if key not in self._cache:
                self._cache[key] = self._ask(gold, predicted)
            return self._cache[key]

    def _start(self) -> subprocess.Popen:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-u", os.path.abspath(__file__), "--worker"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
            env=env,
            start_new_session=True,  # Ctrl-C in the terminal does not hit the worker mid-answer
        )
        line = self._read_line(proc, _STARTUP_TIMEOUT_S)
        if line is None or json.loads(line).get("ready") is not True:
            self._kill(proc)
            raise RuntimeError(
                f"math-verify worker did not start within {_STARTUP_TIMEOUT_S:.0f}s "
                f"({sys.executable} {__file__} --worker); is math-verify installed?"
            )
        return proc

    @staticmethod
    def _read_line(proc: subprocess.Popen, timeout_s: float) -> str | None:
        assert proc.stdout is not None
        deadline = time.monotonic() + timeout_s
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return None
            ready, _, _ = select.select([proc.stdout], [], [], remaining)
            if ready:
                line = proc.stdout.readline()
                return line or None  # "" means the worker died

    @staticmethod
    def _kill(proc: subprocess.Popen) -> None:
        try:
            os.killpg(proc.pid, 9)
        except (ProcessLookupError, PermissionError):
            pass
        proc.wait()
        for stream in (proc.stdin, proc.stdout):
            if stream is not None:
                stream.close()

    def _ask(self, gold: str, predicted: str) -> Verdict:
        if self._proc is None or self._proc.poll() is not None:
            self._proc = self._start()
        assert self._proc.stdin is not None
        try:
            self._proc.stdin.write(json.dumps({"gold": gold, "pred": predicted}) + "\n")
            self._proc.stdin.flush()
        except BrokenPipeError:
            self._kill(self._proc)
            self._proc = None
            return Verdict(False, error="math-verify worker died")
        line = self._read_line(self._proc, self.timeout_s)
        if line is None:
            self._kill(self._proc)
            self._proc = None
            self.timeouts += 1
            return Verdict(False, timed_out=True, error=f"math-verify exceeded {self.timeout_s}s")
        reply = json.loads(line)
        return Verdict(bool(reply["equal"]), error=reply.get("error"))

    def close(self) -> None:
        with self._lock:
            if self._proc is not None:
                self._kill(self._proc)
                self._proc = None


_JUDGES: dict[float, MathJudge] = {}


def shared_judge(timeout_s: float = 5.0) -> MathJudge:
    """One judge (one worker process) per timeout value for the whole evaluation."""
    if timeout_s not in _JUDGES:
        _JUDGES[timeout_s] = MathJudge(timeout_s)
    return _JUDGES[timeout_s]


@atexit.register
def _close_judges() -> None:
    for judge in _JUDGES.values():
        judge.close()


def _serve() -> None:
    """Worker loop: one JSON request per stdin line, one JSON verdict per stdout line."""
    # deferred: only the worker process loads math-verify (sympy, antlr: seconds)
    from math_verify import ExprExtractionConfig, LatexExtractionConfig, parse, verify

    logging.disable(logging.WARNING)  # "timeout is disabled" notices: the parent enforces it
    configs = [LatexExtractionConfig(), ExprExtractionConfig()]
    parsed: dict[str, list] = {}

    def parse_cached(text: str) -> list:
        if text not in parsed:
            parsed[text] = parse(as_latex(text), extraction_config=configs, parsing_timeout=None)
        return parsed[text]

    print(json.dumps({"ready": True}), flush=True)
    for line in sys.stdin:
        request = json.loads(line)
        try:
            gold, pred = parse_cached(request["gold"]), parse_cached(request["pred"])
            reply = {"equal": bool(gold and pred and verify(gold, pred, timeout_seconds=None))}
        except Exception as err:  # a grader error is a wrong answer, never a crashed evaluation
            reply = {"equal": False, "error": f"{type(err).__name__}: {err}"[:300]}
        print(json.dumps(reply), flush=True)


if __name__ == "__main__" and sys.argv[1:] == ["--worker"]:
    _serve()
