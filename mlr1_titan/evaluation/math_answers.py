"""Final-answer extraction for math benchmarks, in the order the paper's harness uses.

MobileLLM-R1's released math eval (a fork of the Qwen2.5-Math harness, paper_facts §4.1) takes the
content of the last brace-matched ``\\boxed{...}``; failing that, the text after "the answer is" /
"final answer is"; failing that, the last number. We apply the same order to the *final answer*
only (text after ``</think>``, see ``reasoning.py``); equivalence is then judged by math-verify.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Method = Literal["boxed", "answer_phrase", "last_number"]

_BOX_COMMANDS = ("\\boxed", "\\fbox")
# "The final answer is $x$", "the answer is: 12"; the last occurrence wins.
_ANSWER_PHRASE = re.compile(r"(?:final answer|the answer)\s*(?:is|:)\s*:?\s*", re.IGNORECASE)
_HOPE_SUFFIX = re.compile(r"\.?\s*I hope it is correct\.?\s*$", re.IGNORECASE)
# Integers with optional thousands separators, decimals, and simple a/b fractions.
_NUMBER = re.compile(r"-?\d+(?:,\d{3})*(?:\.\d+)?(?:/\d+)?|-?\.\d+")


@dataclass(frozen=True, slots=True)
class ExtractedAnswer:
    text: str
    """The answer string, without surrounding ``$`` or ``\\boxed``."""
    method: Method
    """Which rule found it: ``boxed``, ``answer_phrase`` or ``last_number``."""


def _braced_argument(text: str, open_brace: int) -> str | None:
    """Content of the group opening at ``text[open_brace] == '{'``; None if it never closes."""
    depth = 0
    for i in range(open_brace, len(text)):
        ch = text[i]
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                return text[open_brace + 1 : i]
    return None


def last_boxed(text: str) -> str | None:
    """Content of the last complete ``\\boxed{...}`` / ``\\fbox{...}`` (or ``\\boxed 5``) in ``text``.

    Braces are matched, so ``\\boxed{\\frac{1}{2}}`` gives ``\\frac{1}{2}``. A box cut off before its
    closing brace is skipped in favour of the previous complete one.
    """
    command_ends = sorted(m.end() for cmd in _BOX_COMMANDS for m in re.finditer(re.escape(cmd), text))
    for end in reversed(command_ends):
        rest = text[end:]
        stripped = rest.lstrip()
        if stripped.startswith("{"):
            content = _braced_argument(text, end + (len(rest) - len(stripped)))
            if content is not None:
                return content.strip()
        elif rest[:1] == " ":  # "\boxed 5": the argument runs to the next space or '$'
            token = re.match(r"\s+([^\s$]+)", rest)
            if token:
                return token.group(1).strip()
    return None


def _strip_math_delimiters(s: str) -> str:
    s = s.strip()
    for left, right in (("$$", "$$"), ("$", "$"), ("\\(", "\\)"), ("\\[", "\\]")):
        if s.startswith(left) and s.endswith(right) and len(s) >= len(left) + len(right):
            s = s[len(left) : len(s) - len(right)].strip()
    return s


def extract_math_answer(answer_text: str | None) -> ExtractedAnswer | None:
    """The final answer in ``answer_text`` (the post-reasoning text), or None if there is none."""
    if not answer_text:
        return None
    boxed = last_boxed(answer_text)
    if boxed:
        return ExtractedAnswer(boxed, "boxed")
    phrases = list(_ANSWER_PHRASE.finditer(answer_text))
    if phrases:
        tail = answer_text[phrases[-1].end() :].split("\n", 1)[0]
        tail = _HOPE_SUFFIX.sub("", tail).strip().rstrip(".").strip()
        tail = _strip_math_delimiters(tail).rstrip(".").strip()
        if tail:
            return ExtractedAnswer(tail, "answer_phrase")
    numbers = _NUMBER.findall(answer_text)
    if numbers:
        return ExtractedAnswer(numbers[-1].replace(",", ""), "last_number")
    return None


_TEXT_COMMANDS = re.compile(r"\\(?:text|textbf|textrm|mathrm|mathbf|mbox)\s*\{([^{}]*)\}")
_SPACING = re.compile(r"\\[!,;:]|\\quad|\\qquad|\\left|\\right|\s+")
_DEGREES = re.compile(r"\^\s*\{?\\circ\}?")
_THOUSANDS = re.compile(r"^-?\d{1,3}(?:,\d{3})+(?:\.\d+)?$")


def normalize_answer(answer: str) -> str:
    """A canonical string form: the majority-vote key, and a fast exact-match check before math-verify.

    Removes ``$``, spacing commands, ``\\left``/``\\right``, ``\\text{}``-style wrappers, degree
    signs, thousands separators and leading zeros of integers; ``\\dfrac``/``\\tfrac`` become ``\\frac``.
    """
    s = _strip_math_delimiters(answer).replace("$", "")
    s = s.replace("\\dfrac", "\\frac").replace("\\tfrac", "\\frac").replace("\\%", "%")
    s = _DEGREES.sub("", s)
    s = _TEXT_COMMANDS.sub(r"\1", s)
    s = _SPACING.sub("", s)
    s = s.rstrip(".")
    if _THOUSANDS.match(s):
        s = s.replace(",", "")
    if re.fullmatch(r"-?\d+", s):
        s = str(int(s))
    return s
