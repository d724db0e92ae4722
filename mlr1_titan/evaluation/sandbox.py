"""Run untrusted model-written code: one fresh, isolated process per job, limited, offline, cleaned up.

Parent side; the lock-down inside the child is ``sandbox_boot.py``. A job carries a source and its
*inputs* only; the child writes what it produced (return values, stdout) as JSON lines to a
channel file, and ``Sandbox.run`` returns that raw data with how the process ended
(``RunOutcome``). Verdicts are decided elsewhere, from that data (``verdicts.py``).

Isolation levels (``Sandbox(isolation=...)``; ``require`` refuses a level this machine lacks):

- ``strict`` (default): bubblewrap with private mount, PID, network, IPC and UTS namespaces - the
  child sees only the interpreter's directories (read-only), /usr, a minimal /dev and /proc, and
  fresh size-limited tmpfs work and /tmp dirs; no host socket, SysV IPC object or process is
  reachable - under a seccomp filter (``sandbox_seccomp.py``), plus a per-candidate cgroup capping
  memory, processes and CPU of all its processes together (``sandbox_cgroup.py``);
- ``no_cgroup``: the same without the cgroup (per-process rlimits only);
- ``weak``: no bubblewrap: network and PID namespaces through ``unshare`` where possible, Landlock
  and the Python guards; everything the evaluator can read is readable.

In every level: a minimal environment, ``python -I -B``, resource limits, a drop to ``nobody``
for a root evaluator, wall-clock and per-input limits enforced here (``_Monitor``), and clean-up
that cannot raise.
"""

from __future__ import annotations

import ctypes
import dataclasses
import functools
import json
import logging
import os
import select
import shlex
import shutil
import signal
import site
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from tqdm import tqdm

from .sandbox_cgroup import CgroupKind, RunCgroup, probe_cgroups
from .sandbox_seccomp import filter_program

log = logging.getLogger(__name__)

BOOT_SCRIPT = Path(__file__).with_name("sandbox_boot.py").resolve()
CODEC_MODULE = Path(__file__).with_name("value_codec.py").resolve()
PACKAGE_DIR = Path(__file__).resolve().parents[1]
NOBODY_UID = NOBODY_GID = 65534
# Added to the wall limit: interpreter start-up, imports and lock-down before the job runs.
_STARTUP_GRACE_S = 5.0
_MARKER_VAR = "MLR1_SANDBOX_RUN"
_JOIN_FAILED = 97  # exit status of the launcher shell when it cannot join the run's cgroup
# Paths inside the bubblewrap root.
_BOX = "/sandbox"
_BOX_WORK = f"{_BOX}/work"

READY = {"ready": True}
"""First channel line, written by the child's boot script after the lock-down and before any job
code runs (so no candidate can write it early); ``read_channel`` strips it."""


_READY_LINE = json.dumps(READY, separators=(",", ":")).encode()

Mode = Literal["program", "call", "stdio"]
Isolation = Literal["strict", "no_cgroup", "weak"]
ISOLATION_LEVELS: tuple[Isolation, ...] = ("strict", "no_cgroup", "weak")
End = Literal["exit", "signal", "timeout", "memory", "error"]


@dataclass(frozen=True, kw_only=True)
class SandboxLimits:
    """Limits for one job. Defaults suit HumanEval+/MBPP+/LiveCodeBench on a busy node."""

    wall_s: float = 20.0
    """Wall-clock budget for the job and all its inputs; then every process of it is killed."""
    test_timeout_s: float = 6.0
    """Per-input limit for LiveCodeBench (its own harness uses 6 s)."""
    cpu_s: float | None = None
    """RLIMIT_CPU per process (SIGXCPU, then SIGKILL one second later); None: same as ``wall_s``."""
    memory_mb: int = 4096
    """Memory of all the job's processes together (cgroup), and RLIMIT_AS per process, in MiB."""
    file_size_mb: int = 64
    """RLIMIT_FSIZE: largest file (including captured stdout/stderr) a process may write, in MiB."""
    scratch_mb: int = 256
    """Size of each private tmpfs (the work dir and /tmp) under bubblewrap, in MiB."""
    max_tasks: int = 64
    """Processes+threads the job may add (cgroup ``pids.max``, and RLIMIT_NPROC headroom)."""
    cpus: float = 1.0
    """CPUs the job's processes may use together (cgroup CPU quota; keeps neighbours fair)."""
    open_files: int = 256
    """RLIMIT_NOFILE."""
    output_kb: int = 16
    """How much of the job's stdout/stderr is kept in the outcome, in KiB."""
    channel_mb: int = 64
    """Largest channel (all the job's results) accepted, in MiB; a larger one is a sandbox error
    (the child cannot write more anyway: ``file_size_mb`` caps the channel file too)."""
    stdout_mb: int = 4
    """Largest stdout kept per stdio input, in MiB (more is a wrong answer)."""

    def as_job(self) -> dict:
        return {
            "wall_s": self.wall_s,
            "cpu_s": self.cpu_s if self.cpu_s is not None else self.wall_s,
            "memory_mb": self.memory_mb,
            "file_size_mb": self.file_size_mb,
            "open_files": self.open_files,
        }


