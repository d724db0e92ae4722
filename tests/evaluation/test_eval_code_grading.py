"""Code answers: final fenced block, and the full test suites of HumanEval+, MBPP+ and LiveCodeBench."""

import pytest
from evaluation_testkit import FIXTURES

from mlr1_titan.evaluation.benchmarks import TEST_STORE, build_docs
from mlr1_titan.evaluation.code_answers import (
    extract_code,
    humaneval_plus_job,
    livecodebench_job,
    mbpp_plus_job,
)
from mlr1_titan.evaluation.sandbox import Sandbox, SandboxLimits


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(SandboxLimits(wall_s=10, test_timeout_s=3))


@pytest.fixture(scope="module")
def problems():
    for key in ("humaneval_plus", "mbpp_plus", "livecodebench"):
        build_docs(key, {"data_dir": str(FIXTURES)})
    return TEST_STORE


def test_final_fenced_block_prefers_python_and_ignores_unclosed_fences():
    text = (
        "Plan.\n```python\nx = 1\n```\nOutput:\n```text\n1\n```\nBetter:\n```python\nx = 2\n```\n```python\nunfinished"
    )
    assert extract_code(text) == "x = 2"
    assert extract_code("```\nprint(3)\n```") == "print(3)"
    assert extract_code("```cpp\nint main() {}\n```") == "int main() {}"
    assert extract_code("no code at all") is None
    assert extract_code(None) is None


RUNNING_MAX_OK = (
    "from typing import List\n\ndef running_max(values: List[int]) -> List[int]:\n"
    "    out = []\n    for v in values:\n        out.append(v if not out else max(out[-1], v))\n    return out\n"
)
# Passes the docstring example and an ascending list, but not the plus inputs with negatives/descending.
RUNNING_MAX_WEAK = "def running_max(values):\n    return sorted(values)\n"


def test_humaneval_plus_runs_the_plus_suite(sandbox, problems):
    problem = problems[("humaneval_plus", "R1Fixture/0")]
    assert sandbox.run(humaneval_plus_job(problem, RUNNING_MAX_OK)).passed
    weak = sandbox.run(humaneval_plus_job(problem, RUNNING_MAX_WEAK))
    assert weak.status == "wrong_answer"


def test_humaneval_plus_accepts_a_body_only_answer_and_needs_numpy_tests(sandbox, problems):
    body = "    out, best = [], None\n    for v in values:\n        best = v if best is None or v > best else best\n        out.append(best)\n    return out"
    assert sandbox.run(humaneval_plus_job(problems[("humaneval_plus", "R1Fixture/0")], body)).passed
    mean_abs = "def mean_abs(values):\n    return sum(abs(v) for v in values) / len(values)\n"
    assert sandbox.run(humaneval_plus_job(problems[("humaneval_plus", "R1Fixture/1")], mean_abs)).passed
    rounded = "def mean_abs(values):\n    return round(sum(abs(v) for v in values) / len(values), 1)\n"
    assert not sandbox.run(humaneval_plus_job(problems[("humaneval_plus", "R1Fixture/1")], rounded)).passed


def test_mbpp_plus_runs_the_test_field_not_just_test_list(sandbox, problems):
    problem = problems[("mbpp_plus", "9001")]
    good = "def second_largest(nums):\n    d = sorted(set(nums))\n    return d[-2] if len(d) > 1 else None\n"
    assert sandbox.run(mbpp_plus_job(problem, good)).passed
    # Passes the single test_list assert shown in the prompt; fails the plus inputs.
    only_example = "def second_largest(nums):\n    s = sorted(set(nums))\n    return s[-2] if len(s) > 1 else s[0]\n"
    assert sandbox.run(mbpp_plus_job(problem, only_example)).status == "wrong_answer"
    needs_import = "def is_letter_palindrome(s):\n    t = re.sub('[^a-z]', '', s.lower())\n    return t == t[::-1]\n"
    assert sandbox.run(mbpp_plus_job(problems[("mbpp_plus", "9002")], needs_import)).passed  # test_imports


def test_livecodebench_stdin_problem_uses_public_and_private_tests(sandbox, problems):
    problem = problems[("livecodebench", "fx_abc001_a")]
    good = "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n"
    result = sandbox.run(livecodebench_job(problem, good))
    assert (result.status, result.tests_passed, result.tests_total) == ("passed", 4, 4)
    no_modulo = "n = int(input())\nprint(sum(map(int, input().split())))\n"  # passes the public test only
    result = sandbox.run(livecodebench_job(problem, no_modulo))
    assert (result.status, result.tests_passed) == ("wrong_answer", 2)


def test_livecodebench_functional_problem_calls_the_method(sandbox, problems):
    problem = problems[("livecodebench", "fx_lc_0001")]
    good = (
        "class Solution:\n    def largestGap(self, nums: List[int]) -> int:\n        s = sorted(nums)\n"
        "        return max((b - a for a, b in zip(s, s[1:])), default=0)\n"
    )
    assert sandbox.run(livecodebench_job(problem, good)).passed
    crashes_on_one = "class Solution:\n    def largestGap(self, nums):\n        s = sorted(nums)\n        return max(b - a for a, b in zip(s, s[1:]))\n"
    result = sandbox.run(livecodebench_job(problem, crashes_on_one))
    assert result.status == "runtime_error" and "ValueError" in result.detail
