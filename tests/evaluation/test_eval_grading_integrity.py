"""A candidate cannot fool or crash the grader: hostile candidates of every known class, each
graded in one batch with honest ones, get the verdict they deserve, and the honest ones still pass.

Problems: the shipped fixtures plus two in the real evalplus layout (``assertion(out, exp, atol)``
with ``is_floats`` and numpy tolerance), so the tolerance semantics of the original tests are
checked too.
"""

import dataclasses
import json
import os
import time

import pytest
from evaluation_testkit import FIXTURES

from mlr1_titan.evaluation import hooks, sandbox
from mlr1_titan.evaluation.benchmarks import TEST_STORE, EvalOptions, build_docs
from mlr1_titan.evaluation.code_grading import CodeGrader, Submission
from mlr1_titan.evaluation.sandbox import RunOutcome, SandboxLimits, SandboxUnavailable

EVALPLUS_ASSERTION = """
import numpy as np


def is_floats(x) -> bool:
    if isinstance(x, float):
        return True
    if isinstance(x, (list, tuple)):
        return all(isinstance(i, float) for i in x)
    if isinstance(x, np.ndarray):
        return x.dtype == np.float64 or x.dtype == np.float32
    return False


def assertion(out, exp, atol):
    exact_match = out == exp
    if atol == 0 and is_floats(exp):
        atol = 1e-6
    if not exact_match and atol != 0:
        np.testing.assert_allclose(out, exp, atol=atol)
    else:
        assert exact_match
"""
SCALE = {  # HumanEval+ layout: check(candidate) with inputs and results
    "prompt": 'def scale(xs: list, k: float) -> list:\n    """Multiply every element of xs by k."""\n',
    "canonical_solution": "    return [x * k for x in xs]\n",
    "entry_point": "scale",
    "test": EVALPLUS_ASSERTION
    + """

def check(candidate):
    inputs = [[[1.0, 2.5], 2.0], [[], 3.0], [[0.1, 0.2], 3.0], [[7.0], -1.0]]
    results = [[2.0, 5.0], [], [0.30000000000000004, 0.6000000000000001], [-7.0]]
    for i, (inp, exp) in enumerate(zip(inputs, results)):
        assertion(candidate(*inp), exp, 0)
""",
}
MBPP_ASSERTION = EVALPLUS_ASSERTION.replace(
    "np.testing.assert_allclose(out, exp, atol=atol)", "assert np.allclose(out, exp, rtol=1e-07, atol=atol)"
)
MIN_MAX = {  # MBPP+ layout: a module-level loop calling the function by name
    "test_imports": [],
    "code": "def min_max(xs):\n    return (min(xs), max(xs))\n",
    "entry_point": "min_max",
    "test": MBPP_ASSERTION
    + """
inputs = [[[3, 1, 2]], [[5]], [[-2, 9, 4, 9]]]
results = [(1, 3), (5, 5), (-2, 9)]
for i, (inp, exp) in enumerate(zip(inputs, results)):
    assertion(min_max(*inp), exp, 0)
""",
}
LIMITS = SandboxLimits(wall_s=8, test_timeout_s=3)

RUNNING_MAX = (
    "def running_max(values):\n    out = []\n    for v in values:\n"
    "        out.append(v if not out else max(out[-1], v))\n    return out\n"
)
SCALE_OK = "def scale(xs, k):\n    return [x * k for x in xs]\n"
MIN_MAX_OK = "def min_max(xs):\n    return (min(xs), max(xs))\n"
SUM_MOD = "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n"
GAP = (
    "class Solution:\n    def largestGap(self, nums):\n        s = sorted(nums)\n"
    "        return max((b - a for a, b in zip(s, s[1:])), default=0)\n"
)

