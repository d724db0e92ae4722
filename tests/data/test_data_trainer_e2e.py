"""The real torchtitan trainer (torchrun, CPU, gloo) trains the tiny model through `MixtureDataLoader`,
from `mlr1 tokenize` shards and from jsonl, selecting the mix on the command line. (Exact resume of
this loader under 2-rank FSDP: tests/test_trainer_cpu.py.)"""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from data_testkit import make_docs, write_jsonl, write_mix, write_parquet

pytestmark = pytest.mark.slow

SMALL = ("--training.seq_len", "64", "--training.local_batch_size", "4", "--debug.seed", "7")


@pytest.fixture(scope="module")
def mix(tmp_path_factory):
    from mlr1_titan.data.mix_config import load_mix
    from mlr1_titan.data.tokenize import tokenize_mix
    from mlr1_titan.tokenizer_spec import build_tokenizer

    root = tmp_path_factory.mktemp("mix")
    write_jsonl(root / "web" / "web.jsonl", make_docs("web", 300))
    write_parquet(root / "code" / "code.parquet", make_docs("code", 200), field="content")
    path = write_mix(
        root / "tiny_mix.toml",
        [
            dict(name="web", kind="local", path=str(root / "web/*.jsonl"), weight=70),
            dict(name="code", kind="local", path=str(root / "code/*.parquet"), text_fields=["content"], weight=30),
        ],
    )
    code_heavy = write_mix(
        root / "code_heavy.toml",
        [
            dict(name="web", kind="local", path=str(root / "web/*.jsonl"), weight=10),
            dict(name="code", kind="local", path=str(root / "code/*.parquet"), text_fields=["content"], weight=90),
        ],
    )
    tokenize_mix(load_mix(str(path)), str(root / "shards"), build_tokenizer, stream=open(os.devnull, "w"))
    return {"mix": str(path), "code_heavy": str(code_heavy), "shards": str(root / "shards")}


def _train(dump: Path, *overrides: str, nproc: int = 1) -> str:
    from trainer_testkit import run_trainer

    proc = run_trainer("mlr1_tiny", dump, *SMALL, *overrides, nproc=nproc)
    return proc.stdout + proc.stderr


def _losses(dump: Path) -> dict[int, float]:
    from trainer_testkit import tensorboard_losses

    return tensorboard_losses(dump)


def test_real_trainer_trains_from_shards_and_from_jsonl_with_a_phase_switch(mix, tmp_path):
    _train(
        tmp_path / "shards",
        "--dataloader.mixture.mix",
        mix["mix"],
        "--dataloader.mixture.shards_root",
        mix["shards"],
        "--training.steps",
        "3",
    )
    # torchtitan's CLI takes lists comma-separated: phase 2 starts after 2 optimizer steps.
    out = _train(
        tmp_path / "jsonl",
        "--dataloader.mixture.phases",
        f"{mix['mix']},{mix['code_heavy']}@2",
        "--training.steps",
        "3",
    )
    assert "switching to mix 'code_heavy' (phase 1)" in out
    from_shards, from_jsonl = _losses(tmp_path / "shards"), _losses(tmp_path / "jsonl")
    assert sorted(from_shards) == sorted(from_jsonl) == [1, 2, 3]
    assert from_shards[3] < from_shards[1] and from_jsonl[3] < from_jsonl[1]
    # Realized-mix metrics are logged with the training metrics: console and tensorboard.
    from trainer_testkit import tensorboard_losses

    assert "data step 3:" in out
    web = tensorboard_losses(tmp_path / "shards", "data/web/fraction")
    assert sorted(web) == [1, 2, 3] and abs(web[3] - 0.7) < 0.15
