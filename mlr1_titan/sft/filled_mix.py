"""The chat mix that reads the files ``mlr1 data fill-questions`` wrote, in place of the sources it filled."""

from __future__ import annotations

import copy
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

_HUB_LOCATION_KEYS = ("config", "split", "data_dir", "data_files", "revision")


def filled_mix(raw: dict[str, Any], mix_file: str, outputs: Mapping[str, str]) -> dict[str, Any]:
    """The chat mix `raw` (as read from `mix_file`) with each source of `outputs` (name -> parquet
    path) read from that file; other sources' relative paths made absolute (the new TOML lives elsewhere)."""
    doc = copy.deepcopy(raw)
    base = Path(mix_file).resolve().parent
    defaults = doc.get("defaults", {})
    default_fill = defaults.pop("fill_questions", None)
    sources = []
    for entry in doc["sources"]:
        name = entry.get("name")
        if name in outputs:
            rest = {k: v for k, v in entry.items() if k not in ("name", "kind", "path", "fill_questions")}
            for key in _HUB_LOCATION_KEYS:  # where the hub copy was; the file replaces it
                rest.pop(key, None)
            entry = {"name": name, "kind": "local", "path": str(Path(outputs[name]).resolve()), **rest}
        else:
            if default_fill is not None:
                entry.setdefault("fill_questions", default_fill)
            if entry.get("kind", defaults.get("kind", "hub")) in ("local", "shards") and "path" in entry:
                entry["path"] = _absolute(entry["path"], base)
        sources.append(entry)
    doc["sources"] = sources
    if not defaults and "defaults" in doc:
        del doc["defaults"]
    return doc


def _absolute(path: str | list[str], base: Path) -> str | list[str]:
    if isinstance(path, list):
        return [_absolute(p, base) for p in path]
    expanded = os.path.expanduser(os.path.expandvars(path))
    return path if os.path.isabs(expanded) else str(base / path)