# (benchmark, problem, code, expected status, a word the detail must contain)
ATTACKS = {
    # --- values that claim equality --------------------------------------------------------------
    "always_equal_object": (
        "humaneval_plus",
        "R1Fixture/0",
        "class E:\n    def __eq__(self, o):\n        return True\n    __hash__ = None\n"
        "def running_max(values):\n    return E()\n",
        "failed",
        "input 0",
    ),
    "always_equal_list_subclass": (
        "humaneval_plus",
        "R1Fixture/0",
        "class E(list):\n    def __eq__(self, o):\n        return True\n    def __ne__(self, o):\n        return False\n"
        "def running_max(values):\n    return E([0])\n",
        "failed",
        "input 0",
    ),
    "always_equal_int_subclass": (
        "mbpp_plus",
        "9001",
        "class E(int):\n    def __eq__(self, o):\n        return True\n    __hash__ = int.__hash__\n"
        "def second_largest(nums):\n    return E(-12345)\n",
        "failed",
        "input 0",
    ),
    "always_equal_tuple_for_evalplus_assertion": (
        "mbpp_plus",
        "min_max",
        "class E(tuple):\n    def __eq__(self, o):\n        return True\n    def __bool__(self):\n        return True\n"
        "def min_max(xs):\n    return E((0, 0))\n",
        "failed",
        "input 0",
    ),
    # --- patched library and builtin functions ----------------------------------------------------
    "patched_zip": (
        "humaneval_plus",
        "R1Fixture/0",
        "import builtins\nbuiltins.zip = lambda *a, **k: iter(())\ndef running_max(values):\n    return []\n",
        "failed",
        "input 0",
    ),
    "patched_numpy_tolerance": (
        "humaneval_plus",
        "scale",
        "import numpy as np\nnp.isclose = np.allclose = lambda *a, **k: True\n"
        "np.testing.assert_allclose = lambda *a, **k: None\ndef scale(xs, k):\n    return [0.0 for x in xs]\n",
        "failed",
        "input 0",
    ),
    "patched_assertion_error": (
        "mbpp_plus",
        "9001",
        "import builtins\nclass Quiet(Exception):\n    pass\nbuiltins.AssertionError = Quiet\n"
        "def second_largest(nums):\n    return 0\n",
        "failed",
        "input 0",
    ),
    "patched_harness_names": (
        "humaneval_plus",
        "R1Fixture/0",
        "import sys\nboot = sys.modules['__main__']\nfor name in dir(boot):\n    if name.startswith(('_failure', '_safe')):\n"
        "        setattr(boot, name, lambda *a, **k: ['l', []])\n"
        "sys.modules['value_codec'].encode = lambda v: ['l', []]\ndef running_max(values):\n    return []\n",
        "failed",
        "input 0",
    ),
    # --- reading the expected outputs -------------------------------------------------------------
    "frame_and_heap_inspection": (
        "livecodebench",
        "fx_lc_0001",
        "import gc, sys, json\nclass Solution:\n    def largestGap(self, nums):\n"
        "        for obj in gc.get_objects():\n            if isinstance(obj, dict) and 'output' in obj:\n"
        "                return json.loads(obj['output'])\n"
        "        f = sys._getframe()\n        while f:\n            for key in ('expected', 'results', 'exp'):\n"
        "                if key in f.f_locals:\n                    return f.f_locals[key]\n            f = f.f_back\n"
        "        return -1\n",
        "failed",
        "input 0",
    ),
    "reads_the_dataset_files": (
        "humaneval_plus",
        "R1Fixture/0",
        # Answers right only when it can read a dataset file: a leak would read as a pass.
        "import glob\ndef running_max(values):\n"
        f"    if glob.glob({str(FIXTURES)!r} + '/*.jsonl') + glob.glob('/root/**/*.jsonl', recursive=True):\n"
        "        out = []\n        for v in values:\n            out.append(v if not out else max(out[-1], v))\n"
        "        return out\n    return None\n",
        "failed",
        "input 0",
    ),
    # --- forged results ---------------------------------------------------------------------------
    "forged_verdict_on_every_fd": (
        "humaneval_plus",
        "R1Fixture/0",
        'import os\nline = b\'{"status": "passed", "tests_passed": 5, "tests_total": 5}\\n\'\n'
        "for fd in range(3, 40):\n    try:\n        os.write(fd, line)\n    except OSError:\n        pass\n"
        "os._exit(0)\ndef running_max(values):\n    return []\n",
        "sandbox_error",
        "channel",
    ),
    "forged_extra_records": (
        "livecodebench",
        "fx_abc001_a",
        "import os\nfor fd in range(3, 40):\n    for i in range(4):\n        try:\n"
        '            os.write(fd, (\'{"i": %d, "stdout": "6\\\\n"}\\n\' % i).encode())\n'
        "        except OSError:\n            pass\nprint(6)\n",
        "sandbox_error",
        "channel",
    ),
    "malformed_channel": (
        "livecodebench",
        "fx_abc001_a",
        "import os\nfor fd in range(3, 40):\n    try:\n        os.write(fd, b'not json at all\\n')\n"
        "    except OSError:\n        pass\nprint(6)\n",
        "sandbox_error",
        "result channel",
    ),
    "oversized_channel": (
        "mbpp_plus",
        "9001",
        "def second_largest(nums):\n    return 'x' * (20 * 2**20)\n",
        "sandbox_error",
        "larger than",
    ),
    # --- early exits ------------------------------------------------------------------------------
    "sys_exit_while_defining": (
        "humaneval_plus",
        "R1Fixture/0",
        "import sys\nsys.exit(0)\n",
        "failed",
        "defining the solution",
    ),
    "os_exit_inside_the_function": (
        "humaneval_plus",
        "R1Fixture/0",
        "import os\ndef running_max(values):\n    os._exit(0)\n",
        "failed",
        "after 0 of 5 inputs",
    ),
    "stdio_exit_after_the_first_answer": (
        "livecodebench",
        "fx_abc001_a",
        "import os, sys\nn = int(input())\nprint(sum(map(int, input().split())) % 1000)\nsys.stdout.flush()\nos._exit(0)\n",
        "failed",
        "after 0 of 4 inputs",  # its first stdout was never reported: os._exit skips the harness
    ),
    # --- limits and crashes -----------------------------------------------------------------------
    "cpu_limit": ("humaneval_plus", "R1Fixture/0", "while True:\n    pass\n", "timeout", "CPU time limit"),
    "cpu_limit_with_sigxcpu_ignored": (
        "humaneval_plus",
        "R1Fixture/0",
        "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n",
        "timeout",
        "CPU time limit",
    ),
    "per_test_limit_with_its_timer_switched_off": (
        "livecodebench",
        "fx_abc001_a",
        "import signal, time\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
        f"time.sleep({LIMITS.test_timeout_s + 1.5})\n"
        "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n",
        "timeout",
        "per-test limit",
    ),
    "per_test_limit_with_its_timeout_swallowed": (
        "livecodebench",
        "fx_lc_0001",
        "import time\nclass Solution:\n    def largestGap(self, nums):\n"
        f"        end = time.time() + {LIMITS.test_timeout_s + 1.5}\n        while time.time() < end:\n"
        "            try:\n                time.sleep(0.05)\n            except BaseException:\n                pass\n"
        "        s = sorted(nums)\n        return max((b - a for a, b in zip(s, s[1:])), default=0)\n",
        "timeout",
        "per-test limit",
    ),
    "slow_first_input_only": (
        "livecodebench",
        "fx_abc001_a",
        "import signal, time, builtins\nsignal.setitimer(signal.ITIMER_REAL, 0)\n"
        f"if not hasattr(builtins, 'seen'):\n    builtins.seen = 1\n    time.sleep({LIMITS.test_timeout_s + 1.5})\n"
        "n = int(input())\nprint(sum(map(int, input().split())) % 1000)\n",
        "timeout",
        "after 0 of 4 inputs",
    ),
    "keeps_the_watchdog_busy_with_whitespace": (
        "livecodebench",
        "fx_lc_0001",
        "import os, signal, time\nclass Solution:\n    def largestGap(self, nums):\n"
        "        signal.setitimer(signal.ITIMER_REAL, 0)\n"
        f"        end = time.time() + {LIMITS.test_timeout_s + 1.5}\n        while time.time() < end:\n"
        "            for fd in range(3, 40):\n                try:\n                    os.write(fd, b' ')\n"
        "                except OSError:\n                    pass\n            time.sleep(0.2)\n"
        "        s = sorted(nums)\n        return max((b - a for a, b in zip(s, s[1:])), default=0)\n",
        "timeout",
        "per-test limit",
    ),
    "unprintable_error_text": (
        "humaneval_plus",
        "R1Fixture/0",
        "def running_max(values):\n    raise ValueError('\\udcff' * 3)\n",
        "failed",
        "ValueError",
    ),
    "sleeps_past_the_wall": ("mbpp_plus", "9001", "import time\ntime.sleep(60)\n", "timeout", "wall clock"),
    "segfault": (
        "humaneval_plus",
        "R1Fixture/0",
        "import os, signal\ndef running_max(values):\n    os.kill(os.getpid(), signal.SIGSEGV)\n",
        "crashed",
        "SIGSEGV",
    ),
    "memory_in_one_process": (
        "mbpp_plus",
        "9001",
        "def second_largest(nums):\n    return len(bytearray(64 * 2**30))\n",
        "memory",
        "MemoryError",
    ),
    "memory_across_processes": (
        "livecodebench",
        "fx_lc_0001",
        "import os, time\nfor _ in range(24):\n    if os.fork() == 0:\n        x = bytearray(300 * 2**20)\n"
        "        x[::4096] = b'1' * len(x[::4096])\n        time.sleep(60)\ntime.sleep(60)\n",
        "memory",
        "memory limit",
    ),
}
# Hostile side effects that must not stop an otherwise correct solution from passing.
HARMLESS_EXTRAS = {
    "deep_directory_tree": (
        "import os\nfor _ in range(80):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n"
        "os.chdir('/tmp')\nfor _ in range(80):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n"
    ),
    "fork_and_hide": (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    if os.fork() == 0:\n"
        '        time.sleep(90)\n        os.write(3, b\'{"i": 0, "value": ["l", []]}\\n\')\n    os._exit(0)\n'
    ),
    "sysv_ipc_segment": (
        "import ctypes\ntry:\n    ctypes.CDLL(None).shmget(0x6d6c7231, 4096, 0o1666)\nexcept Exception:\n    pass\n"
    ),
}


