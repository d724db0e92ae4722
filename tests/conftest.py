import os
import sys
from pathlib import Path

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
