"""End to end through lm-eval with a scripted model: known completions in, hand-computed metrics out.

Every task runs 4 samples per problem on the offline fixtures. The completions cover correct,
equivalent-but-differently-written, wrong, truncated (``<think>`` never closed, with a ``\\boxed{}``
inside the reasoning that must not be credited), answer-without-reasoning, no extractable answer,
and malicious code (infinite loop, fork bomb, file write outside the work dir, network calls).
"""

import json
import math
import tempfile
from pathlib import Path

import pytest
from evaluation_testkit import EVAL_TASKS, FIXTURES, ScriptedLM

from mlr1_titan.evaluation.runner import EvalRequest, run_evaluation

ESCAPE_FILE = Path(tempfile.gettempdir()) / "mlr1_eval_pipeline_escape.txt"
T = "<think>reasoning</think>\n"  # a closed reasoning block

AIME24 = {
    "How many positive divisors": [
        T + "\\boxed{24}",  # correct ("024" is the gold)
        T + "The answer is 24.",  # correct, found by the "the answer is" fallback
        "<think>so it is \\boxed{24} but the budget ran out",  # truncated: never credited
        T + "I think it is 23.",  # wrong (last-number fallback)
    ],
    "sum of all positive integers $n<20$": [
        T + "\\boxed{80}",
        T + "\\boxed{79}",
        T + "\\boxed{79}",
        T + "no idea",
    ],
    "remainder when $3^{100}$": [
        "\\boxed{001}",
        T + "\\boxed{1}",
        "<think>" + "step " * 50,
        T + "\\boxed{1001}",
    ],
}
AIME25 = {
    "ordered pairs of positive integers": [
        T + "\\boxed{15}",
        T + "\\boxed{\\frac{30}{2}}",
        T + "\\boxed{15}",
        T + "\\boxed{16}",
    ],
    "ends in exactly $6$ zeros": [
        "<think>24!",
        "<think>25!",
        "<think>hmm",
        "<think>\\boxed{25}",
    ],  # all truncated
}
MATH500 = {
    "Write $\\frac{6}{8}$": [
        T + "\\boxed{0.75}",
        T + "\\boxed{\\dfrac{3}{4}}",
        T + "\\boxed{6/8}",
        T + "\\boxed{\\frac{4}{3}}",
    ],
    "Simplify $\\sqrt{20}$": [
        T + "\\boxed{\\sqrt{20}}",
        T + "\\boxed{2\\sqrt{5}}",
        T + "\\boxed{2\\sqrt{5}}",
        T + "\\boxed{5\\sqrt{2}}",
    ],
    "interval notation": [
        T + "\\boxed{[-2,3)}",
        T + "\\boxed{(-2,3)}",
        T + "\\boxed{(-2,3)}",
        T + "\\boxed{[-2, 3)}",
    ],
    "perimeter $24$ cm": [
        T + "\\boxed{4\\text{ cm}}",
        T + "\\boxed{4}",
        T + "\\boxed{4 \\text{cm}}",
        T + "\\boxed{8\\text{ cm}}",
    ],
}
GSM8K = {
    "A baker fills 12 trays": [
        T + "So 80 cookies are left.",
        T + "\\boxed{80}",
        T + "\\boxed{100}",
        "<think>12*15",
    ],
    "Tom has 1,250 stamps": [
        T + "\\boxed{1,000}",
        T + "\\boxed{1000}",
        T + "The final answer is $1000$.",
        T + "\\boxed{1250}",
    ],
}


def _py(code: str) -> str:
    return T + "Here is the solution.\n```python\n" + code + "\n```\n"


RUNNING_MAX = "def running_max(values):\n    out = []\n    for v in values:\n        out.append(v if not out else max(out[-1], v))\n    return out"
MEAN_ABS = "def mean_abs(values):\n    return sum(abs(v) for v in values) / len(values)"
FORK_BOMB = "import os\nwhile True:\n    try:\n        os.fork()\n    except OSError:\n        pass"
NETWORK = "import urllib.request\nurllib.request.urlopen('http://example.com', timeout=2)\n"
WRITE_OUTSIDE = f"open({str(ESCAPE_FILE)!r}, 'w').write('escaped')\n"
SECOND_LARGEST = "def second_largest(nums):\n    d = sorted(set(nums))\n    return d[-2] if len(d) > 1 else None"
PALINDROME = "import re\ndef is_letter_palindrome(s):\n    t = re.sub('[^a-z]', '', s.lower())\n    return t == t[::-1]"
SUM_MOD = "n = int(input())\nprint(sum(map(int, input().split())) % 1000)"
GAP = "class Solution:\n    def largestGap(self, nums):\n        s = sorted(nums)\n        return max((b - a for a, b in zip(s, s[1:])), default=0)"

