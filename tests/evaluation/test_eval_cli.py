"""`mlr1 eval`: flags, backend choice, checks, and a tiny HF checkpoint evaluated end to end on CPU."""

import importlib.util
import json

import pytest
from evaluation_testkit import FIXTURES, build_tiny_hf_checkpoint

from mlr1_titan.cli import build_parser, main
from mlr1_titan.cli.evaluation import build_request
from mlr1_titan.evaluation import runner
from mlr1_titan.evaluation.benchmarks import detect_think_prefill
from mlr1_titan.evaluation.runner import EvalRequest, choose_backend, parse_samples


def test_samples_flag_expands_aliases_and_names_bad_entries():
    assert parse_samples("aime=64,lcb=16") == {"r1_aime24": 64, "r1_aime25": 64, "r1_livecodebench": 16}
    assert parse_samples("all=2,math500=8") == {"*": 2, "r1_math500": 8}
    assert parse_samples("r1_gsm8k=3") == {"r1_gsm8k": 3}
    with pytest.raises(ValueError, match="'aime'.*expected NAME=COUNT"):
        parse_samples("aime")
    with pytest.raises(ValueError, match="'lcb=x'.*not an integer"):
        parse_samples("lcb=x")
    with pytest.raises(ValueError, match="'aime=0'.*>= 1"):
        parse_samples("aime=0")
    with pytest.raises(ValueError, match="unknown name 'gpqa'"):
        parse_samples("gpqa=8")


def test_flags_become_task_options(tmp_path):
    args = build_parser().parse_args(
        [
            "eval",
            "ckpt",
            "--tasks",
            "r1_aime24,r1_livecodebench",
            "--samples",
            "aime=8",
            "--lcb-window",
            "2025-02-01:2025-05-01",
            "--think-prefilled",
            "yes",
            "--data-dir",
            str(tmp_path),
            "--code-timeout",
            "5",
            "--max-gen-toks",
            "1024",
            "--output-dir",
            str(tmp_path / "out"),
        ]
    )
    request = build_request(args)
    assert request.tasks == ["r1_aime24", "r1_livecodebench"]
    assert request.samples == {"r1_aime24": 8, "r1_aime25": 8}
    assert request.metadata == {
        "data_dir": str(tmp_path.resolve()),
        "lcb_start_date": "2025-02-01",
        "lcb_end_date": "2025-05-01",
        "think_prefilled": True,
        "code_timeout_s": 5.0,
    }
    assert (request.max_gen_toks, request.output_dir) == (1024, tmp_path / "out")
    bad = build_parser().parse_args(["eval", "ckpt", "--lcb-window", "2025-02-01"])
    with pytest.raises(ValueError, match="--lcb-window '2025-02-01': expected START:END"):
        build_request(bad)


def test_backend_auto_prefers_vllm_and_explains_missing_packages(monkeypatch):
    real = importlib.util.find_spec
    installed = {"vllm": True, "accelerate": True}
    monkeypatch.setattr(
        runner.importlib.util,
        "find_spec",
        lambda name: object() if installed.get(name) else (None if name in installed else real(name)),
    )
    assert choose_backend("auto") == "vllm"
    installed["vllm"] = False
    assert choose_backend("auto") == "hf"
    with pytest.raises(RuntimeError, match="vllm is not installed"):
        choose_backend("vllm")
    installed["accelerate"] = False
    with pytest.raises(RuntimeError, match="needs accelerate"):
        choose_backend("hf")
    with pytest.raises(ValueError, match="--backend 'tgi'"):
        choose_backend("tgi")


def test_budget_sets_the_context_length_of_either_backend():
    request = EvalRequest(model="ckpt", max_gen_toks=30000, model_args={"dtype": "bfloat16"})
    assert runner._model_args(request, "vllm") == {
        "pretrained": "ckpt",
        "max_model_len": 32048,
        "seed": 0,
        "dtype": "bfloat16",
    }
    assert runner._model_args(request, "hf") == {
        "pretrained": "ckpt",
        "max_length": 32048,
        "dtype": "bfloat16",
    }


