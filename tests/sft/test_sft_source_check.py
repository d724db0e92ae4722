"""The up-front source check: a source whose first rows are mostly unusable stops the run before
training, naming the source, its reason counts and the fix; a healthy mix passes."""

from __future__ import annotations

import pytest
from sft_testkit import write_chat_mix, write_chat_sets, write_jsonl

from mlr1_titan.data.sources import DataSourceError
from mlr1_titan.sft.chat_loader import ChatDataLoader
from mlr1_titan.sft.source_check import check_sources
from mlr1_titan.tokenizer import Llama3Tokenizer


@pytest.fixture(scope="module")
def tokenizer():
    return Llama3Tokenizer.Config().build()


def test_placeholder_questions_stop_the_run_with_counts_and_the_fix(tmp_path, tokenizer):
    rows = [{"problem": "-", "generated_solution": f"print({i})"} for i in range(40)]
    rows[5] = {"problem": "Real question?", "generated_solution": "yes"}
    rows[9] = {"question": "wrong field", "generated_solution": "x"}
    code = write_jsonl(tmp_path / "ocr.jsonl", rows)
    files = write_chat_sets(tmp_path, n=30)
    mix = write_chat_mix(tmp_path / "mix.toml", code, files["words_train"])
    cfg = ChatDataLoader.Config(mix=str(mix), check_rows=25)
    with pytest.raises(DataSourceError) as err:
        check_sources(cfg, tokenizer, seq_len=256)
    msg = str(err.value)
    assert (
        "source 'math'" in msg
        and "24 of its first 25 rows are unusable (96% > dataloader.chat.max_unusable 10%)" in msg
    )
    assert "placeholder_prompt: 23 of 25 rows" in msg and "missing_field: 1 of 25 rows" in msg
    # the source does not say its rows name a benchmark: the fix says how to mark it
    assert "set fill_questions = true on the source and run mlr1 data fill-questions" in msg
    marked = tmp_path / "marked.toml"
    marked.write_text(mix.read_text().replace("split_think = true\n", "split_think = true\nfill_questions = true\n", 1))
    with pytest.raises(DataSourceError) as err:
        check_sources(ChatDataLoader.Config(mix=str(marked), check_rows=25), tokenizer, seq_len=256)
    assert f"mlr1 data fill-questions --mix {marked} --out DIR (--hub-mirror M" in str(err.value)
    assert "then train with --dataloader.chat.mix DIR/mix.toml" in str(err.value)  # the mix is named "mix"
    assert "source 'words'" not in msg  # the healthy source is not blamed
    # Accepting more skipped rows is a setting, named in the error.
    counts = check_sources(ChatDataLoader.Config(mix=str(mix), check_rows=25, max_unusable=1.0), tokenizer, seq_len=256)
    assert counts["math"] == {"placeholder_prompt": 23, "missing_field": 1} and not counts["words"]


def test_a_healthy_mix_passes_and_a_short_source_is_read_whole(tmp_path, tokenizer):
    files = write_chat_sets(tmp_path, n=12)
    mix = write_chat_mix(tmp_path / "mix.toml", files["math_train"], files["words_train"])
    assert check_sources(ChatDataLoader.Config(mix=str(mix)), tokenizer, seq_len=256) == {"math": {}, "words": {}}
    assert check_sources(ChatDataLoader.Config(mix=str(mix), check_rows=0), tokenizer, seq_len=256) == {}


def test_drop_policy_counts_too_long_rows(tmp_path, tokenizer):
    long = write_jsonl(tmp_path / "long.jsonl", [{"problem": "q", "generated_solution": "w " * 400}] * 10)
    files = write_chat_sets(tmp_path, n=12)
    mix = write_chat_mix(tmp_path / "mix.toml", long, files["words_train"])
    with pytest.raises(DataSourceError, match=r"too_long: 10 of 10 rows .* fix: raise training.seq_len"):
        check_sources(ChatDataLoader.Config(mix=str(mix), overlength="drop"), tokenizer, seq_len=128)
    check_sources(ChatDataLoader.Config(mix=str(mix), overlength="truncate"), tokenizer, seq_len=128)