HUMANEVAL = {
    "def running_max": [
        _py(RUNNING_MAX),
        _py("def running_max(values):\n    return sorted(values)"),
        "<think>```python\n" + RUNNING_MAX,
        T + "I would loop.",
    ],
    "def mean_abs": [
        _py(MEAN_ABS),
        _py("def mean_abs(values):\n    while True:\n        pass"),
        _py(FORK_BOMB),
        _py(NETWORK + MEAN_ABS),
    ],
}
MBPP = {
    "second largest distinct value": [
        _py(SECOND_LARGEST),
        _py(WRITE_OUTSIDE + SECOND_LARGEST),
        _py(SECOND_LARGEST),
        _py("def second_largest(nums):\n    s = sorted(set(nums))\n    return s[-2] if len(s) > 1 else s[0]"),
    ],
    "reads the same backwards": [_py(PALINDROME)] * 4,
}
LCB = {
    "Print (A_1 + ... + A_N) mod 1000": [
        _py(SUM_MOD),
        _py("n = int(input())\nprint(sum(map(int, input().split())))"),
        _py("while True:\n    pass"),
        _py(NETWORK + SUM_MOD),
    ],
    "largest difference between two consecutive": [
        _py(GAP),
        _py(GAP.replace(", default=0", "")),
        "<think>" + GAP,
        _py(GAP + "\n"),
    ],
}


def _pass_at(n, c, k):
    return 1 - math.comb(n - c, k) / math.comb(n, k)


# Hand-computed: per problem, then the mean over problems.
EXPECTED = {
    "r1_aime24": {
        "pass@1": (2 / 4 + 1 / 4 + 2 / 4) / 3,
        "maj@n": (1 + 0 + 1) / 3,
        "truncated": (1 / 4 + 0 + 1 / 4) / 3,
        "no_answer": (0 + 1 / 4 + 0) / 3,
    },
    "r1_aime25": {
        "pass@1": (3 / 4 + 0) / 2,
        "maj@n": (1 + 0) / 2,
        "truncated": (0 + 1) / 2,
        "no_answer": 0.0,
    },
    "r1_math500": {
        "pass@1": (3 / 4 + 3 / 4 + 2 / 4 + 3 / 4) / 4,
        "maj@n": 1.0,
        "truncated": 0.0,
        "no_answer": 0.0,
    },
    "r1_gsm8k": {"pass@1": (2 / 4 + 3 / 4) / 2, "maj@n": 1.0, "truncated": (1 / 4 + 0) / 2, "no_answer": 0.0},
    "r1_humaneval_plus": {
        "pass@1": (1 / 4 + 1 / 4) / 2,
        "pass@2": _pass_at(4, 1, 2),
        "pass@4": 1.0,
        "truncated": (1 / 4 + 0) / 2,
        "no_answer": (1 / 4 + 0) / 2,
    },
    # The WRITE_OUTSIDE sample writes to its own private /tmp (the host's stays untouched) and passes.
    "r1_mbpp_plus": {
        "pass@1": (3 / 4 + 1) / 2,
        "pass@2": (_pass_at(4, 3, 2) + 1) / 2,
        "pass@4": 1.0,
        "truncated": 0.0,
        "no_answer": 0.0,
    },
    "r1_livecodebench": {
        "pass@1": (1 / 4 + 2 / 4) / 2,
        "pass@2": (_pass_at(4, 1, 2) + _pass_at(4, 2, 2)) / 2,
        "pass@4": 1.0,
        "truncated": (0 + 1 / 4) / 2,
        "no_answer": 0.0,
    },
}


@pytest.fixture(scope="module")
def evaluation(tmp_path_factory):
    ESCAPE_FILE.unlink(missing_ok=True)
    lm = ScriptedLM({**AIME24, **AIME25, **MATH500, **GSM8K, **HUMANEVAL, **MBPP, **LCB})
    out_dir = tmp_path_factory.mktemp("fake_model_run")
    request = EvalRequest(
        model="scripted-fake-model",
        tasks=["r1_reasoning"],
        samples={"*": 4},
        output_dir=out_dir,
        metadata={"data_dir": str(FIXTURES), "code_timeout_s": 6, "test_timeout_s": 1},
    )
    results = run_evaluation(request, lm=lm)
    return results, lm, out_dir


@pytest.mark.parametrize("task", sorted(EXPECTED))
def test_metrics_match_hand_computed_values(evaluation, task):
    results, _, _ = evaluation
    got = {
        k.split(",")[0]: v for k, v in results["results"][task].items() if k.endswith(",graded") and "_stderr" not in k
    }
    assert got == pytest.approx(EXPECTED[task], abs=1e-12)


