"""The code sandbox runs jobs correctly, and kills and contains every malicious one.

Containment cases run with the full sandbox and, where it matters, again with the Python-level
guards switched off (``kernel_only``), to show bubblewrap, the cgroup and the kernel layers hold alone.
Verdict semantics live in test_eval_grading_integrity.py; here the raw ``RunOutcome`` is checked.
"""

import ctypes
import dataclasses
import os
import platform
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import pytest

from mlr1_titan.evaluation import value_codec
from mlr1_titan.evaluation.sandbox import (
    CodeJob,
    Sandbox,
    SandboxLimits,
    SandboxUnavailable,
    probe_features,
    require,
)
from mlr1_titan.evaluation.verdicts import judge_stdout, judge_values

FEATURES = probe_features()

# Generous limits for jobs that should finish (the test machine may be busy); short ones for jobs
# that must be killed.
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


def _program(box, source, **kw):
    return box.run(CodeJob("program", source, **kw))


def _alive_with(needle: bytes, where: str = "environ") -> int:
    """Host processes whose environment (or command line) contains ``needle``."""
    alive = 0
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            with open(f"/proc/{pid}/{where}", "rb") as f:
                alive += needle in f.read()
        except OSError:
            continue
    return alive


def _leftovers(outcome) -> int:
    assert outcome.run_id
    return _alive_with(f"MLR1_SANDBOX_RUN={outcome.run_id}".encode())


def test_this_machine_provides_the_strict_level():
    """CI installs bubblewrap (`make test`); root on a v1/v2 host gives the cgroups."""
    assert FEATURES.bwrap is not None and FEATURES.seccomp, FEATURES
    assert FEATURES.cgroup != "none", FEATURES
    assert require("strict") is FEATURES
    assert Sandbox(ROOMY).describe()["seccomp"] is True


def test_programs_report_through_the_channel_and_their_exit(sandbox):
    ok = _program(sandbox, "emit({'sum': sum(job_data)})", data=[1, 2, 3])
    assert (ok.end, ok.code, ok.records) == ("exit", 0, ({"sum": 6},))
    crash = _program(sandbox, "raise KeyError('k')")
    assert (crash.end, crash.code) == ("exit", 1) and "KeyError: 'k'" in crash.stderr


def test_numpy_is_importable(sandbox):
    outcome = _program(sandbox, "import numpy as np\nemit({'mean': float(np.mean([1, 2]))})")
    assert outcome.records == ({"mean": 1.5},), outcome.stderr


def test_call_jobs_get_inputs_and_send_back_encoded_values(sandbox):
    job = CodeJob(
        "call",
        "def f(a, b):\n    return (a, sorted(b), {a})\n",
        (value_codec.encode([1, [3, 2]]), value_codec.encode(["x", []])),
        func_name="f",
    )
    outcome = sandbox.run(job)
    values = [value_codec.decode(r["value"]) for r in outcome.records]
    assert values == [(1, [2, 3], {1}), ("x", [], {"x"})]


def test_stdio_tests_compare_lines_and_numbers_by_value(sandbox):
    code = "import sys\nnums = list(map(float, sys.stdin.read().split()))\nprint(sum(nums) / len(nums))"
    outcome = sandbox.run(CodeJob("stdio", code, ("1 2\n", "4\n")))
    assert judge_stdout(outcome, ["1.500\n", "4.0"]).passed
    wrong = judge_stdout(sandbox.run(CodeJob("stdio", "print(1)", ("", ""))), ["1", "2"])
    assert (wrong.status, wrong.tests_passed, wrong.tests_total) == ("failed", 1, 2)


def test_stdio_program_reading_fd_zero_gets_each_tests_input(sandbox):
    outcome = sandbox.run(CodeJob("stdio", "print(sum(map(int, open(0).read().split())))", ("1 2", "10 20 30")))
    assert judge_stdout(outcome, ["3", "60"]).passed


def test_functional_tests_call_the_solution_method(sandbox):
    code = "from typing import List\nclass Solution:\n    def pair(self, a: int, b: List[int]):\n        return (a, sum(b))\n"
    job = CodeJob("call", code, (value_codec.encode([1, [2, 3]]),), func_name="pair", call_style="method")
    assert judge_values(sandbox.run(job), [[1, 5]], lambda a, b: list(a) == b).passed
    missing = judge_values(sandbox.run(dataclasses.replace(job, source="x = 1")), [[1, 5]], lambda a, b: a == b)
    assert missing.status == "failed" and "no Solution.pair" in missing.detail


