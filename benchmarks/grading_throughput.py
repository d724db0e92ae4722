"""Code-grading throughput: candidates/s of the trusted-verdict grader against the design before it.

    .venv/bin/python benchmarks/grading_throughput.py [--samples 8] [--repeats 3] [--workers 2]
                                                      [--baseline-ref 7a3306b]

Candidates: ``--samples`` distinct answers per shipped fixture problem (HumanEval+, MBPP+,
LiveCodeBench stdin and functional), half correct and half wrong, each made unique by a comment;
then the same for one generated HumanEval+-layout problem with ``--large-inputs`` inputs (real
HumanEval+ problems carry hundreds, which the fixtures do not show).

* before: the sandbox of ``--baseline-ref`` (the last commit whose verdict was decided inside the
  candidate's process: test code appended to the candidate, one process per candidate, no
  bubblewrap or cgroup), loaded from git into a temporary package;
* after: ``CodeGrader`` as ``grade_code`` uses it (strict isolation: bubblewrap + cgroup, inputs
  recorded once per problem, one candidate process each, one judge run per problem), a fresh
  grader per repeat so the recording runs are counted.

Both run the same candidates with the same worker count, interleaved, ``--repeats`` times; the
median is reported, with the cost ratio (after / before per candidate; the target is <= 2) and
whether both designs agree on which candidates pass. Needs the git history (a clone, not an sdist).
"""

from __future__ import annotations

import argparse
import importlib
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
from mlr1_titan.evaluation.benchmarks import TEST_STORE, build_docs  # noqa: E402
from mlr1_titan.evaluation.code_grading import CodeGrader, Submission  # noqa: E402
from mlr1_titan.evaluation.sandbox import SandboxLimits  # noqa: E402
from mlr1_titan.resources import eval_tasks_dir  # noqa: E402

BASELINE_FILES = ("sandbox.py", "sandbox_boot.py", "code_answers.py")
# (benchmark, problem id) -> (correct answer, wrong answer)
ANSWERS = {
    ("humaneval_plus", "R1Fixture/0"): (
        "def running_max(values):\n    out = []\n    for v in values:\n"
        "        out.append(v if not out else max(out[-1], v))\n    return out\n",
        "def running_max(values):\n    return sorted(values)\n",
    ),
    ("humaneval_plus", "R1Fixture/1"): (
        "def mean_abs(values):\n    return sum(abs(v) for v in values) / len(values)\n",
        "def mean_abs(values):\n    return round(sum(abs(v) for v in values) / len(values), 1)\n",
    ),
    ("mbpp_plus", "9001"): (
        "def second_largest(nums):\n    d = sorted(set(nums))\n    return d[-2] if len(d) > 1 else None\n",
        "def second_largest(nums):\n    s = sorted(set(nums))\n    return s[-2] if len(s) > 1 else s[0]\n",
    ),
    ("mbpp_plus", "9002"): (
        "def is_letter_palindrome(s):\n    t = re.sub('[^a-z]', '', s.lower())\n    return t == t[::-1]\n",
        "def is_letter_palindrome(s):\n    return s == s[::-1]\n",
    ),
    ("livecodebench", "fx_abc001_a"): (
        "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n",
        "n = int(input())\nprint(sum(map(int, input().split())))\n",
    ),
    ("livecodebench", "fx_lc_0001"): (
        "class Solution:\n    def largestGap(self, nums):\n        s = sorted(nums)\n"
        "        return max((b - a for a, b in zip(s, s[1:])), default=0)\n",
        "class Solution:\n    def largestGap(self, nums):\n        s = sorted(nums)\n"
        "        return max(b - a for a, b in zip(s, s[1:]))\n",
    ),
}


def large_problem(n_inputs: int) -> dict:
    """A HumanEval+-layout problem with ``n_inputs`` list inputs (HumanEval+ problems carry hundreds),
    checked with the evalplus-style ``assertion(out, exp, atol)`` that imports numpy."""
    inputs = [[[(i * 7 + j * 3) % 50 - 25 for j in range(i % 30)]] for i in range(n_inputs)]
    results = [[sum(args[0][: k + 1]) for k in range(len(args[0]))] for args in inputs]
    test = (
        "import numpy as np\n\n\ndef assertion(out, exp, atol):\n    exact_match = out == exp\n"
        "    if not exact_match and atol != 0:\n        np.testing.assert_allclose(out, exp, atol=atol)\n"
        "    else:\n        assert exact_match\n\n\ndef check(candidate):\n"
        f"    inputs = {inputs!r}\n    results = {results!r}\n"
        "    for i, (inp, exp) in enumerate(zip(inputs, results)):\n        assertion(candidate(*inp), exp, 0)\n"
    )
    return {
        "prompt": 'def prefix_sums(xs: list) -> list:\n    """Running sums of xs."""\n',
        "canonical_solution": "    out, total = [], 0\n    for x in xs:\n        total += x\n        out.append(total)\n    return out\n",
        "entry_point": "prefix_sums",
        "test": test,
    }


