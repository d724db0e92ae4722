"""`mlr1 config show / diff` and `mlr1 paths`, as a user runs them."""

from __future__ import annotations

import tomllib

import pytest

from mlr1_titan.cli import main as mlr1
from mlr1_titan.config import to_table
from mlr1_titan.config_registry import load_trainer_config
from mlr1_titan.resources import RESOURCES, eval_tasks_dir


def show(capsys, *args: str) -> str:
    assert mlr1(["config", "show", *args]) == 0
    return capsys.readouterr().out


def test_show_prints_the_resolved_config_with_cli_overrides(capsys, tmp_path):
    text = show(capsys, "mlr1_950m", "--optimizer.lr", "1e-3", "--model.flavor", "360M")
    data = tomllib.loads(text)
    assert data["optimizer"]["lr"] == 1e-3 and data["model"]["flavor"] == "360M"
    assert data["optimizer"]["betas"] == [0.9, 0.95]  # from base/pretrain.toml through `extends`
    assert "#   model: 360M: 15 layers, dim 1024" in text and "359,431,168 parameters" in text
    assert "optimizer group '.*': AdamW(lr=0.001" in text
    saved = tmp_path / "resolved.toml"
    saved.write_text(text)
    again = load_trainer_config(str(saved))
    assert again.model_spec.flavor == "360M" and again.optimizer.lr == 1e-3
    assert show(capsys, str(saved)).split("\n", 1)[1] == text.split("\n", 1)[1]  # same but the command line


def test_show_reports_a_bad_config_and_exits_1(capsys):
    assert mlr1(["config", "show", "mlr1_9b"]) == 1
    assert "unknown config 'mlr1_9b'" in capsys.readouterr().err


def test_diff_lists_exactly_the_keys_that_differ(capsys):
    assert mlr1(["config", "diff", "mlr1_950m", "mlr1_360m"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == [
        "description: 'MobileLLM-R1-950M pre-training (phase 1)' -> 'MobileLLM-R1-360M pre-training (phase 1)'",
        "model.flavor: '950M' -> '360M'",
    ]
    assert mlr1(["config", "diff", "mlr1_950m", "mlr1_950m"]) == 0
    assert "resolve to the same configuration" in capsys.readouterr().out


def test_diff_shows_the_sft_stage_changes(capsys):
    assert mlr1(["config", "diff", "mlr1_950m_sft_general", "mlr1_950m_sft_reasoning"]) == 0
    out = capsys.readouterr().out
    assert "model.rope_theta_multiplier: 1.0 -> 8.0" in out and "training.seq_len: 4096 -> 32768" in out
    general, reasoning = (
        to_table(load_trainer_config(n)) for n in ("mlr1_950m_sft_general", "mlr1_950m_sft_reasoning")
    )
    assert (
        general["dataloader"]["chat"]["mix"] == "sft_general"
        and reasoning["dataloader"]["chat"]["mix"] == "sft_reasoning"
    )


def test_paths_prints_every_resource_and_one_on_request(capsys):
    assert mlr1(["paths"]) == 0
    out = capsys.readouterr().out
    for name, where in RESOURCES.items():
        assert f"{name}" in out and str(where()) in out
        assert where().exists(), name
    assert mlr1(["paths", "eval_tasks"]) == 0
    assert capsys.readouterr().out.strip() == str(eval_tasks_dir())
    with pytest.raises(SystemExit):
        mlr1(["paths", "nothing"])


def test_shipped_demo_corpus_is_what_the_generator_writes(tmp_path):
    from mlr1_titan.demo_corpus import write_corpus
    from mlr1_titan.resources import demo_corpus_file

    assert write_corpus(tmp_path / "c.jsonl").read_bytes() == demo_corpus_file().read_bytes()


def test_resolving_a_config_drops_torchtitans_default_instance_warning(caplog):
    """tyro builds default checkpoint configs while parsing; each would warn that
    initial_load_model_only has no effect (a dozen lines per `mlr1 recipe` plan)."""
    import logging

    from mlr1_titan.cli.config import resolve

    with caplog.at_level(logging.WARNING):
        resolve("mlr1_tiny", [])
    assert not [r for r in caplog.records if "initial_load_model_only" in r.getMessage()]
