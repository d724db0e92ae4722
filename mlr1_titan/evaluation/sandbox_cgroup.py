"""Per-candidate control groups: one memory and process limit over all of a candidate's processes.

cgroup v2 is used where this process's own cgroup delegates the ``memory`` and ``pids`` controllers
to children (its ``cgroup.subtree_control`` lists them); otherwise the v1 ``memory`` and ``pids``
hierarchies are used where they are mounted and writable (root on a hybrid host). Each run gets a
fresh group below this process's own; the launcher joins it before ``exec`` so every descendant
is inside. Afterwards: an OOM kill is read from the group's counters, every process still in it is
SIGKILLed, and the group is removed. Nothing here raises after creation: clean-up only logs.
"""

from __future__ import annotations

import logging
import os
import signal
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

log = logging.getLogger(__name__)

CGROUP_ROOT = Path("/sys/fs/cgroup")
CgroupKind = Literal["v2", "v1", "none"]


def _own_path(controller: str | None) -> str | None:
    """This process's cgroup path in the v2 (``controller=None``) or a v1 hierarchy."""
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        if controller is None and parts[0] == "0" and parts[1] == "":
            return parts[2]
        if controller is not None and controller in parts[1].split(","):
            return parts[2]
    return None


def _writable_dir(path: Path) -> bool:
    return path.is_dir() and os.access(path, os.W_OK | os.X_OK)


def _v1_parent(controller: str) -> Path | None:
    mount = CGROUP_ROOT / controller
    if not (mount / "cgroup.procs").is_file():
        return None
    own = _own_path(controller)
    candidate = mount / own.lstrip("/") if own else mount
    for path in (candidate, mount):  # a container may show only the hierarchy's root
        if _writable_dir(path):
            return path
    return None


def _v2_parent() -> Path | None:
    own = _own_path(None)
    if own is None or not (CGROUP_ROOT / "cgroup.controllers").is_file():
        return None
    parent = CGROUP_ROOT / own.lstrip("/")
    try:
        delegated = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError:
        return None
    return parent if {"memory", "pids"} <= delegated and _writable_dir(parent) else None


def probe_cgroups() -> tuple[CgroupKind, tuple[Path, ...]]:
    """Which cgroup layout per-candidate groups can be made in, and their parent dirs."""
    v2 = _v2_parent()
    if v2 is not None:
        return "v2", (v2,)
    memory, pids = _v1_parent("memory"), _v1_parent("pids")
    if memory is not None and pids is not None:
        return "v1", (memory, pids)
    return "none", ()


@dataclass
class RunCgroup:
    """The cgroup(s) of one run. ``procs_files`` are what the launcher writes its PID into."""

    kind: CgroupKind
    dirs: tuple[Path, ...]

    @classmethod
    def create(cls, kind: CgroupKind, parents: tuple[Path, ...], *, memory_bytes: int, max_pids: int) -> RunCgroup:
        name = f"mlr1-sandbox-{uuid.uuid4().hex[:16]}"
        dirs = tuple(parent / name for parent in parents)
        group = cls(kind, ())
        try:
            for d in dirs:
                d.mkdir()
                group.dirs += (d,)
            if kind == "v2":
                (dirs[0] / "memory.max").write_text(str(memory_bytes))
                (dirs[0] / "memory.swap.max").write_text("0")
                (dirs[0] / "pids.max").write_text(str(max_pids))
            else:
                memory, pids = dirs
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                swap = memory / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    swap.write_text(str(memory_bytes))
                (pids / "pids.max").write_text(str(max_pids))
        except BaseException:
            group.remove()
            raise
        return group

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in self.dirs)

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this group for memory."""
        try:
            if self.kind == "v2":
                text = (self.dirs[0] / "memory.events").read_text()
            else:
                text = (self.dirs[0] / "memory.oom_control").read_text()
        except (OSError, IndexError):
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", "0")) > 0

    def _pids(self) -> set[int]:
        pids: set[int] = set()
        for procs in self.procs_files:
            try:
                pids.update(int(p) for p in procs.read_text().split())
            except (OSError, ValueError):
                continue
        return pids

    def kill_all(self) -> None:
        """SIGKILL every process in the group until it is empty (bounded wait)."""
        if self.kind == "v2" and self.dirs:
            try:
                (self.dirs[0] / "cgroup.kill").write_text("1")
            except OSError:
                pass
        for _ in range(200):
            pids = self._pids()
            if not pids:
                return
            for pid in pids:
                try:
                    os.kill(pid, signal.SIGKILL)
                except OSError:
                    pass
            time.sleep(0.01)
        log.warning("sandbox cgroup %s still has processes after SIGKILL", self.dirs)

    def remove(self) -> None:
        """Remove the group's dirs (after ``kill_all``); never raises."""
        for d in reversed(self.dirs):
            for _ in range(50):
                try:
                    d.rmdir()
                    break
                except FileNotFoundError:
                    break
                except OSError:
                    time.sleep(0.01)
            else:
                log.warning("could not remove sandbox cgroup %s", d)
