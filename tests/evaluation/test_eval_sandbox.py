"""The code sandbox runs candidates correctly and kills and contains every malicious one.

Each containment case is checked with the full sandbox and, where this machine provides the
kernel layer, again with the Python-level guards switched off, to show the kernel layer alone holds.
"""

import dataclasses
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from mlr1_titan.evaluation.sandbox import CodeJob, Sandbox, SandboxLimits, probe_features

FEATURES = probe_features()
needs_landlock = pytest.mark.skipif(FEATURES.landlock_abi < 1, reason="kernel without Landlock")
needs_kernel_net = pytest.mark.skipif(
    FEATURES.namespaces == "none" and FEATURES.landlock_abi < 4, reason="no network namespace or Landlock TCP"
)
needs_fork_limit = pytest.mark.skipif(
    not FEATURES.describe()["fork_limit_enforced"], reason="RLIMIT_NPROC cannot bind here"
)

# Generous limits for candidates that should finish (the test machine may be busy); short ones
# for candidates that must be killed.
ROOMY = SandboxLimits(wall_s=15.0, test_timeout_s=5.0)
SHORT = SandboxLimits(wall_s=2.0, test_timeout_s=1.0)
KILL_WITHIN_S = SHORT.wall_s + 5.0 + 10.0  # wall limit + start-up grace + slack for a loaded machine


@pytest.fixture(scope="module")
def sandbox():
    return Sandbox(ROOMY)


@pytest.fixture(scope="module")
def kernel_only():
    return Sandbox(ROOMY, python_guards=False)


@pytest.fixture(scope="module")
def short():
    return {True: Sandbox(SHORT), False: Sandbox(SHORT, python_guards=False)}


def _leftovers(result) -> int:
    """Processes still carrying this run's marker in their environment (other runs don't count)."""
    needle = f"MLR1_SANDBOX_RUN={result.run_id}".encode()
    assert result.run_id
    alive = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                alive += needle in f.read().split(b"\0")
        except OSError:
            continue
    return alive


def test_passing_and_failing_programs(sandbox):
    assert sandbox.run(CodeJob("program", "def f(x):\n    return x + 1\nassert f(1) == 2\n")).passed
    wrong = sandbox.run(CodeJob("program", "assert 1 + 1 == 3, 'arithmetic'"))
    assert (wrong.status, wrong.detail) == ("wrong_answer", "AssertionError: arithmetic")
    crash = sandbox.run(CodeJob("program", "raise KeyError('k')"))
    assert crash.status == "runtime_error" and "KeyError" in crash.detail


def test_early_exit_does_not_count_as_passing(sandbox):
    result = sandbox.run(CodeJob("program", "import sys\nsys.exit(0)\nassert False"))
    assert result.status == "runtime_error" and "before the tests finished" in result.detail


def test_numpy_is_importable_for_plus_test_suites(sandbox):
    assert sandbox.run(CodeJob("program", "import numpy as np\nassert np.isclose(np.mean([1, 2]), 1.5)")).passed


def test_stdio_tests_compare_lines_and_numbers_by_value(sandbox):
    code = "import sys\nnums = list(map(float, sys.stdin.read().split()))\nprint(sum(nums) / len(nums))"
    tests = ({"input": "1 2\n", "output": "1.500\n"}, {"input": "4\n", "output": "4.0"})
    assert sandbox.run(CodeJob("stdio", code, tests)).passed
    wrong = sandbox.run(CodeJob("stdio", "print(1)", ({"input": "", "output": "1"}, {"input": "", "output": "2"})))
    assert (wrong.status, wrong.tests_passed, wrong.tests_total) == ("wrong_answer", 1, 2)


def test_stdio_program_reading_fd_zero_gets_each_tests_input(sandbox):
    code = "print(sum(map(int, open(0).read().split())))"
    tests = ({"input": "1 2", "output": "3"}, {"input": "10 20 30", "output": "60"})
    assert sandbox.run(CodeJob("stdio", code, tests)).passed


