"""Per-candidate control groups: memory, process and CPU limits over all of a candidate's processes.

cgroup v2 is used where this process's own cgroup is writable and offers the ``memory`` and ``pids``
controllers (this process then moves into a leaf child, ``mlr1-evaluator``, so they can be enabled
for the per-run groups beside it); otherwise the v1 ``memory`` and ``pids`` hierarchies where they
are mounted and writable (root on a hybrid host). A trial group is made when probing. Each run gets a
fresh group below this process's own; the launcher joins it before ``exec`` so every descendant
is inside. Each group also gets a CPU quota (``cpus`` CPUs, so a candidate that forks busy
children cannot starve its neighbours) and counts the CPU time of all its processes, where the
``cpu`` (and, v1, ``cpuacct``) controllers are available. Afterwards: an OOM kill is read from the
group's counters, every process still in it is SIGKILLed, and the group is removed. Nothing here
raises after creation: clean-up only logs.
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
CPU_PERIOD_US = 100_000


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


def _v2_parent() -> tuple[Path, bool] | None:
    """The v2 group per-run groups go under (this process's own, once ``memory`` and ``pids`` - and
    ``cpu`` where offered - are enabled for its children), and whether ``cpu`` is. The kernel allows
    enabling only in a group without processes, so this process first moves into a leaf child of its
    own group (what container runtimes do)."""
    own = _own_path(None)
    if own is None or not (CGROUP_ROOT / "cgroup.controllers").is_file():
        return None
    parent = CGROUP_ROOT / own.lstrip("/")
    wanted = {"memory", "pids"}
    try:
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
        offered = set((parent / "cgroup.controllers").read_text().split())
        if not wanted <= enabled:
            if not wanted <= offered or not _writable_dir(parent):
                return None
            leaf = parent / "mlr1-evaluator"
            leaf.mkdir(exist_ok=True)
            (leaf / "cgroup.procs").write_text(str(os.getpid()))
            try:
                (parent / "cgroup.subtree_control").write_text("+memory +pids")
            except OSError:
                (parent / "cgroup.procs").write_text(str(os.getpid()))  # back where it was
                raise
        if "cpu" in offered and "cpu" not in enabled:
            try:  # best effort: without it runs get no CPU quota, the rest still holds
                (parent / "cgroup.subtree_control").write_text("+cpu")
            except OSError as err:
                log.info("no cgroup v2 cpu controller for sandbox runs: %s", err)
        enabled = set((parent / "cgroup.subtree_control").read_text().split())
    except OSError as err:  # other processes share the group, or no delegation: no v2 groups
        log.info("cgroup v2 groups unavailable under %s: %s", parent, err)
        return None
    return (parent, "cpu" in enabled) if _writable_dir(parent) else None


def _usable(kind: CgroupKind, parents: dict[str, Path]) -> bool:
    """Create and remove one group with limits, as a run would."""
    try:
        group = RunCgroup.create(kind, parents, memory_bytes=64 * 2**20, max_pids=16, cpus=1.0)
    except OSError as err:
        log.info("cannot create %s sandbox cgroups under %s: %s", kind, parents, err)
        return False
    group.remove()
    return True


def probe_cgroups() -> tuple[CgroupKind, dict[str, Path]]:
    """Which cgroup layout per-candidate groups can be made in, and the parent dir per controller
    (v2: one dir for all; v1: ``memory`` and ``pids``, and ``cpu``/``cpuacct`` where writable)."""
    v2 = _v2_parent()
    if v2 is not None:
        parents = {name: v2[0] for name in ("memory", "pids", *(("cpu",) if v2[1] else ()))}
        if _usable("v2", parents):
            return "v2", parents
    found = {name: _v1_parent(name) for name in ("memory", "pids", "cpu", "cpuacct")}
    parents = {name: path for name, path in found.items() if path is not None}
    if {"memory", "pids"} <= parents.keys() and _usable("v1", parents):
        return "v1", parents
    return "none", {}


@dataclass
class RunCgroup:
    """The cgroup(s) of one run: the dir per controller (v2: the same dir for all)."""

    kind: CgroupKind
    dirs: dict[str, Path]

    @classmethod
    def create(
        cls, kind: CgroupKind, parents: dict[str, Path], *, memory_bytes: int, max_pids: int, cpus: float
    ) -> RunCgroup:
        name = f"mlr1-sandbox-{uuid.uuid4().hex[:16]}"
        group = cls(kind, {})
        made: dict[Path, Path] = {}  # co-mounted v1 controllers (cpu,cpuacct) share one dir
        try:
            for controller, parent in parents.items():
                real = parent.resolve()
                if real not in made:
                    (real / name).mkdir()
                    made[real] = real / name
                group.dirs[controller] = made[real]
            quota = str(max(1000, int(cpus * CPU_PERIOD_US)))
            if kind == "v2":
                d = group.dirs["memory"]
                (d / "memory.max").write_text(str(memory_bytes))
                swap = d / "memory.swap.max"  # absent without swap accounting
                if swap.exists():
                    swap.write_text("0")
                (d / "pids.max").write_text(str(max_pids))
                if "cpu" in group.dirs:
                    group._best_effort_quota(d / "cpu.max", f"{quota} {CPU_PERIOD_US}")
            else:
                memory = group.dirs["memory"]
                (memory / "memory.limit_in_bytes").write_text(str(memory_bytes))
                swap = memory / "memory.memsw.limit_in_bytes"
                if swap.exists():
                    swap.write_text(str(memory_bytes))
                (group.dirs["pids"] / "pids.max").write_text(str(max_pids))
                if "cpu" in group.dirs:
                    (group.dirs["cpu"] / "cpu.cfs_period_us").write_text(str(CPU_PERIOD_US))
                    group._best_effort_quota(group.dirs["cpu"] / "cpu.cfs_quota_us", quota)
        except BaseException:
            group.remove()
            raise
        return group

    def _best_effort_quota(self, path: Path, value: str) -> None:
        """Set the CPU quota; where the kernel refuses it (a parent with a smaller one) the run goes
        without, logged, rather than losing the memory and process limits too."""
        try:
            path.write_text(value)
        except OSError as err:
            log.warning("no CPU quota for sandbox runs (%s: %s)", path, err)

    @property
    def procs_files(self) -> tuple[Path, ...]:
        return tuple(d / "cgroup.procs" for d in dict.fromkeys(self.dirs.values()))

    def oom_killed(self) -> bool:
        """Whether the kernel killed a process of this group for memory."""
        try:
            name = "memory.events" if self.kind == "v2" else "memory.oom_control"
            text = (self.dirs["memory"] / name).read_text()
        except (OSError, KeyError):
            return False
        fields = dict(line.split() for line in text.splitlines() if len(line.split()) == 2)
        return int(fields.get("oom_kill", "0")) > 0

    def cpu_seconds(self) -> float | None:
        """CPU time used by all the group's processes so far (None where it is not counted)."""
        try:
            if self.kind == "v2":  # cpu.stat exists (usage included) with or without the cpu controller
                fields = dict(line.split() for line in (self.dirs["memory"] / "cpu.stat").read_text().splitlines())
                return int(fields["usage_usec"]) / 1e6
            if "cpuacct" not in self.dirs:
                return None
            return int((self.dirs["cpuacct"] / "cpuacct.usage").read_text()) / 1e9
        except (OSError, KeyError, ValueError):
            return None

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
                (self.dirs["memory"] / "cgroup.kill").write_text("1")
            except (OSError, KeyError):
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
        for d in reversed(list(dict.fromkeys(self.dirs.values()))):
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
