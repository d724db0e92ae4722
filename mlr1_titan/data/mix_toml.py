"""Write a mix document (top-level keys + its sources) as a `data_mix` TOML, atomically.

One ``[[sources]]`` table per source, as the shipped mixes are written (``tomli_w`` alone would
inline short ones), under a comment header; written to a temporary name, then renamed.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import tomli_w


def write_mix_document(path: str | os.PathLike, doc: dict[str, Any], header: str) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    top = {k: v for k, v in doc.items() if k != "sources"}
    comment = "".join(f"# {line}\n" if line else "#\n" for line in header.splitlines())
    body = tomli_w.dumps(top) + "".join(f"\n[[sources]]\n{tomli_w.dumps(s)}" for s in doc["sources"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(comment + "\n" + body)
    os.replace(tmp, path)
    return path
