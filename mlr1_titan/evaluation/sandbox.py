"""Run untrusted model-written code: one fresh process per candidate, limited, offline, cleaned up.

Parent side; the lock-down inside the child is ``sandbox_boot.py``. Per candidate:

- a fresh temp dir (``work/`` is the child's cwd, HOME and TMPDIR; ``ctl/`` holds the job file and
  the captured stdout/stderr, outside the child's reach for writing) removed afterwards;
- a minimal environment (no tokens, proxies or PYTHON* variables) and ``python -I -B``;
- when the machine allows it (root, or unprivileged user namespaces): ``unshare`` into a new
  network namespace (no usable interface: no network at all) and a new PID namespace (every
  descendant dies with the candidate, even ones that ``setsid`` away);
- a wall-clock limit enforced here: the whole process group is SIGKILLed; without namespaces a
  sweep also kills any process still carrying this run's marker in its environment;
- resource limits, privilege drop, Landlock and Python-level guards applied by ``sandbox_boot.py``.

``probe_features()`` reports which layers this machine provides; results.json records it.
Results never depend on the evaluator's working directory: every path here is absolute.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

BOOT_SCRIPT = Path(__file__).with_name("sandbox_boot.py").resolve()
NOBODY_UID = NOBODY_GID = 65534
# Interpreter start-up and imports before the candidate's clock starts (boot script's own timer).
_STARTUP_GRACE_S = 5.0
_MARKER_VAR = "MLR1_SANDBOX_RUN"

Mode = Literal["program", "stdio", "call"]
Status = Literal["passed", "wrong_answer", "runtime_error", "timeout", "sandbox_error"]


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """Limits for one candidate. Defaults suit HumanEval+/MBPP+/LiveCodeBench on a busy node."""

    wall_s: float = 20.0
    """Wall-clock budget for the candidate and all its tests; then its process group is killed."""
    test_timeout_s: float = 6.0
    """Per-test limit for test lists (LiveCodeBench); LCB's own harness uses 6 s."""
    cpu_s: float | None = None
    """RLIMIT_CPU per process (SIGXCPU, then SIGKILL one second later); None: same as ``wall_s``."""
    memory_mb: int = 4096
    """RLIMIT_AS per process, in MiB."""
    file_size_mb: int = 64
    """RLIMIT_FSIZE: largest file (including captured stdout/stderr) a process may write, in MiB."""
    max_tasks: int = 64
    """RLIMIT_NPROC headroom: processes+threads the candidate may add (fork-bomb cap)."""
    open_files: int = 256
    """RLIMIT_NOFILE."""
    output_kb: int = 16
    """How much of the candidate's stdout/stderr is kept in the result, in KiB."""

    def as_job(self) -> dict:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s if self.cpu_s is not None else self.wall_s,
            "memory_mb": self.memory_mb,
            "file_size_mb": self.file_size_mb,
            "max_tasks": self.max_tasks,
            "open_files": self.open_files,
        }


@dataclass(frozen=True)
class SandboxFeatures:
    """Which isolation layers this machine provides (see docs/evaluation.md, "Sandbox")."""

    namespaces: Literal["root", "user", "none"]
    """How network+PID namespaces are made: as root, through a user namespace, or not at all."""
    landlock_abi: int
    """Landlock ABI version (0: unavailable). >=1 confines writes, >=4 TCP, >=6 signals."""
    drop_to_uid: int | None
    """UID the candidate runs as when the evaluator is root (None: the evaluator's own)."""
    drop_to_gid: int | None = None

    def describe(self) -> dict:
        return {
            "network_namespace": self.namespaces != "none",
            "pid_namespace": self.namespaces != "none",
            "namespaces_via": self.namespaces,
            "landlock_abi": self.landlock_abi,
            "writes_confined_by_kernel": self.landlock_abi >= 1,
            "tcp_blocked_by_kernel": self.namespaces != "none" or self.landlock_abi >= 4,
            "runs_as_uid": self.drop_to_uid if self.drop_to_uid is not None else os.geteuid(),
            "fork_limit_enforced": self.drop_to_uid is not None or os.geteuid() != 0,
        }


def _landlock_abi() -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(444, None, ctypes.c_size_t(0), 1)  # landlock_create_ruleset(VERSION)
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def _command_works(cmd: list[str]) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child"]