@pytest.fixture(scope="module")
def problems():
    for key in ("humaneval_plus", "mbpp_plus", "livecodebench"):
        build_docs(key, {"data_dir": str(FIXTURES)})
    store = dict(TEST_STORE)
    store[("humaneval_plus", "scale")] = SCALE
    store[("mbpp_plus", "min_max")] = MIN_MAX
    return store


HONEST = [
    ("humaneval_plus", "R1Fixture/0", RUNNING_MAX),
    ("humaneval_plus", "scale", SCALE_OK),
    ("mbpp_plus", "min_max", MIN_MAX_OK),
    ("livecodebench", "fx_abc001_a", SUM_MOD),
    ("livecodebench", "fx_lc_0001", GAP),
]


@pytest.fixture(scope="module")
def batch(problems):
    """Every attack and every honest answer (plain and with each harmless extra) in one run."""
    subs, names = [], []
    for name, (bench, pid, code, _, _) in ATTACKS.items():
        subs.append(Submission(bench, pid, problems[(bench, pid)], code))
        names.append(name)
    for bench, pid, code in HONEST:
        subs.append(Submission(bench, pid, problems[(bench, pid)], code))
        names.append(f"honest {bench} {pid}")
        if bench == "humaneval_plus":
            for extra, prefix in HARMLESS_EXTRAS.items():
                subs.append(Submission(bench, pid, problems[(bench, pid)], prefix + code))
                names.append(f"honest {bench} {pid} + {extra}")
    grader = CodeGrader(dataclasses.replace(LIMITS, memory_mb=1024, cpu_s=2), workers=2)
    started = time.monotonic()
    verdicts = grader.grade(subs)
    return dict(zip(names, verdicts, strict=True)), time.monotonic() - started


