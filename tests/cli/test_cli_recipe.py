"""`mlr1 recipe`: the stage plan for a GPU count, and the checks a one-stage launch makes."""

from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest

import mlr1_titan.cli.recipe as recipe_cli
from mlr1_titan.cli import main as mlr1
from mlr1_titan.config_registry import load_trainer_config
from mlr1_titan.recipe import load_stages, sizes
from mlr1_titan.schedule import plan_batches

STAGES = ["pretrain_phase1", "pretrain_phase2", "midtrain_phase1", "midtrain_phase2", "sft_general", "sft_reasoning"]


def plan(capsys, *args: str) -> str:
    assert mlr1(["recipe", *args]) == 0
    return capsys.readouterr().out


def blocks(text: str) -> dict[str, str]:
    """Stage name -> its block of the dry-run output."""
    out = {}
    for block in text.split("\n\n")[1:]:
        name = block.split("] ", 1)[1].split()[0]
        out[name] = block
    return out


def test_every_size_with_all_stage_configs_has_the_paper_sequence():
    assert sizes() == ["140m", "360m", "950m", "tiny"]
    stages = load_stages("950m")
    assert [s.name for s in stages] == STAGES
    assert [s.after for s in stages] == [None, *STAGES[:-1]]
    assert [s.config for s in stages][2:] == [f"mlr1_950m_{n}" for n in STAGES[2:]]


def test_dry_run_prints_each_stage_with_its_hand_off_batch_and_wall_time(capsys, tmp_path):
    text = plan(capsys, "--size", "950m", "--gpus", "128", "--run-dir", str(tmp_path), "--dry-run")
    by_stage = blocks(text)
    assert list(by_stage) == STAGES
    steps = {n: load_trainer_config(s.config).training.steps for n, s in zip(STAGES, load_stages("950m"))}
    for before, stage in zip(STAGES, STAGES[1:]):
        block = by_stage[stage]
        assert f"--dump_folder {tmp_path / stage} " in block
        hand_off = tmp_path / before / "checkpoint" / (f"step-{steps[before]}" if steps[before] > 0 else "step-N")
        assert f"--checkpoint.initial_load_path {hand_off}" in block
    assert "--nnodes=16 --nproc_per_node=8" in by_stage["pretrain_phase1"]
    assert "--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}" in by_stage["pretrain_phase1"]
    assert "--dataloader.mixture.mix pretrain_phase2" in by_stage["pretrain_phase2"]
    assert "initial_load_path" not in by_stage["pretrain_phase1"]
    assert (
        "4.19M tokens per step" in by_stage["pretrain_phase1"]
        and "2.10M tokens per step" in by_stage["midtrain_phase2"]
    )
    assert "paper: 4.0-5.0 days on 128 GPUs (Table 2)" in by_stage["pretrain_phase2"]
    assert "paper: 2.0 h on 128 GPUs" in by_stage["sft_general"]


def test_fewer_gpus_give_accumulation_and_scaled_wall_time(capsys):
    text = plan(capsys, "--size", "360m", "--gpus", "8", "--dry-run", "--stage", "pretrain_phase1")
    config = load_trainer_config("mlr1_360m")
    accumulation = plan_batches(config, 8).accumulation
    assert accumulation == config.training.global_batch_size // (8 * config.training.local_batch_size) > 1
    assert f"x {accumulation} accumulation steps, 8 ranks" in text
    assert "--nnodes=1 --nproc_per_node=8" in text
    assert "on 8 GPUs at linear scaling: ~64.0-80.0 days" in text  # 4-5 days x 128/8


@pytest.mark.parametrize(
    "args, message",
    [
        (["--size", "7b", "--gpus", "8", "--dry-run"], "no recipe for size '7b'"),
        (["--size", "950m", "--gpus", "12", "--dry-run"], "--gpus 12 is not a whole number of 8-GPU nodes"),
        (["--size", "950m", "--gpus", "8", "--dry-run", "--stage", "rl"], "no stage 'rl'"),
        (
            ["--size", "950m", "--gpus", "8", "--dry-run", "--", "--optimizer.lr", "-1"],
            "optimizer.lr must be > 0, got -1.0",
        ),
    ],
)
def test_bad_requests_name_the_bad_input(capsys, args, message):
    assert mlr1(["recipe", *args]) == 1
    assert message in capsys.readouterr().err


