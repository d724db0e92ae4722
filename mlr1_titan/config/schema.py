"""Tables <-> config dataclasses: type-checked construction, serialization back to TOML, diffs.

``build_config(cls, data, file)`` constructs the dataclass tree bottom-up from a merged TOML (every
dataclass through its constructor, so each ``__post_init__`` validates and derives from the final
values, as it does when tyro parses the command line). The settable keys of a table are the init
fields of its dataclass, minus private ones and those hidden from the command line
(``tyro.conf.Suppress``): the TOML vocabulary and the CLI vocabulary are the same set.
A nested table takes its class from the field's default value (a subclass of the annotated type is
how torchtitan components are swapped), else from the annotation.
"""

from __future__ import annotations

import dataclasses
import functools
import types
import typing
from pathlib import Path
from typing import Any

import tomli_w
import tyro

from .errors import ConfigError

# ---------------------------------------------------------------------------------------------
# What a table may hold.


@functools.cache
def _hints(cls: type) -> dict[str, Any]:
    return typing.get_type_hints(cls, include_extras=True)


def _suppressed(annotation) -> bool:
    if typing.get_origin(annotation) is typing.Annotated:
        return any(m is tyro.conf.Suppress for m in typing.get_args(annotation)[1:])
    return False


def settable_fields(cls: type) -> dict[str, dataclasses.Field]:
    """The keys a table for ``cls`` may set (and ``--section.key`` flags exist for)."""
    hints = _hints(cls)
    return {
        f.name: f
        for f in dataclasses.fields(cls)
        if f.init and not f.name.startswith("_") and not _suppressed(hints.get(f.name))
    }


def _strip_annotated(annotation):
    while typing.get_origin(annotation) is typing.Annotated:
        annotation = typing.get_args(annotation)[0]
    return annotation


def _union_args(annotation) -> tuple:
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (typing.Union, types.UnionType):
        return tuple(_strip_annotated(a) for a in typing.get_args(annotation))
    return (annotation,)


def _dataclass_in(annotation) -> type | None:
    for arg in _union_args(annotation):
        if isinstance(arg, type) and dataclasses.is_dataclass(arg):
            return arg
    return None


def _list_item_dataclass(annotation) -> type | None:
    annotation = _strip_annotated(annotation)
    if typing.get_origin(annotation) in (list, typing.Sequence) and typing.get_args(annotation):
        return _dataclass_in(typing.get_args(annotation)[0])
    return None


def _type_name(annotation) -> str:
    annotation = _strip_annotated(annotation)
    if typing.get_args(annotation) and typing.get_origin(annotation) not in (typing.Union, types.UnionType):
        args = ", ".join(_type_name(a) for a in typing.get_args(annotation))
        return f"{_type_name(typing.get_origin(annotation))}[{args}]"
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _conforms(value: Any, annotation) -> bool:
    annotation = _strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is object:
        return True
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin is tuple:
        args = typing.get_args(annotation)
        if not isinstance(value, (list, tuple)):
            return False
        if len(args) == 2 and args[1] is Ellipsis:
            return all(_conforms(v, args[0]) for v in value)
        return not args or (len(args) == len(value) and all(_conforms(v, a) for v, a in zip(value, args)))
    if origin in (list, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, (list, tuple)):
            return False
        args = typing.get_args(annotation)
        return not args or all(_conforms(v, args[0]) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    if isinstance(annotation, type) and dataclasses.is_dataclass(annotation):
        return isinstance(value, annotation)
    return True  # exotic annotations (callables, protocols): left to the dataclass itself


def _coerce(value: Any, annotation) -> Any:
    annotation = _strip_annotated(annotation)
    origin = typing.get_origin(annotation)
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and _conforms(value, arg):
                return _coerce(value, arg)
        return value
    if annotation is float and isinstance(value, int):
        return float(value)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(annotation)
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_coerce(v, args[0]) for v in value)
        return tuple(_coerce(v, a) for v, a in zip(value, args)) if args else tuple(value)
    if origin is list and isinstance(value, list) and typing.get_args(annotation):
        return [_coerce(v, typing.get_args(annotation)[0]) for v in value]
    return value


# ---------------------------------------------------------------------------------------------
# Construction.


def _where(path: tuple[str, ...]) -> str:
    return f"[{'.'.join(path)}]" if path else "top level"


def _default_of(f: dataclasses.Field):
    if f.default is not dataclasses.MISSING:
        return f.default
    if f.default_factory is not dataclasses.MISSING:
        return f.default_factory()
    return dataclasses.MISSING