LARGE_ANSWERS = (
    "def prefix_sums(xs):\n    out, t = [], 0\n    for x in xs:\n        t += x\n        out.append(t)\n    return out\n",
    "def prefix_sums(xs):\n    return [sum(xs[: k + 1]) for k in range(len(xs) - 1)]\n",
)


def load_baseline(ref: str, into: Path):
    """The evaluation modules of ``ref`` as package ``baseline_eval`` (sandbox, code_answers)."""
    package = into / "baseline_eval"
    package.mkdir()
    (package / "__init__.py").write_text("")
    for name in BASELINE_FILES:
        source = subprocess.run(
            ["git", "-C", str(REPO), "show", f"{ref}:mlr1_titan/evaluation/{name}"],
            check=True,
            capture_output=True,
            text=True,
        ).stdout
        (package / name).write_text(source)
    sys.path.insert(0, str(into))
    return importlib.import_module("baseline_eval.sandbox"), importlib.import_module("baseline_eval.code_answers")


def candidates(samples: int, answers: dict) -> list[tuple[str, str, str, bool]]:
    out = []
    for (benchmark, problem_id), (good, bad) in answers.items():
        for i in range(samples):
            correct = i % 2 == 0
            out.append((benchmark, problem_id, f"{good if correct else bad}# sample {i}\n", correct))
    return out


def run_before(box, answers, jobs_of, workers) -> tuple[float, list[bool]]:
    jobs = [jobs_of[b](TEST_STORE[(b, p)], code) for b, p, code, _ in answers]
    started = time.perf_counter()
    results = box.run_many(jobs, workers=workers)
    return time.perf_counter() - started, [r.passed for r in results]


def run_after(limits, answers, workers, isolation) -> tuple[float, list[bool]]:
    subs = [Submission(b, p, TEST_STORE[(b, p)], code) for b, p, code, _ in answers]
    started = time.perf_counter()
    verdicts = CodeGrader(limits, workers=workers, isolation=isolation).grade(subs, desc="after")
    return time.perf_counter() - started, [v.passed for v in verdicts]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--samples", type=int, default=8, help="answers per fixture problem (default 8)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", type=int, default=os.cpu_count() or 1)
    parser.add_argument("--baseline-ref", default="7a3306b", help="git commit of the design before (default 7a3306b)")
    parser.add_argument("--large-inputs", type=int, default=500, help="inputs of the large HumanEval+-layout problem")
    args = parser.parse_args()
    for key in ("humaneval_plus", "mbpp_plus", "livecodebench"):
        build_docs(key, {"data_dir": str(eval_tasks_dir() / "fixtures")})
    TEST_STORE[("humaneval_plus", "R1Bench/large")] = large_problem(args.large_inputs)
    suites = {
        "fixture problems": candidates(args.samples, ANSWERS),
        f"one problem with {args.large_inputs} inputs": candidates(
            args.samples, {("humaneval_plus", "R1Bench/large"): LARGE_ANSWERS}
        ),
    }
    with tempfile.TemporaryDirectory() as tmp:  # the baseline's files must outlive every run
        old_sandbox, old_answers = load_baseline(args.baseline_ref, Path(tmp))
        old_box = old_sandbox.Sandbox(old_sandbox.SandboxLimits(wall_s=20, test_timeout_s=6))
        jobs_of = {
            "humaneval_plus": old_answers.humaneval_plus_job,
            "mbpp_plus": old_answers.mbpp_plus_job,
            "livecodebench": old_answers.livecodebench_job,
        }
        for title, answers in suites.items():
            measure(title, answers, args, old_box, jobs_of)


def measure(title: str, answers: list, args, old_box, jobs_of) -> None:
    expected = [correct for *_, correct in answers]
    limits = SandboxLimits(wall_s=20, test_timeout_s=6)
    times: dict[str, list[float]] = {"before": [], "after (strict)": [], "after (weak)": []}
    agree = True
    for _ in range(args.repeats):
        seconds, passed = run_before(old_box, answers, jobs_of, args.workers)
        times["before"].append(seconds)
        agree &= passed == expected
        for label, isolation in (("after (strict)", "strict"), ("after (weak)", "weak")):
            seconds, passed = run_after(limits, answers, args.workers, isolation)
            times[label].append(seconds)
            agree &= passed == expected
    n = len(answers)
    print(f"\n{title}: {n} candidates ({args.samples} per problem), {args.workers} workers, {args.repeats} repeats")
    print(f"{'design':<16}{'median s':>10}{'candidates/s':>14}{'cost vs before':>16}")
    base = statistics.median(times["before"])
    for label, values in times.items():
        median = statistics.median(values)
        print(f"{label:<16}{median:>10.2f}{n / median:>14.1f}{median / base:>15.2f}x")
    print(f"verdicts as intended (half of the candidates pass) in every design and repeat: {agree}")
    print(f"limits: wall {limits.wall_s:g} s, test timeout {limits.test_timeout_s:g} s")


if __name__ == "__main__":
    main()
