"""Verdicts, decided in the supervisor from what a sandboxed run produced.

A candidate's process only ever receives inputs; what it sends back (``RunOutcome.records``) is
checked here as data: one record per input, in order, each a value (encoded, ``value_codec``),
a stdout text, or how that input failed. Expected outputs never enter the candidate's process,
so no object, monkeypatch, frame inspection, forged record or early exit there can make a wrong
answer pass: at worst it produces a different output, or a ``sandbox_error``.

Statuses: ``passed``, ``failed`` (wrong answer, exception, early exit), ``timeout`` (wall or CPU
limit), ``memory`` (memory limit), ``crashed`` (killed by a signal, named in ``detail``) and
``sandbox_error`` (the sandbox or the channel failed; never a pass).
"""

from __future__ import annotations

import base64
import decimal
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from . import value_codec
from .sandbox import RunOutcome

Status = Literal["passed", "failed", "timeout", "memory", "crashed", "sandbox_error"]
_MAX_DETAIL = 300


@dataclass(frozen=True)
class Verdict:
    status: Status
    tests_passed: int
    tests_total: int
    detail: str = ""
    wall_s: float = 0.0

    def __post_init__(self):  # text from the candidate's process: always encodable as UTF-8
        clean = self.detail.encode("utf-8", "backslashreplace").decode("utf-8")[:_MAX_DETAIL]
        object.__setattr__(self, "detail", clean)

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def sandbox_error(total: int, detail: str) -> Verdict:
    return Verdict("sandbox_error", 0, total, detail[:_MAX_DETAIL])


def from_end(outcome: RunOutcome, done: int, total: int) -> Verdict:
    """Verdict of a run whose results stop after ``done`` of ``total`` inputs, from how it ended."""
    status: Status
    where = f"after {done} of {total} inputs"
    if outcome.end == "error":
        return Verdict("sandbox_error", done, total, outcome.detail[:_MAX_DETAIL], outcome.wall_s)
    if outcome.end in ("timeout", "memory"):
        status, detail = outcome.end, f"{outcome.detail} ({where})"
    elif outcome.end == "signal":
        status, detail = "crashed", f"{outcome.detail} ({where})"
    else:
        status, detail = "failed", f"the program {outcome.detail} {where}"
        last = outcome.stderr.strip().splitlines()[-1:] if outcome.stderr.strip() else []
        if last:
            detail += f": {last[0][-200:]}"
    return Verdict(status, done, total, detail[:_MAX_DETAIL], outcome.wall_s)


def _failure(record: dict, done: int, total: int, wall: float, what: str) -> Verdict | None:
    """The verdict of a record that says how an input (or the setup) failed; None for a result."""
    for key, status in (("timeout", "timeout"), ("memory", "memory"), ("error", "failed")):
        if key in record:
            text = record[key]
            if not isinstance(text, str):
                return Verdict("sandbox_error", done, total, f"malformed record for {what}", wall)
            return Verdict(status, done, total, f"{what}: {text}"[:_MAX_DETAIL], wall)
    return None


def results_of(outcome: RunOutcome, total: int, field: str) -> tuple[list, Verdict | None]:
    """The per-input results (``field`` of each record), in order, and the verdict that ends them
    early (None: all ``total`` are there). Malformed records give a ``sandbox_error``; a run the
    cgroup's OOM killer hit ends as ``memory`` whatever the stalled process reported."""
    results, stop = _results(outcome, total, field)
    if stop is not None and outcome.end == "memory" and stop.status in ("failed", "timeout"):
        stop = Verdict(
            "memory", stop.tests_passed, total, f"{outcome.detail}; {stop.detail}"[:_MAX_DETAIL], stop.wall_s
        )
    return results, stop


def _results(outcome: RunOutcome, total: int, field: str) -> tuple[list, Verdict | None]:
    if outcome.channel_error:
        return [], sandbox_error(total, f"result channel: {outcome.channel_error}")
    records = list(outcome.records)
    if records and "setup" in records[0]:
        setup = records[0]["setup"]
        failure = (
            _failure(setup, 0, total, outcome.wall_s, "defining the solution") if isinstance(setup, dict) else None
        )
        return [], failure or sandbox_error(total, "malformed setup record")
    results = []
    for k, record in enumerate(records):
        if record.get("i") != k or k >= total:
            return [], sandbox_error(total, f"result channel: record {k} is out of order or extra")
        failure = _failure(record, k, total, outcome.wall_s, f"input {k}")
        if failure is not None:
            return results, failure
        if field not in record:
            return [], sandbox_error(total, f"result channel: record {k} has no {field!r}")
        results.append(record)
    if len(results) < total:
        return results, from_end(outcome, len(results), total)
    return results, None


def judge_values(outcome: RunOutcome, expected: list, equal: Callable[[object, object], bool]) -> Verdict:
    """Returned values (decoded here) against ``expected``, first mismatch fails."""
    total = len(expected)
    results, stop = results_of(outcome, total, "value")
    for k, record in enumerate(results):
        try:
            got = value_codec.decode(record["value"])
        except ValueError as err:
            return sandbox_error(total, f"input {k}: {err}")
        if not equal(got, expected[k]):
            detail = f"input {k}: returned {_short(got)} != expected {_short(expected[k])}"
            return Verdict("failed", k, total, detail[:_MAX_DETAIL], outcome.wall_s)
    return stop or Verdict("passed", total, total, wall_s=outcome.wall_s)


def _stripped_lines(text: str) -> list[str]:
    return [line.strip() for line in text.strip().split("\n")]


def _decimals(line: str) -> list | None:
    try:
        return [decimal.Decimal(token) for token in line.split()]
    except decimal.InvalidOperation:
        return None


def stdout_matches(actual: str, expected: str) -> bool:
    """LiveCodeBench's stdout rule: both texts stripped and split on newlines, each line stripped;
    the line counts must agree, and each line must be equal, or be all numbers on both sides that
    are equal as decimals (``0.50`` == ``0.5``; a line mixing words and numbers compares as text)."""
    got, want = _stripped_lines(actual), _stripped_lines(expected)
    if len(got) != len(want):
        return False
    for g_line, w_line in zip(got, want, strict=True):
        if g_line == w_line:
            continue
        g_num, w_num = _decimals(g_line), _decimals(w_line)
        try:
            if g_num is None or w_num is None or g_num != w_num:
                return False
        except decimal.InvalidOperation:  # signalling NaN
            return False
    return True


def _short(value, limit: int = 100) -> str:
    """``str(value)`` cut to ``limit``; values that cannot be printed (huge ints) are described."""
    try:
        return str(value)[:limit]
    except ValueError:
        return f"<{type(value).__name__} too large to print>"


def judge_stdout(outcome: RunOutcome, expected: list[str]) -> Verdict:
    """Captured stdout per input against ``expected`` (``stdout_matches``), first mismatch fails."""
    total = len(expected)
    results, stop = results_of(outcome, total, "stdout")
    for k, record in enumerate(results):
        try:  # invalid UTF-8 stays distinct (surrogate escapes), never U+FFFD
            actual = base64.b64decode(record["stdout"], validate=True).decode("utf-8", "surrogateescape")
        except (TypeError, ValueError):
            return sandbox_error(total, f"input {k}: malformed stdout record")
        if record.get("truncated") or not stdout_matches(actual, expected[k]):
            detail = f"input {k}: output {actual[:100]!r} != expected {expected[k][:100]!r}"  # repr: printable
            return Verdict("failed", k, total, detail[:_MAX_DETAIL], outcome.wall_s)
    return stop or Verdict("passed", total, total, wall_s=outcome.wall_s)
