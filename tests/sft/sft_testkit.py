"""Small synthetic chat data sets for SFT tests (written here, nothing copied)."""

from __future__ import annotations

import json
import random
from pathlib import Path

_WORDS = ["amber", "basil", "cedar", "delta", "ember", "flint", "grove", "harbor", "iris", "juniper"]


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


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for row in rows:
            f.write(json.dumps(row) + "\n")
    return path


def write_chat_sets(root: Path, n: int = 200, seed: int = 0) -> dict[str, Path]:
    """math.jsonl (qa rows with <think>) and words.jsonl (multi-turn messages), plus held-out copies."""
    rng = random.Random(seed)
    files = {}
    for split, count in (("train", n), ("heldout", max(8, n // 8))):
        files[f"math_{split}"] = write_jsonl(
            root / split / "math.jsonl", [arithmetic_conversation(rng, True) for _ in range(count)]
        )
        files[f"words_{split}"] = write_jsonl(
            root / split / "words.jsonl", [word_conversation(rng) for _ in range(count)]
        )
    return files


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
