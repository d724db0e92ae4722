"""`mlr1 demo --quick`: the whole chain through the real launch paths, a few steps per stage (this is
the shortened demo `make test` runs), and a failing stage stops the chain with a non-zero exit."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tomllib

import pytest

from mlr1_titan.demo import chain as chain_module
from mlr1_titan.demo.chain import EVALUATED, QUICK, Chain
from mlr1_titan.demo.progress import StageResult

RECIPE_STAGES = [
    "pretrain_phase1",
    "pretrain_phase2",
    "midtrain_phase1",
    "midtrain_phase2",
    "sft_general",
    "sft_reasoning",
]


@pytest.mark.slow
def test_the_quick_demo_runs_every_stage_and_hands_each_checkpoint_on(tmp_path):
    out = tmp_path / "demo"
    proc = subprocess.run(
        [sys.executable, "-m", "mlr1_titan.cli", "demo", "--quick", "--out", str(out)],
        capture_output=True, text=True, timeout=1200,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    # the console: one progress line per stage (step, loss, elapsed), then the report with the table
    assert re.search(r"\[ 4\] pretrain_phase1 +step 4/4 +loss \d+\.\d+ +elapsed \d+:\d\d", proc.stdout)
    assert re.search(r"\[12\] sft_reasoning +done in \d+:\d\d", proc.stdout)
    assert "| after reasoning SFT |" in proc.stdout
    run = out / "run"
    # each recipe stage started from the final checkpoint its predecessor recorded
    for before, stage in zip(RECIPE_STAGES, RECIPE_STAGES[1:]):
        final = json.loads((run / before / "recipe_done.json").read_text())["final_step"]
        (log_file,) = (out / "logs").glob(f"[0-9][0-9]_{stage}.log")
        log = log_file.read_text()
        assert f"--checkpoint.initial_load_path {run / before / 'checkpoint' / f'step-{final}'}" in log
    assert (run / "sft_reasoning" / "recipe_done.json").is_file()
    # mix scoring wrote phase 1's mix; the filter sub-sampled mid-training data twice
    scored = tomllib.loads((out / "data" / "mixes" / "pretrain_phase1.toml").read_text())
    assert [src["name"] for src in scored["sources"]] == ["math", "code", "prose", "noise"]
    assert sum(src["weight"] for src in scored["sources"]) == pytest.approx(1.0)
    for n in (1, 2):
        assert (run / f"mix_filter_{n}" / "mix.toml").is_file()
    # the four evaluations graded math answers and ran code in the strict sandbox
    for stage in EVALUATED:
        results = json.loads((run / "eval" / stage / "results.json").read_text())
        assert set(results["results"]) >= {"r1_gsm8k", "r1_humaneval_plus"}
        graded = [json.loads(line) for line in open(run / "eval" / stage / "samples_r1_humaneval_plus.jsonl")]
        assert graded and all(v["sandbox"] == "strict" for row in graded for v in row["filtered_resps"][0])
    report = (out / "report.md").read_text()
    for label in ("after pre-training", "after mid-training", "after general SFT", "after reasoning SFT"):
        assert f"| {label} |" in report
    assert "FAILED" not in report
    assert (out / "loss_curves.png").read_bytes()[:4] == b"\x89PNG"
    for stage in ("domain_model", *RECIPE_STAGES):
        assert list((run / stage).glob("tb/**/events.out.tfevents.*")), stage


def test_a_failing_stage_stops_the_chain_and_the_demo_exits_1(tmp_path, monkeypatch, capsys):
    from mlr1_titan.cli import main as mlr1

    ran = []

    def fake_run_stage(label, cmd, log, total_steps=None, env=None):
        ran.append(label)
        return StageResult(label, 7 if len(ran) == 3 else 0, 0.0, log)

    log = tmp_path / "x.log"
    log.write_text("the stage's output\n")
    monkeypatch.setattr(chain_module, "run_stage", lambda label, cmd, path, *a, **k: fake_run_stage(label, cmd, log))
    chain = Chain(tmp_path / "demo", QUICK)
    assert chain.run() is False
    assert len(ran) == 3 and "pretrain_phase1" in ran[-1]
    assert [r.returncode for r in chain.results][-1] == 7
    ran.clear()
    assert mlr1(["demo", "--quick", "--out", str(tmp_path / "demo")]) == 1
    out, err = capsys.readouterr()
    assert "| pretrain_phase1 | FAILED (exit 7) |" in out and "mlr1 demo: FAILED" in err


def test_a_folder_that_is_not_the_demos_is_never_replaced(tmp_path, capsys):
    from mlr1_titan.cli import main as mlr1

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "precious.txt").write_text("keep me")
    assert mlr1(["demo", "--quick", "--out", str(tmp_path)]) == 2
    assert "is not empty and not a demo folder" in capsys.readouterr().err
    assert (tmp_path / "run" / "precious.txt").read_text() == "keep me"
