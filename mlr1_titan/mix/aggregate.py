"""The paper's aggregation of sample influences into mixture weights (Eqs. 3-6), as we read it.

Per sample x_i of source g, with I_{c,t}(x_i) its influence on capability c at checkpoint t of that
capability's domain model (gradients.py):

  * Eq. 3-4, joint influence: I(x_i) = sum_c (1/C) sum_t alpha_{c,t} I_{c,t}(x_i), with
    alpha_{c,t} = t / sum_t' t' (weights grow linearly over the T checkpoints and sum to 1 per
    capability; the paper says "proportional to t" and gives no normalisation) and equal weight 1/C
    for the C capabilities.
  * Eq. 5, source score: rho_g = sum_{i in g} I(x_i) s_i / N_g, s_i the scored token length of x_i
    and N_g = sum_{i in g} s_i (the token count of the scored samples of g).
  * Eq. 6, weights: w_g = rho_g / sum rho. The paper does not say what a negative rho_g means for a
    weight; ours: a source whose tokens on average raise the probe loss gets weight 0
    (w_g = max(rho_g, 0) / sum max(rho, 0)), and the report lists it. If no source has rho > 0
    there is no mixture to write and that is an error.

Step D (filter.py) uses the same joint influence with T = 1, and Eq. 5 over the kept samples only
(numerator), still divided by the tokens of all of the source's candidates.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from mlr1_titan.mix.errors import InfluenceError


@dataclass(frozen=True)
class Evaluation:
    """One column of the influence matrix: capability c at the t-th checkpoint of its domain model."""

    capability: str
    checkpoint: int
    """Index into the run's checkpoint list."""
    t: int
    """1-based position among the capability's checkpoints."""
    weight: float
    """alpha_{c,t} / C: this column's share of the joint influence."""


def evaluations(checkpoints_per_capability: dict[str, list[int]]) -> list[Evaluation]:
    """Columns for capabilities -> their checkpoint indices (in step order), with Eq. 3-4 weights."""
    n_caps = len(checkpoints_per_capability)
    out = []
    for capability, indices in checkpoints_per_capability.items():
        total = sum(range(1, len(indices) + 1))
        for t, k in enumerate(indices, 1):
            out.append(Evaluation(capability, k, t, t / total / n_caps))
    return out


@dataclass(frozen=True)
class SourceScore:
    name: str
    samples: int
    tokens: int
    rho: float
    """Eq. 5 over every evaluation (the joint influence)."""
    weight: float
    """Eq. 6, negative rho clipped to 0."""
    per_capability: dict[str, float]
    """Eq. 5 restricted to one capability (its checkpoints, alpha-weighted, not divided by C)."""
    per_checkpoint: dict[str, list[float]]
    """Eq. 5 of each single checkpoint, per capability, in step order (the spread across checkpoints)."""


def joint_influence(influence_NE: np.ndarray, evals: list[Evaluation]) -> np.ndarray:
    return influence_NE @ np.array([e.weight for e in evals], dtype=np.float64)


def _token_mean(values_N: np.ndarray, tokens_N: np.ndarray) -> float:
    return float((values_N * tokens_N).sum() / tokens_N.sum())


def source_scores(
    sources: list[str],
    source_N: np.ndarray,
    tokens_N: np.ndarray,
    influence_NE: np.ndarray,
    evals: list[Evaluation],
    keep_N: np.ndarray | None = None,
) -> list[SourceScore]:
    """Eq. 5-6 per source. `keep_N`: only these samples count in the numerator (step D)."""
    joint_N = joint_influence(influence_NE, evals)
    if keep_N is not None:
        joint_N = np.where(keep_N, joint_N, 0.0)
    caps = list(dict.fromkeys(e.capability for e in evals))
    rows = []
    for g, name in enumerate(sources):
        sel = source_N == g
        if not sel.any():
            raise InfluenceError(f"source '{name}' has no scored sample")
        tok = tokens_N[sel].astype(np.float64)
        per_cap, per_ckpt = {}, {}
        for cap in caps:
            cols = [i for i, e in enumerate(evals) if e.capability == cap]
            alpha = np.array([evals[i].t for i in cols], dtype=np.float64)
            alpha /= alpha.sum()
            per_cap[cap] = _token_mean(influence_NE[sel][:, cols] @ alpha, tok)
            per_ckpt[cap] = [_token_mean(influence_NE[sel][:, i], tok) for i in cols]
        rows.append((name, int(sel.sum()), int(tok.sum()), _token_mean(joint_N[sel], tok), per_cap, per_ckpt))
    positive = sum(max(r[3], 0.0) for r in rows)
    if positive <= 0:
        raise InfluenceError(
            "no source has a positive influence score (rho_g <= 0 for all: "
            + ", ".join(f"{r[0]} {r[3]:.3g}" for r in rows)
            + "); the probes are not helped by any source at these checkpoints, so there is no mixture to write"
        )
    return [
        SourceScore(name, n, tok, rho, max(rho, 0.0) / positive, per_cap, per_ckpt)
        for name, n, tok, rho, per_cap, per_ckpt in rows
    ]
