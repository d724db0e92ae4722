"""The candidate's code (its final fenced block), and what each benchmark runs and compares.

HumanEval+/MBPP+ tests are assert programs: they are split into the candidate's definition (run on
inputs only) and a ``PlusTask`` the trusted harness uses to record the inputs and judge the
outputs (``plus_harness.py``). LiveCodeBench tests are (input, output) pairs: the candidate gets
the inputs, the supervisor keeps the outputs.
"""

from __future__ import annotations

import decimal
import json
import re
from dataclasses import dataclass
from typing import Literal

from . import value_codec
from .sandbox import CodeJob

# An opening fence with an optional language tag, the body, and a closing fence on its own line.
# (The info string after the tag cannot start with a tag character: no overlap, no quadratic scan.)
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)(?:[^\w+#.\n-][^\n]*)?\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
_PYTHON_TAGS = {"", "python", "python3", "py", "py3"}

# Names LeetCode-style (functional) solutions use without importing them, as LeetCode's own
# environment provides them. Prepended to LiveCodeBench candidates of both styles.
LEETCODE_PRELUDE = """\
import bisect, collections, functools, heapq, itertools, math, operator, random, re, string, sys
from bisect import bisect_left, bisect_right, insort
from collections import Counter, OrderedDict, defaultdict, deque
from functools import cache, cmp_to_key, lru_cache, reduce
from heapq import heapify, heappop, heappush, heappushpop, heapreplace, nlargest, nsmallest
from itertools import accumulate, chain, combinations, count, groupby, permutations, product
from math import ceil, comb, floor, gcd, inf, isqrt, lcm, log, log2, sqrt
from typing import *
sys.setrecursionlimit(50000)
"""


def extract_code(answer_text: str | None) -> str | None:
    """Body of the last complete fenced block in ``answer_text``, preferring Python-tagged (or
    untagged) blocks; None if there is no complete block."""
    if not answer_text:
        return None
    blocks = [(tag.lower(), body) for tag, body in _FENCE.findall(answer_text)]
    if not blocks:
        return None
    python_blocks = [body for tag, body in blocks if tag in _PYTHON_TAGS]
    code = python_blocks[-1] if python_blocks else blocks[-1][1]
    return code.strip("\n") or None


def _prompt_imports(prompt: str) -> str:
    """``import``/``from`` lines of a HumanEval prompt (typing imports the signature relies on)."""
    return "\n".join(line for line in prompt.splitlines() if re.match(r"(import|from)\s+\w", line))


@dataclass(frozen=True)
class PlusTask:
    """What the trusted harness needs for one HumanEval+/MBPP+ problem."""

    setup: str
    """Code defined before the test body (HumanEval+: the prompt; MBPP+: the test imports)."""
    solution: str
    """The dataset's reference solution, defined after ``setup`` (the entry point is then replaced
    by the recorder or the replay)."""
    test: str
    entry: str
    style: Literal["check", "name"]
    """``check``: the test defines ``check(candidate)``; ``name``: it calls ``entry`` by name."""


def plus_task(benchmark: str, problem: dict) -> PlusTask:
    if benchmark == "humaneval_plus":
        return PlusTask(
            problem["prompt"], problem["canonical_solution"], problem["test"], problem["entry_point"], "check"
        )
    if "entry_error" in problem:
        raise ValueError(problem["entry_error"])
    imports = "\n".join(problem.get("test_imports") or [])
    return PlusTask(imports, problem["code"], problem["test"], problem["entry_point"], "name")


def plus_candidate_source(benchmark: str, problem: dict, code: str) -> str:
    """The candidate's definitions. HumanEval+: the full function (with the prompt's imports), or
    the prompt completed with a body-only answer; MBPP+: the test imports, then the code."""
    if benchmark == "humaneval_plus":
        entry = problem["entry_point"]
        if re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
            return _prompt_imports(problem["prompt"]) + "\n\n" + code + "\n"
        return problem["prompt"] + code + "\n"
    imports = "\n".join(problem.get("test_imports") or [])
    return f"{imports}\n\n{code}\n"


def plus_job(benchmark: str, problem: dict, code: str, inputs: list) -> CodeJob:
    """Call the candidate's entry point on each recorded input (encoded argument lists)."""
    source = plus_candidate_source(benchmark, problem, code)
    return CodeJob("call", source, tuple(inputs), func_name=problem["entry_point"])


def _big_int(text: str) -> int:
    """JSON integers of any length (Python's default int parser stops at 4,300 digits)."""
    return int(decimal.Decimal(text)) if len(text) > 4000 else int(text)


def _json(text: str):
    return json.loads(text, parse_int=_big_int)


def livecodebench_job(problem: dict, code: str, test_timeout_s: float) -> tuple[CodeJob, list]:
    """LiveCodeBench: the job (public + private inputs; stdin programs or ``Solution`` methods) and
    the expected outputs, which stay with the caller. Functional inputs are one JSON value a line."""
    source = LEETCODE_PRELUDE + "\n" + code + "\n"
    tests = problem["tests"]
    if problem["style"] == "functional":
        inputs = tuple(
            value_codec.encode([_json(line) for line in t["input"].split("\n") if line.strip()]) for t in tests
        )
        expected = [_json(t["output"]) for t in tests]
        job = CodeJob(
            "call", source, inputs, func_name=problem["func_name"], call_style="method", test_timeout_s=test_timeout_s
        )
        return job, expected
    job = CodeJob("stdio", source, tuple(t["input"] for t in tests), test_timeout_s=test_timeout_s)
    return job, [t["output"] for t in tests]
