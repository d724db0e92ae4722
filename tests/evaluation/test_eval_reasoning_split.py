"""How a completion's reasoning is separated from its final answer (docs/evaluation.md)."""

import pytest

from mlr1_titan.evaluation.reasoning import split_reasoning


def test_closed_reasoning_answer_is_text_after_last_think_close():
    split = split_reasoning("<think>try \\boxed{1}</think> no wait </think>\nFinal: \\boxed{2}")
    assert split.status == "closed"
    assert split.answer == "Final: \\boxed{2}"


def test_opened_but_never_closed_reasoning_is_truncated_and_has_no_answer():
    split = split_reasoning("<think>long thought ... so \\boxed{7} maybe")
    assert split.status == "truncated"
    assert split.truncated
    assert split.answer is None


def test_completion_without_think_tags_is_an_answer_without_reasoning():
    split = split_reasoning("  The answer is \\boxed{3}.  ")
    assert split.status == "no_reasoning"
    assert split.answer == "The answer is \\boxed{3}."


def test_prefilled_template_makes_a_missing_close_tag_truncation():
    # The chat template already opened <think>, so the completion starts inside the reasoning.
    assert split_reasoning("so \\boxed{3}", think_prefilled=True).status == "truncated"
    closed = split_reasoning("reasoning</think>\\boxed{3}", think_prefilled=True)
    assert (closed.status, closed.answer) == ("closed", "\\boxed{3}")


def test_close_tag_without_open_tag_counts_as_closed():
    assert split_reasoning("thinking...</think>42").answer == "42"


def test_non_string_completion_is_rejected():
    with pytest.raises(TypeError, match="completion must be a str"):
        split_reasoning(None)
