"""Chat SFT rows of the demo, in the ``qa`` format of the chat mixes (``prompt`` / ``response``).

* general (the Tulu-3 stand-in): short instructions with direct answers, no reasoning;
* reasoning (the OpenMathReasoning / OpenCodeReasoning stand-ins): math word problems and small
  function-completion problems whose responses carry ``<think>`` reasoning before the answer. The
  prompts are the ones the ``r1_gsm8k`` / ``r1_humaneval_plus`` tasks send (the bare question; the
  code task's completion instruction), so SFT teaches the format the evaluation asks in.
"""

from __future__ import annotations

import random

from mlr1_titan.demo import world
from mlr1_titan.demo.documents import small_function, word_problem
from mlr1_titan.evaluation.benchmarks import humaneval_prompt

_COLORS = ("red", "blue", "green", "yellow", "purple", "orange")


def _general(rng: random.Random) -> dict:
    kind = rng.randrange(4)
    if kind == 0:
        word = rng.choice(world.NOUNS)
        n = rng.randint(2, 4)
        return {"prompt": f"Repeat the word {word} {n} times.", "response": " ".join([word] * n)}
    if kind == 1:
        n = rng.randint(1, 98)
        return {"prompt": f"What number comes after {n}?", "response": f"The number after {n} is {n + 1}."}
    if kind == 2:
        word = rng.choice(world.NOUNS)
        return {"prompt": f"Write the word {word} in capital letters.", "response": word.upper()}
    color = rng.choice(_COLORS)
    return {
        "prompt": f"Write a short sentence about a {color} {rng.choice(world.NOUNS)}.",
        "response": f"The {color} {rng.choice(world.NOUNS)} is {rng.choice(world.ADJS)}.",
    }


def math_row(rng: random.Random) -> dict:
    question, a, b, op = word_problem(rng)
    reasoning = world.digit_steps(a, b, op)
    return {
        "prompt": question,
        "response": f"<think>\n{reasoning}\n</think>\n\nThe answer is \\boxed{{{world.apply(a, b, op)}}}.",
    }


def code_row(rng: random.Random) -> dict:
    function = small_function(rng)
    what = function.signature.split('"""')[1].rstrip(".")
    reasoning = f"The function must {what[0].lower()}{what[1:]}, so its body is one return statement."
    code = function.signature.split("\n")[0] + "\n" + function.body
    return {
        "prompt": humaneval_prompt(function.signature),
        "response": f"<think>\n{reasoning}\n</think>\n\n```python\n{code}```",
    }


def general_rows(n: int, seed: int) -> list[dict]:
    rng = random.Random(f"general:{seed}")
    return [_general(rng) for _ in range(n)]


def reasoning_rows(n: int, seed: int, code_fraction: float = 0.3) -> list[dict]:
    rng = random.Random(f"reasoning:{seed}")
    return [code_row(rng) if rng.random() < code_fraction else math_row(rng) for _ in range(n)]
