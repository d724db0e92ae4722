"""Child side of the code sandbox: lock the process down, then run the candidate on its inputs.

Started by ``sandbox.py`` as ``python -I -B sandbox_boot.py JOB.json``, inside bubblewrap (private
mount, PID, network, IPC and UTS namespaces) and a cgroup when the machine allows it. Imports only
the standard library and ``value_codec`` (its neighbour file). In order, it:

1. reads the job (source, inputs, limits) and deletes the job file where it can;
2. sets resource limits (CPU, address space, file size, open files, no core dumps, process count);
3. drops root to ``nobody`` (without bubblewrap it keeps CAP_DAC_READ_SEARCH, so the interpreter
   stays readable where it lives under /root) - this is what makes RLIMIT_NPROC bind for root;
4. sets no_new_privs and applies a Landlock ruleset: writes only under the writable dirs (and
   /dev/null and the captured stdout/stderr), no TCP, no signals or abstract unix sockets outside
   the sandbox (each as far as the kernel's Landlock ABI goes);
5. installs Python guards: ``socket`` creation raises, and an audit hook refuses file writes outside
   the writable dirs, process spawning, ctypes library loading and signals to others;
6. runs the job and writes what it produced - per input, the encoded return value, the captured
   stdout, or how it failed - as JSON lines to the channel descriptor the parent gave it.

The job holds inputs only: expected outputs and every comparison stay in the supervisor
(``verdicts.py``), so nothing this process does can turn a wrong output into a pass.
Layers 3-4 are kernel-enforced; layer 5 is bypassable by determined native code and is there for
the common cases and for machines without Landlock. docs/evaluation.md lists the guarantees.
"""

import base64
import builtins
import ctypes
import io
import json
import math
import os
import resource
import signal
import socket
import stat
import sys
import traceback

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import value_codec  # noqa: E402  (the neighbour file; the sandbox sees no package)

_MAX_DETAIL = 1000
_INT_DIGITS = 50_000  # int <-> str digit limit; evalplus's and LiveCodeBench's harnesses raise it alike

# --- Linux constants ----------------------------------------------------------------------------
PR_SET_PDEATHSIG = 1
PR_SET_KEEPCAPS = 8
PR_SET_NO_NEW_PRIVS = 38
CAP_DAC_READ_SEARCH = 2
_LINUX_CAPABILITY_VERSION_3 = 0x20080522
SYS_LANDLOCK_CREATE_RULESET = 444  # same number on x86_64 and aarch64
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_CREATE_RULESET_VERSION = 1
LANDLOCK_RULE_PATH_BENEATH = 1
# Filesystem rights we *handle* (deny unless a rule allows): every way of modifying the tree.
_FS_WRITE_FILE = 1 << 1
_FS_REMOVE_DIR, _FS_REMOVE_FILE = 1 << 4, 1 << 5
_FS_MAKE = (1 << 6) | (1 << 7) | (1 << 8) | (1 << 9) | (1 << 10) | (1 << 11) | (1 << 12)
_FS_REFER = 1 << 13  # ABI 2
_FS_TRUNCATE = 1 << 14  # ABI 3
_NET_BIND_TCP, _NET_CONNECT_TCP = 1 << 0, 1 << 1  # ABI 4
_SCOPE_ABSTRACT_UNIX, _SCOPE_SIGNAL = 1 << 0, 1 << 1  # ABI 6

_libc = ctypes.CDLL(None, use_errno=True)


