"""The sandbox's syscall filter, built with libseccomp (``pyseccomp`` bindings) for bubblewrap.

bubblewrap loads it (``--seccomp FD``) just before it starts the child, so everything the job runs
is under it. Allowed by default; refused with EPERM: kernel keyrings (shared by every run of a UID,
so a covert channel between runs), new namespaces (``unshare``, ``setns``, namespace flags of
``clone``; ``clone3`` answers ENOSYS so the C library falls back to ``clone``), sockets of families
the network namespace does not isolate (e.g. AF_VSOCK), mounts, ptrace and
cross-process memory access, BPF, perf events, userfaultfd, io_uring, kernel modules, kexec, handle-
based opens and other host administration calls. Those are kernel attack surface a candidate never
needs.
"""

from __future__ import annotations

import errno
import functools
import logging
import tempfile

log = logging.getLogger(__name__)

REFUSED = (
    "add_key", "request_key", "keyctl",
    "unshare", "setns", "mount", "umount2", "pivot_root", "chroot", "fsopen", "fsmount", "fsconfig",
    "fspick", "move_mount", "open_tree", "mount_setattr",
    "ptrace", "process_vm_readv", "process_vm_writev", "kcmp", "pidfd_getfd",
    "bpf", "perf_event_open", "userfaultfd", "io_uring_setup", "io_uring_enter", "io_uring_register",
    "init_module", "finit_module", "delete_module", "kexec_load", "kexec_file_load",
    "open_by_handle_at", "name_to_handle_at", "iopl", "ioperm", "swapon", "swapoff", "reboot",
    "acct", "quotactl", "lookup_dcookie", "fanotify_init", "syslog",
)  # fmt: skip
"""Syscalls refused with EPERM."""
NAMESPACE_FLAGS = (0x00020000, 0x02000000, 0x04000000, 0x08000000, 0x10000000, 0x20000000, 0x40000000)
"""CLONE_NEWNS, NEWCGROUP, NEWUTS, NEWIPC, NEWUSER, NEWPID, NEWNET: ``clone`` with any is refused
(CLONE_NEWTIME exists for ``unshare``/``clone3`` only, both refused whole)."""


SOCKET_FAMILIES = (1, 2, 10, 16)
"""AF_UNIX, AF_INET, AF_INET6, AF_NETLINK: the families the network namespace isolates; others
(AF_VSOCK to a VM's host, AF_BLUETOOTH, ...) are refused."""


@functools.cache
def filter_program() -> bytes | None:
    """The BPF program for ``bwrap --seccomp``, or None where libseccomp cannot be used."""
    try:
        import pyseccomp as seccomp

        refuse = seccomp.ERRNO(errno.EPERM)
        rules = seccomp.SyscallFilter(defaction=seccomp.ALLOW)
        for name in REFUSED:  # a name this libseccomp does not know raises: no filter (fail closed)
            rules.add_rule(refuse, name)
        for flag in NAMESPACE_FLAGS:
            rules.add_rule(refuse, "clone", seccomp.Arg(0, seccomp.MASKED_EQ, flag, flag))
        rules.add_rule(seccomp.ERRNO(errno.ENOSYS), "clone3")  # its flags live in memory: unfilterable
        for call in ("socket", "socketpair"):  # only unix, IPv4/6 and netlink: namespaced families
            rules.add_rule(refuse, call, seccomp.Arg(0, seccomp.GT, max(SOCKET_FAMILIES)))
            for family in range(max(SOCKET_FAMILIES)):
                if family not in SOCKET_FAMILIES:
                    rules.add_rule(refuse, call, seccomp.Arg(0, seccomp.EQ, family))
        with tempfile.TemporaryFile() as out:  # libseccomp writes to a file descriptor
            rules.export_bpf(out)
            out.seek(0)
            return out.read()
    except Exception as err:  # no libseccomp on this machine
        log.info("seccomp filter unavailable: %s", err)
        return None