@dataclass(frozen=True)
class SandboxFeatures:
    """Which isolation layers this machine provides (see docs/evaluation.md, "Sandbox")."""

    bwrap: str | None
    """bubblewrap binary that runs the probe command here (None: unusable or absent)."""
    seccomp: bool
    """Whether bubblewrap runs jobs under our syscall filter here (``sandbox_seccomp.py``)."""
    cgroup: CgroupKind
    """Where per-candidate cgroups can be made (``v2``, ``v1`` or ``none``)."""
    namespaces: Literal["root", "user", "none"]
    """``weak`` level: how ``unshare`` makes network+PID namespaces (as root, via a user ns, not)."""
    landlock_abi: int
    """Landlock ABI version (0: unavailable). >=1 confines writes, >=4 TCP, >=6 signals."""
    drop_to_uid: int | None
    """UID the job runs as when the evaluator is root (None: the evaluator's own)."""
    drop_to_gid: int | None = None
    cgroup_parents: dict[str, Path] = dataclasses.field(default_factory=dict)
    """Parent dir of the per-run groups, per controller (``memory``, ``pids``, ``cpu``, ``cpuacct``)."""

    def missing_for(self, isolation: Isolation) -> list[str]:
        """Layers ``isolation`` needs that this machine lacks (empty: it can run)."""
        missing = []
        if isolation in ("strict", "no_cgroup") and self.bwrap is None:
            missing.append("bubblewrap (apt-get install bubblewrap; it needs root or unprivileged user namespaces)")
        if isolation in ("strict", "no_cgroup") and not self.seccomp:
            missing.append("a seccomp filter (the system's libseccomp, Debian package libseccomp2, and pyseccomp)")
        if isolation == "strict" and self.cgroup == "none":
            missing.append(
                "a writable cgroup with the memory and pids controllers (v2 delegated to this process, or v1 as root)"
            )
        if isolation == "weak" and self.namespaces == "none" and self.landlock_abi < 1:
            missing.append("any kernel layer (namespaces or Landlock)")
        return missing

    def describe(self, isolation: Isolation) -> dict:
        bwrapped = isolation != "weak"
        return {
            "isolation": isolation,
            "bubblewrap": bwrapped,
            "seccomp": bwrapped and self.seccomp,
            "mount_namespace": bwrapped,
            "ipc_namespace": bwrapped,
            "network_namespace": bwrapped or self.namespaces != "none",
            "pid_namespace": bwrapped or self.namespaces != "none",
            "cgroup": self.cgroup if isolation == "strict" else "none",
            "cgroup_controllers": sorted(self.cgroup_parents) if isolation == "strict" else [],
            "landlock_abi": self.landlock_abi,
            "runs_as_uid": self.drop_to_uid if self.drop_to_uid is not None else os.geteuid(),
        }


class SandboxUnavailable(RuntimeError):
    """The requested isolation level needs a layer this machine lacks."""


def _landlock_abi() -> int:
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        abi = libc.syscall(444, None, ctypes.c_size_t(0), 1)  # landlock_create_ruleset(VERSION)
    except (OSError, AttributeError):
        return 0
    return max(int(abi), 0)


def _command_works(cmd: list[str], pass_fds: tuple[int, ...] = ()) -> bool:
    try:
        return subprocess.run(cmd, capture_output=True, timeout=30, pass_fds=pass_fds).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        return False