def test_per_test_timeout_stops_a_slow_test(short):
    code = "import time\nn = int(input())\ntime.sleep(n)\nprint(n)"
    outcome = short[True].run(CodeJob("stdio", code, ("0", "30"), test_timeout_s=SHORT.test_timeout_s))
    verdict = judge_stdout(outcome, ["0", "30"])
    assert (verdict.status, verdict.tests_passed) == ("timeout", 1)


@pytest.mark.parametrize("guards", [True, False], ids=["full", "kernel_only"])
def test_infinite_loop_is_killed_at_the_wall_or_cpu_limit(short, guards):
    start = time.monotonic()
    outcome = _program(short[guards], "while True:\n    pass\n")
    assert outcome.end == "timeout"
    assert time.monotonic() - start < KILL_WITHIN_S
    assert _leftovers(outcome) == 0


def test_sleeping_past_the_wall_limit_is_a_timeout(short):
    outcome = _program(short[True], "import time\ntime.sleep(60)")
    assert outcome.end == "timeout" and "wall clock" in outcome.detail


def test_loop_that_swallows_the_timeout_is_still_killed(short):
    code = "while True:\n    try:\n        while True: pass\n    except BaseException:\n        pass\n"
    start = time.monotonic()
    outcome = _program(short[True], code)
    assert outcome.end == "timeout"
    assert time.monotonic() - start < KILL_WITHIN_S
    assert _leftovers(outcome) == 0


@pytest.mark.parametrize("guards", [True, False], ids=["full", "kernel_only"])
def test_fork_bomb_is_capped_by_the_cgroup_and_every_process_dies(sandbox, kernel_only, short, guards):
    box = sandbox if guards else kernel_only
    counted = (
        "import os, time\nn = 0\nfor _ in range(1000):\n    try:\n        pid = os.fork()\n"
        "    except OSError:\n        break\n    if pid == 0:\n        time.sleep(60)\n        os._exit(0)\n"
        "    n += 1\nemit({'forked': n})\n"
    )
    outcome = _program(box, counted)
    assert outcome.records[0]["forked"] <= ROOMY.max_tasks + 8  # the cgroup's pids.max
    bomb = _program(
        short[guards], "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass\n"
    )
    assert bomb.end == "timeout"
    time.sleep(0.5)
    assert _leftovers(outcome) == 0  # the 60 s sleepers are gone
    assert _leftovers(bomb) == 0


@pytest.mark.parametrize("isolation", ["strict", "weak"])
def test_descendants_that_hide_are_killed(isolation):
    """setsid() escapes the process group; a re-exec with an empty environment also escapes the
    marker sweep. The PID namespace (strict) and the cgroup kill get both."""
    mark = uuid.uuid4().hex
    hider = f"import time; time.sleep(120)  # {mark}"
    code = (
        "import os, sys\nif os.fork() == 0:\n    os.setsid()\n"
        f"    os.execve(sys.executable, [sys.executable, '-c', {hider!r}], {{}})\n"
        "while True:\n    pass\n"
    )
    box = Sandbox(SHORT, isolation=isolation, python_guards=False)
    outcome = _program(box, code)
    assert outcome.end == "timeout"
    time.sleep(0.5)
    survivors = _alive_with(mark.encode(), "cmdline")
    if isolation == "weak" and FEATURES.namespaces == "none":
        pytest.skip(f"without namespaces the re-exec survives ({survivors}); that is why weak is opt-in")
    assert survivors == 0


def test_file_write_outside_the_work_dir_is_impossible(sandbox, kernel_only, tmp_path):
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)  # writable for anyone: only the sandbox can stop the write
    for box in (sandbox, kernel_only):
        outcome = _program(box, f"open({str(target)!r}, 'w').write('x')")
        assert outcome.code == 1 and ("FileNotFoundError" in outcome.stderr or "PermissionError" in outcome.stderr)
    via_shell = tmp_path / "shell.txt"
    _program(kernel_only, f"import os\nos.system('echo x > {via_shell}')")
    assert not target.exists() and not via_shell.exists()
    # "/tmp" here is the sandbox's own private tmpfs mount point, not a path of this machine.
    inside = _program(sandbox, "open('scratch.txt', 'w').write('x')\nopen('/tmp/t', 'w').write('y')\nemit({})")
    assert inside.records == ({},), inside.stderr


