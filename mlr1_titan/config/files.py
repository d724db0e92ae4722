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

# Settings whose relative paths mean "relative to the TOML that sets them". Files are always paths;
# a mix (or phase entry) may also be a name, so only a value that looks like a path is anchored.
ANCHORED_FILES = (("tokenizer", "path"), ("checkpoint", "hf_chat_template"))
ANCHORED_MIXES = tuple(
    (*prefix, "dataloader", kind, key)
    for prefix in ((), ("validator",))
    for kind in ("mixture", "chat")
    for key in ("mix", "phases")
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


def _table_at(data: dict, keys: tuple[str, ...]) -> dict | None:
    for key in keys:
        data = data.get(key) if isinstance(data, dict) else None
    return data if isinstance(data, dict) else None


def _anchored(value: str, base: Path) -> str:
    expanded = os.path.expanduser(value)
    return expanded if os.path.isabs(expanded) else str((base / expanded).resolve())


def _looks_like_path(value: str, base: Path) -> bool:
    name = value.rpartition("@")[0] if "@" in value else value  # a phase entry is MIX@STEP
    return os.sep in name or name.startswith((".", "~")) or (name.endswith(".toml") and (base / name).is_file())


def _anchor_paths(data: dict, path: Path) -> dict:
    """Make relative path values absolute against the file that wrote them, before merging."""
    base = path.parent
    for keys in ANCHORED_FILES:
        table = _table_at(data, keys[:-1])
        if table is not None and isinstance(table.get(keys[-1]), str) and table[keys[-1]]:
            table[keys[-1]] = _anchored(table[keys[-1]], base)
    for keys in ANCHORED_MIXES:
        table = _table_at(data, keys[:-1])
        value = table.get(keys[-1]) if table is not None else None
        if isinstance(value, str) and _looks_like_path(value, base):
            table[keys[-1]] = _anchored(value, base)
        elif isinstance(value, list):
            table[keys[-1]] = [
                _anchored(v, base) if isinstance(v, str) and _looks_like_path(v, base) else v for v in value
            ]
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