_NS_FLAGS = ["--net", "--pid", "--fork", "--kill-child"]


def _read_only_roots() -> list[str]:
    """Directories the interpreter needs: its prefixes and site-packages, and /usr."""
    paths = {"/usr", sys.prefix, sys.base_prefix, sys.exec_prefix, sys.base_exec_prefix}
    paths.add(str(Path(sys.executable).resolve().parent.parent))
    paths.update(p for p in site.getsitepackages() if os.path.isdir(p))
    roots: list[str] = []
    for path in sorted(os.path.realpath(p) for p in paths):
        if not any(path == r or path.startswith(r + os.sep) for r in roots):
            roots.append(path)
    return roots


def _bwrap_prefix(bwrap: str, job_path: Path, scratch_mb: int, root: bool, seccomp_fd: int | None) -> list[str]:
    args = [bwrap, "--die-with-parent", "--new-session", "--unshare-ipc", "--unshare-pid", "--unshare-net"]
    if seccomp_fd is not None:
        args += ["--seccomp", str(seccomp_fd)]
    args += ["--unshare-uts", "--unshare-cgroup-try", "--hostname", "sandbox"]
    made = {"/"}

    def parents(path: str) -> None:
        for parent in reversed(Path(path).parents):
            if str(parent) not in made:
                args.extend(["--perms", "0755", "--dir", str(parent)])
                made.add(str(parent))

    # The scratch mounts first: an interpreter under /tmp (a CI clone's venv) is bound on top of them.
    size = str(scratch_mb * 2**20)
    args += ["--dev", "/dev", "--proc", "/proc", "--perms", "1777", "--size", size, "--tmpfs", "/tmp"]
    args += ["--perms", "1777", "--size", size, "--tmpfs", "/dev/shm"]  # POSIX semaphores (multiprocessing)
    made.update({"/dev", "/proc", "/tmp"})
    for top in ("bin", "lib", "lib32", "lib64", "sbin"):
        host = Path("/") / top
        if host.is_symlink():
            args.extend(["--symlink", os.readlink(host), str(host)])
        elif host.is_dir():
            args.extend(["--ro-bind", str(host), str(host)])
    for path in _read_only_roots():
        parents(path)
        args.extend(["--ro-bind", path, path])
        made.add(path)
    for etc in ("/etc/ld.so.cache", "/etc/localtime"):
        args.extend(["--ro-bind-try", etc, etc])
    own = str(PACKAGE_DIR)
    if any(own.startswith(r + os.sep) for r in _read_only_roots()):
        args.extend(["--tmpfs", own])  # our own package (and its fixtures) stays out of view
    args += ["--perms", "0755", "--dir", _BOX]
    args += ["--ro-bind", str(BOOT_SCRIPT), f"{_BOX}/boot.py", "--ro-bind", str(CODEC_MODULE), f"{_BOX}/value_codec.py"]
    args += ["--ro-bind", str(job_path), f"{_BOX}/job.json"]
    args += ["--perms", "1777", "--size", size, "--tmpfs", _BOX_WORK, "--chdir", _BOX_WORK]
    if root:  # to drop to nobody inside; bubblewrap drops every other capability of root
        args += ["--cap-add", "CAP_SETUID", "--cap-add", "CAP_SETGID"]
    return [*args, "--"]


