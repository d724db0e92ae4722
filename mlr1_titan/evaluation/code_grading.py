"""Grade code answers: candidates run on inputs only; verdicts are decided outside their processes.

For a batch of submissions (benchmark, problem, extracted code):

1. HumanEval+/MBPP+: per problem, once, a trusted sandboxed run of the dataset's reference solution
   under its own test body records the inputs the test uses (``plus_harness.py``, ``record``);
2. every candidate runs in its own sandbox on those inputs (LiveCodeBench: the dataset's inputs)
   and sends back return values or stdout (``sandbox_boot.py``);
3. verdicts: LiveCodeBench outputs are compared here (``verdicts.py``); HumanEval+/MBPP+ outputs go,
   as plain decoded values, to a trusted judge run of the test body (one per problem, every
   candidate in turn), so the test's own tolerance checks decide.

Every submission gets a ``Verdict``; nothing here raises for what a candidate does.
"""

from __future__ import annotations

import dataclasses
import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from . import value_codec
from .code_answers import livecodebench_job, plus_job, plus_task
from .sandbox import CodeJob, Isolation, RunOutcome, Sandbox, SandboxFeatures, SandboxLimits
from .verdicts import Verdict, judge_stdout, judge_values, results_of, sandbox_error

log = logging.getLogger(__name__)

HARNESS_SOURCE = Path(__file__).with_name("plus_harness.py").read_text(encoding="utf-8")
PLUS_BENCHMARKS = ("humaneval_plus", "mbpp_plus")
# Test-list jobs (LiveCodeBench) get test_timeout * (tests + 1) seconds, up to this many times the
# per-candidate budget.
_MAX_WALL_FACTOR = 10
_HARNESS_WALL_S = 120.0
"""Budget of a trusted record run, and per candidate of a judge run."""


@dataclass(frozen=True)
class Submission:
    benchmark: str
    problem_id: str
    problem: dict
    """The problem's entry of ``benchmarks.TEST_STORE``."""
    code: str


