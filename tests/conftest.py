import os
import sys
from pathlib import Path

import pytest

# Tests never reach a hub: everything they load is made locally or shipped in a package.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")

# Each area folder holds its helpers as `<area>_testkit.py`; any test may import any of them.
_TESTS = Path(__file__).resolve().parent
sys.path[:0] = [
    str(_TESTS),
    *(str(d) for d in sorted(_TESTS.iterdir()) if d.is_dir() and not d.name.startswith((".", "_"))),
]

# Trainer tests write checkpoints under the temp dir; a disk that fills mid-run shows up as dozens of
# unrelated trainer failures, so say it once, up front. A whole run peaked at 5.9 GB there (measured on a clean clone, 2026-12-02).
_MIN_FREE_GIB = 8


def pytest_sessionstart(session):
    import shutil
    import tempfile

    tmp = Path(os.environ.get("PYTEST_DEBUG_TEMPROOT") or tempfile.gettempdir())
    free_gib = shutil.disk_usage(tmp).free / 2**30
    if free_gib < _MIN_FREE_GIB:
        raise pytest.UsageError(
            f"only {free_gib:.1f} GiB free under {tmp}; the suite needs at least {_MIN_FREE_GIB} GiB there "
            "(trainer tests write checkpoints). Free some space or point TMPDIR elsewhere."
        )
