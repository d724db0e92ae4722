"""The paper's aggregation (Eqs. 3-6) against the formulas written out by hand."""

from __future__ import annotations

import numpy as np
import pytest

from mlr1_titan.mix.aggregate import evaluations, source_scores
from mlr1_titan.mix.errors import InfluenceError


def test_checkpoint_weights_grow_with_t_and_capabilities_weigh_the_same():
    evals = evaluations({"code": [0, 1, 2], "math": [3, 4]})
    code = [e.weight for e in evals if e.capability == "code"]
    math = [e.weight for e in evals if e.capability == "math"]
    assert code == pytest.approx([1 / 6 / 2, 2 / 6 / 2, 3 / 6 / 2])
    assert math == pytest.approx([1 / 3 / 2, 2 / 3 / 2])
    assert [e.t for e in evals] == [1, 2, 3, 1, 2]


def test_source_scores_are_token_weighted_means_of_the_joint_influence_clipped_at_zero():
    evals = evaluations({"code": [0, 1], "math": [2]})
    influence = np.array([[1.0, 2.0, 3.0], [0.0, -1.0, 1.0], [-4.0, -4.0, -1.0], [-1.0, 0.0, 1.0]])
    source = np.array([0, 0, 1, 1])
    tokens = np.array([10, 30, 5, 15])
    # joint = 1/2 * (1/3 * I0 + 2/3 * I1) + 1/2 * I2
    joint = 0.5 * (influence[:, 0] / 3 + 2 * influence[:, 1] / 3) + 0.5 * influence[:, 2]
    rho_a = (joint[0] * 10 + joint[1] * 30) / 40
    rho_b = (joint[2] * 5 + joint[3] * 15) / 20
    scores = source_scores(["a", "b"], source, tokens, influence, evals)
    assert [s.rho for s in scores] == pytest.approx([rho_a, rho_b])
    assert rho_a > 0 > rho_b
    assert [s.weight for s in scores] == [1.0, 0.0]
    assert scores[0].per_checkpoint["code"] == pytest.approx([(1 * 10 + 0) / 40, (2 * 10 - 30) / 40])
    assert scores[0].tokens == 40 and scores[1].samples == 2
    # Step D: only kept samples count in the numerator, the denominator stays all tokens.
    keep = joint > 0
    kept = source_scores(["a", "b"], source, tokens, influence, evals, keep_N=keep)
    assert kept[0].rho == pytest.approx(sum(joint[i] * tokens[i] for i in (0, 1) if keep[i]) / 40)
    with pytest.raises(InfluenceError, match="no source has a positive influence"):
        source_scores(["a", "b"], source, tokens, -np.abs(influence), evals)
