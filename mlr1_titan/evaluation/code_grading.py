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
import json
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
"""Wall budget of a trusted record run; a judge run gets a quarter of it per candidate."""


@dataclass(frozen=True)
class Submission:
    benchmark: str
    problem_id: str
    problem: dict
    """The problem's entry of ``benchmarks.TEST_STORE``."""
    code: str


def lcb_equal(got, expected) -> bool:
    """LiveCodeBench's rule for functional problems: a returned tuple counts as a list (top level
    only), then plain equality with the JSON-decoded expected output."""
    if isinstance(got, tuple):
        got = list(got)
    return got == expected


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
        self._recorded: dict[tuple, dict | str] = {}
        self._keys: dict[int, tuple[dict, tuple]] = {}

    def _problem_key(self, sub: Submission) -> tuple:
        """A problem's key in the recorded-inputs cache: its id and a digest of its test data, computed
        once per test-store entry (kept referenced, so a replaced entry is recorded afresh)."""
        held = self._keys.get(id(sub.problem))
        if held is None or held[0] is not sub.problem:
            digest = hashlib.sha256(json.dumps(sub.problem, sort_keys=True, default=str).encode()).hexdigest()
            held = (sub.problem, (sub.benchmark, sub.problem_id, digest))
            self._keys[id(sub.problem)] = held
        return held[1]

    # --- step 1: inputs of the assert-style suites --------------------------------------------------
    def _record_inputs(self, subs: list[Submission], desc: str) -> None:
        todo: dict[tuple, Submission] = {}
        for sub in subs:
            if sub.benchmark in PLUS_BENCHMARKS:
                key = self._problem_key(sub)
                if key not in self._recorded:
                    todo.setdefault(key, sub)
        keys, jobs = [], []
        for key, sub in todo.items():
            try:
                data = {"task": "record", **dataclasses.asdict(plus_task(sub.benchmark, sub.problem))}
            except Exception as err:  # this problem's test data is unusable; the others go on
                self._recorded[key] = f"the problem's test data is unusable: {type(err).__name__}: {err}"
                continue
            keys.append(key)
            jobs.append(CodeJob("program", HARNESS_SOURCE, data=data))
        outcomes = self.harness.run_many(jobs, workers=self.workers, desc=f"{desc}: recording test inputs")
        for key, outcome in zip(keys, outcomes, strict=True):
            self._recorded[key] = _recorded_inputs(outcome)
        for key in todo:
            if isinstance(self._recorded[key], str):
                log.error("%s %s cannot be graded: %s", key[0], key[1], self._recorded[key])

    # --- steps 2 and 3 ------------------------------------------------------------------------------
    def grade(self, subs: list[Submission], desc: str = "grading") -> list[Verdict]:
        """One verdict per submission, in order."""
        try:
            self._record_inputs(subs, desc)
        except Exception as err:  # a harness failure must not lose the other benchmarks' verdicts
            log.exception("recording the test inputs failed")
            for sub in subs:
                self._recorded.setdefault(self._problem_key(sub), f"recording the test inputs failed: {err}")
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
        pending: dict[tuple, list[tuple[int, list, Verdict | None, float]]] = {}
        for n, judge, outcome in zip(slots, judges, outcomes, strict=True):
            sub = subs[n]
            try:
                if sub.benchmark in PLUS_BENCHMARKS:
                    decided, outputs, stop = _plus_outputs(outcome, judge)
                    if decided is not None:
                        verdicts[n] = decided
                    else:
                        pending.setdefault(self._problem_key(sub), []).append((n, outputs, stop, outcome.wall_s))
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
            recorded = self._recorded[self._problem_key(sub)]
            if isinstance(recorded, str):
                return None, sandbox_error(0, recorded)
            inputs = recorded["inputs"]
            job = plus_job(sub.benchmark, sub.problem, sub.code, inputs)
            size = len(json.dumps(recorded["outputs"]))  # encoded trees: plain JSON, ints as hex
            return dataclasses.replace(job, channel_bytes=_channel_bytes(size)), len(inputs)
        if sub.benchmark != "livecodebench":
            raise ValueError(f"no code grader for benchmark {sub.benchmark!r}")
        job, expected = livecodebench_job(sub.problem, sub.code, self.limits.test_timeout_s)
        wall = min(self.limits.test_timeout_s * (len(expected) + 1), _MAX_WALL_FACTOR * self.limits.wall_s)
        if job.mode == "stdio":  # base64 of the bytes; honest output may format numbers longer
            size = 4 * sum(len(text.encode()) for text in expected)
        else:  # the records carry encoded values, several times their JSON text
            size = sum(len(json.dumps(value_codec.encode(value))) for value in expected)
        job = dataclasses.replace(job, wall_s=max(wall, self.limits.wall_s), channel_bytes=_channel_bytes(size))
        judge: Callable[[RunOutcome], Verdict]
        if job.mode == "stdio":
            judge = lambda outcome: judge_stdout(outcome, expected)  # noqa: E731
        else:
            judge = lambda outcome: judge_values(outcome, expected, lcb_equal)  # noqa: E731
        return job, judge

    def _judge_plus(self, subs, pending, verdicts, desc) -> None:
        """Judge runs per problem; candidates a failed batch left without a verdict are judged once
        more, each alone, so one output that breaks the judge cannot cost the others theirs."""
        batches = list(pending.items())
        jobs = [self._judge_job(subs[entries[0][0]], key, [e[1] for e in entries]) for key, entries in batches]
        outcomes = self.harness.run_many(jobs, workers=self.workers, desc=f"{desc}: judging outputs")
        retry = []
        for (key, entries), outcome in zip(batches, outcomes, strict=True):
            total = len(self._recorded[key]["inputs"])
            found, control = _judge_records(outcome, len(entries))
            for c, (n, outputs, stop, wall) in enumerate(entries):
                if control:
                    verdicts[n] = sandbox_error(total, control)
                elif c in found:
                    verdicts[n] = _plus_verdict(found[c], total, stop, wall)
                else:
                    retry.append((key, n, outputs, stop, wall))
        if not retry:
            return
        jobs = [self._judge_job(subs[n], key, [outputs]) for key, n, outputs, _, _ in retry]
        outcomes = self.harness.run_many(jobs, workers=self.workers, desc=f"{desc}: judging again")
        for (key, n, _, stop, wall), outcome in zip(retry, outcomes, strict=True):
            total = len(self._recorded[key]["inputs"])
            found, control = _judge_records(outcome, 1)
            if 0 in found and not control:
                verdicts[n] = _plus_verdict(found[0], total, stop, wall)
            else:
                verdicts[n] = sandbox_error(
                    total, control or f"the judge run ended without a verdict: {outcome.detail}"
                )

    def _judge_job(self, sub: Submission, key: tuple, candidates: list[list]) -> CodeJob:
        task = plus_task(sub.benchmark, sub.problem)
        data = {
            "task": "judge",
            **dataclasses.asdict(task),
            "inputs": self._recorded[key]["inputs"],
            "control": self._recorded[key]["outputs"],
            "candidates": candidates,
            "timeout_s": _HARNESS_WALL_S / 4,
        }
        passes = len(candidates) + 1  # the control pass with the reference's outputs, then each candidate
        return CodeJob("program", HARNESS_SOURCE, data=data, wall_s=_HARNESS_WALL_S * passes / 4)


