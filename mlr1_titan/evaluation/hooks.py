"""The functions the ``eval_tasks/r1_*.yaml`` tasks name (through ``eval_tasks/r1_hooks.py``).

- ``load_<benchmark>(**metadata)``: lm-eval ``custom_dataset`` hooks returning a ``DatasetDict``;
- ``grade_math`` / ``grade_code``: ``custom`` filters. They receive every sample of every problem at
  once, so they strip the reasoning, extract the answer and judge it in one batch (code runs in the
  sandbox in parallel). Each sample becomes a small record (logged with ``--log_samples``);
- ``math_metrics`` / ``code_metrics``: ``process_results``, the per-problem metrics of ``metrics.py``.
"""

from __future__ import annotations

import sys

from tqdm import tqdm

from . import benchmarks
from .benchmarks import TEST_STORE, EvalOptions
from .code_answers import extract_code
from .code_grading import CodeGrader, Submission
from .math_answers import extract_math_answer, normalize_answer
from .math_judge import shared_judge
from .metrics import code_problem_metrics, math_problem_metrics
from .reasoning import split_reasoning
from .sandbox import SandboxLimits, SandboxUnavailable, require

CODE_BENCHMARKS = ("humaneval_plus", "mbpp_plus", "livecodebench")


def _loader(key: str):
    def load(**metadata):
        import datasets  # deferred: only a task that is run needs its data

        if key in CODE_BENCHMARKS:  # fail closed before any generation: the gate of every code task
            require(benchmarks.options_from_metadata(metadata).sandbox_isolation)
        docs = benchmarks.build_docs(key, metadata)
        return datasets.DatasetDict({"test": datasets.Dataset.from_list(docs)})

    load.__name__ = load.__qualname__ = f"load_{key}"
    load.__doc__ = f"lm-eval custom_dataset for {key} (see mlr1_titan.evaluation.benchmarks)."
    return load


load_aime24 = _loader("aime24")
load_aime25 = _loader("aime25")
load_math500 = _loader("math500")
load_gsm8k = _loader("gsm8k")
load_humaneval_plus = _loader("humaneval_plus")
load_mbpp_plus = _loader("mbpp_plus")
load_livecodebench = _loader("livecodebench")


def _progress(total: int, desc: str):
    return tqdm(total=total, desc=desc, unit="sample", disable=total < 2, file=sys.stderr)


def grade_math(resps: list[list[str]], docs: list[dict]) -> list[list[dict]]:
    """Per sample: reasoning status, extracted answer, vote key and math-verify verdict."""
    graded = []
    with _progress(sum(len(r) for r in resps), "grading math answers") as bar:
        for samples, doc in zip(resps, docs, strict=True):
            options = EvalOptions.from_json(doc["r1_options"])
            judge = shared_judge(options.math_timeout_s)
            gold = doc["answer"]
            records = []
            for completion in samples:
                split = split_reasoning(completion, think_prefilled=options.think_prefilled)
                found = extract_math_answer(split.answer)
                record = {
                    "reasoning": split.status,
                    "answer": None,
                    "method": None,
                    "vote_key": None,
                    "correct": False,
                    "judged_by": None,
                }
                if found is not None:
                    record.update(answer=found.text, method=found.method, vote_key=normalize_answer(found.text))
                    if record["vote_key"] == normalize_answer(gold):
                        record.update(correct=True, judged_by="exact")
                    else:
                        verdict = judge.equivalent(gold, found.text)
                        record.update(
                            correct=verdict.equivalent,
                            judged_by="timeout" if verdict.timed_out else "math_verify",
                        )
                records.append(record)
                bar.update(1)
            graded.append(records)
    return graded


def _limits_for(options: EvalOptions) -> SandboxLimits:
    return SandboxLimits(
        wall_s=options.code_timeout_s, test_timeout_s=options.test_timeout_s, memory_mb=options.code_memory_mb
    )


def grade_code(resps: list[list[str]], docs: list[dict]) -> list[list[dict]]:
    """Per sample: reasoning status, whether a fenced block was found, and the verdict (decided
    outside the candidate's process, see code_grading). Identical code for the same problem runs
    once. Never raises for what a sample contains: every sample gets a record."""
    if not docs:
        return []
    options = EvalOptions.from_json(docs[0]["r1_options"])
    subs, sub_index, graded = [], {}, []
    for samples, doc in zip(resps, docs, strict=True):
        key = (doc["r1_benchmark"], doc["r1_id"])
        if key not in TEST_STORE:
            raise KeyError(f"no tests loaded for {key[0]} problem {key[1]!r}: docs must come from load_{key[0]}")
        records = []
        for completion in samples:
            split = split_reasoning(completion, think_prefilled=options.think_prefilled)
            code = extract_code(split.answer)
            record = {
                "reasoning": split.status,
                "has_code": code is not None,
                "passed": False,
                "result": None,
                "tests_passed": 0,
                "tests_total": None,
                "detail": "",
                "sandbox": options.sandbox_isolation,
            }
            if code is not None:
                slot = (*key, code)
                if slot not in sub_index:
                    sub_index[slot] = len(subs)
                    subs.append(Submission(key[0], key[1], TEST_STORE[key], code))
                record["job"] = sub_index[slot]
            records.append(record)
        graded.append(records)
    benchmark = docs[0]["r1_benchmark"]
    try:
        grader = CodeGrader(
            _limits_for(options), isolation=options.sandbox_isolation, workers=options.sandbox_workers or None
        )
        verdicts = grader.grade(subs, desc=benchmark)
    except SandboxUnavailable as err:  # fail closed: no sample of this run passes
        verdicts = [None] * len(subs)
        gate = str(err)
    for records in graded:
        for record in records:
            if "job" in record:
                verdict = verdicts[record.pop("job")]
                if verdict is None:
                    record.update(result="sandbox_error", detail=gate[:300])
                    continue
                record.update(
                    passed=verdict.passed,
                    result=verdict.status,
                    tests_passed=verdict.tests_passed,
                    tests_total=verdict.tests_total,
                    detail=verdict.detail[:300],
                )
    return graded


def math_metrics(doc: dict, results: list) -> dict[str, float]:
    return math_problem_metrics(results[0])


def code_metrics(doc: dict, results: list) -> dict[str, float]:
    return code_problem_metrics(results[0])
