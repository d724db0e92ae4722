"""The synthetic demo corpus: short worked arithmetic and counting documents, deterministic per seed.

A few-million-parameter model visibly learns it within 50 steps. The shipped copy
(``mlr1 paths demo_corpus``, read by the ``demo`` mix) is ``write_corpus(path)`` with the defaults;
a test keeps the two identical.

``heldout_documents`` is text of *other* templates over the same words (subtraction, doubling,
comparisons, counting down), for measuring what a model learnt beyond the corpus it was trained on.
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


def read_texts(path: str | os.PathLike | None = None) -> list[str]:
    """The ``text`` field of every line of a jsonl file; default: the shipped demo corpus."""
    from mlr1_titan.resources import demo_corpus_file

    with open(path or demo_corpus_file()) as f:
        return [json.loads(line)["text"] for line in f if line.strip()]


def write_corpus(path: str | os.PathLike, n_docs: int = 4000, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n_docs):
            f.write(json.dumps({"text": _document(rng)}) + "\n")
    return path


def _heldout_document(rng: random.Random) -> str:
    kind = rng.randrange(4)
    name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
    if kind == 0:
        a = rng.randint(20, 99)
        b = rng.randint(2, a - 1)
        return (
            f"{name} had {a} {item} and gave {b} away. How many {item} are left? "
            f"We subtract: {a} - {b} = {a - b}. The answer is \\boxed{{{a - b}}}."
        )
    if kind == 1:
        a = rng.randint(2, 49)
        return f"Doubling {a} gives {2 * a}, and doubling {2 * a} gives {4 * a}. So four times {a} is {4 * a}."
    if kind == 2:
        a, b = rng.sample(range(2, 99), 2)
        big = max(a, b)
        return f"Which is larger, {a} or {b}? Since {big} is more than {min(a, b)}, the larger number is {big}."
    start, step = rng.randint(40, 99), rng.randint(1, 5)
    seq = ", ".join(str(start - i * step) for i in range(7))
    return f"{name} counts down by {step} from {start}: {seq}. Each number is {step} less than the one before."


def heldout_documents(n_docs: int = 200, seed: int = 1) -> list[str]:
    """Documents from templates the demo corpus does not use (held-out text for learning checks)."""
    rng = random.Random(seed)
    return [_heldout_document(rng) for _ in range(n_docs)]
