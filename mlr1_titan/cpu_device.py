"""A small, explicit CPU device layer for torchtitan 0.3.0's Trainer.

torchtitan resolves its device once at import time (``tools/utils.py``: ``device_type`` falls back to
"cuda" when no accelerator exists) and calls ``torch.cuda``-style APIs for ``set_device``, the memory
monitor, barriers and the profiler. On a host with no accelerator we point those module-level
names at ``CPUDeviceModule`` below, which implements exactly the calls the Trainer makes (and
reports process RSS as "memory"). Nothing is patched when an accelerator is present, so GPU runs are
untouched. Process groups then use gloo (torchtitan's own backend map for "cpu").
"""

from __future__ import annotations

import importlib
import os
import resource
import sys
from types import SimpleNamespace

import torch

# Modules that did ``from torchtitan.tools.utils import device_type, device_module`` at import.
_MODULES_HOLDING_DEVICE = (
    "torchtitan.tools.utils",
    "torchtitan.components.metrics",
    "torchtitan.distributed.parallel_dims",
    "torchtitan.distributed.utils",
    "torchtitan.tools.profiler",
    "torchtitan.models.common.token_dispatcher",
)


def accelerator_available() -> bool:
    return torch.accelerator.is_available()


def _peak_rss_bytes() -> int:
    # ru_maxrss is KiB on Linux, bytes on macOS.
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss if sys.platform == "darwin" else rss * 1024


class CPUDeviceModule:
    """The subset of the ``torch.cuda`` API torchtitan's Trainer uses, for the CPU."""

    @staticmethod
    def is_available() -> bool:
        return True

    @staticmethod
    def set_device(device) -> None:
        pass

    @staticmethod
    def device_count() -> int:
        return 1

    @staticmethod
    def current_device() -> int:
        return 0

    @staticmethod
    def get_device_name(device=None) -> str:
        return f"CPU ({os.cpu_count()} cores)"

    @staticmethod
    def get_device_properties(device=None):
        total = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
        return SimpleNamespace(total_memory=total, name="cpu")

    @staticmethod
    def memory_stats(device=None) -> dict[str, int]:
        peak = _peak_rss_bytes()
        return {
            "active_bytes.all.peak": peak,
            "reserved_bytes.all.peak": peak,
            "num_alloc_retries": 0,
            "num_ooms": 0,
        }

    @staticmethod
    def reset_peak_memory_stats(device=None) -> None:
        pass

    @staticmethod
    def empty_cache() -> None:
        pass

    @staticmethod
    def synchronize(device=None) -> None:
        pass

    # torchtitan's profiler records allocator history; the CPU has none to record.
    memory = SimpleNamespace(
        _record_memory_history=lambda *args, **kwargs: None,
        _snapshot=lambda *args, **kwargs: {},
        _dump_snapshot=lambda *args, **kwargs: None,
    )


_installed = False


def install_cpu_device_layer(force: bool = False) -> bool:
    """Point torchtitan at the CPU when no accelerator is present. Returns True if installed.

    Idempotent. ``force=True`` installs it even on an accelerator host (tests, benchmarks).
    """
    global _installed
    if _installed:
        return True
    if accelerator_available() and not force:
        return False
    for name in _MODULES_HOLDING_DEVICE:
        module = importlib.import_module(name)
        if hasattr(module, "device_type"):
            module.device_type = "cpu"
        if hasattr(module, "device_module"):
            module.device_module = CPUDeviceModule
    utils = importlib.import_module("torchtitan.tools.utils")
    dist_utils = importlib.import_module("torchtitan.distributed.utils")
    # One CPU per process: LOCAL_RANK selects nothing (a "cpu:1" device would confuse tensors).
    utils.get_local_device = dist_utils.get_local_device = lambda: torch.device("cpu")
    _installed = True
    return True