def _plain(value):
    """Tuples become lists (recursively), so results compare like their JSON form (LCB's rule)."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def lcb_equal(got, expected) -> bool:
    return _plain(got) == _plain(expected)


class CodeGrader:
    """Grades batches of submissions with one sandbox configuration (thread pool of ``workers``)."""

    def __init__(
        self,
        limits: SandboxLimits,
        *,
        isolation: Isolation = "strict",
        workers: int | None = None,
        features: SandboxFeatures | None = None,
    ):
        self.limits = limits
        self.sandbox = Sandbox(limits, features, isolation=isolation)
        self.harness = Sandbox(dataclasses.replace(limits, wall_s=_HARNESS_WALL_S), features, isolation=isolation)
        self.workers = workers
        self._recorded: dict[tuple, list | str] = {}

    def describe(self) -> dict:
        return self.sandbox.describe()

    # --- step 1: inputs of the assert-style suites --------------------------------------------------
    def _record_inputs(self, subs: list[Submission], desc: str) -> None:
        todo: dict[tuple, Submission] = {}
        for sub in subs:
            if sub.benchmark in PLUS_BENCHMARKS:
                key = _problem_key(sub)
                if key not in self._recorded:
                    todo.setdefault(key, sub)
        jobs = []
        for sub in todo.values():
            task = plus_task(sub.benchmark, sub.problem)
            data = {"task": "record", **dataclasses.asdict(task)}
            jobs.append(CodeJob("program", HARNESS_SOURCE, data=data))
        outcomes = self.harness.run_many(jobs, workers=self.workers, desc=f"{desc}: recording test inputs")
        for key, outcome in zip(todo, outcomes, strict=True):
            self._recorded[key] = _recorded_inputs(outcome)
            if isinstance(self._recorded[key], str):
                log.error("%s %s: %s", key[0], key[1], self._recorded[key])

    # --- steps 2 and 3 ------------------------------------------------------------------------------
    def grade(self, subs: list[Submission], desc: str = "grading") -> list[Verdict]:
        """One verdict per submission, in order."""
        try:
            self._record_inputs(subs, desc)
        except Exception as err:  # a harness failure must not lose the other benchmarks' verdicts
            log.exception("recording the test inputs failed")
            for sub in subs:
                self._recorded.setdefault(_problem_key(sub), f"recording the test inputs failed: {err}")
        verdicts: list[Verdict | None] = [None] * len(subs)
        jobs, slots, judges = [], [], []
        for n, sub in enumerate(subs):
            try:
                job, judge = self._candidate_job(sub)
            except Exception as err:  # bad test data for this problem: that problem's samples only
                verdicts[n] = sandbox_error(0, f"building the job failed: {type(err).__name__}: {err}")
                continue
            if job is None:
                verdicts[n] = judge  # already decided (the problem's inputs could not be recorded)
                continue
            jobs.append(job)
            slots.append(n)
            judges.append(judge)
        outcomes = self.sandbox.run_many(jobs, workers=self.workers, desc=f"{desc}: running candidates")
        pending: dict[tuple, list[tuple[int, list, Verdict | None]]] = {}
        for n, judge, outcome in zip(slots, judges, outcomes, strict=True):
            sub = subs[n]
            try:
                if sub.benchmark in PLUS_BENCHMARKS:
                    decided, outputs, stop = _plus_outputs(outcome, judge)
                    if decided is not None:
                        verdicts[n] = decided
                    else:
                        pending.setdefault(_problem_key(sub), []).append((n, outputs, stop))
                else:
                    verdicts[n] = judge(outcome)
            except Exception as err:
                log.exception("judging a candidate failed")
                verdicts[n] = sandbox_error(0, f"judging failed: {type(err).__name__}: {err}")
        self._judge_plus(subs, pending, verdicts, desc)
        return [v if v is not None else sandbox_error(0, "no verdict") for v in verdicts]

    def _candidate_job(self, sub: Submission):
        """(job, judge) for a submission: ``judge`` is the expected-output comparison (LCB) or the
        number of recorded inputs (plus); (None, verdict) when the problem cannot be graded."""
        if sub.benchmark in PLUS_BENCHMARKS:
            inputs = self._recorded[_problem_key(sub)]
            if isinstance(inputs, str):
                return None, sandbox_error(0, inputs)
            return plus_job(sub.benchmark, sub.problem, sub.code, inputs), len(inputs)
        if sub.benchmark != "livecodebench":
            raise ValueError(f"no code grader for benchmark {sub.benchmark!r}")
        job, expected = livecodebench_job(sub.problem, sub.code, self.limits.test_timeout_s)
        wall = min(self.limits.test_timeout_s * (len(expected) + 1), _MAX_WALL_FACTOR * self.limits.wall_s)
        job = dataclasses.replace(job, wall_s=max(wall, self.limits.wall_s))
        judge: Callable[[RunOutcome], Verdict]
        if job.mode == "stdio":
            judge = lambda outcome: judge_stdout(outcome, expected)  # noqa: E731
        else:
            judge = lambda outcome: judge_values(outcome, expected, lcb_equal)  # noqa: E731
        return job, judge

    def _judge_plus(self, subs, pending, verdicts, desc) -> None:
        """Judge runs per problem; candidates a failed batch left without a verdict are judged once
        more, each alone, so one output that breaks the judge cannot cost the others theirs."""
        batches = [(key, entries) for key, entries in pending.items()]
        jobs = [self._judge_job(subs[entries[0][0]], key, [e[1] for e in entries]) for key, entries in batches]
        outcomes = self.harness.run_many(jobs, workers=self.workers, desc=f"{desc}: judging outputs")
        retry = []
        for (key, entries), outcome in zip(batches, outcomes, strict=True):
            found = _judge_records(outcome, len(entries))
            for c, (n, outputs, stop) in enumerate(entries):
                if c in found:
                    verdicts[n] = _plus_verdict(found[c], len(self._recorded[key]), stop, outcome)
                else:
                    retry.append((key, n, outputs, stop))
        if not retry:
            return
        jobs = [self._judge_job(subs[n], key, [outputs]) for key, n, outputs, _ in retry]
        outcomes = self.harness.run_many(jobs, workers=self.workers, desc=f"{desc}: judging again")
        for (key, n, _, stop), outcome in zip(retry, outcomes, strict=True):
            found = _judge_records(outcome, 1)
            total = len(self._recorded[key])
            if 0 in found:
                verdicts[n] = _plus_verdict(found[0], total, stop, outcome)
            else:
                verdicts[n] = sandbox_error(total, f"the judge run ended without a verdict: {outcome.detail}")

    def _judge_job(self, sub: Submission, key: tuple, candidates: list[list]) -> CodeJob:
        task = plus_task(sub.benchmark, sub.problem)
        data = {
            "task": "judge",
            **dataclasses.asdict(task),
            "inputs": self._recorded[key],
            "candidates": candidates,
            "timeout_s": _HARNESS_WALL_S / 4,
        }
        return CodeJob("program", HARNESS_SOURCE, data=data, wall_s=_HARNESS_WALL_S * max(1, len(candidates)) / 4)


def _problem_key(sub: Submission) -> tuple:
    task = repr(sorted(sub.problem.items())) if sub.benchmark in PLUS_BENCHMARKS else ""
    return (sub.benchmark, sub.problem_id, hashlib.sha256(task.encode()).hexdigest())


def _recorded_inputs(outcome: RunOutcome) -> list | str:
    """The recorded inputs of a record run, or why there are none."""
    records = outcome.records
    if outcome.channel_error or len(records) != 1:
        tail = outcome.stderr.strip().splitlines()[-1:] or [outcome.detail]
        return f"recording the test inputs failed ({outcome.detail}): {tail[0][-200:]}"
    record = records[0]
    if "error" in record:
        return str(record["error"])
    return list(record["inputs"])


def _plus_outputs(outcome: RunOutcome, total: int) -> tuple[Verdict | None, list, Verdict | None]:
    """(decided verdict, encoded outputs, verdict at the stop) of a plus candidate run. The outputs
    are checked here (decodable) before a judge sees them."""
    results, stop = results_of(outcome, total, "value")
    outputs = []
    for k, record in enumerate(results):
        try:
            value_codec.decode(record["value"])
        except ValueError as err:
            return sandbox_error(total, f"input {k}: {err}"), [], None
        outputs.append(record["value"])
    if stop is not None and not outputs:
        return stop, [], None
    if stop is not None and stop.status == "sandbox_error":
        return stop, [], None
    return None, outputs, stop


def _judge_records(outcome: RunOutcome, count: int) -> dict[int, dict]:
    if outcome.channel_error:
        return {}
    return {r["c"]: r for r in outcome.records if isinstance(r.get("c"), int) and 0 <= r["c"] < count}


def _plus_verdict(record: dict, total: int, stop: Verdict | None, judge: RunOutcome) -> Verdict:
    wall = judge.wall_s
    if "completed" in record:
        if record["completed"] == total and stop is None:
            return Verdict("passed", total, total, wall_s=wall)
        return sandbox_error(total, f"the test made {record['completed']} of {total} recorded calls")
    if "failed_at" in record and isinstance(record["failed_at"], int):
        k = record["failed_at"]
        return Verdict("failed", k, total, f"input {k}: {record.get('detail') or 'wrong answer'}"[:300], wall)
    if "stopped_at" in record and stop is not None:
        return stop
    return sandbox_error(total, f"judge: {str(record.get('error', record))[:200]}")