@pytest.mark.parametrize("name", sorted(ATTACKS))
def test_attack_gets_the_deserved_verdict(batch, name):
    verdict = batch[0][name]
    _, _, _, status, word = ATTACKS[name]
    assert verdict.status == status, verdict
    assert word in verdict.detail, verdict


def test_every_verdict_detail_can_be_written_out(batch):
    for verdict in batch[0].values():
        json.dumps(verdict.detail, ensure_ascii=False).encode("utf-8")


def test_honest_answers_in_the_same_run_still_pass(batch):
    honest = {name: v for name, v in batch[0].items() if name.startswith("honest")}
    assert len(honest) == len(HONEST) + 2 * len(HARMLESS_EXTRAS)
    assert {name: v.status for name, v in honest.items()} == {name: "passed" for name in honest}


def test_hidden_processes_do_not_survive_the_run(batch):
    """No process of any sandbox run is left on the host (each carries the run's marker variable)."""
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                assert b"MLR1_SANDBOX_RUN=" not in f.read(), pid
        except OSError:
            continue


def test_evalplus_tolerance_semantics_are_kept(problems):
    grader = CodeGrader(LIMITS)
    near = "def scale(xs, k):\n    return [x * k + 1e-7 for x in xs]\n"  # within is_floats' atol=1e-6
    far = "def scale(xs, k):\n    return [x * k + 1e-3 for x in xs]\n"
    as_tuple = "def min_max(xs):\n    return [min(xs), max(xs)]\n"  # a list is not the expected tuple
    numpy_ints = "import numpy as np\ndef min_max(xs):\n    return (np.int64(min(xs)), np.int64(max(xs)))\n"
    subs = [
        Submission("humaneval_plus", "scale", SCALE, near),
        Submission("humaneval_plus", "scale", SCALE, far),
        Submission("mbpp_plus", "min_max", MIN_MAX, as_tuple),
        Submission("mbpp_plus", "min_max", MIN_MAX, numpy_ints),
    ]
    assert [v.status for v in grader.grade(subs)] == ["passed", "failed", "failed", "passed"]


