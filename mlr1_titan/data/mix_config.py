"""Data mixtures as data: parse and validate a `data_mix/*.toml` file into a `MixSpec`.

A mix TOML names its sources (`[[sources]]`), how to read each one (`kind` = hub | local | shards)
and its weight. Weights are *token* fractions after normalisation (they need not sum to 100).
Sources may instead belong to a `[groups.<name>]` whose weight is shared by its members (the paper
gives one number for several benchmark train splits). See docs/data.md for the full format.

Every error names the TOML file, the source and the key, so a typo in a 4-day run's config fails at
startup with a message that says what to fix.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlr1_titan.resources import mix_search_dirs

SOURCE_KINDS = ("hub", "local", "shards")

_SOURCE_KEYS = {
    "name": "unique source name (also the shard sub-directory and the metrics key)",
    "kind": "hub | local | shards",
    "path": "hub dataset id, local glob(s), or shard directory",
    "weight": "token weight (normalised over the mix)",
    "group": "name of a [groups.*] table whose weight this source shares",
    "share": "relative share inside its group (default 1)",
    "config": "hub dataset config / subset name",
    "split": "hub split (default 'train')",
    "data_dir": "hub sub-directory to read",
    "data_files": "hub file pattern(s) inside the dataset repo",
    "revision": "hub git revision",
    "text_fields": "record fields joined into the document text (dotted paths allowed)",
    "separator": "string placed between text fields (default two newlines)",
}
_TOP_KEYS = {"name", "description", "tokens", "defaults", "sources", "groups"}
_GROUP_KEYS = {"weight", "description"}
_DEFAULTABLE = {"kind", "split", "text_fields", "separator", "config", "revision"}


class MixError(ValueError):
    """A mix TOML (or a phase schedule) is invalid. The message names file, source and key."""


@dataclass(frozen=True)
class SourceSpec:
    """One data source of a mix, as written in the TOML (paths already expanded)."""

    name: str
    kind: str
    path: tuple[str, ...]
    weight: float
    """Un-normalised token weight (group members get their share of the group weight)."""
    config: str | None = None
    split: str = "train"
    data_dir: str | None = None
    data_files: tuple[str, ...] | None = None
    revision: str | None = None
    text_fields: tuple[str, ...] = ("text",)
    separator: str = "\n\n"
    group: str | None = None
    mix_file: str = ""
    """The TOML this source came from (for error messages)."""

    @property
    def where(self) -> str:
        return f"{self.mix_file}: source '{self.name}'"

    def identity(self) -> dict[str, Any]:
        """The fields that decide which documents and text this source yields (not its weight)."""
        return {
            "kind": self.kind,
            "path": list(self.path),
            "config": self.config,
            "split": self.split,
            "data_dir": self.data_dir,
            "data_files": list(self.data_files) if self.data_files else None,
            "revision": self.revision,
            "text_fields": list(self.text_fields),
            "separator": self.separator,
        }

    def source_hash(self) -> str:
        blob = json.dumps(self.identity(), sort_keys=True).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class MixSpec:
    name: str
    file: str
    sources: tuple[SourceSpec, ...]
    description: str = ""
    budget_tokens: int | None = None
    """Tokens the paper samples from this mix (informational; shown by `mlr1 data preview`)."""

    def targets(self) -> dict[str, float]:
        """Normalised token fraction per source (zero-weight sources included, at 0.0)."""
        total = sum(s.weight for s in self.sources)
        return {s.name: s.weight / total for s in self.sources}

    def active_sources(self) -> tuple[SourceSpec, ...]:
        return tuple(s for s in self.sources if s.weight > 0)

    def fingerprint(self) -> str:
        blob = json.dumps([(s.name, s.source_hash(), round(s.weight, 12)) for s in self.sources]).encode()
        return hashlib.sha256(blob).hexdigest()[:16]


@dataclass(frozen=True)
class Phase:
    """A mix used from optimizer step `start_step` (= after that many steps) on."""

    mix: MixSpec
    start_step: int = 0


# ------------------------------------------------------------------------------------------------
# Locating a mix by name


def resolve_mix_path(name_or_path: str) -> Path:
    """`pretrain_phase2` (or `pretrain_phase2.toml`) -> data_mix/pretrain_phase2.toml.

    A path that exists is used as is; a bare file name that does not exist here is looked up in the
    mix folders ($MLR1_DATA_MIX_DIR, the shipped data_mix/, ./data_mix) like a name.
    """
    candidate = Path(os.path.expanduser(name_or_path))
    if candidate.is_file():
        return candidate
    searched = mix_search_dirs()
    bare = os.sep not in name_or_path
    if candidate.suffix == ".toml" and not bare:
        raise MixError(f"mix file not found: {name_or_path} (resolved: {candidate.resolve()})")
    stem = candidate.stem if candidate.suffix == ".toml" else name_or_path
    for d in searched:
        p = d / f"{stem}.toml"
        if p.is_file():
            return p
    known = sorted({p.stem for d in searched if d.is_dir() for p in d.glob("*.toml")})
    looked = [str(Path.cwd() / name_or_path)] if candidate.suffix == ".toml" else []
    looked += [str(d / f"{stem}.toml") for d in searched]
    raise MixError(
        f"unknown mix '{name_or_path}': looked for {', '.join(looked)}. Known mixes: {', '.join(known) or '(none)'}"
    )


def read_mix_toml(name_or_path: str | os.PathLike) -> tuple[Path, dict[str, Any]]:
    """Locate a mix (name or path) and read its TOML."""
    path = resolve_mix_path(str(name_or_path))
    try:
        with open(path, "rb") as f:
            return path, tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise MixError(f"{path}: not valid TOML: {err}") from err


def load_mix(name_or_path: str | os.PathLike) -> MixSpec:
    path, raw = read_mix_toml(name_or_path)
    return parse_mix(raw, file=str(path))


# ------------------------------------------------------------------------------------------------
# Parsing and validation


def _expand(p: str, base: Path) -> str:
    p = os.path.expanduser(os.path.expandvars(p))
    return p if os.path.isabs(p) else str(base / p)


def _as_str_tuple(value: Any, where: str, key: str) -> tuple[str, ...]:
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and value and all(isinstance(v, str) for v in value):
        return tuple(value)
    raise MixError(f"{where}: '{key}' must be a string or a non-empty list of strings, got {value!r}")


def _number(value: Any, where: str, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise MixError(f"{where}: '{key}' must be a finite number, got {value!r}")
    if value < 0:
        raise MixError(f"{where}: '{key}' must be >= 0, got {value}")
    return float(value)


def parse_mix(raw: dict[str, Any], *, file: str = "<mix>") -> MixSpec:
    base = Path(file).resolve().parent if file != "<mix>" else Path.cwd()
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise MixError(f"{file}: unknown top-level key(s) {sorted(unknown)}; allowed: {sorted(_TOP_KEYS)}")
    name = raw.get("name") or Path(file).stem
    defaults = raw.get("defaults", {})
    bad_defaults = set(defaults) - _DEFAULTABLE
    if bad_defaults:
        raise MixError(f"{file}: [defaults] cannot set {sorted(bad_defaults)}; allowed: {sorted(_DEFAULTABLE)}")

    groups_raw = raw.get("groups", {})
    groups: dict[str, float] = {}
    for gname, g in groups_raw.items():
        where = f"{file}: group '{gname}'"
        if not isinstance(g, dict) or "weight" not in g:
            raise MixError(f"{where}: needs a 'weight'")
        if set(g) - _GROUP_KEYS:
            raise MixError(f"{where}: unknown key(s) {sorted(set(g) - _GROUP_KEYS)}")
        groups[gname] = _number(g["weight"], where, "weight")

    entries = raw.get("sources")
    if not isinstance(entries, list) or not entries:
        raise MixError(f"{file}: no sources; add at least one [[sources]] table")

    parsed: list[dict[str, Any]] = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        sname = entry.get("name")
        where = f"{file}: source #{i + 1}" + (f" '{sname}'" if sname else "")
        if not isinstance(sname, str) or not sname or "/" in sname or sname.startswith("."):
            raise MixError(f"{where}: 'name' must be a non-empty string without '/', got {sname!r}")
        if sname in seen:
            raise MixError(f"{where}: duplicate source name '{sname}'")
        seen.add(sname)
        unknown = set(entry) - set(_SOURCE_KEYS)
        if unknown:
            raise MixError(
                f"{where}: unknown key(s) {sorted(unknown)}; allowed keys: "
                + ", ".join(f"{k} ({v})" for k, v in _SOURCE_KEYS.items())
            )
        e = {**defaults, **entry}
        kind = e.get("kind", "hub")
        if kind not in SOURCE_KINDS:
            raise MixError(f"{where}: unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
        if "path" not in e:
            raise MixError(f"{where}: missing 'path' ({_SOURCE_KEYS['path']})")
        paths = _as_str_tuple(e["path"], where, "path")
        if kind in ("local", "shards"):
            paths = tuple(_expand(p, base) for p in paths)
        if kind == "shards" and len(paths) != 1:
            raise MixError(f"{where}: a shards source takes one directory in 'path', got {len(paths)}")
        if kind == "hub" and len(paths) != 1:
            raise MixError(f"{where}: a hub source takes one dataset id in 'path', got {len(paths)}")
        group = e.get("group")
        if group is not None:
            if group not in groups:
                raise MixError(f"{where}: group '{group}' is not defined; add a [groups.{group}] table with a weight")
            if "weight" in e:
                raise MixError(f"{where}: set either 'weight' or 'group', not both")
            share = _number(e.get("share", 1.0), where, "share")
            weight = None
        else:
            if "weight" not in e:
                raise MixError(f"{where}: missing 'weight' (or 'group')")
            if "share" in e:
                raise MixError(f"{where}: 'share' only applies to group members")
            weight = _number(e["weight"], where, "weight")
            share = None
        text_fields = _as_str_tuple(e.get("text_fields", ["text"]), where, "text_fields")
        data_files = _as_str_tuple(e["data_files"], where, "data_files") if "data_files" in e else None
        for key in ("config", "split", "data_dir", "revision", "separator"):
            if key in e and not isinstance(e[key], str):
                raise MixError(f"{where}: '{key}' must be a string, got {e[key]!r}")
        parsed.append(
            dict(
                name=sname,
                kind=kind,
                path=paths,
                weight=weight,
                share=share,
                group=group,
                config=e.get("config"),
                split=e.get("split", "train"),
                data_dir=e.get("data_dir"),
                data_files=data_files,
                revision=e.get("revision"),
                text_fields=text_fields,
                separator=e.get("separator", "\n\n"),
            )
        )

    for gname, gweight in groups.items():
        members = [p for p in parsed if p["group"] == gname]
        if not members:
            raise MixError(f"{file}: group '{gname}' has no member sources")
        total_share = sum(p["share"] for p in members)
        if total_share <= 0 and gweight > 0:
            raise MixError(f"{file}: group '{gname}': member shares are all zero")
        for p in members:
            p["weight"] = gweight * p["share"] / total_share if total_share > 0 else 0.0

    sources = tuple(SourceSpec(mix_file=file, **{k: v for k, v in p.items() if k != "share"}) for p in parsed)
    if sum(s.weight for s in sources) <= 0:
        raise MixError(f"{file}: all source weights are zero; at least one source needs weight > 0")
    budget = raw.get("tokens")
    if budget is not None and (not isinstance(budget, int) or budget <= 0):
        raise MixError(f"{file}: 'tokens' must be a positive integer, got {budget!r}")
    return MixSpec(
        name=name,
        file=file,
        sources=sources,
        description=raw.get("description", ""),
        budget_tokens=budget,
    )


def parse_phases(mix: str, phases: list[str]) -> list[Phase]:
    """`["pretrain_phase1", "pretrain_phase2@500000"]` -> phases; empty -> the single `mix`.

    `MIX@N` means: MIX is used once N optimizer steps have completed (step N+1 is its first step).
    """
    if not phases:
        return [Phase(load_mix(mix), 0)]
    out: list[Phase] = []
    for i, item in enumerate(phases):
        name, _, at = item.rpartition("@") if "@" in item else (item, "", "")
        if not name:
            raise MixError(f"phase #{i + 1} {item!r}: expected MIX or MIX@STEP")
        try:
            start = int(at.replace("_", "")) if at else 0
        except ValueError:
            raise MixError(f"phase #{i + 1} {item!r}: step {at!r} is not an integer") from None
        if i == 0 and start != 0:
            raise MixError(f"phase #1 {item!r} must start at step 0 (write it without '@')")
        if out and start <= out[-1].start_step:
            raise MixError(
                f"phase #{i + 1} {item!r}: steps must increase (previous phase starts at {out[-1].start_step})"
            )
        out.append(Phase(load_mix(name), start))
    # A source name must mean the same data in every phase: its read position carries over.
    seen: dict[str, SourceSpec] = {}
    for ph in out:
        for s in ph.mix.sources:
            prev = seen.setdefault(s.name, s)
            if prev.source_hash() != s.source_hash():
                raise MixError(
                    f"source '{s.name}' is defined differently in {prev.mix_file} and {s.mix_file}; "
                    "a name must denote the same data in every phase (its read position carries over)"
                )
    return out