def _channel_bytes(expected_size: int) -> int:
    """Channel size a run may use: 4x the size of its expected results, plus 1 MiB."""
    return 4 * expected_size + 2**20


def _recorded_inputs(outcome: RunOutcome) -> dict | str:
    """``{"inputs", "outputs"}`` of a record run (the reference's), or why there are none."""
    records = outcome.records
    if outcome.channel_error or len(records) != 1:
        tail = outcome.stderr.strip().splitlines()[-1:] or [outcome.detail]
        return f"recording the test inputs failed ({outcome.detail}): {tail[0][-200:]}"
    record = records[0]
    if "error" in record:
        return str(record["error"])[:300]
    inputs, outputs = record.get("inputs"), record.get("outputs")
    if not isinstance(inputs, list) or not isinstance(outputs, list) or len(inputs) != len(outputs):
        return "recording the test inputs failed: malformed record"
    return {"inputs": inputs, "outputs": outputs}


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


def _judge_records(outcome: RunOutcome, count: int) -> tuple[dict[int, dict], str]:
    """Per candidate index, its judge record; and the control failure ('' if none). A candidate
    with two records gets an error record."""
    if outcome.channel_error:
        return {}, ""
    found: dict[int, dict] = {}
    for record in outcome.records:
        if "control_error" in record:
            return {}, str(record["control_error"])[:300]
        c = record.get("c")
        if isinstance(c, int) and 0 <= c < count:
            found[c] = {"error": "two judge records"} if c in found else record
    return found, ""


def _plus_verdict(record: dict, total: int, stop: Verdict | None, wall: float) -> Verdict:
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