def test_functional_tests_call_the_solution_method(sandbox):
    code = "class Solution:\n    def pair(self, a: int, b: List[int]):\n        return (a, sum(b))\n"
    tests = ({"input": "1\n[2, 3]", "output": "[1, 5]"},)
    prelude = "from typing import List\n"
    assert sandbox.run(CodeJob("call", prelude + code, tests, func_name="pair")).passed
    missing = sandbox.run(CodeJob("call", "x = 1", tests, func_name="pair"))
    assert missing.status == "runtime_error" and "no Solution.pair" in missing.detail


def test_per_test_timeout_stops_a_slow_test(short):
    code = "import time\nn = int(input())\ntime.sleep(n)\nprint(n)"
    tests = ({"input": "0", "output": "0"}, {"input": "30", "output": "30"})
    result = short[True].run(CodeJob("stdio", code, tests))
    assert (result.status, result.tests_passed) == ("timeout", 1)


@pytest.mark.parametrize("guards", [True, False], ids=["full", "kernel_only"])
def test_infinite_loop_is_killed_at_the_wall_limit(short, guards):
    start = time.monotonic()
    result = short[guards].run(CodeJob("program", "while True:\n    pass\n"))
    assert result.status == "timeout"
    assert time.monotonic() - start < KILL_WITHIN_S
    assert _leftovers(result) == 0


def test_loop_that_swallows_the_timeout_is_still_killed(short):
    code = "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass\n"
    start = time.monotonic()
    result = short[True].run(CodeJob("program", code))
    assert result.status == "timeout"
    assert time.monotonic() - start < KILL_WITHIN_S
    assert _leftovers(result) == 0


@needs_fork_limit
@pytest.mark.parametrize("guards", [True, False], ids=["full", "kernel_only"])
def test_fork_bomb_is_capped_and_every_process_dies(sandbox, kernel_only, short, guards):
    box = sandbox if guards else kernel_only
    counted = (
        "import os, time\nn = 0\nfor _ in range(1000):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
        "    n += 1\nprint('forked', n)\n"
    )
    result = box.run(CodeJob("program", counted))
    forked = int(result.stdout.split()[-1])
    assert forked <= ROOMY.max_tasks  # RLIMIT_NPROC headroom
    bomb = short[guards].run(
        CodeJob(
            "program",
            "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n",
        )
    )
    assert bomb.status in ("timeout", "runtime_error")
    time.sleep(0.5)
    assert _leftovers(result) == 0  # the 60 s sleepers are gone
    assert _leftovers(bomb) == 0


@pytest.mark.parametrize("namespaces", ["as_probed", "none"])
def test_descendants_that_leave_the_process_group_are_killed(namespaces):
    # A child that setsid()s escapes the process-group kill; the PID namespace, or (without
    # namespaces) the sweep for the run's marker variable, must still get it.
    features = FEATURES if namespaces == "as_probed" else dataclasses.replace(FEATURES, namespaces="none")
    code = (
        "import os, time\nif os.fork() == 0:\n    os.setsid()\n    time.sleep(120)\n    os._exit(0)\n"
        "while True:\n    pass\n"
    )
    result = Sandbox(SHORT, features=features).run(CodeJob("program", code))
    assert result.status == "timeout"
    time.sleep(0.5)
    assert _leftovers(result) == 0


def test_file_write_outside_the_work_dir_is_refused(sandbox, tmp_path):
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)  # writable for anyone: only the sandbox can stop the write
    result = sandbox.run(CodeJob("program", f"open({str(target)!r}, 'w').write('x')"))
    assert result.status == "runtime_error" and "PermissionError" in result.detail
    assert not target.exists()
    inside = sandbox.run(
        CodeJob("program", "open('scratch.txt', 'w').write('x')\nassert open('scratch.txt').read() == 'x'")
    )
    assert inside.passed