def test_a_recursive_reference_records_only_the_tests_calls():
    fib = {
        "test_imports": [],
        "code": "def fib(n):\n    return n if n < 2 else fib(n - 1) + fib(n - 2)\n",
        "entry_point": "fib",
        "test": "inputs = [[5], [10]]\nresults = [5, 55]\nfor inp, exp in zip(inputs, results):\n    assert fib(*inp) == exp\n",
    }
    loop = "def fib(n):\n    a, b = 0, 1\n    for _ in range(n):\n        a, b = b, a + b\n    return a\n"
    subs = [
        Submission("mbpp_plus", "fib", fib, loop),
        Submission("mbpp_plus", "fib", fib, "def fib(n):\n    return n\n"),
    ]
    verdicts = CodeGrader(LIMITS).grade(subs)
    assert [(v.status, v.tests_passed, v.tests_total) for v in verdicts] == [("passed", 2, 2), ("failed", 1, 2)]


def test_a_check_style_test_calling_the_entry_point_by_name_is_judged_by_the_candidate():
    double = {
        "prompt": 'def double(x):\n    """2x"""\n',
        "canonical_solution": "    return 2 * x\n",
        "entry_point": "double",
        "test": "def check(candidate):\n    assert candidate(1) == 2\n    assert double(3) == 6\n",
    }
    subs = [
        Submission("humaneval_plus", "double", double, code)
        for code in ("def double(x):\n    return x + x\n", "def double(x):\n    return 2 if x == 1 else 0\n")
    ]
    assert [(v.status, v.tests_passed) for v in CodeGrader(LIMITS).grade(subs)] == [("passed", 2), ("failed", 1)]