def launch(tmp_path, stage: str, *extra: str) -> int:
    return mlr1(["recipe", "--size", "140m", "--gpus", "2", "--run-dir", str(tmp_path), "--stage", stage, *extra])


def fake_checkpoint(tmp_path, stage: str, step: int, complete: bool = True):
    ckpt = tmp_path / stage / "checkpoint" / f"step-{step}"
    ckpt.mkdir(parents=True)
    if complete:
        (ckpt / ".metadata").write_bytes(b"")
    return ckpt


def test_a_launch_refuses_without_the_previous_stage_naming_the_expected_path(capsys, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(recipe_cli.subprocess, "run", lambda cmd, **kw: ran.append(cmd))
    steps = load_trainer_config("mlr1_140m_midtrain_phase1").training.steps
    assert launch(tmp_path, "midtrain_phase2") == 1
    expected = tmp_path / "midtrain_phase1" / "checkpoint" / f"step-{steps}"
    assert f"expected its final checkpoint {expected} (none there)" in capsys.readouterr().err
    fake_checkpoint(tmp_path, "midtrain_phase1", 1000)  # a mid-stage checkpoint, not the final one
    assert launch(tmp_path, "midtrain_phase2") == 1
    assert "complete checkpoints there: step-1000" in capsys.readouterr().err
    fake_checkpoint(tmp_path, "midtrain_phase1", steps, complete=False)
    assert launch(tmp_path, "midtrain_phase2") == 1
    assert f"{expected} is half-written (no .metadata" in capsys.readouterr().err
    assert launch(tmp_path, "sft_reasoning") == 1  # steps from the data: only a finished launch marks it
    assert "sft_general/recipe_done.json is missing" in capsys.readouterr().err
    assert ran == []


def test_multi_node_launch_needs_the_rendezvous_host(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe_cli.subprocess, "run", lambda cmd, **kw: pytest.fail(f"launched {cmd}"))
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    assert (
        mlr1(["recipe", "--size", "140m", "--gpus", "16", "--run-dir", str(tmp_path), "--stage", "pretrain_phase1"])
        == 1
    )
    assert "2 nodes: set MASTER_ADDR and MASTER_PORT" in capsys.readouterr().err


def test_a_finished_launch_hands_its_final_checkpoint_to_the_next_stage(capsys, tmp_path, monkeypatch):
    """The launch runs torchrun for the stage; a zero exit marks the stage finished (its last complete
    checkpoint), and the next stage then starts from exactly that checkpoint."""
    ran = []

    def fake_torchrun(cmd, **kwargs):
        ran.append(cmd)
        stage = Path(cmd[cmd.index("--dump_folder") + 1]).name
        fake_checkpoint(tmp_path, stage, 3)
        fake_checkpoint(tmp_path, stage, 7)
        fake_checkpoint(tmp_path, stage, 9, complete=False)  # a save cut short is not the final one
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(recipe_cli.subprocess, "run", fake_torchrun)
    fake_checkpoint(tmp_path, "midtrain_phase2", load_trainer_config("mlr1_140m_midtrain_phase2").training.steps)
    assert launch(tmp_path, "sft_general", "--", "--debug.seed", "3") == 0
    assert json.loads((tmp_path / "sft_general" / "recipe_done.json").read_text())["final_step"] == 7
    assert launch(tmp_path, "sft_reasoning") == 0
    first, second = ran
    assert first[first.index("--nproc_per_node=2") + 1 :][:8] == [
        "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0", "--local-ranks-filter=0", "--role=rank", "--tee=3",
        f"--log-dir={tmp_path / 'sft_general' / 'torchrun_logs'}", "-m", "torchtitan.train",
    ]  # fmt: skip
    assert "--checkpoint.enable" in first  # the hand-off is a checkpoint, whatever the stage config says
    assert first[-2:] == ["--debug.seed", "3"]
    i = second.index("--checkpoint.initial_load_path")
    assert second[i + 1] == str(tmp_path / "sft_general" / "checkpoint" / "step-7")


def test_a_failed_launch_is_not_marked_finished(capsys, tmp_path, monkeypatch):
    monkeypatch.setattr(recipe_cli.subprocess, "run", lambda cmd, **kw: subprocess.CompletedProcess(cmd, 3))
    assert launch(tmp_path, "pretrain_phase1") == 3
    assert "exited with status 3; it is not marked finished" in capsys.readouterr().err
    assert not (tmp_path / "pretrain_phase1" / "recipe_done.json").exists()


@pytest.mark.parametrize(
    "override", [["--dump_folder", "/x"], ["--checkpoint.folder=c"], ["--checkpoint.initial_load_path", "/y"]]
)
def test_overrides_the_hand_off_checks_depend_on_are_refused(capsys, override):
    assert mlr1(["recipe", "--size", "950m", "--gpus", "8", "--dry-run", "--", *override]) == 1
    assert f"{override[0]}: the recipe sets these per stage" in capsys.readouterr().err


def test_a_stage_run_with_fewer_steps_hands_on_its_own_last_step(capsys, tmp_path, monkeypatch):
    """The final step a launch records wins over the config's training.steps (500,000 for the
    140M): a phase shortened by an override hands on its last checkpoint."""
    ran = []

    def fake_torchrun(cmd, **kwargs):
        ran.append(cmd)
        steps = int(cmd[cmd.index("--training.steps") + 1]) if "--training.steps" in cmd else 5
        fake_checkpoint(tmp_path, Path(cmd[cmd.index("--dump_folder") + 1]).name, steps)
        return subprocess.CompletedProcess(cmd, 0)

    monkeypatch.setattr(recipe_cli.subprocess, "run", fake_torchrun)
    assert launch(tmp_path, "pretrain_phase1", "--", "--training.steps", "40") == 0
    assert launch(tmp_path, "pretrain_phase2") == 0
    cmd = ran[1]
    assert cmd[cmd.index("--checkpoint.initial_load_path") + 1] == str(
        tmp_path / "pretrain_phase1" / "checkpoint" / "step-40"
    )
    assert f"--log-dir={tmp_path / 'pretrain_phase2' / 'torchrun_logs'}" in cmd  # every rank's output, in files


def test_a_finished_stage_is_not_relaunched_and_an_unfinished_one_says_it_resumes(capsys, tmp_path, monkeypatch):
    ran = []
    monkeypatch.setattr(
        recipe_cli.subprocess, "run", lambda cmd, **kw: ran.append(cmd) or subprocess.CompletedProcess(cmd, 1)
    )
    fake_checkpoint(tmp_path, "pretrain_phase1", 3)
    assert launch(tmp_path, "pretrain_phase1") == 1  # torchrun (faked) fails: not marked finished
    assert f"{tmp_path / 'pretrain_phase1' / 'checkpoint'} exists; the stage resumes from its latest checkpoint" in (
        capsys.readouterr().out
    )
    assert len(ran) == 1 and not (tmp_path / "pretrain_phase1" / "recipe_done.json").exists()
    (tmp_path / "pretrain_phase1" / "recipe_done.json").write_text('{"stage": "pretrain_phase1", "final_step": 3}')
    assert launch(tmp_path, "pretrain_phase1") == 1
    err = capsys.readouterr().err
    assert "has finished already" in err and f"remove {tmp_path / 'pretrain_phase1'} to run it again" in err
    assert len(ran) == 1


@pytest.mark.parametrize("override", ["--checkpoint.no-enable", "--dump-folder=/x", "--checkpoint.initial-load-path"])
def test_hand_off_overrides_are_refused_in_either_spelling(capsys, override):
    assert mlr1(["recipe", "--size", "950m", "--gpus", "8", "--dry-run", "--", override, "y"]) == 1
    assert "the recipe sets these per stage" in capsys.readouterr().err


def test_the_tiny_size_plans_every_stage_without_paper_wall_times(capsys, tmp_path):
    by_stage = blocks(
        plan(capsys, "--size", "tiny", "--gpus", "2", "--gpus-per-node", "2", "--run-dir", str(tmp_path), "--dry-run")
    )
    assert list(by_stage) == STAGES
    for block in by_stage.values():
        assert "--checkpoint.enable" in block
        assert "wall time: the paper gives wall times for its own sizes only" in block
