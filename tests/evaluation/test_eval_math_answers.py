"""Math answer extraction (the paper harness's order) and math-verify equivalence with a timeout."""

import threading
import time

import pytest

from mlr1_titan.evaluation.math_answers import extract_math_answer, last_boxed, normalize_answer
from mlr1_titan.evaluation.math_judge import MathJudge, shared_judge


@pytest.mark.parametrize(
    "text, expected",
    [
        ("so \\boxed{\\frac{1}{2}} done", "\\frac{1}{2}"),  # nested braces
        ("first \\boxed{3}, then \\boxed{\\sqrt{\\frac{a}{b}}}", "\\sqrt{\\frac{a}{b}}"),  # last box wins
        ("\\boxed{3} and a cut-off \\boxed{4", "3"),  # unbalanced last box is skipped
        ("\\fbox{12}", "12"),
        ("\\boxed 5$", "5"),
        ("\\boxed {[-2, 3)}", "[-2, 3)"),
        ("no box here", None),
    ],
)
def test_last_boxed_matches_braces(text, expected):
    assert last_boxed(text) == expected


@pytest.mark.parametrize(
    "text, answer, method",
    [
        ("Hence \\boxed{024}. The answer is 7.", "024", "boxed"),  # box beats the phrase
        ("The final answer is $\\frac{3}{4}$. I hope it is correct.", "\\frac{3}{4}", "answer_phrase"),
        ("so the answer is: 12 apples.\nThanks", "12 apples", "answer_phrase"),
        ("We get 12 apples and 1,000 pears", "1000", "last_number"),
        ("ratio 3/4", "3/4", "last_number"),
        ("I do not know.", None, None),
        ("", None, None),
        (None, None, None),
    ],
)
def test_extraction_order_box_then_phrase_then_last_number(text, answer, method):
    found = extract_math_answer(text)
    assert (found.text if found else None, found.method if found else None) == (answer, method)


@pytest.mark.parametrize(
    "raw, key",
    [
        ("024", "24"),
        ("\\dfrac{3}{4}", "\\frac{3}{4}"),
        ("90^\\circ", "90"),
        ("1,000", "1000"),
        ("$\\left( 1, 2 \\right)$", "(1,2)"),
        ("12\\text{ cm}", "12cm"),
        ("5.", "5"),
    ],
)
def test_normalized_vote_key(raw, key):
    assert normalize_answer(raw) == key


@pytest.mark.parametrize(
    "gold, predicted",
    [
        ("\\frac{3}{4}", "0.75"),  # fraction vs decimal
        ("\\frac{3}{4}", "\\dfrac{3}{4}"),
        ("\\frac{1}{2}", "1/2"),
        ("2\\sqrt{5}", "\\sqrt{20}"),  # radicals
        ("\\frac{\\sqrt{3}}{2}", "\\frac{1}{2}\\sqrt{3}"),
        ("[-2, 3)", "[-2,3)"),  # intervals
        ("4\\text{ cm}", "4"),  # \text{} units
        ("12", "12\\text{ inches}"),
        ("024", "24"),  # AIME zero padding
        ("x^2+2x+1", "(x+1)^2"),  # symbolic
        ("1,000", "1000"),
    ],
)
def test_math_verify_equivalences(gold, predicted):
    assert shared_judge(5.0).equivalent(gold, predicted).equivalent


@pytest.mark.parametrize(
    "gold, predicted",
    [
        ("[-2, 3)", "(-2, 3)"),
        ("\\frac{3}{4}", "0.74"),
        ("2\\sqrt{5}", "\\sqrt{5}"),
        ("24", "42"),
        ("4\\text{ cm}", "5"),
    ],
)
def test_math_verify_rejects_different_answers(gold, predicted):
    assert not shared_judge(5.0).equivalent(gold, predicted).equivalent


def test_judge_timeout_is_enforced_outside_the_main_thread_and_the_worker_recovers():
    judge = MathJudge(timeout_s=1.5)
    verdicts = {}

    def work():  # math-verify's own signal-based timeout would raise ValueError in a thread
        verdicts["ok"] = judge.equivalent("\\frac{1}{2}", "0.5")
        start = time.monotonic()
        verdicts["slow"] = judge.equivalent("(x+1)^{2000}", "(x+2)^{2000}")  # ~20 s in sympy
        verdicts["slow_s"] = time.monotonic() - start
        verdicts["after"] = judge.equivalent("[-2, 3)", "[-2,3)")

    thread = threading.Thread(target=work)
    thread.start()
    thread.join(timeout=60)
    judge.close()
    assert verdicts["ok"].equivalent and not verdicts["ok"].timed_out
    assert verdicts["slow"].timed_out and not verdicts["slow"].equivalent
    assert verdicts["slow_s"] < 10  # the 1.5 s limit plus process teardown on a busy machine
    assert verdicts["after"].equivalent  # a fresh worker answers the next request
    assert judge.timeouts == 1


def test_judge_rejects_a_non_positive_timeout():
    with pytest.raises(ValueError, match="timeout must be > 0"):
        MathJudge(timeout_s=0)