def test_unknown_task_is_reported_with_the_available_ones(capsys):
    assert main(["eval", "no/such-model", "--tasks", "r1_aime26"]) == 2
    err = capsys.readouterr().err
    assert "unknown task(s) ['r1_aime26']" in err and "r1_aime25" in err


@pytest.fixture(scope="module")
def tiny_checkpoint(tmp_path_factory):
    return build_tiny_hf_checkpoint(tmp_path_factory.mktemp("tiny_mlr1_hf"))


def test_checkpoint_without_chat_template_is_refused(tmp_path, tiny_checkpoint):
    from mlr1_titan.tokenizer import default_tokenizer_file, save_hf_tokenizer

    save_hf_tokenizer(default_tokenizer_file(), tmp_path, chat_template=None)
    with pytest.raises(ValueError, match="has no chat template"):
        runner._check_tokenizer(str(tmp_path), "hf")
    runner._check_tokenizer(str(tiny_checkpoint), "hf")  # has one: no error


def test_think_prefill_is_detected_from_the_chat_template(tmp_path, tiny_checkpoint):
    from evaluation_testkit import LLAMA3_HEADER_TEMPLATE

    from mlr1_titan.tokenizer import default_tokenizer_file, save_hf_tokenizer

    opens_think = LLAMA3_HEADER_TEMPLATE.replace(
        "<|end_header_id|>\n\n{% endif %}", "<|end_header_id|>\n\n<think>\n{% endif %}"
    )
    assert opens_think != LLAMA3_HEADER_TEMPLATE
    save_hf_tokenizer(default_tokenizer_file(), tmp_path, chat_template=opens_think)
    assert detect_think_prefill(str(tmp_path)) is True
    assert detect_think_prefill(str(tiny_checkpoint)) is False


@pytest.mark.skipif(
    importlib.util.find_spec("accelerate") is None,
    reason="lm-eval's hf backend imports accelerate (lm-eval[hf]); not installed",
)
def test_tiny_checkpoint_end_to_end_through_the_hf_backend(tiny_checkpoint, tmp_path, capsys):
    out = tmp_path / "run"
    rc = main(
        [
            "eval",
            str(tiny_checkpoint),
            "--backend",
            "hf",
            "--device",
            "cpu",
            "--samples",
            "all=1",
            "--max-gen-toks",
            "16",
            "--limit",
            "2",
            "--data-dir",
            str(FIXTURES),
            "--output-dir",
            str(out),
            "--code-timeout",
            "5",
        ]
    )
    assert rc == 0
    results = json.loads((out / "results.json").read_text())
    tasks = [
        "r1_aime24",
        "r1_aime25",
        "r1_gsm8k",
        "r1_humaneval_plus",
        "r1_livecodebench",
        "r1_math500",
        "r1_mbpp_plus",
    ]
    for task in tasks:
        assert results["n-samples"][task]["effective"] == 2
        assert 0.0 <= results["results"][task]["pass@1,graded"] <= 1.0
        assert results["configs"][task]["repeats"] == 1
    assert "pass@1,graded" in results["groups"]["r1_reasoning"]
    assert results["mlr1"]["backend"] == "hf" and results["mlr1"]["model_args"]["max_length"] == 16 + 2048
    table = (out / "results.md").read_text()
    assert table in capsys.readouterr().out
    assert all(f"| {task} | 2 | 1 |" in table for task in tasks)

    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_checkpoint)
    sample = json.loads((out / "samples_r1_math500.jsonl").read_text().splitlines()[0])
    prompt = sample["arguments"][0][0]
    assert prompt.startswith("<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWrite $\\frac{6}{8}$")
    assert prompt.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    completion = sample["resps"][0][0]
    assert len(tok(completion, add_special_tokens=False)["input_ids"]) <= 16 + 2  # the budget held


def test_eval_data_names_unknown_benchmarks(tmp_path, capsys):
    assert main(["eval-data", str(tmp_path), "--benchmarks", "aime24,aime2026"]) == 2
    assert "unknown benchmark(s) ['aime2026']" in capsys.readouterr().err