@functools.cache
def probe_features() -> SandboxFeatures:
    """Detect bubblewrap, cgroups, namespaces, Landlock and privilege drop once per process."""
    root = os.geteuid() == 0
    bwrap = shutil.which("bwrap")
    program = filter_program()
    if bwrap:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as probe:
            cmd = [*_bwrap_prefix(bwrap, Path(probe.name), 1, root, None), sys.executable, "-I", "-c", "pass"]
            if not _command_works(cmd):
                bwrap = None
    if bwrap and program is not None:
        with tempfile.NamedTemporaryFile("w", suffix=".json") as probe, tempfile.TemporaryFile() as bpf:
            bpf.write(program)
            bpf.seek(0)
            prefix = _bwrap_prefix(bwrap, Path(probe.name), 1, root, bpf.fileno())
            if not _command_works([*prefix, sys.executable, "-I", "-c", "pass"], (bpf.fileno(),)):
                program = None
    unshare = shutil.which("unshare")
    namespaces: Literal["root", "user", "none"] = "none"
    if unshare and root and _command_works([unshare, *_NS_FLAGS, "true"]):
        namespaces = "root"
    # A root evaluator never uses a user namespace: mapped root stays exempt from RLIMIT_NPROC,
    # and dropping to nobody (below) is worth more.
    elif unshare and not root and _command_works([unshare, "--user", "--map-root-user", *_NS_FLAGS, "true"]):
        namespaces = "user"
    cgroup, parents = probe_cgroups()
    return SandboxFeatures(
        bwrap=bwrap,
        seccomp=program is not None,
        cgroup=cgroup,
        namespaces=namespaces,
        landlock_abi=_landlock_abi(),
        drop_to_uid=NOBODY_UID if root else None,
        drop_to_gid=NOBODY_GID if root else None,
        cgroup_parents=parents,
    )


def require(isolation: Isolation, features: SandboxFeatures | None = None) -> SandboxFeatures:
    """``features`` (probed by default) if they provide ``isolation``; else ``SandboxUnavailable``
    naming what is missing and the weaker levels one may opt into."""
    if isolation not in ISOLATION_LEVELS:
        raise ValueError(f"sandbox isolation {isolation!r}: expected one of {', '.join(ISOLATION_LEVELS)}")
    features = features or probe_features()
    missing = features.missing_for(isolation)
    if missing:
        weaker = [level for level in ISOLATION_LEVELS[ISOLATION_LEVELS.index(isolation) + 1 :]]
        hint = f"; opt into a weaker level explicitly with sandbox_isolation={' or '.join(weaker)}" if weaker else ""
        raise SandboxUnavailable(
            f"the code sandbox cannot provide isolation={isolation!r} on this machine: missing "
            + "; ".join(missing)
            + hint
            + " (docs/evaluation.md, 'Sandbox')"
        )
    return features


@dataclass(frozen=True)
class CodeJob:
    """One run. ``program``: a source run as ``__main__`` (``emit`` and ``job_data`` in its
    globals); ``call``: define the source, then call ``func_name`` (a function, or a ``Solution``
    method with ``call_style="method"``) on each encoded argument list in ``inputs``; ``stdio``: run
    the source once per input string on stdin."""

    mode: Mode
    source: str
    inputs: tuple = ()
    func_name: str | None = None
    call_style: Literal["function", "method"] = "function"
    data: object = None
    """``program`` mode: JSON data the program sees as ``job_data``."""
    wall_s: float | None = None
    """Overrides ``SandboxLimits.wall_s`` for this job (long input lists)."""
    test_timeout_s: float | None = None
    """Per-input limit; None: only the wall-clock limit."""
    channel_bytes: int | None = None
    """Largest channel accepted for this job (at most ``SandboxLimits.channel_mb``); callers size it
    from the expected outputs, so a candidate cannot make the supervisor hold much more."""


@dataclass(frozen=True)
class RunOutcome:
    """What a job produced and how its process ended; no verdict."""

    end: End
    """``exit`` (status in ``code``), ``signal`` (number in ``code``), ``timeout`` (wall or CPU
    limit), ``memory`` (the cgroup's OOM killer) or ``error`` (the sandbox itself failed)."""
    code: int | None
    detail: str
    records: tuple[dict, ...]
    """Channel lines, in order."""
    channel_error: str = ""
    """Non-empty if the channel was malformed or oversized (then ``records`` is empty)."""
    wall_s: float = 0.0
    cpu_s: float | None = None
    """CPU time of all the job's processes: from the cgroup (strict), the rusage of the reaped
    interpreter (weak), or None (no_cgroup: bubblewrap hides it)."""
    stdout: str = ""
    stderr: str = ""
    run_id: str = ""
    """Value of MLR1_SANDBOX_RUN in the job's environment (lets tests look for leftovers)."""


def signal_name(number: int) -> str:
    try:
        return signal.Signals(number).name
    except ValueError:
        return f"signal {number}"


def _kill_group(pgid: int) -> None:
    try:
        os.killpg(pgid, signal.SIGKILL)
    except OSError:
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
        except OSError:
            continue
    return killed


