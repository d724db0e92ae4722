"""Config files: names -> paths, ``extends`` chains merged key by key, relative paths anchored.

A config name is a TOML file stem in a config folder ($MLR1_CONFIG_DIR, then the shipped
``model_configs/``). ``--config`` also takes a path; a bare ``NAME.toml`` that does not exist in the
working directory is looked up in the config folders like ``NAME``.
"""

from __future__ import annotations

import os
import tomllib
from pathlib import Path
from typing import Any

from mlr1_titan.resources import config_search_dirs

from .errors import ConfigError

# Settings whose relative paths mean "relative to the TOML that sets them" (a mix may be a name).
ANCHORED_PATHS = (
    ("tokenizer", "path"),
    ("dataloader", "mixture", "mix"),
    ("dataloader", "chat", "mix"),
    ("validator", "dataloader", "mixture", "mix"),
    ("validator", "dataloader", "chat", "mix"),
)


def available_configs() -> dict[str, Path]:
    """Config name (file stem) -> TOML path, for every top-level TOML in the config folders."""
    found: dict[str, Path] = {}
    for directory in config_search_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def resolve_config_path(name_or_path: str) -> Path:
    """A config name, an existing path, or a bare ``NAME.toml`` found in the config folders."""
    candidate = Path(os.path.expanduser(name_or_path))
    if candidate.is_file():
        return candidate.resolve()
    configs = available_configs()
    searched = [str(d) for d in config_search_dirs()]
    if candidate.suffix == ".toml":
        if os.sep in name_or_path or candidate.stem not in configs:
            looked = [str(candidate.resolve())]
            if os.sep not in name_or_path:
                looked += [str(Path(d) / candidate.name) for d in searched]
            raise ConfigError(f"config file not found: {name_or_path}; looked for {', '.join(looked)}")
        return configs[candidate.stem]
    if name_or_path not in configs:
        raise ConfigError(
            f"unknown config {name_or_path!r}; available: {sorted(configs)} "
            f"(searched {searched}); or pass a path to a .toml file"
        )
    return configs[name_or_path]


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _anchor_paths(data: dict, path: Path) -> dict:
    """Make relative path values absolute against the file that wrote them, before merging."""
    for keys in ANCHORED_PATHS:
        table = data
        for key in keys[:-1]:
            table = table.get(key) if isinstance(table, dict) else None
        value = table.get(keys[-1]) if isinstance(table, dict) else None
        looks_like_path = isinstance(value, str) and (os.sep in value or value.startswith("."))
        if looks_like_path and not os.path.isabs(os.path.expanduser(value)):
            table[keys[-1]] = str((path.parent / value).resolve())
    return data


def read_config_file(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    """The file's tables merged over its ``extends`` chain (this file wins, table by table, key by key)."""
    path = path.resolve()
    if path in _chain:
        raise ConfigError(f"{path}: circular 'extends' chain: {' -> '.join(map(str, _chain + (path,)))}")
    data = _anchor_paths(_read_toml(path), path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a string path, got {type(parent).__name__}")
    parent_path = (path.parent / parent).resolve()
    if not parent_path.is_file():
        raise ConfigError(f"{path}: extends {parent!r}, which does not exist ({parent_path})")
    return _merge(read_config_file(parent_path, _chain + (path,)), data)
