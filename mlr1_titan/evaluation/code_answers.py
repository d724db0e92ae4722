"""The candidate's code (its final fenced block) and the test program each benchmark runs on it."""

from __future__ import annotations

import re

from .sandbox import CodeJob

# An opening fence with an optional language tag, the body, and a closing fence on its own line.
_FENCE = re.compile(r"^[ \t]*```[ \t]*([\w+#.-]*)[^\n]*\n(.*?)^[ \t]*```", re.DOTALL | re.MULTILINE)
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


def humaneval_plus_job(problem: dict, code: str) -> CodeJob:
    """HumanEval+: the candidate (full function, or only its body), the plus ``test`` and ``check``."""
    entry = problem["entry_point"]
    if re.search(rf"^\s*(async\s+)?def\s+{re.escape(entry)}\s*\(", code, re.MULTILINE):
        body = _prompt_imports(problem["prompt"]) + "\n\n" + code
    else:  # the model answered with the body only: complete the prompt's signature with it
        body = problem["prompt"] + code
    program = f"{body}\n\n{problem['test']}\n\ncheck({entry})\n"
    return CodeJob("program", program)


def mbpp_plus_job(problem: dict, code: str) -> CodeJob:
    """MBPP+: the dataset's ``test_imports``, the candidate, then the full MBPP+ ``test`` field."""
    imports = "\n".join(problem.get("test_imports") or [])
    return CodeJob("program", f"{imports}\n\n{code}\n\n{problem['test']}\n")


def livecodebench_job(problem: dict, code: str) -> CodeJob:
    """LiveCodeBench: public + private tests, stdin/stdout programs or ``Solution`` methods."""
    source = LEETCODE_PRELUDE + "\n" + code + "\n"
    tests = tuple({"input": t["input"], "output": t["output"]} for t in problem["tests"])
    if problem["style"] == "functional":
        return CodeJob("call", source, tests, func_name=problem["func_name"])
    return CodeJob("stdio", source, tests)


JOB_BUILDERS = {
    "humaneval_plus": humaneval_plus_job,
    "mbpp_plus": mbpp_plus_job,
    "livecodebench": livecodebench_job,
}