def test_a_reference_whose_outputs_cannot_cross_the_boundary_is_a_sandbox_error_not_a_failure():
    # The reference returns a numpy array: the test accepts it, but its encoded form is opaque, so
    # the judge's control pass (the reference's own outputs, replayed) fails and nothing is judged.
    arrays = dict(
        SCALE,
        canonical_solution="    import numpy as np\n    return np.array(xs) * k\n",
        test="import numpy as np\ndef check(candidate):\n    assert np.allclose(candidate([1.0], 2.0), [2.0])\n",
    )
    (verdict,) = CodeGrader(LIMITS).grade([Submission("humaneval_plus", "arrays", arrays, SCALE_OK)])
    assert verdict.status == "sandbox_error" and "reference's own outputs" in verdict.detail


def test_problems_that_cannot_be_recorded_are_sandbox_errors_naming_why():
    never_called = dict(MIN_MAX, test="inputs = []\n")
    opaque = dict(
        MIN_MAX,
        test="inputs = [[[object()]]]\nfor inp in inputs:\n    min_max(*inp)\n",
        code="def min_max(xs):\n    return 0\n",
    )
    grader = CodeGrader(LIMITS)
    subs = [Submission("mbpp_plus", "a", never_called, MIN_MAX_OK), Submission("mbpp_plus", "b", opaque, MIN_MAX_OK)]
    first, second, honest = grader.grade([*subs, Submission("mbpp_plus", "min_max", MIN_MAX, MIN_MAX_OK)])
    assert first.status == "sandbox_error" and "never calls the entry point" in first.detail
    assert second.status == "sandbox_error" and "encoding cannot carry" in second.detail
    assert honest.passed


def test_big_integers_cross_the_boundary_both_ways(problems):
    digits = "1" + "0" * 5000  # a literal past Python's default 4,300-digit limit (built as text)
    big = {
        "test_imports": [],
        "code": "def cube(n):\n    return n ** 3\n",
        "entry_point": "cube",
        "test": f"inputs = [[{digits}], [3]]\nresults = [{digits} ** 3, 27]\n"
        "for inp, exp in zip(inputs, results):\n    assert cube(*inp) == exp\n",
    }
    printing = "def cube(n):\n    s = str(n)\n    return int(s) ** 3\n"
    wrong = "def cube(n):\n    return n ** 3 + 1\n"
    verdicts = CodeGrader(LIMITS).grade([Submission("mbpp_plus", "cube", big, code) for code in (printing, wrong)])
    assert [v.status for v in verdicts] == ["passed", "failed"]
    lcb = {
        "tests": [{"input": digits, "output": digits[:-1] + "1\n", "testtype": "stdin"}],
        "style": "stdin",
        "func_name": None,
    }
    functional = {
        "tests": [{"input": digits, "output": digits[:-1] + "1", "testtype": "functional"}],
        "style": "functional",
        "func_name": "inc",
    }
    subs = [
        Submission("livecodebench", "big", lcb, "print(int(input()) + 1)\n"),
        Submission(
            "livecodebench", "big_call", functional, "class Solution:\n    def inc(self, n):\n        return n + 1\n"
        ),
        Submission(
            "livecodebench", "big_call", functional, "class Solution:\n    def inc(self, n):\n        return n\n"
        ),
    ]
    assert [v.status for v in CodeGrader(LIMITS).grade(subs)] == ["passed", "passed", "failed"]


