"""Pre-training documents of the demo: several sources of known value for math and code.

* ``math``: worked word problems that end in ``\\boxed{}`` (the capability the math probes test);
* ``code``: Python functions, from the standard library's own source (offline) and small
  one-line functions of the kind the held-out code problems ask for;
* ``prose``: generated English sentences without numbers;
* ``noise``: random printable characters (the source influence scoring should drop).
Probes (``probes``) are new documents of the math and code generators, as the paper's probing sets
are samples of each domain's corpus.
"""

from __future__ import annotations

import ast
import inspect
import random
import string
from dataclasses import dataclass

from mlr1_titan.demo import world

SOURCES = ("math", "code", "prose", "noise")

_STDLIB_MODULES = ("textwrap", "colorsys", "bisect", "heapq", "fnmatch", "statistics", "calendar", "shlex", "glob")


def word_problem(rng: random.Random, heldout: bool = False) -> tuple[str, int, int, str]:
    """(question, a, b, op) of one word problem."""
    name, item = rng.choice(world.NAMES), rng.choice(world.ITEMS)
    a, b, op = world.operands(rng, heldout)
    if op == "+":
        verb = rng.choice(("finds", "buys", "gets"))
        question = f"{name} has {a} {item} and {verb} {b} more. How many {item} does {name} have now?"
    else:
        verb = rng.choice(("gives away", "loses", "sells"))
        question = f"{name} has {a} {item} and {verb} {b} of them. How many {item} does {name} have left?"
    return question, a, b, op


def _math(rng: random.Random) -> str:
    question, a, b, op = word_problem(rng)
    return f"{question} {world.digit_steps(a, b, op)} The answer is \\boxed{{{world.apply(a, b, op)}}}."


_FUNCTION_KINDS = {"add": ("plus", "+"), "times": ("times", "*"), "minus": ("minus", "-")}


@dataclass(frozen=True)
class SmallFunction:
    """A one-line function of one integer: ``kind`` applied with the constant ``k``."""

    kind: str
    k: int

    @property
    def name(self) -> str:
        return f"{self.kind}_{self.k}"

    @property
    def signature(self) -> str:
        """The ``def`` line and the docstring (the problem's stub)."""
        return f'def {self.name}(x: int) -> int:\n    """Return x {_FUNCTION_KINDS[self.kind][0]} {self.k}."""\n'

    @property
    def body(self) -> str:
        return f"    return x {_FUNCTION_KINDS[self.kind][1]} {self.k}\n"

    def __call__(self, x: int) -> int:
        return {"add": x + self.k, "times": x * self.k, "minus": x - self.k}[self.kind]


def small_function(rng: random.Random, heldout: bool = False) -> SmallFunction:
    k = rng.choice(world.HELDOUT_CONSTANTS if heldout else world.TRAIN_CONSTANTS)
    return SmallFunction(rng.choice(tuple(_FUNCTION_KINDS)), k)


def stdlib_functions() -> list[str]:
    """Every top-level function of a few pure-Python standard-library modules, as source text."""
    import importlib

    out = []
    for module_name in _STDLIB_MODULES:
        source = inspect.getsource(importlib.import_module(module_name))
        for node in ast.parse(source).body:
            if isinstance(node, ast.FunctionDef):
                segment = ast.get_source_segment(source, node)
                if segment and len(segment) < 1500:
                    out.append(segment)
    return out


def _code(rng: random.Random, stdlib: list[str]) -> str:
    if rng.random() < 0.5:
        return rng.choice(stdlib)
    function = small_function(rng)
    return function.signature + function.body


def _prose(rng: random.Random) -> str:
    return " ".join(
        f"{rng.choice(world.NAMES)} {rng.choice(world.VERBS)} the {rng.choice(world.ADJS)} "
        f"{rng.choice(world.NOUNS)} near the {rng.choice(world.NOUNS)}."
        for _ in range(rng.randint(2, 4))
    )


def _noise(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(60, 120)))


def source_documents(name: str, n: int, seed: int) -> list[str]:
    """``n`` documents of source ``name``, deterministic in ``seed``."""
    rng = random.Random(f"{name}:{seed}")
    stdlib = stdlib_functions() if name == "code" else []
    make = {
        "math": lambda: _math(rng),
        "code": lambda: _code(rng, stdlib),
        "prose": lambda: _prose(rng),
        "noise": lambda: _noise(rng),
    }[name]
    return [make() for _ in range(n)]


def probe_documents(capability: str, n: int, seed: int) -> list[str]:
    """Probes of ``capability`` ("math" or "code"): new documents of that generator."""
    rng = random.Random(f"probe:{capability}:{seed}")
    if capability == "math":
        return [_math(rng) for _ in range(n)]
    return [(f := small_function(rng)).signature + f.body for _ in range(n)]