def test_group_score_is_the_unweighted_mean_of_task_pass_at_1(evaluation):
    results, _, _ = evaluation
    expected = sum(m["pass@1"] for m in EXPECTED.values()) / len(EXPECTED)
    assert results["groups"]["r1_reasoning"]["pass@1,graded"] == pytest.approx(expected)


def test_requests_follow_the_paper_protocol(evaluation):
    _, lm, _ = evaluation
    prompt, gen_kwargs = next(r for r in lm.requests if "How many positive divisors" in r[0])
    assert prompt == (
        "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\n"
        "How many positive divisors does $360$ have?<|eot_id|><|start_header_id|>assistant<|end_header_id|>\n\n"
    )  # zero-shot, the bare question as the only (user) turn, no system prompt
    assert gen_kwargs == {
        "until": [],
        "do_sample": True,
        "temperature": 0.6,
        "top_p": 0.95,
        "max_gen_toks": 30000,
    }
    assert sum("How many positive divisors" in r[0] for r in lm.requests) == 4  # n samples per problem
    assert len(lm.requests) == 4 * (3 + 2 + 4 + 2 + 2 + 2 + 2)


def test_malicious_code_is_contained(evaluation):
    assert not ESCAPE_FILE.exists()


def test_outputs_are_written(evaluation):
    results, _, out_dir = evaluation
    saved = json.loads((out_dir / "results.json").read_text())
    assert saved["results"]["r1_aime24"]["pass@1,graded"] == results["results"]["r1_aime24"]["pass@1,graded"]
    assert saved["mlr1"]["samples_per_problem"]["r1_livecodebench"] == 4
    assert saved["mlr1"]["sandbox"]["isolation"] == "strict"
    assert saved["mlr1"]["sandbox"]["mount_namespace"] is True
    table = (out_dir / "results.md").read_text()
    assert "| r1_aime24 | 3 | 4 | 41.7 ± " in table
    assert "| **r1_reasoning** (mean of tasks) |" in table
    samples = [json.loads(line) for line in (out_dir / "samples_r1_aime24.jsonl").read_text().splitlines()]
    first = next(s for s in samples if s["doc"]["r1_id"] == "901")
    records = first["filtered_resps"][0]
    assert [r["reasoning"] for r in records] == ["closed", "closed", "truncated", "closed"]
    assert records[2]["answer"] is None and records[2]["correct"] is False  # the boxed 24 inside <think>
    assert [r["method"] for r in records] == ["boxed", "answer_phrase", None, "last_number"]
    code = [json.loads(line) for line in (out_dir / "samples_r1_humaneval_plus.jsonl").read_text().splitlines()]
    statuses = {r["result"] for s in code for r in s["filtered_resps"][0]}
    assert {"passed", "failed", "timeout"} <= statuses
    assert {r["sandbox"] for s in code for r in s["filtered_resps"][0]} == {"strict"}


def test_yaml_defaults_through_plain_lm_eval_from_another_cwd(tmp_path, monkeypatch):
    """What `lm_eval --include_path eval_tasks --tasks r1_aime25` users get: the YAML's 64 samples."""
    import lm_eval
    from lm_eval.tasks import TaskManager

    monkeypatch.chdir(tmp_path)
    completions = [T + "\\boxed{15}"] * 16 + [T + "\\boxed{14}"] * 48
    lm = ScriptedLM({"ordered pairs": completions, "ends in exactly": [T + "\\boxed{25}"] * 64})
    manager = TaskManager(include_path=str(EVAL_TASKS), include_defaults=False, metadata={"data_dir": str(FIXTURES)})
    out = lm_eval.simple_evaluate(model=lm, tasks=["r1_aime25"], task_manager=manager, apply_chat_template=True)
    metrics = out["results"]["r1_aime25"]
    assert out["configs"]["r1_aime25"]["repeats"] == 64
    assert out["configs"]["r1_aime25"]["generation_kwargs"]["max_gen_toks"] == 30000
    assert metrics["pass@1,graded"] == pytest.approx((16 / 64 + 1) / 2)
    assert metrics["maj@n,graded"] == pytest.approx((0 + 1) / 2)  # 48 wrong votes outvote 16 right ones


def test_task_names_do_not_shadow_lm_eval_builtins():
    import yaml
    from lm_eval.tasks import TaskManager

    ours = set()
    for path in EVAL_TASKS.glob("*.yaml"):
        text = path.read_text().replace("!function", "")
        cfg = yaml.safe_load(text)
        names = [cfg.get("group"), *(cfg.get("tag") or [])] + (
            [cfg["task"]] if isinstance(cfg.get("task"), str) else []
        )
        ours |= set(names) - {None}
    assert {"r1_aime24", "r1_livecodebench", "r1_reasoning"} <= ours
    builtin = set(TaskManager().all_tasks)
    assert not ours & builtin
