"""Code answers: final fenced block, and the full test suites of HumanEval+, MBPP+ and LiveCodeBench."""

import pytest
from evaluation_testkit import FIXTURES

from mlr1_titan.evaluation.benchmarks import TEST_STORE, build_docs, mbpp_entry_point
from mlr1_titan.evaluation.code_answers import extract_code
from mlr1_titan.evaluation.code_grading import CodeGrader, Submission
from mlr1_titan.evaluation.sandbox import SandboxLimits


@pytest.fixture(scope="module")
def grader():
    return CodeGrader(SandboxLimits(wall_s=10, test_timeout_s=3))


@pytest.fixture(scope="module")
def problems():
    for key in ("humaneval_plus", "mbpp_plus", "livecodebench"):
        build_docs(key, {"data_dir": str(FIXTURES)})
    return TEST_STORE


def grade(grader, problems, benchmark, problem_id, code):
    return grader.grade([Submission(benchmark, problem_id, problems[(benchmark, problem_id)], code)])[0]


def test_final_fenced_block_prefers_python_and_ignores_unclosed_fences():
    text = (
        "Plan.\n```python\nx = 1\n```\nOutput:\n```text\n1\n```\nBetter:\n```python\nx = 2\n```\n```python\nunfinished"
    )
    assert extract_code(text) == "x = 2"
    assert extract_code("```\nprint(3)\n```") == "print(3)"
    assert extract_code("```cpp\nint main() {}\n```") == "int main() {}"
    assert extract_code("no code at all") is None
    assert extract_code(None) is None


def test_mbpp_entry_point_is_the_reference_function_the_test_calls():
    code = "def helper(x):\n    return x\ndef solve(xs):\n    return [helper(x) for x in xs]\n"
    assert mbpp_entry_point(code, "for inp in inputs:\n    assertion(solve(*inp), 1, 0)", [], "row") == "solve"
    both = "assert solve([1]) == helper([1])"
    assert mbpp_entry_point(code, both, ["assert solve([2]) == [2]"], "row") == "solve"  # from test_list
    with pytest.raises(ValueError, match="row: cannot tell which function"):
        mbpp_entry_point(code, both, [both], "row")


RUNNING_MAX_OK = (
    "from typing import List\n\ndef running_max(values: List[int]) -> List[int]:\n"
    "    out = []\n    for v in values:\n        out.append(v if not out else max(out[-1], v))\n    return out\n"
)
# Passes the docstring example and an ascending list, but not the plus inputs with negatives/descending.
RUNNING_MAX_WEAK = "def running_max(values):\n    return sorted(values)\n"


def test_humaneval_plus_runs_the_plus_suite(grader, problems):
    assert grade(grader, problems, "humaneval_plus", "R1Fixture/0", RUNNING_MAX_OK).passed
    weak = grade(grader, problems, "humaneval_plus", "R1Fixture/0", RUNNING_MAX_WEAK)
    assert (weak.status, weak.tests_passed, weak.tests_total) == ("failed", 0, 5)


def test_humaneval_plus_accepts_a_body_only_answer_and_keeps_the_tests_tolerance(grader, problems):
    body = "    out, best = [], None\n    for v in values:\n        best = v if best is None or v > best else best\n        out.append(best)\n    return out"
    assert grade(grader, problems, "humaneval_plus", "R1Fixture/0", body).passed
    mean_abs = "def mean_abs(values):\n    return sum(abs(v) for v in values) / len(values)\n"
    assert grade(grader, problems, "humaneval_plus", "R1Fixture/1", mean_abs).passed
    # Off by a relative 1e-12: inside the test's np.isclose(rtol=1e-9), so it passes as the original would.
    close = "def mean_abs(values):\n    return sum(abs(v) for v in values) / len(values) * (1 + 1e-12)\n"
    assert grade(grader, problems, "humaneval_plus", "R1Fixture/1", close).passed
    rounded = "def mean_abs(values):\n    return round(sum(abs(v) for v in values) / len(values), 1)\n"
    assert grade(grader, problems, "humaneval_plus", "R1Fixture/1", rounded).status == "failed"


def test_mbpp_plus_runs_the_test_field_not_just_test_list(grader, problems):
    good = "def second_largest(nums):\n    d = sorted(set(nums))\n    return d[-2] if len(d) > 1 else None\n"
    assert grade(grader, problems, "mbpp_plus", "9001", good).passed
    # Passes the single test_list assert shown in the prompt; fails the plus inputs.
    only_example = "def second_largest(nums):\n    s = sorted(set(nums))\n    return s[-2] if len(s) > 1 else s[0]\n"
    assert grade(grader, problems, "mbpp_plus", "9001", only_example).status == "failed"
    needs_import = "def is_letter_palindrome(s):\n    t = re.sub('[^a-z]', '', s.lower())\n    return t == t[::-1]\n"
    assert grade(grader, problems, "mbpp_plus", "9002", needs_import).passed  # test_imports


def test_livecodebench_stdin_problem_uses_public_and_private_tests(grader, problems):
    good = "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n"
    result = grade(grader, problems, "livecodebench", "fx_abc001_a", good)
    assert (result.status, result.tests_passed, result.tests_total) == ("passed", 4, 4)
    no_modulo = "n = int(input())\nprint(sum(map(int, input().split())))\n"  # passes the public test only
    result = grade(grader, problems, "livecodebench", "fx_abc001_a", no_modulo)
    assert (result.status, result.tests_passed) == ("failed", 2)


def test_livecodebench_functional_problem_calls_the_method(grader, problems):
    good = (
        "class Solution:\n    def largestGap(self, nums: List[int]) -> int:\n        s = sorted(nums)\n"
        "        return max((b - a for a, b in zip(s, s[1:])), default=0)\n"
    )
    assert grade(grader, problems, "livecodebench", "fx_lc_0001", good).passed
    crashes_on_one = "class Solution:\n    def largestGap(self, nums):\n        s = sorted(nums)\n        return max(b - a for a, b in zip(s, s[1:]))\n"
    result = grade(grader, problems, "livecodebench", "fx_lc_0001", crashes_on_one)
    assert result.status == "failed" and "ValueError" in result.detail