class _TestTimeout(BaseException):
    """Raised by SIGALRM when one test exceeds its time limit (BaseException: harder to swallow)."""


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneathAttr(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


class _CapHeader(ctypes.Structure):
    _fields_ = [("version", ctypes.c_uint32), ("pid", ctypes.c_int)]


class _CapData(ctypes.Structure):
    _fields_ = [
        ("effective", ctypes.c_uint32),
        ("permitted", ctypes.c_uint32),
        ("inheritable", ctypes.c_uint32),
    ]


def _check(ret: int, what: str) -> int:
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")
    return ret


# --- lock-down steps ------------------------------------------------------------------------------
def _set_limits(job: dict) -> None:
    lim = job["limits"]
    cpu = int(math.ceil(lim["cpu_s"]))
    resource.setrlimit(resource.RLIMIT_CPU, (cpu, cpu + 1))
    mem = int(lim["memory_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_AS, (mem, mem))
    fsize = int(lim["file_size_mb"]) * 2**20
    resource.setrlimit(resource.RLIMIT_FSIZE, (fsize, fsize))
    resource.setrlimit(resource.RLIMIT_NOFILE, (lim["open_files"], lim["open_files"]))
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    if job["nproc"] is not None:  # without a cgroup: the host's task count of the UID plus headroom
        resource.setrlimit(resource.RLIMIT_NPROC, (job["nproc"], job["nproc"]))


def _drop_root(uid: int, gid: int, keep_read_search: bool) -> None:
    """Become ``uid``/``gid``; with ``keep_read_search`` keep only CAP_DAC_READ_SEARCH (read any file,
    write none of root's), else no capability at all."""
    if keep_read_search:
        _check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(KEEPCAPS)")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    if keep_read_search:
        header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
        data = (_CapData * 2)()
        data[0].effective = data[0].permitted = 1 << CAP_DAC_READ_SEARCH
        _check(_libc.capset(ctypes.byref(header), data), "capset")
        _check(_libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(KEEPCAPS=0)")


def _landlock(abi: int, writable: list[str]) -> None:
    fs = _FS_WRITE_FILE | _FS_REMOVE_DIR | _FS_REMOVE_FILE | _FS_MAKE
    if abi >= 2:
        fs |= _FS_REFER
    if abi >= 3:
        fs |= _FS_TRUNCATE
    net = (_NET_BIND_TCP | _NET_CONNECT_TCP) if abi >= 4 else 0
    scoped = (_SCOPE_ABSTRACT_UNIX | _SCOPE_SIGNAL) if abi >= 6 else 0
    attr = _RulesetAttr(fs, net, scoped)
    size = 8 if abi < 4 else 16 if abi < 6 else 24
    ruleset = _check(
        _libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.c_size_t(size), 0),
        "landlock_create_ruleset",
    )
    file_rights = _FS_WRITE_FILE | (_FS_TRUNCATE if abi >= 3 else 0)
    rules = [(os.open(path, os.O_PATH | os.O_DIRECTORY), fs) for path in writable]
    rules.append((os.open("/dev/null", os.O_PATH), file_rights))
    for fd in (1, 2):  # the captured stdout/stderr files, in case code reopens /dev/stdout
        if stat.S_ISREG(os.fstat(fd).st_mode):
            rules.append((os.open(f"/proc/self/fd/{fd}", os.O_PATH), file_rights))
    for fd, allowed in rules:
        rule = _PathBeneathAttr(allowed, fd)
        _check(
            _libc.syscall(SYS_LANDLOCK_ADD_RULE, ruleset, LANDLOCK_RULE_PATH_BENEATH, ctypes.byref(rule), 0),
            "landlock_add_rule",
        )
        os.close(fd)
    _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, ruleset, 0), "landlock_restrict_self")
    os.close(ruleset)


def _block_sockets() -> None:
    def refuse(*args, **kwargs):
        raise PermissionError("network access is disabled in the evaluation sandbox")

    class _NoSocket(socket.socket):
        def __init__(self, *args, **kwargs):
            refuse()

    socket.socket = _NoSocket
    for name in ("create_connection", "create_server", "socketpair", "fromfd", "getaddrinfo"):
        setattr(socket, name, refuse)


_WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_TRUNC | os.O_APPEND
_PATH_EVENTS = {  # audit event -> indices of path arguments that are modified
    "os.remove": (0,),
    "os.rmdir": (0,),
    "os.mkdir": (0,),
    "os.rename": (0, 1),
    "os.link": (0, 1),
    "os.symlink": (1,),
    "os.chmod": (0,),
    "os.chown": (0,),
    "os.truncate": (0,),
    "os.utime": (0,),
    "shutil.rmtree": (0,),
    "shutil.copyfile": (1,),
    "shutil.copytree": (1,),
    "shutil.move": (1,),
}
_SPAWN_EVENTS = {"os.system", "os.exec", "os.posix_spawn", "os.spawn", "subprocess.Popen", "pty.spawn"}


def _install_audit_hook(writable: list[str]) -> None:
    roots = [os.path.realpath(path) for path in writable]
    allowed_files = {"/dev/null"}
    own_pid = os.getpid

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real in allowed_files or any(real == r or real.startswith(r + os.sep) for r in roots)

    def hook(event, args):
        if event == "open":
            path, mode, flags = args
            writing = (mode is not None and any(c in mode for c in "wax+")) or (
                mode is None and isinstance(flags, int) and flags & _WRITE_FLAGS
            )
            if writing and not inside(path):
                raise PermissionError(f"sandbox: writing {path!r} outside the work dir is not allowed")
        elif event in _PATH_EVENTS:
            for i in _PATH_EVENTS[event]:
                if i < len(args) and not inside(args[i]):
                    raise PermissionError(f"sandbox: {event} on {args[i]!r} outside the work dir")
        elif event in _SPAWN_EVENTS:
            raise PermissionError(f"sandbox: {event} (starting programs) is not allowed")
        elif event == "socket.__new__":
            raise PermissionError("network access is disabled in the evaluation sandbox")
        elif event == "ctypes.dlopen":
            raise PermissionError("sandbox: loading native libraries through ctypes is not allowed")
        elif event in ("os.kill", "os.killpg") and args and args[0] not in (0, own_pid()):
            raise PermissionError("sandbox: signalling other processes is not allowed")

    sys.addaudithook(hook)


# --- running the job ------------------------------------------------------------------------------
class _Channel:
    """JSON lines to the parent's channel descriptor (a regular file the parent reads afterwards)."""

    def __init__(self, fd: int):
        self.fd = fd

    def emit(self, record: dict) -> None:
        text = json.dumps(record, separators=(",", ":"), ensure_ascii=False)
        data = (text + "\n").encode("utf-8", "backslashreplace")  # lone surrogates stay JSON escapes
        while data:
            data = data[os.write(self.fd, data) :]


def _on_alarm(signum, frame):
    raise _TestTimeout()


def _exception_summary(err: BaseException) -> str:
    lines = traceback.format_exception_only(type(err), err)
    return "".join(lines).strip()[-_MAX_DETAIL:]


def _failure(err: BaseException) -> dict:
    """How one input failed: ``timeout``, ``memory`` or ``error`` with the exception's summary."""
    if isinstance(err, _TestTimeout):
        return {"timeout": "time limit exceeded"}
    if isinstance(err, MemoryError):
        return {"memory": _exception_summary(err)}
    if isinstance(err, SystemExit):
        return {"error": f"exited (code {err.code!r})"}
    return {"error": _exception_summary(err)}


def _flush_stdout() -> None:
    try:
        sys.stdout.flush()
    except (OSError, ValueError):  # the candidate closed or broke its stdout
        pass


def _move_fd(fd: int, target: int) -> None:
    """Make ``target`` refer to ``fd``'s file. ``fd`` may already be ``target``: code like
    ``open(0).read()`` closes fd 0, and the next open then reuses that number."""
    if fd != target:
        os.dup2(fd, target)
        os.close(fd)


def _fresh_stdio(stdin_path: str | None, stdout_path: str) -> None:
    """Point fds 0/1 (and sys.stdin/sys.stdout) at this test's input and output files."""
    _flush_stdout()
    if stdin_path is not None:
        _move_fd(os.open(stdin_path, os.O_RDONLY), 0)
        sys.stdin = io.TextIOWrapper(io.FileIO(0, "r", closefd=False), encoding="utf-8")
    _move_fd(os.open(stdout_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600), 1)
    sys.stdout = io.TextIOWrapper(io.FileIO(1, "w", closefd=False), encoding="utf-8", line_buffering=False)


def _run_timed(fn, seconds: float | None):
    if not seconds:
        return fn()
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _safe_encode(value) -> list:
    try:
        return value_codec.encode(value)
    except BaseException as err:  # a hostile object can raise from anywhere, even type lookups
        return ["?", f"value that could not be read ({type(err).__name__})"]


def run_program(job: dict, channel: _Channel) -> int:
    """The source as ``__main__`` with ``emit`` (a channel line) and ``job_data`` in its globals.
    Used for the trusted harness runs (no candidate code) and the sandbox's own tests."""
    namespace = {"__name__": "__main__", "__builtins__": builtins, "emit": channel.emit, "job_data": job.get("data")}
    try:
        exec(compile(job["source"], "<program>", "exec"), namespace)
    except SystemExit as err:
        _flush_stdout()
        return err.code if isinstance(err.code, int) else (0 if err.code is None else 1)
    except BaseException:
        _flush_stdout()
        traceback.print_exc()
        return 1
    _flush_stdout()
    return 0


def _solution_callable(namespace: dict, job: dict):
    name = job["func_name"]
    if job["call_style"] == "method":  # one instance for every test, as LiveCodeBench's harness
        cls = namespace.get("Solution")
        if cls is None or not hasattr(cls, name):
            raise LookupError(f"no Solution.{name} defined")
        return getattr(cls(), name)
    fn = namespace.get(name)
    if not callable(fn):
        raise LookupError(f"no function {name} defined")
    return fn


def run_calls(job: dict, channel: _Channel, workdir: str) -> int:
    """Define the candidate, then call it on each input; emit each return value, encoded, or how
    the call failed (and stop there)."""
    _fresh_stdio(None, os.path.join(workdir, ".stdout"))
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    timeout = job["test_timeout_s"]
    try:
        code = compile(job["source"], "<candidate>", "exec")
        fn = _run_timed(lambda: (exec(code, namespace), _solution_callable(namespace, job))[1], timeout)
    except BaseException as err:
        channel.emit({"setup": _failure(err)})
        return 0
    for i, encoded in enumerate(job["inputs"]):
        args = value_codec.decode(encoded)
        try:
            result = _run_timed(lambda args=args: fn(*args), timeout)
        except BaseException as err:
            channel.emit({"i": i, **_failure(err)})
            return 0
        channel.emit({"i": i, "value": _safe_encode(result)})
    return 0


def run_stdio(job: dict, channel: _Channel, workdir: str) -> int:
    """A stdin/stdout program, run once per input with fresh globals; emit each run's stdout."""
    try:
        code = compile(job["source"], "<candidate>", "exec")
    except SyntaxError as err:
        channel.emit({"setup": {"error": _exception_summary(err)}})
        return 0
    in_path, out_path = os.path.join(workdir, ".stdin"), os.path.join(workdir, ".stdout")
    cap = int(job["max_output_bytes"])
    for i, text in enumerate(job["inputs"]):
        with open(in_path, "w", encoding="utf-8") as f:
            f.write(text)
        _fresh_stdio(in_path, out_path)
        failure = None
        try:
            _run_timed(lambda: exec(code, {"__name__": "__main__", "__builtins__": builtins}), job["test_timeout_s"])
        except SystemExit as err:
            if err.code not in (None, 0):
                failure = {"error": f"exit code {err.code!r}"}
        except BaseException as err:
            failure = _failure(err)
        _flush_stdout()
        if failure:
            channel.emit({"i": i, **failure})
            return 0
        with open(out_path, "rb") as f:
            data = f.read(cap + 1)
        record = {"i": i, "stdout": base64.b64encode(data[:cap]).decode("ascii")}  # raw bytes
        if len(data) > cap:
            record["truncated"] = True
        channel.emit(record)
    return 0


def main(job_path: str) -> None:
    sys.set_int_max_str_digits(_INT_DIGITS)
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    try:
        os.unlink(job_path)
    except OSError:  # bound read-only inside bubblewrap; it holds inputs only
        pass
    channel = _Channel(job["channel_fd"])
    os.set_inheritable(channel.fd, False)
    workdir = job["workdir"]
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(workdir)
    _set_limits(job)
    if job["drop_to_uid"] is not None:
        _drop_root(job["drop_to_uid"], job["drop_to_gid"], job["keep_read_search"])
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    if job["landlock_abi"] > 0:
        _landlock(job["landlock_abi"], job["writable"])
    if job["python_guards"]:
        _block_sockets()
        _install_audit_hook(job["writable"])
    signal.signal(signal.SIGALRM, _on_alarm)
    channel.emit({"ready": True})  # the parent's per-input clock starts here (sandbox.READY)
    mode = job["mode"]
    if mode == "program":
        status = run_program(job, channel)
    else:
        status = (run_calls if mode == "call" else run_stdio)(job, channel, workdir)
        _flush_stdout()
    os._exit(status)  # skip interpreter teardown: candidate atexit handlers and threads do not run


if __name__ == "__main__":
    main(sys.argv[1])
