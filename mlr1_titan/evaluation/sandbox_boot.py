"""Child side of the code sandbox: lock the process down, then run the candidate and its tests.

Started by ``sandbox.py`` as ``python -I -B sandbox_boot.py JOB.json`` (inside fresh network and PID
namespaces when the machine allows it). Imports only the standard library. In order, it:

1. reads the job (candidate, tests, limits) and deletes the job file;
2. sets resource limits (CPU, address space, file size, open files, no core dumps, process count);
3. drops root to ``nobody`` keeping only CAP_DAC_READ_SEARCH (so the interpreter, which may live
   under /root, stays readable) - this is what makes RLIMIT_NPROC bind for a root evaluator;
4. sets no_new_privs and applies a Landlock ruleset: writes only under the work dir (and /dev/null
   and the captured stdout/stderr), no TCP bind/connect, no signals or abstract unix sockets
   outside the sandbox (each as far as the kernel's Landlock ABI goes);
5. installs Python guards: ``socket`` creation raises, and an audit hook refuses file writes outside
   the work dir, process spawning (exec/system/Popen), ctypes library loading and signals to others;
6. runs the job and writes a small JSON report to a private pipe the parent reads.

Layers 3-4 are kernel-enforced; layer 5 is bypassable by determined native code and is there for
the common cases and for machines without Landlock. docs/evaluation.md lists the guarantees.
"""

import builtins
import ctypes
import decimal
import io
import json
import math
import os
import resource
import signal
import socket
import stat
import sys
import time
import traceback

_MAX_DETAIL = 1000

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
def _count_tasks_of(uid: int) -> int:
    """Threads+processes owned by ``uid`` (what RLIMIT_NPROC counts)."""
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
    uid = job["drop_to_uid"] if job["drop_to_uid"] is not None else os.getuid()
    nproc = _count_tasks_of(uid) + int(lim["max_tasks"])
    resource.setrlimit(resource.RLIMIT_NPROC, (nproc, nproc))


def _drop_root(uid: int, gid: int) -> None:
    """Become ``uid``/``gid`` keeping only CAP_DAC_READ_SEARCH (read any file, write none of root's)."""
    _check(_libc.prctl(PR_SET_KEEPCAPS, 1, 0, 0, 0), "prctl(KEEPCAPS)")
    os.setgroups([])
    os.setresgid(gid, gid, gid)
    os.setresuid(uid, uid, uid)
    header = _CapHeader(_LINUX_CAPABILITY_VERSION_3, 0)
    data = (_CapData * 2)()
    data[0].effective = data[0].permitted = 1 << CAP_DAC_READ_SEARCH
    _check(_libc.capset(ctypes.byref(header), data), "capset")
    _check(_libc.prctl(PR_SET_KEEPCAPS, 0, 0, 0, 0), "prctl(KEEPCAPS=0)")


def _landlock(abi: int, workdir: str) -> None:
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
    rules = [(os.open(workdir, os.O_PATH | os.O_DIRECTORY), fs)]
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


def _install_audit_hook(workdir: str) -> None:
    root = os.path.realpath(workdir)
    allowed_files = {"/dev/null"}
    own_pid = os.getpid

    def inside(path) -> bool:
        if isinstance(path, int):
            return True  # an already-open descriptor
        try:
            real = os.path.realpath(os.fsdecode(path))
        except (TypeError, ValueError):
            return False
        return real == root or real.startswith(root + os.sep) or real in allowed_files

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


# --- running candidates ---------------------------------------------------------------------------
def _on_alarm(signum, frame):
    raise _TestTimeout()


def _exception_summary(err: BaseException) -> str:
    lines = traceback.format_exception_only(type(err), err)
    return "".join(lines).strip()[-_MAX_DETAIL:]


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


def _run_timed(fn, seconds: float):
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        return fn()
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)


def _to_decimal(token: str):
    try:
        return decimal.Decimal(token)
    except decimal.InvalidOperation:
        return None


def stdout_matches(actual: str, expected: str) -> bool:
    """Line-by-line comparison; trailing whitespace and blank trailing lines are ignored, and
    tokens that are numbers compare by value (``0.50`` == ``0.5``)."""
    got = [line.rstrip() for line in actual.strip().splitlines()]
    want = [line.rstrip() for line in expected.strip().splitlines()]
    if got == want:
        return True
    if len(got) != len(want):
        return False
    for g_line, w_line in zip(got, want, strict=True):
        g_tok, w_tok = g_line.split(), w_line.split()
        if len(g_tok) != len(w_tok):
            return False
        for g, w in zip(g_tok, w_tok, strict=True):
            if g == w:
                continue
            dg, dw = _to_decimal(g), _to_decimal(w)
            if dg is None or dw is None or dg != dw:
                return False
    return True


def _plain(value):
    """Tuples become lists (recursively), so results compare like their JSON form."""
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    return value


def _report(status: str, passed: int, total: int, detail: str = "") -> dict:
    return {"status": status, "tests_passed": passed, "tests_total": total, "detail": detail[:_MAX_DETAIL]}


