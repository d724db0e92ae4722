"""Plain values across the sandbox boundary: a restricted, tagged JSON encoding.

Candidate code returns arbitrary objects; only their *value* may leave its process. ``encode``
turns a value into a tree of tagged JSON lists built from the builtin types alone (``None``, bool,
int, float, complex, str, bytes, list, tuple, set, frozenset, dict); set members come sorted by
their encoding, strings with lone surrogates as code points (JSON would merge a pair). Instances of subclasses are
read through the builtin type's own methods (``int.__index__``, ``list.__iter__``, ...), so
overridden ``__eq__``/``__iter__``/``__repr__`` never take part; numpy scalars become their Python
value. Anything else is encoded as an opaque ``("?", type name)`` that equals nothing.

``decode`` runs in the supervisor on data the candidate's process wrote: it accepts only the
tags below, bounded in depth and size, and builds fresh builtin objects; anything else raises
``ValueError``. Imported by ``sandbox_boot.py`` too, so it uses the standard library only.
"""

from __future__ import annotations

import base64
import json
import re

MAX_DEPTH = 64
"""Deepest nesting encoded; deeper values become opaque."""
MAX_NODES = 2_000_000
"""Most values in one encoded tree; larger values become opaque."""


class Opaque:
    """A value of a type the encoding does not carry: equal only to itself."""

    __slots__ = ("type_name",)

    def __init__(self, type_name: str):
        self.type_name = type_name

    def __repr__(self) -> str:
        return f"<unsupported {self.type_name}>"

    def __eq__(self, other):
        return self is other

    __hash__ = object.__hash__


class _TooLarge(Exception):
    pass


_SURROGATE = re.compile("[\ud800-\udfff]")


def _sorted(members: list) -> list:
    """Set members in a canonical order: iteration order follows string hashes, which differ per
    process (``python -I`` ignores PYTHONHASHSEED), and encoded inputs are compared as JSON."""
    return sorted(members, key=lambda tree: json.dumps(tree))


def _float_text(x: float) -> str:
    return float.__repr__(x)


def _numpy_item(value):
    """The Python value of a numpy scalar, or None if ``value`` is not one."""
    cls = type(value)
    if cls.__module__ != "numpy":
        return None
    item = getattr(value, "item", None)
    if item is None or getattr(value, "shape", None) != ():
        return None
    result = item()
    return None if type(result).__module__ == "numpy" else (result,)


def encode(value) -> list:
    """Tagged tree of ``value`` (never raises for ordinary objects)."""
    budget = [MAX_NODES]
    try:
        return _encode(value, 0, budget)
    except _TooLarge:
        return ["?", "value too large to compare"]


def _encode(value, depth: int, budget: list) -> list:
    budget[0] -= 1
    if budget[0] < 0:
        raise _TooLarge
    if depth > MAX_DEPTH:
        return ["?", "value nested too deeply"]
    if value is None:
        return ["n"]
    if value is True or value is False:
        return ["b", value is True]
    if isinstance(value, int):  # bool handled above; subclasses read as the int they hold
        return ["i", format(int.__index__(value), "x")]
    if isinstance(value, float):
        return ["f", _float_text(float.__float__(value))]
    if isinstance(value, complex):
        z = complex.__complex__(value)
        return ["c", _float_text(z.real), _float_text(z.imag)]
    if isinstance(value, str):
        text = str.__str__(value)
        if _SURROGATE.search(text):  # JSON would join a lone pair into one character: code points
            return ["sc", [ord(c) for c in text]]
        return ["s", text]
    if isinstance(value, (bytes, bytearray)):
        raw = bytes.__bytes__(value) if isinstance(value, bytes) else bytes(bytearray.__iter__(value))
        return ["y", base64.b64encode(raw).decode("ascii")]
    if isinstance(value, list):
        return ["l", [_encode(v, depth + 1, budget) for v in list.__iter__(value)]]
    if isinstance(value, tuple):
        return ["t", [_encode(v, depth + 1, budget) for v in tuple.__iter__(value)]]
    if isinstance(value, frozenset):
        return ["fs", _sorted([_encode(v, depth + 1, budget) for v in frozenset.__iter__(value)])]
    if isinstance(value, set):
        return ["set", _sorted([_encode(v, depth + 1, budget) for v in set.__iter__(value)])]
    if isinstance(value, dict):
        return ["d", [[_encode(k, depth + 1, budget), _encode(v, depth + 1, budget)] for k, v in dict.items(value)]]
    try:
        item = _numpy_item(value)
    except Exception:
        item = None
    if item is not None:
        return _encode(item[0], depth, budget)
    return ["?", f"{type(value).__module__}.{type(value).__qualname__}"[:200]]