@functools.cache
def probe_features() -> SandboxFeatures:
    """Detect namespaces, Landlock and privilege drop once per process."""
    unshare = shutil.which("unshare")
    root = os.geteuid() == 0
    namespaces: Literal["root", "user", "none"] = "none"
    if unshare and root and _command_works([unshare, *_NS_FLAGS, "true"]):
        namespaces = "root"
    # A root evaluator never uses a user namespace: mapped root stays exempt from RLIMIT_NPROC,
    # and dropping to nobody (below) is worth more.
    elif unshare and not root and _command_works([unshare, "--user", "--map-root-user", *_NS_FLAGS, "true"]):
        namespaces = "user"
    return SandboxFeatures(
        namespaces=namespaces,
        landlock_abi=_landlock_abi(),
        drop_to_uid=NOBODY_UID if root else None,
        drop_to_gid=NOBODY_GID if root else None,
    )


@dataclass(frozen=True)
class CodeJob:
    """One candidate to run. ``program``: source with its tests appended, passes if it runs to the
    end; ``stdio``: a program fed each test's input on stdin; ``call``: ``Solution().func_name``."""

    mode: Mode
    source: str
    tests: tuple[dict, ...] = ()
    """For ``stdio``/``call``: dicts with ``input`` and ``output`` strings."""
    func_name: str | None = None
    wall_s: float | None = None
    """Overrides ``SandboxLimits.wall_s`` for this job (long test lists)."""


@dataclass(frozen=True)
class SandboxResult:
    status: Status
    tests_passed: int
    tests_total: int
    detail: str = ""
    wall_s: float = 0.0
    stdout: str = ""
    stderr: str = ""
    run_id: str = ""
    """Value of MLR1_SANDBOX_RUN in the candidate's environment (lets tests look for leftovers)."""

    @property
    def passed(self) -> bool:
        return self.status == "passed"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass


def _sweep_marked(marker: str) -> int:
    """Kill every process whose environment carries ``marker`` (fallback without a PID namespace)."""
    needle = f"{_MARKER_VAR}={marker}".encode()
    killed = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/environ", "rb") as f:
                if needle in f.read().split(b"\0"):
                    os.kill(int(entry), signal.SIGKILL)
                    killed += 1
        except (OSError, ProcessLookupError):
            continue
    return killed


def _read_report(fd: int) -> dict | None:
    os.set_blocking(fd, False)
    chunks = []
    try:
        while chunk := os.read(fd, 65536):
            chunks.append(chunk)
    except BlockingIOError:
        pass
    finally:
        os.close(fd)
    try:
        return json.loads(b"".join(chunks)) if chunks else None
    except json.JSONDecodeError:
        return None


def _tail(path: Path, limit: int) -> str:
    with open(path, "rb") as f:
        data = f.read(limit + 1)
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... truncated]" if len(data) > limit else "")


def _describe_exit(returncode: int) -> str:
    if returncode < 0 or returncode > 128:
        sig = -returncode if returncode < 0 else returncode - 128
        name = {
            signal.SIGKILL: "SIGKILL (limit reached)",
            signal.SIGXCPU: "SIGXCPU (CPU time limit)",
            signal.SIGXFSZ: "SIGXFSZ (file size limit)",
            signal.SIGSEGV: "SIGSEGV (crash, e.g. stack overflow)",
        }.get(sig, f"signal {sig}")
        return f"process died: {name}"
    return f"process exited with status {returncode} without a report"


