"""Held-out evaluation problems in the ``r1_*`` tasks' local data format (``mlr1 eval --data-dir``).

``gsm8k.jsonl``: word problems (``question``, ``answer`` ending ``#### N``) whose operand triple no
training document or conversation contains (``world``); ``humaneval_plus.jsonl``:
function-completion problems with constants no training function uses, each with a test program.
"""

from __future__ import annotations

import random

from mlr1_titan.demo import world
from mlr1_titan.demo.documents import small_function, word_problem


def math_problems(n: int, seed: int) -> list[dict]:
    rng = random.Random(f"heldout-math:{seed}")
    seen, rows = set(), []
    while len(rows) < n:
        question, a, b, op = word_problem(rng, heldout=True)
        if question in seen:
            continue
        seen.add(question)
        rows.append({"question": question, "answer": f"{world.digit_steps(a, b, op)}\n#### {world.apply(a, b, op)}"})
    return rows


def code_problems(n: int, seed: int) -> list[dict]:
    """Up to ``n`` distinct problems (there are 3 kinds x len(HELDOUT_CONSTANTS) in all)."""
    rng = random.Random(f"heldout-code:{seed}")
    seen, rows = set(), []
    inputs = [0, 1, -3, 7, 12, 100]
    while len(rows) < min(n, 3 * len(world.HELDOUT_CONSTANTS)):
        function = small_function(rng, heldout=True)
        if function.name in seen:
            continue
        seen.add(function.name)
        test = (
            "def check(candidate):\n"
            f"    for x, want in zip({inputs!r}, {[function(x) for x in inputs]!r}):\n"
            "        assert candidate(x) == want, (x, want)\n"
        )
        rows.append(
            {
                "task_id": f"Demo/{len(rows)}",
                "prompt": function.signature,
                "canonical_solution": function.body,
                "entry_point": function.name,
                "test": test,
            }
        )
    return rows
