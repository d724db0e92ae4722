"""Benchmark data: local jsonl mirrors, pinned hub revisions, prompts, LiveCodeBench windows, options."""

import base64
import json
import pickle
import zlib

import pytest
from evaluation_testkit import FIXTURES

from mlr1_titan.evaluation import benchmarks
from mlr1_titan.evaluation.benchmarks import (
    SOURCES,
    TEST_STORE,
    EvalOptions,
    build_docs,
    decode_lcb_tests,
    options_from_metadata,
    write_snapshot,
)


def test_every_benchmark_loads_from_the_fixture_dir(fixture_data):
    counts = {key: len(build_docs(key, {})) for key in SOURCES}
    # livecodebench: 3 fixture problems, one dated before the default window.
    assert counts == {
        "aime24": 3,
        "aime25": 2,
        "math500": 4,
        "gsm8k": 2,
        "humaneval_plus": 2,
        "mbpp_plus": 2,
        "livecodebench": 2,
    }


def test_math_docs_carry_the_raw_question_and_the_gold_answer(fixture_data):
    docs = build_docs("aime24", {})
    assert docs[0]["prompt"] == "How many positive divisors does $360$ have?"  # paper: the bare question
    assert docs[0]["answer"] == "024" and docs[0]["r1_id"] == "901"
    gsm = build_docs("gsm8k", {})
    assert [d["answer"] for d in gsm] == ["80", "1000"]  # text after ####, separators removed
    with_instruction = build_docs("math500", {"math_instruction": "Put the final answer in \\boxed{}."})
    assert with_instruction[0]["prompt"].endswith("\n\nPut the final answer in \\boxed{}.")


def test_code_docs_keep_tests_out_of_the_doc(fixture_data):
    docs = build_docs("humaneval_plus", {})
    assert "def check" not in json.dumps(docs)
    assert "```python\nfrom typing import List" in docs[0]["prompt"]
    assert TEST_STORE[("humaneval_plus", "R1Fixture/0")]["entry_point"] == "running_max"
    mbpp = build_docs("mbpp_plus", {})
    assert "assert second_largest([4, 1, 4, 3]) == 3" in mbpp[0]["prompt"]
    assert TEST_STORE[("mbpp_plus", "9002")]["test_imports"] == ["import re"]


def test_livecodebench_window_and_private_test_decoding(fixture_data):
    docs = build_docs("livecodebench", {})
    assert [d["r1_id"] for d in docs] == ["fx_abc001_a", "fx_lc_0001"]
    stdin_problem = TEST_STORE[("livecodebench", "fx_abc001_a")]
    assert stdin_problem["style"] == "stdin" and len(stdin_problem["tests"]) == 4  # 1 public + 3 private (pickled)
    functional = TEST_STORE[("livecodebench", "fx_lc_0001")]
    assert (functional["style"], functional["func_name"], len(functional["tests"])) == (
        "functional",
        "largestGap",
        4,
    )
    assert "class Solution:" in docs[1]["prompt"] and "standard input" in docs[0]["prompt"]
    only_2025 = build_docs("livecodebench", {"lcb_start_date": "2025-01-01", "lcb_end_date": "2025-03-01"})
    assert [d["r1_id"] for d in only_2025] == ["fx_lc_0001"]
    with pytest.raises(ValueError, match=r"no problem dated in \[2020-01-01, 2020-02-01\)"):
        build_docs("livecodebench", {"lcb_start_date": "2020-01-01", "lcb_end_date": "2020-02-01"})


def test_lcb_decoder_refuses_pickled_objects():
    class Evil:
        def __reduce__(self):
            return (print, ("pwned",))

    blob = base64.b64encode(zlib.compress(pickle.dumps(Evil()))).decode()
    with pytest.raises(ValueError, match="refusing builtins.print"):
        decode_lcb_tests(blob, "row 0")
    plain = base64.b64encode(zlib.compress(pickle.dumps(json.dumps([{"input": "1", "output": "1"}])))).decode()
    assert decode_lcb_tests(plain, "row 0") == [{"input": "1", "output": "1"}]