def run_program(job: dict) -> dict:
    """The candidate plus its test code as one ``__main__`` program; passes if it runs to the end."""
    try:
        code = compile(job["source"], "<candidate>", "exec")
        _run_timed(lambda: exec(code, {"__name__": "__main__", "__builtins__": builtins}), job["limits"]["wall_s"])
    except _TestTimeout:
        return _report("timeout", 0, 1, "time limit exceeded")
    except SystemExit as err:
        return _report("runtime_error", 0, 1, f"exited (code {err.code!r}) before the tests finished")
    except AssertionError as err:
        return _report("wrong_answer", 0, 1, _exception_summary(err) or "assertion failed")
    except BaseException as err:
        return _report("runtime_error", 0, 1, _exception_summary(err))
    finally:
        _flush_stdout()
    return _report("passed", 1, 1)


def run_stdio_tests(job: dict, workdir: str) -> dict:
    """A stdin/stdout program, run once per test with fresh globals; stops at the first failure."""
    tests = job["tests"]
    try:
        code = compile(job["source"], "<candidate>", "exec")
    except SyntaxError as err:
        return _report("runtime_error", 0, len(tests), _exception_summary(err))
    out_path = os.path.join(workdir, ".stdout")
    for i, test in enumerate(tests):
        in_path = os.path.join(workdir, ".stdin")
        with open(in_path, "w", encoding="utf-8") as f:
            f.write(test["input"])
        _fresh_stdio(in_path, out_path)
        failure = None
        try:
            _run_timed(lambda: exec(code, {"__name__": "__main__", "__builtins__": builtins}), job["test_timeout_s"])
        except _TestTimeout:
            failure = ("timeout", f"test {i}: time limit exceeded")
        except SystemExit as err:
            if err.code not in (None, 0):
                failure = ("runtime_error", f"test {i}: exit code {err.code!r}")
        except BaseException as err:
            failure = ("runtime_error", f"test {i}: {_exception_summary(err)}")
        _flush_stdout()
        if failure:
            return _report(failure[0], i, len(tests), failure[1])
        with open(out_path, encoding="utf-8", errors="replace") as f:
            actual = f.read()
        if not stdout_matches(actual, test["output"]):
            return _report(
                "wrong_answer",
                i,
                len(tests),
                f"test {i}: output {actual[:200]!r} != expected {test['output'][:200]!r}",
            )
    return _report("passed", len(tests), len(tests))


def run_call_tests(job: dict, workdir: str) -> dict:
    """LeetCode style: ``Solution().<func_name>(*args)`` per test, arguments one JSON value a line."""
    tests = job["tests"]
    _fresh_stdio(None, os.path.join(workdir, ".stdout"))
    namespace = {"__name__": "__candidate__", "__builtins__": builtins}
    try:
        code = compile(job["source"], "<candidate>", "exec")
        _run_timed(lambda: exec(code, namespace), job["test_timeout_s"])
        method_name = job["func_name"]
        solution_cls = namespace.get("Solution")
        if solution_cls is None or not hasattr(solution_cls, method_name):
            return _report("runtime_error", 0, len(tests), f"no Solution.{method_name} defined")
    except _TestTimeout:
        return _report("timeout", 0, len(tests), "time limit exceeded while defining the solution")
    except BaseException as err:
        return _report("runtime_error", 0, len(tests), _exception_summary(err))
    for i, test in enumerate(tests):
        try:
            args = [json.loads(line) for line in test["input"].split("\n") if line.strip()]
            expected = json.loads(test["output"])
        except json.JSONDecodeError as err:
            return _report("sandbox_error", i, len(tests), f"test {i} is not JSON: {err}")
        try:
            result = _run_timed(lambda args=args: getattr(solution_cls(), method_name)(*args), job["test_timeout_s"])
        except _TestTimeout:
            return _report("timeout", i, len(tests), f"test {i}: time limit exceeded")
        except BaseException as err:
            return _report("runtime_error", i, len(tests), f"test {i}: {_exception_summary(err)}")
        if _plain(result) != _plain(expected):
            return _report(
                "wrong_answer",
                i,
                len(tests),
                f"test {i}: returned {str(result)[:200]} != expected {str(expected)[:200]}",
            )
    return _report("passed", len(tests), len(tests))


def main(job_path: str) -> None:
    with open(job_path, encoding="utf-8") as f:
        job = json.load(f)
    os.unlink(job_path)  # the tests (expected outputs) now live only in this process's memory
    report_fd = job["report_fd"]  # write end of the parent's pipe; not inherited by anything we start
    os.set_inheritable(report_fd, False)
    workdir = job["workdir"]
    _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    os.chdir(workdir)
    _set_limits(job)
    if job["drop_to_uid"] is not None:
        _drop_root(job["drop_to_uid"], job["drop_to_gid"])
    _check(_libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "prctl(NO_NEW_PRIVS)")
    if job["landlock_abi"] > 0:
        _landlock(job["landlock_abi"], workdir)
    if job["python_guards"]:
        _block_sockets()
        _install_audit_hook(workdir)
    signal.signal(signal.SIGALRM, _on_alarm)
    started = time.monotonic()
    runner = {"program": run_program, "stdio": run_stdio_tests, "call": run_call_tests}[job["mode"]]
    report = runner(job) if job["mode"] == "program" else runner(job, workdir)
    report["run_s"] = round(time.monotonic() - started, 3)
    os.write(report_fd, json.dumps(report).encode())
    os.close(report_fd)
    _flush_stdout()
    os._exit(0)  # skip interpreter teardown: candidate atexit handlers and threads do not run


if __name__ == "__main__":
    main(sys.argv[1])