def _count_tasks_of(uid: int) -> int:
    """Threads+processes owned by ``uid`` on the host (what RLIMIT_NPROC counts)."""
    total = 0
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/status") as f:
                fields = dict(line.split(":", 1) for line in f if ":" in line)
            if int(fields["Uid"].split()[0]) == uid:
                total += int(fields["Threads"].strip())
        except (OSError, KeyError, ValueError):
            continue
    return total


def read_channel(data: bytes, max_records: int | None = None) -> tuple[tuple[dict, ...], str, bool]:
    """Channel lines as dicts, an error ('' if none), and whether the ready line came first. A final
    line without its newline (the process was killed while writing) is dropped; a malformed
    complete line, or more than ``max_records`` lines, is an error (nothing is parsed then)."""
    lines = data.split(b"\n")[:-1]
    ready = bool(lines) and lines[0] == _READY_LINE
    if max_records is not None and len(lines) - ready > max_records:
        return (), f"channel has more than {max_records} records", ready
    records = []
    for n, line in enumerate(lines[1:] if ready else lines):
        try:
            record = json.loads(line)
        except (ValueError, RecursionError):
            return (), f"channel line {n} is not JSON", ready
        if not isinstance(record, dict):
            return (), f"channel line {n} is not an object", ready
        records.append(record)
    return tuple(records), "", ready


def _tail(path: Path, limit: int) -> str:
    try:
        with open(path, "rb") as f:
            data = f.read(limit + 1)
    except OSError:
        return ""
    text = data[:limit].decode("utf-8", errors="replace")
    return text + ("\n[... truncated]" if len(data) > limit else "")


def _process_end(returncode: int) -> tuple[End, int]:
    """(end, code) from the launcher's status: a signal death reads as -N (Popen) or 128+N (bwrap)."""
    if returncode < 0:
        number = -returncode
    elif returncode > 128:
        number = returncode - 128
    else:
        return "exit", returncode
    return ("timeout", number) if number == signal.SIGXCPU else ("signal", number)


class _Monitor:
    """Reads a run's channel (a pipe: the candidate can only append to it, and what is graded is the
    copy read here), and kills the run at the wall-clock limit, when the channel outgrows its cap,
    and - for jobs with a per-input limit - when no new result line arrives within that limit (the
    child's own per-input timer runs in the candidate's process, which could switch it off). Only
    complete lines count, so writing to the channel cannot buy time: every extra line is a result
    it commits to, or a malformed channel. ``fired``: why it killed ('' if it did not)."""

    def __init__(self, pid: int, group, fd: int, limits: SandboxLimits, job: CodeJob, cap: int):
        self.pid, self.group, self.fd, self.cap = pid, group, fd, cap
        self.started = time.monotonic()
        self.wall_deadline = self.started + limits.wall_s + _STARTUP_GRACE_S
        self.per_input_s = job.test_timeout_s
        self.setup_s = job.test_timeout_s if job.mode == "call" else 0.0  # defining the solution
        self.data = bytearray()
        self.overflow = False
        self.eof = False
        self.fired = ""
        self._lines, self._last_line = 0, self.started
        self._lock = threading.Lock()
        self._done = threading.Event()
        os.set_blocking(fd, False)
        self._poll = select.poll()  # not select(): an evaluator may hold more than 1024 fds
        self._poll.register(fd, select.POLLIN | select.POLLHUP)
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()

    def _read(self) -> None:
        while not self.eof:
            try:
                chunk = os.read(self.fd, 1 << 16)
            except BlockingIOError:
                return
            if not chunk:
                self.eof = True
                return
            if not self.overflow and len(self.data) + len(chunk) > self.cap:
                self.overflow = True
                self._kill(f"result channel larger than {self.cap / 2**20:.1f} MiB")
            if not self.overflow:
                self.data += chunk
                if b"\n" in chunk:
                    self._lines += chunk.count(b"\n")
                    self._last_line = time.monotonic()

    def _watch(self) -> None:
        try:
            while not self._done.is_set():
                if not self.eof:
                    self._poll.poll(50)
                    self._read()
                else:
                    self._done.wait(0.05)
                now = time.monotonic()
                if now >= self.wall_deadline:
                    limit = self.wall_deadline - self.started - _STARTUP_GRACE_S
                    return self._kill(f"killed after {limit:g}s wall clock")
                if self.per_input_s is None:
                    continue
                if self._lines == 0:  # start-up and lock-down: no job code has run yet
                    allowed = _STARTUP_GRACE_S
                else:  # after the ready line the first result may also wait for the definition
                    allowed = self.per_input_s + 0.5 + (self.setup_s if self._lines == 1 else 0.0)
                if now - self._last_line > allowed:
                    return self._kill(f"no result within the per-test limit of {self.per_input_s:g}s")
        except Exception as err:  # a monitor that cannot watch must not leave the run unbounded
            log.exception("sandbox monitor failed")
            self._kill(f"sandbox monitor failed: {type(err).__name__}")

    def _kill(self, reason: str) -> None:
        with self._lock:
            if self._done.is_set():
                return
            self.fired = self.fired or reason
            _kill_group(self.pid)
            if self.group is not None:
                self.group.kill_all()

    def stop(self) -> None:
        """Stop watching (call before the process is reaped)."""
        with self._lock:
            self._done.set()
        self._thread.join()

    def drain(self, timeout: float = 2.0) -> bytes:
        """The rest of the channel (the run's processes are dead by now), then the graded copy."""
        deadline = time.monotonic() + timeout
        while not self.eof and time.monotonic() < deadline:
            self._poll.poll(50)
            self._read()
        os.close(self.fd)
        return bytes(self.data)