def test_metadata_data_dir_beats_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("MLR1_EVAL_DATA_DIR", str(tmp_path))  # empty dir
    (tmp_path / "aime25.jsonl").write_text(json.dumps({"problem": "p", "answer": "1", "id": "x"}) + "\n")
    assert [d["r1_id"] for d in build_docs("aime25", {})] == ["x"]
    assert len(build_docs("aime25", {"data_dir": str(FIXTURES)})) == 2


def test_missing_or_broken_local_files_name_the_culprit(tmp_path):
    with pytest.raises(FileNotFoundError, match=r"gsm8k\.jsonl not found.*eval-data"):
        build_docs("gsm8k", {"data_dir": str(tmp_path)})
    (tmp_path / "gsm8k.jsonl").write_text('{"question": "q", "answer": "#### 1"}\n{not json\n')
    with pytest.raises(ValueError, match=r"gsm8k\.jsonl:2: not valid JSON"):
        build_docs("gsm8k", {"data_dir": str(tmp_path)})
    (tmp_path / "gsm8k.jsonl").write_text('{"question": "q"}\n')
    with pytest.raises(KeyError, match=r"gsm8k row 0: row is missing field\(s\) \['answer'\]"):
        build_docs("gsm8k", {"data_dir": str(tmp_path)})
    with pytest.raises(FileNotFoundError, match="metadata data_dir='/nonexistent/r1'"):
        build_docs("gsm8k", {"data_dir": "/nonexistent/r1"})


def test_hub_loading_uses_the_pinned_revision(monkeypatch):
    calls = []

    def fake_load_dataset(path, name=None, **kwargs):
        calls.append((path, name, kwargs))
        if path == "json":
            return [json.loads(line) for line in (FIXTURES / "livecodebench.jsonl").read_text().splitlines()]
        return [json.loads(line) for line in (FIXTURES / "gsm8k.jsonl").read_text().splitlines()]

    monkeypatch.delenv("MLR1_EVAL_DATA_DIR", raising=False)
    monkeypatch.setattr("datasets.load_dataset", fake_load_dataset)
    assert len(build_docs("gsm8k", {})) == 2
    assert calls[-1] == ("openai/gsm8k", "main", {"split": "test", "revision": SOURCES["gsm8k"].revision})
    build_docs("livecodebench", {})
    path, _, kwargs = calls[-1]
    rev = SOURCES["livecodebench"].revision
    assert (
        path == "json"
        and kwargs["data_files"][-1] == f"hf://datasets/livecodebench/code_generation_lite@{rev}/test6.jsonl"
    )
    assert all(len(s.revision) == 40 for s in SOURCES.values())


def test_snapshot_writes_the_local_layout(tmp_path, monkeypatch):
    rows = [{"problem": "p", "answer": "7", "id": "0"}]
    monkeypatch.setattr(benchmarks, "load_rows", lambda key, data_dir: rows)
    assert write_snapshot(tmp_path, ["aime25"]) == {"aime25": 1}
    assert json.loads((tmp_path / "aime25.jsonl").read_text()) == rows[0]


def test_options_are_validated_and_name_the_key():
    options = options_from_metadata(
        {
            "math_timeout_s": "2",
            "lcb_start_date": "2025-02-01",
            "think_prefilled": "yes",
            "pretrained": "ignored/model",
            "version": 1.0,
        }
    )
    assert (options.math_timeout_s, options.lcb_start_date, options.think_prefilled) == (
        2.0,
        "2025-02-01",
        True,
    )
    assert EvalOptions.from_json(options.to_json()) == options
    with pytest.raises(ValueError, match="lcb_end_date='May 2025'"):
        options_from_metadata({"lcb_end_date": "May 2025"})
    with pytest.raises(ValueError, match="code_timeout_s=-1"):
        options_from_metadata({"code_timeout_s": -1})
    with pytest.raises(ValueError, match="think_prefilled='maybe'"):
        options_from_metadata({"think_prefilled": "maybe"})
    with pytest.raises(ValueError, match="must be before"):
        options_from_metadata({"lcb_start_date": "2025-05-01", "lcb_end_date": "2025-01-01"})


def test_think_prefill_is_off_for_an_unreadable_model_path():
    assert options_from_metadata({"pretrained": "some-org/hub-model"}).think_prefilled is False
