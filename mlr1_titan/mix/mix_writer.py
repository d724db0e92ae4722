"""Write a scored mixture as a `data_mix` TOML that the mixture loader reads as is."""

from __future__ import annotations

import os

from mlr1_titan.data.mix_config import MixSpec, SourceSpec, load_mix
from mlr1_titan.data.mix_toml import write_mix_document

_DEFAULTS = SourceSpec(name="", kind="hub", path=(), weight=0.0)


def source_table(spec: SourceSpec, weight: float, *, path: str | None = None, kind: str | None = None) -> dict:
    """The [[sources]] table of `spec` with a new weight (paths absolute, defaults left out)."""
    table: dict = {"name": spec.name, "kind": kind or spec.kind}
    paths = [path] if path is not None else list(spec.path)
    table["path"] = paths[0] if len(paths) == 1 else paths
    table["weight"] = round(float(weight), 8)
    if kind is None:  # the same reader as the input mix: keep every field that selects its text
        for key in ("config", "data_dir", "revision"):
            if getattr(spec, key) is not None:
                table[key] = getattr(spec, key)
        if spec.data_files:
            table["data_files"] = list(spec.data_files)
        if spec.split != _DEFAULTS.split:
            table["split"] = spec.split
        if spec.text_fields != _DEFAULTS.text_fields:
            table["text_fields"] = list(spec.text_fields)
        if spec.separator != _DEFAULTS.separator:
            table["separator"] = spec.separator
    return table


def write_mix(
    path: str | os.PathLike,
    *,
    name: str,
    description: str,
    header: str,
    sources: list[dict],
    budget_tokens: int | None = None,
) -> MixSpec:
    """Write the TOML, read it back with the loader's parser (so what is written is what loads)."""
    doc: dict = {"name": name, "description": description}
    if budget_tokens:
        doc["tokens"] = budget_tokens
    return load_mix(write_mix_document(path, {**doc, "sources": sources}, header))