def test_livecodebench_stdout_follows_its_graders_line_rule():
    lcb = {
        "tests": [{"input": "", "output": "Case 1: 0.5\n1.50 2\n", "testtype": "stdin"}],
        "style": "stdin",
        "func_name": None,
    }
    grader = CodeGrader(LIMITS)
    answers = {
        "print('Case 1: 0.5')\nprint(' 1.5 2.0 ')": "passed",  # an all-number line compares by value
        "print('Case 1: 0.50')\nprint('1.5 2')": "failed",  # a mixed line compares as text
        "print('Case  1: 0.5')\nprint('1.5 2')": "failed",
        "print('Case 1: 0.5')\nprint('sNaN 2')": "failed",
    }
    verdicts = grader.grade([Submission("livecodebench", "fmt", lcb, code) for code in answers])
    assert [v.status for v in verdicts] == list(answers.values())


def test_a_correct_answer_with_large_outputs_passes():
    n, size = 8, 3 * 2**20  # 24 MiB of output in all
    lcb = {
        "tests": [{"input": str(i), "output": str(i) * size, "testtype": "stdin"} for i in range(n)],
        "style": "stdin",
        "func_name": None,
    }
    (verdict,) = CodeGrader(dataclasses.replace(LIMITS, wall_s=60)).grade(
        [Submission("livecodebench", "large", lcb, f"print(input() * {size})\n")]
    )
    assert verdict.passed, verdict


def test_inputs_holding_sets_of_strings_record_and_replay_in_any_process():
    """String hashes differ per process, so set order does too: the encoding sorts members."""
    tags = {
        "test_imports": [],
        "code": "def common(a, b):\n    return a & b\n",
        "entry_point": "common",
        "test": "inputs = [[{'x', 'yy', 'zzz', 'w'}, {'yy', 'w', 'q'}], [set(), {'a'}]]\n"
        "results = [{'yy', 'w'}, set()]\nfor inp, exp in zip(inputs, results):\n    assert common(*inp) == exp\n",
    }
    honest = "def common(a, b):\n    return {x for x in a if x in b}\n"
    subs = [Submission("mbpp_plus", "tags", tags, honest) for _ in range(3)]
    assert [v.status for v in CodeGrader(LIMITS).grade(subs)] == ["passed"] * 3


def test_strings_that_merely_look_alike_in_json_stay_different():
    smile = {
        "test_imports": [],
        "code": "def face():\n    return '\\U0001F600'\n",
        "entry_point": "face",
        "test": "assert face() == '\\U0001F600'\n",
    }
    pair = "def face():\n    return '\\ud83d\\ude00'\n"  # two lone surrogates, not the emoji
    assert CodeGrader(LIMITS).grade([Submission("mbpp_plus", "face", smile, pair)])[0].status == "failed"
    replacement = {
        "tests": [{"input": "", "output": "\ufffd", "testtype": "stdin"}],
        "style": "stdin",
        "func_name": None,
    }
    invalid = "import sys\nsys.stdout.buffer.write(b'\\xff')\n"
    assert CodeGrader(LIMITS).grade([Submission("livecodebench", "fffd", replacement, invalid)])[0].status == "failed"


def test_an_honest_answer_with_longer_number_formatting_is_not_cut_off():
    zeros = {
        "tests": [{"input": "", "output": "0\n" * 100_000, "testtype": "stdin"}],
        "style": "stdin",
        "func_name": None,
    }
    code = "import sys\nsys.stdout.write('0.0000000000\\n' * 100_000)\n"
    assert CodeGrader(LIMITS).grade([Submission("livecodebench", "zeros", zeros, code)])[0].passed


def test_the_candidate_process_gets_inputs_only(problems, monkeypatch):
    """What crosses into the candidate's process for a plus problem holds no expected value."""
    seen = []
    grader = CodeGrader(LIMITS)
    real = grader.sandbox.run_many

    def spy(jobs, **kw):
        seen.extend(jobs)
        return real(jobs, **kw)

    monkeypatch.setattr(grader.sandbox, "run_many", spy)
    grader.grade([Submission("mbpp_plus", "min_max", MIN_MAX, MIN_MAX_OK)])
    (job,) = seen
    text = json.dumps(dataclasses.asdict(job))
    assert "results" not in text and "assertion" not in text and job.data is None
    assert len(job.inputs) == 3


