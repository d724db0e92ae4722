"""The synthetic demo corpus: short worked arithmetic and counting documents, deterministic per seed.

A few-million-parameter model visibly learns it within 50 steps. The shipped copy
(``mlr1 paths demo_corpus``, read by the ``demo`` mix) is ``write_corpus(path)`` with the defaults;
a test keeps the two identical.
"""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

_NAMES = ["Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "June"]
_ITEMS = ["apples", "books", "coins", "marbles", "pencils", "shells", "stamps", "tickets"]


def _document(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        return (
            f"{name} has {a} {item} and finds {b} more. How many {item} does {name} have now? "
            f"We add {a} and {b}: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
        )
    if kind == 1:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"Multiplication table: {a} times {b} is {a * b}. So {a} x {b} = {a * b} and {b} x {a} = {a * b}."
    start, step = rng.randint(0, 50), rng.randint(1, 9)
    seq = ", ".join(str(start + i * step) for i in range(8))
    return f"Count by {step} starting at {start}: {seq}. Each number is {step} more than the one before."


def write_corpus(path: str | os.PathLike, n_docs: int = 4000, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n_docs):
            f.write(json.dumps({"text": _document(rng)}) + "\n")
    return path
