"""Per-problem metrics over the n samples of one problem; lm-eval averages them over problems.

- ``pass@1``: mean correctness over *all* n samples (the paper's "average over 64 samples"), not
  the first sample. Equals the unbiased pass@1 estimator.
- ``maj@n`` (math): the answer given by most samples, judged against the gold answer. Samples vote
  with their extracted answer's normalised string (``math_answers.normalize_answer``); samples
  without an answer (truncated reasoning, nothing extractable) do not vote; ties go to the answer
  seen first. 0 when no sample produced an answer.
- ``pass@k`` (code, k in 2, 4, 8, ... up to n): the unbiased estimator 1 - C(n-c, k) / C(n, k)
  of Chen et al. (2021), c = passing samples.
- ``truncated``: share of samples whose reasoning never closed (scored 0, see ``reasoning.py``).
- ``no_answer``: share of samples whose reasoning closed (or was absent) but that gave no
  extractable answer (math) or no fenced code block (code).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence

# pass@k columns declared in the task YAMLs; a task reports those with k <= its sample count.
PASS_AT_K_LADDER = (2, 4, 8, 16, 32, 64)


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased estimate of P(at least one of k samples passes) from c passes out of n samples."""
    if not 0 <= c <= n or not 1 <= k <= n:
        raise ValueError(f"pass@k needs 0 <= c <= n and 1 <= k <= n, got n={n}, c={c}, k={k}")
    if n - c < k:
        return 1.0
    prob_all_fail = 1.0
    for i in range(n - c + 1, n + 1):  # C(n-c, k) / C(n, k) as a stable product
        prob_all_fail *= 1.0 - k / i
    return 1.0 - prob_all_fail


def majority_vote(keys: Sequence[str | None]) -> int | None:
    """Index of the first sample holding the most common non-None key; None if nobody voted."""
    votes = Counter(k for k in keys if k is not None)
    if not votes:
        return None
    best = max(votes.values())
    return next(i for i, k in enumerate(keys) if k is not None and votes[k] == best)


def _share(flags: Sequence[bool]) -> float:
    return sum(flags) / len(flags)


def math_problem_metrics(samples: Sequence[dict]) -> dict[str, float]:
    """``samples``: graded records from ``hooks.grade_math`` (keys reasoning, answer, vote_key, correct)."""
    if not samples:
        raise ValueError("no samples to score: the model returned no completion for this problem")
    winner = majority_vote([s["vote_key"] for s in samples])
    return {
        "pass@1": _share([s["correct"] for s in samples]),
        "maj@n": float(winner is not None and samples[winner]["correct"]),
        "truncated": _share([s["reasoning"] == "truncated" for s in samples]),
        "no_answer": _share([s["reasoning"] != "truncated" and s["answer"] is None for s in samples]),
    }


def code_problem_metrics(samples: Sequence[dict]) -> dict[str, float]:
    """``samples``: graded records from ``hooks.grade_code`` (keys reasoning, has_code, passed)."""
    if not samples:
        raise ValueError("no samples to score: the model returned no completion for this problem")
    n, c = len(samples), sum(s["passed"] for s in samples)
    out = {"pass@1": c / n}
    out.update({f"pass@{k}": pass_at_k(n, c, k) for k in PASS_AT_K_LADDER if k <= n})
    out["truncated"] = _share([s["reasoning"] == "truncated" for s in samples])
    out["no_answer"] = _share([s["reasoning"] != "truncated" and not s["has_code"] for s in samples])
    return out