def _construct(cls: type, table: Any, base: Any, path: tuple[str, ...], file: Path):
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: {_where(path)} must be a table, got {type(table).__name__}")
    settable = settable_fields(cls)
    for key in table:
        if key not in settable:
            label = "unknown top-level key" if not path else f"{_where(path)} unknown key"
            raise ConfigError(f"{file}: {label} {key!r}; allowed keys: {sorted(settable)}")
    hints = _hints(cls)
    kwargs: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        if not f.init:
            continue
        current = getattr(base, f.name) if base is not None else _default_of(f)
        if f.name not in table:
            if current is dataclasses.MISSING:
                if _dataclass_in(hints.get(f.name, Any)) is not None:
                    raise ConfigError(f"{file}: missing [{'.'.join((*path, f.name))}] table")
                raise ConfigError(f"{file}: {_where(path)} missing key {f.name!r}")
            kwargs[f.name] = current
            continue
        value, annotation, where = table[f.name], hints.get(f.name, Any), (*path, f.name)
        nested = type(current) if dataclasses.is_dataclass(current) else _dataclass_in(annotation)
        item_cls = _list_item_dataclass(annotation)
        if nested is not None and not isinstance(value, dict) and _dataclass_in(annotation) is not None:
            raise ConfigError(f"{file}: [{'.'.join(where)}] must be a table, got {value!r} ({type(value).__name__})")
        if nested is not None and isinstance(value, dict):
            kwargs[f.name] = _construct(
                nested, value, current if dataclasses.is_dataclass(current) else None, where, file
            )
        elif item_cls is not None and isinstance(value, list) and all(isinstance(v, dict) for v in value):
            kwargs[f.name] = [
                _construct(item_cls, item, None, (*path, f"{f.name}[{i}]"), file) for i, item in enumerate(value)
            ]
        elif _conforms(value, annotation):
            kwargs[f.name] = _coerce(value, annotation)
        else:
            raise ConfigError(
                f"{file}: {_where(path)} key {f.name!r} must be {_type_name(annotation)}, "
                f"got {value!r} ({type(value).__name__})"
            )
    try:
        return cls(**kwargs)
    except ConfigError:
        raise
    except (ValueError, TypeError, AssertionError) as err:
        raise ConfigError(f"{file}: {_where(path)} {err}") from None


def build_config(cls: type, data: dict[str, Any], file: str | Path = "<config>"):
    """The ``cls`` instance a merged TOML describes; defaults fill what it does not set."""
    return _construct(cls, data, None, (), Path(file))


# ---------------------------------------------------------------------------------------------
# Serialization and comparison.


def _plain(value: Any, where: str) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return to_table(value, where)
    if isinstance(value, (list, tuple)):
        return [_plain(v, f"{where}[{i}]") for i, v in enumerate(value)]
    if isinstance(value, dict):
        return {str(k): _plain(v, f"{where}.{k}") for k, v in value.items() if v is not None}
    if isinstance(value, (str, int, float, bool)):
        return value
    raise ConfigError(f"{where}: a {type(value).__name__} value cannot be written to TOML")


def to_table(config: Any, where: str = "config") -> dict[str, Any]:
    """The settable fields of a config tree as plain TOML data.

    TOML has no null: a None is left out, which loads back as the field's default; a None where the
    default is not None cannot be written and is an error naming the key.
    """
    out: dict[str, Any] = {}
    for name, f in settable_fields(type(config)).items():
        value = getattr(config, name)
        if value is None:
            default = _default_of(f)
            if default is not None and default is not dataclasses.MISSING:
                raise ConfigError(f"{where}.{name} is None, which TOML cannot hold (its default is {default!r})")
            continue
        out[name] = _plain(value, f"{where}.{name}")
    return out


def toml_text(config: Any, header: str = "") -> str:
    """``to_table`` as a TOML document, preceded by ``header`` as comment lines."""
    comments = "".join(f"# {line}".rstrip() + "\n" for line in header.splitlines())
    return comments + tomli_w.dumps(to_table(config))


def flatten(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"a": {"b": 1}}`` -> ``{"a.b": 1}`` (lists are values)."""
    out: dict[str, Any] = {}
    for key, value in table.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict) and value:
            out.update(flatten(value, f"{name}."))
        else:
            out[name] = value
    return out


_ABSENT = "(unset)"


def diff_tables(a: dict[str, Any], b: dict[str, Any]) -> list[tuple[str, Any, Any]]:
    """(dotted key, value in a, value in b) for every key whose values differ."""
    fa, fb = flatten(a), flatten(b)
    keys = sorted(set(fa) | set(fb))
    return [(k, fa.get(k, _ABSENT), fb.get(k, _ABSENT)) for k in keys if fa.get(k, _ABSENT) != fb.get(k, _ABSENT)]
