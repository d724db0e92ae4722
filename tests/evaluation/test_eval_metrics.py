"""pass@1 over all samples, maj@n, unbiased pass@k, truncation share."""

import itertools
import math

import pytest

from mlr1_titan.evaluation.metrics import code_problem_metrics, majority_vote, math_problem_metrics, pass_at_k


def _pass_at_k_by_enumeration(n, c, k):
    outcomes = [True] * c + [False] * (n - c)
    subsets = list(itertools.combinations(range(n), k))
    return sum(any(outcomes[i] for i in s) for s in subsets) / len(subsets)


@pytest.mark.parametrize("n, c, k", [(5, 0, 1), (5, 1, 1), (5, 2, 2), (6, 3, 4), (8, 1, 8), (7, 6, 2), (4, 4, 4)])
def test_pass_at_k_equals_the_probability_over_all_k_subsets(n, c, k):
    assert pass_at_k(n, c, k) == pytest.approx(_pass_at_k_by_enumeration(n, c, k))


def test_pass_at_k_matches_the_closed_form():
    assert pass_at_k(16, 3, 4) == pytest.approx(1 - math.comb(13, 4) / math.comb(16, 4))


def test_pass_at_k_rejects_impossible_counts():
    with pytest.raises(ValueError, match="n=4, c=5"):
        pass_at_k(4, 5, 1)
    with pytest.raises(ValueError, match="k=5"):
        pass_at_k(4, 1, 5)


def test_majority_vote_ignores_missing_answers_and_breaks_ties_by_first_seen():
    assert majority_vote([None, "3", "4", "4", "3"]) == 1  # 2-2 tie: "3" was seen first
    assert majority_vote(["5", None, "7", "7"]) == 2
    assert majority_vote([None, None]) is None


def _math(reasoning, answer, correct):
    return {"reasoning": reasoning, "answer": answer, "vote_key": answer, "correct": correct}


def test_math_metrics_average_all_samples_not_the_first():
    samples = [
        _math("closed", "9", False),  # the first sample is wrong ...
        _math("closed", "7", True),
        _math("truncated", None, False),
        _math("closed", "7", True),
        _math("closed", None, False),  # closed, but nothing extractable
    ]
    metrics = math_problem_metrics(samples)
    assert metrics == {"pass@1": 2 / 5, "maj@n": 1.0, "truncated": 1 / 5, "no_answer": 1 / 5}


def test_maj_at_n_is_zero_when_the_most_common_answer_is_wrong():
    samples = [_math("closed", "3", False), _math("closed", "3", False), _math("closed", "4", True)]
    assert math_problem_metrics(samples)["maj@n"] == 0.0


def test_maj_at_n_is_zero_when_no_sample_answered():
    samples = [_math("truncated", None, False), _math("truncated", None, False)]
    assert math_problem_metrics(samples) == {"pass@1": 0.0, "maj@n": 0.0, "truncated": 1.0, "no_answer": 0.0}


def test_code_metrics_report_pass_at_k_up_to_n():
    samples = [{"reasoning": "closed", "has_code": True, "passed": p} for p in (True, False, False, True)]
    samples += [{"reasoning": "truncated", "has_code": False, "passed": False}] * 2
    samples += [{"reasoning": "no_reasoning", "has_code": False, "passed": False}] * 2
    metrics = code_problem_metrics(samples)
    assert metrics["pass@1"] == 2 / 8
    assert metrics["pass@2"] == pytest.approx(1 - math.comb(6, 2) / math.comb(8, 2))
    assert metrics["pass@4"] == pytest.approx(1 - math.comb(6, 4) / math.comb(8, 4))
    assert metrics["pass@8"] == 1.0
    assert "pass@16" not in metrics
    assert metrics["truncated"] == 2 / 8
    assert metrics["no_answer"] == 2 / 8


def test_metrics_refuse_a_problem_without_samples():
    with pytest.raises(ValueError, match="no samples"):
        math_problem_metrics([])