class Sandbox:
    """Runs ``CodeJob``s one process each. Thread-safe; ``run_many`` runs them in parallel."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        features: SandboxFeatures | None = None,
        *,
        python_guards: bool = True,
    ):
        self.limits = limits or SandboxLimits()
        self.features = features or probe_features()
        # The socket patch + audit hook layer; tests switch it off to prove the kernel layers alone.
        self.python_guards = python_guards

    def _command(self, job_path: Path) -> list[str]:
        prefix: list[str] = []
        if self.features.namespaces == "root":
            prefix = [shutil.which("unshare") or "unshare", *_NS_FLAGS]
        elif self.features.namespaces == "user":
            prefix = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *_NS_FLAGS]
        return [*prefix, sys.executable, "-I", "-B", str(BOOT_SCRIPT), str(job_path)]

    def run(self, job: CodeJob) -> SandboxResult:
        if job.mode not in ("program", "stdio", "call"):
            raise ValueError(f"unknown sandbox mode {job.mode!r}; expected program, stdio or call")
        if job.mode == "call" and not job.func_name:
            raise ValueError("a 'call' job needs func_name (the Solution method to call)")
        limits, features = self.limits, self.features
        if job.wall_s is not None:
            limits = dataclasses.replace(limits, wall_s=job.wall_s)
        base = Path(tempfile.mkdtemp(prefix="mlr1-sandbox-"))
        try:
            work, ctl = base / "work", base / "ctl"
            work.mkdir()
            ctl.mkdir(mode=0o700)
            if features.drop_to_uid is not None:
                os.chmod(base, 0o711)
                os.chown(work, features.drop_to_uid, features.drop_to_gid)
            job_path = ctl / "job.json"
            report_r, report_w = os.pipe()  # the child's verdict; both ends closed below on every path
            try:
                job_path.write_text(
                    json.dumps(
                        {
                            "mode": job.mode,
                            "source": job.source,
                            "tests": list(job.tests),
                            "func_name": job.func_name,
                            "test_timeout_s": limits.test_timeout_s,
                            "limits": limits.as_job(),
                            "workdir": str(work),
                            "report_fd": report_w,
                            "drop_to_uid": features.drop_to_uid,
                            "drop_to_gid": features.drop_to_gid,
                            "landlock_abi": features.landlock_abi,
                            "python_guards": self.python_guards,
                        }
                    ),
                    encoding="utf-8",
                )
                marker = uuid.uuid4().hex
                env = {  # nothing from the evaluator's environment (tokens, proxies, PYTHON*)
                    "PATH": "/usr/local/bin:/usr/bin:/bin",
                    "HOME": str(work),
                    "TMPDIR": str(work),
                    "LANG": "C.UTF-8",
                    "PYTHONHASHSEED": "0",
                    "OMP_NUM_THREADS": "1",
                    "OPENBLAS_NUM_THREADS": "1",
                    "MKL_NUM_THREADS": "1",
                    _MARKER_VAR: marker,
                }
                started = time.monotonic()
                with open(ctl / "stdout", "wb") as out, open(ctl / "stderr", "wb") as err:
                    proc = subprocess.Popen(
                        self._command(job_path),
                        cwd=work,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        pass_fds=(report_w,),
                        start_new_session=True,
                    )
            except BaseException:
                os.close(report_r)
                raise
            finally:
                os.close(report_w)
            timed_out = False
            try:
                proc.wait(timeout=limits.wall_s + _STARTUP_GRACE_S)
            except subprocess.TimeoutExpired:
                timed_out = True
            _kill_group(proc.pid)  # stragglers left in the group after a normal exit, too
            proc.wait()
            if features.namespaces == "none":
                for _ in range(3):
                    if not _sweep_marked(marker):
                        break
            wall = time.monotonic() - started
            report = _read_report(report_r)
            keep = limits.output_kb * 1024
            stdout, stderr = _tail(ctl / "stdout", keep), _tail(ctl / "stderr", keep)
        finally:
            shutil.rmtree(base, ignore_errors=True)
        total = len(job.tests) if job.mode != "program" else 1
        common = {"wall_s": round(wall, 3), "stdout": stdout, "stderr": stderr, "run_id": marker}
        if report is not None:
            return SandboxResult(
                report["status"],
                report["tests_passed"],
                report["tests_total"],
                report.get("detail", ""),
                **common,
            )
        if timed_out:
            return SandboxResult("timeout", 0, total, f"killed after {limits.wall_s:.0f}s wall clock", **common)
        if proc.returncode in (-signal.SIGXCPU, 128 + signal.SIGXCPU):
            # The CPU-time limit is a time limit too: which one fires first depends on machine load.
            return SandboxResult("timeout", 0, total, _describe_exit(proc.returncode), **common)
        detail = _describe_exit(proc.returncode)
        if "Error" in stderr:
            detail += ": " + stderr.strip().splitlines()[-1][-300:]
        return SandboxResult("runtime_error", 0, total, detail, **common)

    def run_many(
        self, jobs: list[CodeJob], *, workers: int | None = None, desc: str | None = None
    ) -> list[SandboxResult]:
        """Run ``jobs`` in parallel (``workers`` processes at a time), with a progress bar on stderr."""
        if not jobs:
            return []
        workers = max(1, workers or os.cpu_count() or 1)
        with (
            ThreadPoolExecutor(max_workers=workers) as pool,
            tqdm(
                total=len(jobs),
                desc=desc or "sandbox",
                unit="candidate",
                disable=len(jobs) < 2,
                file=sys.stderr,
            ) as bar,
        ):
            futures = [pool.submit(self.run, job) for job in jobs]
            results = []
            for future in futures:
                results.append(future.result())
                bar.update(1)
        return results