def _error(detail: str, run_id: str = "", wall: float = 0.0) -> RunOutcome:
    return RunOutcome("error", None, detail[:1000], (), wall_s=round(wall, 3), run_id=run_id)


class Sandbox:
    """Runs ``CodeJob``s one isolated process each. Thread-safe; ``run_many`` runs them in parallel.
    ``run`` never raises for a job's behaviour: a failure of the sandbox itself is ``end="error"``."""

    def __init__(
        self,
        limits: SandboxLimits | None = None,
        features: SandboxFeatures | None = None,
        *,
        isolation: Isolation = "strict",
        python_guards: bool = True,
    ):
        self.limits = limits or SandboxLimits()
        self.isolation = isolation
        self.features = require(isolation, features)
        # The socket patch + audit hook layer; tests switch it off to prove the kernel layers alone.
        self.python_guards = python_guards

    def describe(self) -> dict:
        return self.features.describe(self.isolation)

    def _command(self, job_path: Path, limits: SandboxLimits, seccomp_fd: int | None) -> list[str]:
        python = [sys.executable, "-I", "-B"]
        if self.isolation != "weak":
            root = os.geteuid() == 0
            prefix = _bwrap_prefix(self.features.bwrap, job_path, limits.scratch_mb, root, seccomp_fd)
            return [*prefix, *python, f"{_BOX}/boot.py", f"{_BOX}/job.json"]
        prefix: list[str] = []
        if self.features.namespaces == "root":
            prefix = [shutil.which("unshare") or "unshare", *_NS_FLAGS]
        elif self.features.namespaces == "user":
            prefix = [shutil.which("unshare") or "unshare", "--user", "--map-root-user", *_NS_FLAGS]
        return [*prefix, *python, str(BOOT_SCRIPT), str(job_path)]

    def _job_file(self, job: CodeJob, limits: SandboxLimits, workdir: str, channel_fd: int, use_cgroup: bool) -> dict:
        features = self.features
        weak = self.isolation == "weak"
        uid = features.drop_to_uid if features.drop_to_uid is not None else os.getuid()
        return {
            "mode": job.mode,
            "source": job.source,
            "inputs": list(job.inputs),
            "func_name": job.func_name,
            "call_style": job.call_style,
            "data": job.data,
            "test_timeout_s": job.test_timeout_s,
            "max_output_bytes": limits.stdout_mb * 2**20,
            "limits": limits.as_job(),
            "nproc": None if use_cgroup else _count_tasks_of(uid) + limits.max_tasks,
            "workdir": workdir,
            "writable": [workdir] if weak else [workdir, "/tmp", "/dev/shm"],
            "channel_fd": channel_fd,
            "drop_to_uid": features.drop_to_uid,
            "drop_to_gid": features.drop_to_gid,
            "keep_read_search": weak,
            "landlock_abi": features.landlock_abi,
            "python_guards": self.python_guards,
        }

    def run(self, job: CodeJob) -> RunOutcome:
        try:
            if job.mode not in ("program", "call", "stdio"):
                return _error(f"unknown sandbox mode {job.mode!r}; expected program, call or stdio")
            if job.mode == "call" and not job.func_name:
                return _error("a 'call' job needs func_name (the function or Solution method to call)")
            return self._run(job)
        except Exception as err:  # the sandbox's own failure, never the job's: reported, not raised
            log.exception("sandbox run failed")
            return _error(f"sandbox failure: {type(err).__name__}: {err}")

    def _run(self, job: CodeJob) -> RunOutcome:
        limits = self.limits if job.wall_s is None else dataclasses.replace(self.limits, wall_s=job.wall_s)
        features = self.features
        base = Path(tempfile.mkdtemp(prefix="mlr1-sandbox-"))
        group: RunCgroup | None = None
        marker = uuid.uuid4().hex
        try:
            weak = self.isolation == "weak"
            work = base / "work"
            workdir = str(work) if weak else _BOX_WORK
            if weak:
                work.mkdir()
                if features.drop_to_uid is not None:
                    os.chmod(base, 0o711)
                    os.chown(work, features.drop_to_uid, features.drop_to_gid)
            use_cgroup = self.isolation == "strict"
            if use_cgroup:
                group = RunCgroup.create(
                    features.cgroup,
                    features.cgroup_parents,
                    memory_bytes=limits.memory_mb * 2**20,
                    max_pids=limits.max_tasks + 8,  # + the launcher, bubblewrap's init and the interpreter
                    cpus=limits.cpus,
                )
            env = {  # nothing from the evaluator's environment (tokens, proxies, PYTHON*)
                "PATH": "/usr/local/bin:/usr/bin:/bin",
                "HOME": workdir,
                "TMPDIR": workdir,
                "LANG": "C.UTF-8",
                "OMP_NUM_THREADS": "1",
                "OPENBLAS_NUM_THREADS": "1",
                "MKL_NUM_THREADS": "1",
                _MARKER_VAR: marker,
            }
            job_path, bpf_path = base / "job.json", base / "seccomp.bpf"
            bpf_path.write_bytes(filter_program() or b"")
            channel_r, channel_w = os.pipe()
            monitor: _Monitor | None = None
            try:
                with (
                    open(base / "stdout", "wb") as out,
                    open(base / "stderr", "wb") as err,
                    open(bpf_path, "rb") as bpf,
                ):
                    spec = self._job_file(job, limits, workdir, channel_w, use_cgroup)
                    job_path.write_text(json.dumps(spec), encoding="utf-8")
                    os.chmod(job_path, 0o644)
                    seccomp_fd = bpf.fileno() if not weak else None
                    command = self._command(job_path, limits, seccomp_fd)
                    if group is not None:
                        joins = " && ".join(f"echo $$ > {shlex.quote(str(p))}" for p in group.procs_files)
                        fail = f"{{ echo 'mlr1 sandbox: cannot join the cgroup' >&2; exit {_JOIN_FAILED}; }}"
                        command = ["/bin/sh", "-c", f'({joins}) 2>/dev/null || {fail}; exec "$@"', "sh", *command]
                    started = time.monotonic()
                    proc = subprocess.Popen(
                        command,
                        cwd=base,
                        env=env,
                        stdin=subprocess.DEVNULL,
                        stdout=out,
                        stderr=err,
                        pass_fds=(channel_w,) if seccomp_fd is None else (channel_w, seccomp_fd),
                        start_new_session=True,
                    )
            except BaseException:
                os.close(channel_r)
                raise
            finally:
                os.close(channel_w)
            cap = limits.channel_mb * 2**20
            try:
                monitor = _Monitor(proc.pid, group, channel_r, limits, job, min(cap, job.channel_bytes or cap))
                # Waited for without reaping it (WNOWAIT) until the monitor has stopped, so the
                # monitor can never signal a reused PID or process group.
                os.waitid(os.P_PID, proc.pid, os.WEXITED | os.WNOWAIT)
            finally:
                if monitor is not None:
                    monitor.stop()
                _kill_group(proc.pid)  # stragglers left in the group after a normal exit, too
                if group is not None:
                    group.kill_all()
                _, status, usage = os.wait4(proc.pid, 0)
                if monitor is None:
                    os.close(channel_r)
            proc.returncode = os.waitstatus_to_exitcode(status)
            if group is not None:
                cpu = group.cpu_seconds()
            else:  # unshare (weak) reaps the interpreter, so its rusage counts; bubblewrap hides it
                cpu = usage.ru_utime + usage.ru_stime if weak else None
            if weak and features.namespaces == "none":
                for _ in range(3):
                    if not _sweep_marked(marker):
                        break
            data = monitor.drain()
            wall = time.monotonic() - started
            oom = group is not None and group.oom_killed()
            keep = limits.output_kb * 1024
            stdout, stderr = _tail(base / "stdout", keep), _tail(base / "stderr", keep)
            if monitor.overflow:
                records, channel_error, ready = (), monitor.fired, True
            else:
                # One record per input (and one for a failed definition): more is malformed.
                most = None if job.mode == "program" else len(job.inputs) + 1
                records, channel_error, ready = read_channel(data, most)
                del data
        finally:
            if group is not None:
                group.kill_all()
                group.remove()
            shutil.rmtree(base, ignore_errors=True)
        common = {
            "wall_s": round(wall, 3),
            "cpu_s": None if cpu is None else round(cpu, 3),
            "stdout": stdout,
            "stderr": stderr,
            "run_id": marker,
        }
        outcome = functools.partial(RunOutcome, records=records, channel_error=channel_error, **common)
        if not ready:  # bubblewrap, the cgroup join or the lock-down failed: no job code ran
            if group is not None and proc.returncode == _JOIN_FAILED and "cannot join the cgroup" in stderr:
                return _error("the launcher could not join the run's cgroup", marker, wall)
            tail = stderr.strip().splitlines()[-1:] or [f"status {proc.returncode}"]
            return _error(f"the sandbox did not start the job: {tail[0][-300:]}", marker, wall)
        if monitor.overflow:
            return outcome("exit", None, monitor.fired)
        if oom:  # first: an OOM kill explains a stall or a death that follows it
            return outcome("memory", None, f"memory limit of {limits.memory_mb} MiB reached (killed by the cgroup)")
        if monitor.fired:
            return outcome("timeout", None, monitor.fired)
        end, code = _process_end(proc.returncode)
        cpu_limit = limits.cpu_s if limits.cpu_s is not None else limits.wall_s
        # RLIMIT_CPU kills with SIGXCPU, or with SIGKILL a second later if SIGXCPU is caught; unshare
        # (weak level) reports a signal death as status 1.
        cpu_kill = (end == "signal" and code == signal.SIGKILL) or (weak and (end, code) != ("exit", 0))
        if cpu_kill and cpu is not None and cpu >= cpu_limit - 0.05:
            return outcome("timeout", code, f"CPU time limit of {cpu_limit:g}s reached")
        if end == "exit":
            return outcome("exit", code, f"exited with status {code}")
        if end == "timeout":
            return outcome("timeout", code, f"CPU time limit ({signal_name(code)})")
        return outcome("signal", code, f"killed by {signal_name(code)}")

    def run_many(self, jobs: list[CodeJob], *, workers: int | None = None, desc: str | None = None) -> list[RunOutcome]:
        """Run ``jobs`` in parallel (``workers`` processes at a time), with a progress bar on stderr.
        Every job gets an outcome, in order; nothing raises."""
        if not jobs:
            return []
        workers = max(1, workers or os.cpu_count() or 1)
        pool = ThreadPoolExecutor(max_workers=workers)
        results = []
        try:
            with tqdm(
                total=len(jobs), desc=desc or "sandbox", unit="job", disable=len(jobs) < 2, file=sys.stderr
            ) as bar:
                futures = [pool.submit(self.run, job) for job in jobs]
                for future in futures:
                    try:
                        results.append(future.result())
                    except Exception as err:  # run() catches these itself; this is the last line of defence
                        results.append(_error(f"sandbox failure: {type(err).__name__}: {err}"))
                    bar.update(1)
        except BaseException:  # Ctrl-C: start nothing more (running jobs end at their limits)
            pool.shutdown(wait=False, cancel_futures=True)
            raise
        pool.shutdown()
        return results