def decode(tree) -> object:
    """Builtin value of an encoded tree; ``ValueError`` for anything not produced by ``encode``."""
    budget = [MAX_NODES]
    try:
        return _decode(tree, 0, budget)
    except (TypeError, KeyError, IndexError, RecursionError, OverflowError) as err:
        raise ValueError(f"malformed value: {type(err).__name__}: {err}"[:300]) from None


def _float(text) -> float:
    if not isinstance(text, str) or len(text) > 40:
        raise ValueError("malformed float")
    return float(text)


def _decode(tree, depth: int, budget: list):
    budget[0] -= 1
    if budget[0] < 0 or depth > MAX_DEPTH + 1:
        raise ValueError("value too large or deep")
    if not isinstance(tree, list) or not tree or not isinstance(tree[0], str):
        raise ValueError(f"malformed value node {str(tree)[:80]!r}")
    tag, rest = tree[0], tree[1:]

    def items() -> list:
        if len(rest) != 1 or not isinstance(rest[0], list):
            raise ValueError(f"malformed {tag!r} node")
        return [_decode(v, depth + 1, budget) for v in rest[0]]

    if tag == "n" and not rest:
        return None
    if tag == "b" and len(rest) == 1 and isinstance(rest[0], bool):
        return rest[0]
    if tag == "i" and len(rest) == 1 and isinstance(rest[0], str) and len(rest[0]) < 1_000_000:
        return int(rest[0], 16)
    if tag == "f" and len(rest) == 1:
        return _float(rest[0])
    if tag == "c" and len(rest) == 2:
        return complex(_float(rest[0]), _float(rest[1]))
    if tag == "s" and len(rest) == 1 and isinstance(rest[0], str):
        return rest[0]
    if tag == "sc" and len(rest) == 1 and isinstance(rest[0], list):
        budget[0] -= len(rest[0])
        if budget[0] < 0 or not all(isinstance(c, int) and 0 <= c <= 0x10FFFF for c in rest[0]):
            raise ValueError("malformed 'sc' node")
        return "".join(map(chr, rest[0]))
    if tag == "y" and len(rest) == 1 and isinstance(rest[0], str):
        return base64.b64decode(rest[0], validate=True)
    if tag == "l":
        return items()
    if tag == "t":
        return tuple(items())
    if tag == "set":
        return set(items())
    if tag == "fs":
        return frozenset(items())
    if tag == "d":
        if len(rest) != 1 or not isinstance(rest[0], list):
            raise ValueError("malformed 'd' node")
        out = {}
        for pair in rest[0]:
            if not isinstance(pair, list) or len(pair) != 2:
                raise ValueError("malformed dict entry")
            out[_decode(pair[0], depth + 1, budget)] = _decode(pair[1], depth + 1, budget)
        return out
    if tag == "?" and len(rest) == 1 and isinstance(rest[0], str):
        return Opaque(rest[0][:200])
    raise ValueError(f"malformed value node with tag {tag!r}")


def contains_opaque(tree) -> bool:
    """Whether an encoded tree holds a value the encoding could not carry (an ``?`` node)."""
    stack = [tree]
    while stack:
        node = stack.pop()
        if not isinstance(node, list) or not node or not isinstance(node[0], str):
            continue
        tag = node[0]
        if tag == "?":
            return True
        if tag in ("l", "t", "set", "fs") and len(node) == 2 and isinstance(node[1], list):
            stack.extend(node[1])
        elif tag == "d" and len(node) == 2 and isinstance(node[1], list):
            stack.extend(part for pair in node[1] if isinstance(pair, list) for part in pair)
    return False