def test_a_judge_run_that_fails_is_retried_per_candidate(problems, monkeypatch):
    grader = CodeGrader(LIMITS)
    real = grader.harness.run_many
    calls = []

    def first_judge_batch_dies(jobs, **kw):
        calls.append(len(jobs))
        if jobs and jobs[0].data["task"] == "judge" and len(calls) == 2:
            return [RunOutcome("signal", 9, "killed by SIGKILL", ()) for _ in jobs]
        return real(jobs, **kw)

    monkeypatch.setattr(grader.harness, "run_many", first_judge_batch_dies)
    subs = [
        Submission("mbpp_plus", "min_max", MIN_MAX, code)
        for code in (MIN_MAX_OK, "def min_max(xs):\n    return (0, 0)\n")
    ]
    assert [v.status for v in grader.grade(subs)] == ["passed", "failed"]
    assert calls == [1, 1, 2]  # record, the batch judge (lost), then each candidate alone


def test_a_canonical_solution_that_fails_its_test_is_a_sandbox_error(problems):
    broken = dict(MIN_MAX, code="def min_max(xs):\n    return (0, 0)\n")
    (verdict,) = CodeGrader(LIMITS).grade([Submission("mbpp_plus", "min_max", broken, MIN_MAX_OK)])
    assert verdict.status == "sandbox_error" and "canonical solution fails its own test" in verdict.detail


# --- the gate under plain lm_eval ---------------------------------------------------------------------
@pytest.fixture
def without_bubblewrap(monkeypatch):
    weak = dataclasses.replace(sandbox.probe_features(), bwrap=None)
    monkeypatch.setattr(sandbox, "probe_features", lambda: weak)


def test_code_tasks_refuse_to_load_without_the_strict_sandbox(without_bubblewrap):
    with pytest.raises(SandboxUnavailable, match="bubblewrap.*sandbox_isolation=no_cgroup or weak"):
        hooks.load_humaneval_plus(data_dir=str(FIXTURES))
    hooks.load_aime24(data_dir=str(FIXTURES))  # math tasks need no sandbox
    docs = hooks.load_mbpp_plus(data_dir=str(FIXTURES), sandbox_isolation="weak")["test"]
    assert json.loads(docs[0]["r1_options"])["sandbox_isolation"] == "weak"


def test_grade_code_fails_closed_and_records_the_level(without_bubblewrap):
    docs = list(hooks.load_mbpp_plus(data_dir=str(FIXTURES), sandbox_isolation="weak")["test"])
    answer = (
        "```python\n"
        + "def second_largest(nums):\n    d = sorted(set(nums))\n    return d[-2] if len(d) > 1 else None\n```"
    )
    weak = hooks.grade_code([[answer]], docs[:1])[0][0]
    assert (weak["passed"], weak["sandbox"]) == (True, "weak")
    strict = [
        dict(
            docs[0],
            r1_options=dataclasses.replace(
                EvalOptions.from_json(docs[0]["r1_options"]), sandbox_isolation="strict"
            ).to_json(),
        )
    ]
    record = hooks.grade_code([[answer]], strict)[0][0]
    assert (record["passed"], record["result"], record["sandbox"]) == (False, "sandbox_error", "strict")
    assert "bubblewrap" in record["detail"]


def test_grade_code_never_raises_for_what_samples_contain():
    docs = list(hooks.load_humaneval_plus(data_dir=str(FIXTURES))["test"])
    bombs = [f"```python\n{code}\n```" for _, _, code, _, _ in ATTACKS.values()][:6]
    honest = "```python\n" + RUNNING_MAX + "```"
    records = hooks.grade_code([[*bombs, honest]], docs[:1])[0]
    assert records[-1]["passed"] and not any(r["passed"] for r in records[:-1])
    assert all(r["result"] for r in records)