def test_weak_level_refuses_writes_outside_with_landlock_and_guards(tmp_path):
    if FEATURES.landlock_abi < 1:
        pytest.skip("kernel without Landlock")
    target = tmp_path / "escaped.txt"
    os.chmod(tmp_path, 0o777)
    outcome = _program(Sandbox(ROOMY, isolation="weak"), f"open({str(target)!r}, 'w').write('x')")
    assert "PermissionError" in outcome.stderr and not target.exists()


def test_read_access_is_limited_to_the_interpreter_and_the_work_dir(kernel_only, tmp_path):
    secret = tmp_path / "hidden_tests.jsonl"
    secret.write_text("canonical solutions")
    os.chmod(tmp_path, 0o755)
    os.chmod(secret, 0o644)
    home_secret = Path.home() / f".mlr1-test-secret-{uuid.uuid4().hex[:8]}"
    home_secret.write_text("token")
    home_secret.chmod(0o644)
    fixtures = Path(__file__).resolve().parents[2] / "mlr1_titan" / "eval_tasks" / "fixtures" / "humaneval_plus.jsonl"
    probe = (
        "import os\nseen = {}\n"
        f"for path in [{str(secret)!r}, {str(fixtures)!r}, {str(home_secret)!r}, '/etc/passwd', '/etc/hostname', '/home', '/run', '/var']:\n"
        "    seen[path] = os.path.exists(path)\n"
        "emit({'seen': seen, 'root': sorted(os.listdir('/'))})\n"
    )
    try:
        outcome = _program(kernel_only, probe)
    finally:
        home_secret.unlink()
    record = outcome.records[0]
    assert not any(record["seen"].values()), record["seen"]
    assert set(record["root"]) <= {
        "bin",
        "lib",
        "lib32",
        "lib64",
        "sbin",
        "usr",
        "etc",
        "dev",
        "proc",
        "tmp",
        "sandbox",
    } | {p.split("/")[1] for p in (sys.prefix, sys.base_prefix)}


def test_host_unix_sockets_are_unreachable(kernel_only):
    connected = threading.Event()
    paths = []
    servers = []
    for base in ("/tmp", "/run") if os.path.isdir("/run") else ("/tmp",):
        path = os.path.join(base, f"mlr1-test-{uuid.uuid4().hex[:8]}.sock")
        server = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        server.bind(path)
        os.chmod(path, 0o777)
        server.listen(4)
        server.settimeout(0.2)
        paths.append(path)
        servers.append(server)

    def accept():
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline and not connected.is_set():
            for server in servers:
                try:
                    server.accept()
                    connected.set()
                except OSError:
                    pass

    watcher = threading.Thread(target=accept, daemon=True)
    watcher.start()
    try:
        code = (
            "import socket\nerrors = []\n"
            f"for path in {paths!r}:\n"
            "    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)\n"
            "    try:\n        s.connect(path)\n        errors.append(None)\n"
            "    except OSError as err:\n        errors.append(type(err).__name__)\n"
            "emit({'errors': errors})\n"
        )
        outcome = _program(kernel_only, code)
        assert None not in outcome.records[0]["errors"]
        time.sleep(0.5)
        assert not connected.is_set()
    finally:
        connected.set()
        watcher.join()
        for server, path in zip(servers, paths):
            server.close()
            os.unlink(path)


def test_sysv_ipc_is_private_and_gone_after_the_run(kernel_only):
    libc = ctypes.CDLL(None, use_errno=True)
    host_key = 0x6D6C7200 + os.getpid() % 255
    host_id = libc.shmget(host_key, 4096, 0o1666)  # IPC_CREAT | 0666
    assert host_id >= 0
    inner_key = host_key + 1
    try:
        code = (
            "import ctypes\nlibc = ctypes.CDLL(None, use_errno=True)\n"
            f"emit({{'host': libc.shmget({host_key}, 0, 0), 'made': libc.shmget({inner_key}, 4096, 0o1666)}})\n"
        )
        outcome = _program(kernel_only, code)
        record = outcome.records[0]
        assert record["host"] == -1  # the host's segment is not visible inside
        assert record["made"] >= 0  # the sandbox may make its own ...
        assert libc.shmget(inner_key, 0, 0) == -1  # ... which never reaches the host
    finally:
        libc.shmctl(host_id, 0, None)  # IPC_RMID


