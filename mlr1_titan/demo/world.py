"""The demo's small world: the words its problems are made of, and the split of problems into
training and held-out ones. A held-out math problem has an operand triple (a, b, op) that no training
document or conversation contains; a held-out code problem has a constant no training function uses.
(Names and objects are shared: a model this small cannot answer about words it never saw.)"""

from __future__ import annotations

import random

NAMES = ("Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "June", "Kofi", "Lena")
ITEMS = ("apples", "books", "coins", "marbles", "pencils", "shells", "stamps", "tickets", "cards", "beads")

NOUNS = ("river", "garden", "library", "forest", "harbor", "meadow", "village", "mountain", "market", "station")
VERBS = ("walks past", "paints", "remembers", "visits", "describes", "leaves", "finds", "watches")
ADJS = ("quiet", "old", "green", "bright", "narrow", "distant", "busy", "calm")

# The code problems: small functions of one integer, one family per template. Training problems use
# the constants in TRAIN_CONSTANTS, held-out problems the others.
TRAIN_CONSTANTS = tuple(k for k in range(2, 40) if k % 5 != 0)
HELDOUT_CONSTANTS = (5, 15, 25, 35)


def operands(rng: random.Random, heldout: bool) -> tuple[int, int, str]:
    """Two operands and an operator ("+" or "-", a non-negative difference): a held-out triple
    (``is_heldout_pair``, a fifth of them) or a training one."""
    while True:
        a, b = rng.randint(10, 99), rng.randint(2, 49)
        op = "+" if rng.random() < 0.5 else "-"
        if op == "-" and b > a:
            a, b = b, a
        if is_heldout_pair(a, b, op) == heldout:
            return a, b, op


def is_heldout_pair(a: int, b: int, op: str) -> bool:
    """A fixed fifth of the triples; a sum and its commutative twin (b + a) fall on the same side."""
    if op == "+":
        a, b = min(a, b), max(a, b)
    return (a * 31 + b * 7 + (op == "+")) % 5 == 0


def apply(a: int, b: int, op: str) -> int:
    return a + b if op == "+" else a - b


def digit_steps(a: int, b: int, op: str) -> str:
    """The column-by-column working of ``a op b``, the reasoning the demo's SFT data teaches."""
    if op == "+":
        units = a % 10 + b % 10
        carry = units // 10
        tens = a // 10 + b // 10 + carry
        return (
            f"Units: {a % 10} + {b % 10} = {units}, write {units % 10} and carry {carry}. "
            f"Tens: {a // 10} + {b // 10} + {carry} = {tens}. So {a} + {b} = {a + b}."
        )
    borrow = 1 if a % 10 < b % 10 else 0
    units = a % 10 + 10 * borrow - b % 10
    tens = a // 10 - borrow - b // 10
    return (
        f"Units: {a % 10 + 10 * borrow} - {b % 10} = {units}, borrow {borrow}. "
        f"Tens: {a // 10} - {borrow} - {b // 10} = {tens}. So {a} - {b} = {a - b}."
    )
