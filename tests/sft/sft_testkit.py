"""Small synthetic chat data sets for SFT tests (written here, nothing copied)."""

from __future__ import annotations

import json
import random
from pathlib import Path

_WORDS = ["amber", "basil", "cedar", "delta", "ember", "flint", "grove", "harbor", "iris", "juniper"]
_HELDOUT_WORDS = ["kestrel", "lotus", "marble", "nectar", "orchid", "pepper", "quartz", "raven"]


def arithmetic_conversation(rng: random.Random, with_reasoning: bool) -> dict:
    a, b = rng.randint(2, 60), rng.randint(2, 60)
    answer = f"The answer is \\boxed{{{a + b}}}."
    response = f"<think>\n{a} plus {b}: {a} + {b} = {a + b}.\n</think>\n\n{answer}" if with_reasoning else answer
    return {"problem": f"What is {a} + {b}?", "generated_solution": response}


def word_conversation(rng: random.Random) -> dict:
    word = rng.choice(_WORDS)
    turns = [
        {"role": "user", "content": f"Spell the word {word} backwards."},
        {"role": "assistant", "content": word[::-1]},
    ]
    if rng.random() < 0.5:
        other = rng.choice(_WORDS)
        turns += [
            {"role": "user", "content": f"And {other}?"},
            {"role": "assistant", "content": other[::-1]},
        ]
    if rng.random() < 0.3:
        turns.insert(0, {"role": "system", "content": "Answer with one word."})
    return {"messages": turns}


def heldout_arithmetic_conversation(rng: random.Random) -> dict:
    """Another template than ``arithmetic_conversation``: other wording, other reasoning, other numbers."""
    a, b = rng.randint(61, 99), rng.randint(61, 99)
    question = rng.choice(["Add {a} and {b}.", "Find the sum of {a} and {b}.", "Compute {a} plus {b}."])
    response = f"<think>\nSumming {a} with {b} gives {a + b}.\n</think>\n\nThe answer is \\boxed{{{a + b}}}."
    return {"problem": question.format(a=a, b=b), "generated_solution": response}


def heldout_word_conversation(rng: random.Random) -> dict:
    """Another template than ``word_conversation``: other wording and words never trained on."""
    word = rng.choice(_HELDOUT_WORDS)
    return {
        "messages": [
            {"role": "user", "content": f"Reverse the letters of {word}."},
            {"role": "assistant", "content": word[::-1]},
        ]
    }


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def write_chat_sets(root: Path, n: int = 200, seed: int = 0) -> dict[str, Path]:
    """math.jsonl (qa rows with <think>) and words.jsonl (multi-turn messages) for training, and held-out
    sets of the same two skills written by other generators (other templates, numbers and words)."""
    rng = random.Random(seed)
    count = max(8, n // 8)
    return {
        "math_train": write_jsonl(
            root / "train" / "math.jsonl", [arithmetic_conversation(rng, True) for _ in range(n)]
        ),
        "words_train": write_jsonl(root / "train" / "words.jsonl", [word_conversation(rng) for _ in range(n)]),
        "math_heldout": write_jsonl(
            root / "heldout" / "math.jsonl", [heldout_arithmetic_conversation(rng) for _ in range(count)]
        ),
        "words_heldout": write_jsonl(
            root / "heldout" / "words.jsonl", [heldout_word_conversation(rng) for _ in range(count)]
        ),
    }


def write_chat_mix(
    path: Path, math_file: Path, words_file: Path, math_weight: float = 1.0, words_weight: float = 1.0
) -> Path:
    path.write_text(
        f'name = "{path.stem}"\n'
        "[[sources]]\n"
        f'name = "math"\nkind = "local"\npath = "{math_file.as_posix()}"\nformat = "qa"\n'
        'prompt_field = "problem"\nresponse_field = "generated_solution"\nsplit_think = true\n'
        f'domain = "math"\nweight = {math_weight}\n'
        "[[sources]]\n"
        f'name = "words"\nkind = "local"\npath = "{words_file.as_posix()}"\nformat = "messages"\n'
        f"weight = {words_weight}\n"
    )
    return path