def test_kernel_keyrings_and_new_namespaces_are_refused_by_the_syscall_filter(kernel_only):
    """A key stored by one run would be readable by the next (keyrings are per UID): refused."""
    code = (
        "import ctypes, os\nlibc = ctypes.CDLL(None, use_errno=True)\nout = {}\n"
        "out['add_key'] = (libc.syscall(248, b'user', b'mlr1-test', b'x', 1, -4), ctypes.get_errno())\n"
        "out['keyctl'] = (libc.syscall(250, 0, -4, 0), ctypes.get_errno())\n"
        "out['unshare'] = (libc.unshare(0x10000000), ctypes.get_errno())\n"
        "out['clone_newuser'] = (libc.syscall(CLONE, 0x10000000 | 17, 0, 0, 0, 0), ctypes.get_errno())\n"
        "out['vsock'] = (libc.socket(40, 1, 0), ctypes.get_errno())\n"
        "pid = os.fork()\nif pid == 0:\n    os._exit(0)\nos.waitpid(pid, 0)\nemit(out)\n"
    )
    clone = {"x86_64": 56, "aarch64": 220}[platform.machine()]
    outcome = _program(kernel_only, code.replace("CLONE", str(clone)))
    assert outcome.records == ({k: [-1, 1] for k in ("add_key", "keyctl", "unshare", "clone_newuser", "vsock")},), (
        outcome.stderr
    )


def test_cpu_quota_keeps_a_forking_candidate_to_one_cpu(kernel_only):
    """Busy children that setsid() away still share the run's one-CPU quota."""
    code = (
        "import os, time\nfor _ in range(4):\n    if os.fork() == 0:\n        os.setsid()\n"
        "        end = time.time() + 3\n        while time.time() < end:\n            pass\n        os._exit(0)\n"
        "time.sleep(3.2)\nemit({})\n"
    )
    outcome = _program(kernel_only, code)
    assert outcome.records == ({},)
    assert 0.3 < outcome.cpu_s < 1.25 * outcome.wall_s, outcome  # four busy processes, one CPU


def test_a_candidate_that_ignores_sigxcpu_is_still_a_timeout(short):
    code = "import signal\nsignal.signal(signal.SIGXCPU, signal.SIG_IGN)\nwhile True:\n    pass\n"
    box = Sandbox(dataclasses.replace(SHORT, wall_s=30, cpu_s=1), python_guards=False)
    outcome = _program(box, code)  # SIGKILL at the hard limit (cpu + 1 s), long before the wall
    assert (outcome.end, outcome.detail) == ("timeout", "CPU time limit of 1s reached"), outcome


def test_multiprocessing_works_for_honest_candidates(sandbox):
    code = (
        "import multiprocessing as mp\nwith mp.Pool(2) as pool:\n    squares = pool.map(abs, [-1, -2, -3])\n"
        "lock = mp.Lock()\nemit({'squares': squares, 'locked': lock.acquire()})\n"
    )
    assert _program(sandbox, code).records == ({"squares": [1, 2, 3], "locked": True},)


def test_a_sandbox_that_cannot_start_is_an_error_not_a_failure(monkeypatch):
    box = Sandbox(ROOMY)
    monkeypatch.setattr("mlr1_titan.evaluation.sandbox.BOOT_SCRIPT", Path("/nonexistent/boot.py"))
    outcome = _program(box, "emit({})")
    assert outcome.end == "error" and "did not start the job" in outcome.detail


def test_starting_programs_is_refused_by_the_guards(sandbox):
    outcome = _program(sandbox, "import os\nos.system('true')")
    assert outcome.code == 1 and "starting programs" in outcome.stderr


def test_network_is_unreachable(sandbox, kernel_only):
    probe = "import socket\nsocket.create_connection(('1.1.1.1', 80), timeout=2)"
    for box in (sandbox, kernel_only):
        outcome = _program(box, probe)
        assert outcome.code == 1 and ("PermissionError" in outcome.stderr or "OSError" in outcome.stderr)


def test_other_processes_cannot_be_signalled(sandbox, kernel_only):
    victim = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)"])
    try:
        code = f"import os, signal\nos.kill({victim.pid}, signal.SIGKILL)"
        for box in (sandbox, kernel_only):
            assert _program(box, code).code == 1
        assert victim.poll() is None
    finally:
        victim.kill()
        victim.wait()