@needs_landlock
def test_kernel_blocks_writes_outside_even_through_a_shell(kernel_only, tmp_path):
    os.chmod(tmp_path, 0o777)
    direct, via_shell = tmp_path / "direct.txt", tmp_path / "shell.txt"
    code = (
        f"import os\ntry:\n    open({str(direct)!r}, 'w').write('x')\nexcept PermissionError:\n    pass\n"
        f"os.system('echo x > {via_shell}')\n"
    )
    kernel_only.run(CodeJob("program", code))
    assert not direct.exists() and not via_shell.exists()


def test_network_call_fails(sandbox):
    code = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)"
    result = sandbox.run(CodeJob("program", code))
    assert result.status == "runtime_error" and "PermissionError" in result.detail
    urllib = sandbox.run(
        CodeJob("program", "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)")
    )
    assert urllib.status == "runtime_error"


@needs_kernel_net
def test_kernel_blocks_network_even_from_a_child_interpreter(kernel_only):
    probe = "import socket; socket.create_connection(('1.1.1.1', 80), timeout=2)"
    code = f"import subprocess, sys\nr = subprocess.run([sys.executable, '-c', {probe!r}])\nassert r.returncode == 0\n"
    result = kernel_only.run(CodeJob("program", code))
    assert not result.passed
    direct = kernel_only.run(CodeJob("program", probe))
    assert direct.status == "runtime_error" and ("Errno" in direct.detail or "Error" in direct.detail)


def test_starting_programs_is_refused(sandbox):
    result = sandbox.run(CodeJob("program", "import os\nassert os.system('true') == 0"))
    assert result.status == "runtime_error" and "starting programs" in result.detail


def test_other_processes_cannot_be_signalled(sandbox, kernel_only):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        code = f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)"
        for box in (sandbox, kernel_only):
            assert box.run(CodeJob("program", code)).status == "runtime_error"
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_memory_limit(sandbox):
    result = sandbox.run(CodeJob("program", "x = bytearray(64 * 2**30)"))
    assert result.status == "runtime_error" and "MemoryError" in result.detail


def test_output_flood_is_capped(tmp_path):
    box = Sandbox(SandboxLimits(wall_s=10, file_size_mb=1, output_kb=4))
    result = box.run(CodeJob("program", "while True:\n    print('x' * 10000)"))
    assert result.status == "runtime_error" and "File too large" in result.detail
    assert len(result.stdout) < 5 * 1024


def test_results_do_not_depend_on_the_working_directory(sandbox, tmp_path, monkeypatch):
    job = CodeJob(
        "stdio", "import os\nprint(len(os.listdir('.')) >= 0, input())", ({"input": "a", "output": "True a"},)
    )
    first = sandbox.run(job)
    monkeypatch.chdir(tmp_path)
    second = sandbox.run(job)
    assert first.passed and second.passed


def test_temp_dirs_are_removed(sandbox):
    import tempfile

    root = Path(tempfile.gettempdir())
    before = set(root.glob("mlr1-sandbox-*"))
    sandbox.run(CodeJob("program", "open('big.bin', 'wb').write(b'0' * 1000)"))
    assert set(root.glob("mlr1-sandbox-*")) == before


def test_run_many_keeps_job_order():
    box = Sandbox(ROOMY)
    jobs = [CodeJob("program", f"assert {i} % 2 == 0") for i in range(6)]
    assert [r.passed for r in box.run_many(jobs, workers=3)] == [True, False, True, False, True, False]


def test_bad_jobs_are_rejected_with_a_clear_error(sandbox):
    with pytest.raises(ValueError, match="unknown sandbox mode 'shell'"):
        sandbox.run(CodeJob("shell", "true"))
    with pytest.raises(ValueError, match="needs func_name"):
        sandbox.run(CodeJob("call", "x = 1", ({"input": "1", "output": "1"},)))