def test_memory_limit_per_process(sandbox):
    outcome = _program(sandbox, "x = bytearray(64 * 2**30)")
    assert outcome.code == 1 and "MemoryError" in outcome.stderr


def test_memory_limit_covers_all_processes_together():
    """Each child stays under the per-process limit; together they pass the cgroup's."""
    box = Sandbox(SandboxLimits(wall_s=15, memory_mb=512), python_guards=False)
    code = (
        "import os, time\nfor _ in range(6):\n    if os.fork() == 0:\n"
        "        x = bytearray(200 * 2**20)\n        x[::4096] = b'1' * len(x[::4096])\n        time.sleep(30)\n"
        "time.sleep(30)\n"
    )
    outcome = _program(box, code)
    assert outcome.end == "memory", outcome
    assert _leftovers(outcome) == 0


def test_output_flood_is_capped():
    box = Sandbox(SandboxLimits(wall_s=10, file_size_mb=1, output_kb=4))
    outcome = _program(box, "while True:\n    print('x' * 10000)")
    assert outcome.end == "signal" or "File too large" in outcome.stderr
    assert len(outcome.stdout) < 5 * 1024


def test_a_channel_larger_than_the_limit_is_an_error():
    box = Sandbox(SandboxLimits(wall_s=10, channel_mb=1))
    outcome = _program(box, "for _ in range(200):\n    emit({'x': 'y' * 10000})")
    assert outcome.channel_error == "result channel larger than 1.0 MiB" and outcome.records == ()


def test_results_do_not_depend_on_the_working_directory(sandbox, tmp_path, monkeypatch):
    job = CodeJob("stdio", "import os\nprint(len(os.listdir('.')) >= 0, input())", ("a",))
    first = sandbox.run(job)
    monkeypatch.chdir(tmp_path)
    second = sandbox.run(job)
    assert judge_stdout(first, ["True a"]).passed and judge_stdout(second, ["True a"]).passed


def test_temp_dirs_and_cgroups_are_removed(sandbox):
    root = Path(tempfile.gettempdir())
    before = set(root.glob("mlr1-sandbox-*"))
    groups = [p for parent in FEATURES.cgroup_parents.values() for p in parent.glob("mlr1-sandbox-*")]
    deep = "import os\nfor i in range(80):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\n"  # beyond PATH_MAX
    code = deep + "os.chdir('/tmp')\n" + deep + "emit({})"
    outcome = _program(sandbox, code)
    assert outcome.records == ({},)
    assert set(root.glob("mlr1-sandbox-*")) == before
    assert [p for parent in FEATURES.cgroup_parents.values() for p in parent.glob("mlr1-sandbox-*")] == groups


def test_run_many_keeps_job_order_and_survives_a_failing_run(monkeypatch):
    box = Sandbox(ROOMY)
    real = box._run

    def flaky(job):
        if job.data == 3:
            raise OSError("disk full")
        return real(job)

    monkeypatch.setattr(box, "_run", flaky)
    outcomes = box.run_many([CodeJob("program", "emit({'n': job_data})", data=i) for i in range(6)], workers=3)
    assert [o.records for o in outcomes[:3]] == [({"n": 0},), ({"n": 1},), ({"n": 2},)]
    assert outcomes[3].end == "error" and "disk full" in outcomes[3].detail
    assert [o.records for o in outcomes[4:]] == [({"n": 4},), ({"n": 5},)]


def test_bad_jobs_end_as_errors_not_exceptions(sandbox):
    assert "unknown sandbox mode 'shell'" in sandbox.run(CodeJob("shell", "true")).detail
    assert "needs func_name" in sandbox.run(CodeJob("call", "x = 1", ())).detail


def test_a_missing_layer_is_refused_naming_it_and_the_opt_in():
    with pytest.raises(SandboxUnavailable, match="seccomp"):
        require("no_cgroup", dataclasses.replace(FEATURES, seccomp=False))
    without = dataclasses.replace(FEATURES, bwrap=None, cgroup="none")
    with pytest.raises(SandboxUnavailable, match="bubblewrap.*sandbox_isolation=no_cgroup or weak"):
        Sandbox(ROOMY, without)
    with pytest.raises(SandboxUnavailable, match="cgroup"):
        require("strict", dataclasses.replace(FEATURES, cgroup="none"))
    assert require("no_cgroup", dataclasses.replace(FEATURES, cgroup="none"))
    with pytest.raises(ValueError, match="expected one of strict, no_cgroup, weak"):
        require("lenient")
