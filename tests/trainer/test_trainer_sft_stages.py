"""Both SFT stages through the real trainer on CPU, on local chat files: general SFT (2 ranks, FSDP,
packed rows sized to the stage's conversations per step) learns -- the assistant-token loss falls on a
held-out set written by other generators (other templates, numbers and words) -- then reasoning SFT
starts from its weights."""

from __future__ import annotations

import re

import pytest
from sft_testkit import write_chat_mix, write_chat_sets
from trainer_testkit import run_trainer, tensorboard_losses

from mlr1_titan.resources import model_configs_dir

pytestmark = pytest.mark.slow


def stage_toml(path, base, train_mix, heldout_mix, seq_len, extra=""):
    path.write_text(
        f'extends = "{(model_configs_dir() / "base" / base).as_posix()}"\n'
        '[model]\nflavor = "tiny"\n'
        f'[dataloader.chat]\nmix = "{train_mix.as_posix()}"\nepochs = 1\npacking = true\n'
        "[optimizer]\nlr = 2.0e-3\n"
        f'[training]\nlocal_batch_size = 4\nglobal_batch_size = 16\nseq_len = {seq_len}\nmixed_precision_param = "float32"\n'
        '[activation_checkpoint]\nmode = "none"\n'
        "[checkpoint]\nenable = true\ninterval = 1000\nlast_save_model_only = false\n"
        "[metrics]\nlog_freq = 1\n"
        "[validator]\nenable = true\nfreq = 8\nsteps = 3\n"
        f'[validator.dataloader]\nkind = "chat"\n[validator.dataloader.chat]\nmix = "{heldout_mix.as_posix()}"\n'
        + extra
    )
    return path


def test_general_then_reasoning_sft_on_cpu(tmp_path):
    files = write_chat_sets(tmp_path / "data", n=160)
    train = write_chat_mix(tmp_path / "train.toml", files["math_train"], files["words_train"])
    heldout = write_chat_mix(tmp_path / "heldout.toml", files["math_heldout"], files["words_heldout"])
    trained_text = files["math_train"].read_text() + files["words_train"].read_text()
    for line in files["math_heldout"].read_text().splitlines() + files["words_heldout"].read_text().splitlines():
        assert line not in trained_text  # held-out is not a copy of the training distribution

    general = stage_toml(tmp_path / "general.toml", "sft_general.toml", train, heldout, seq_len=128)
    out = tmp_path / "general"
    proc = run_trainer(str(general), out, nproc=2)
    log = proc.stdout + proc.stderr
    steps = int(re.search(r"SFT schedule for mix .* -> ([\d,]+) steps", log).group(1).replace(",", ""))
    per_step = float(re.search(r"SFT packing: 2 DP ranks .* -> ([\d.]+) conversations per step", log).group(1))
    assert per_step == pytest.approx(16, rel=0.1)  # training.global_batch_size = 16 conversations
    assert 10 <= steps <= 60
    assert re.search(rf"warmup: {max(1, -(-3 * steps // 100))} steps \(warmup_ratio 0.03", log)
    val = tensorboard_losses(out, "validation_metrics/loss")
    first, last = val[min(val)], val[max(val)]
    assert len(val) >= 2 and max(val) >= steps // 2
    print(f"held-out assistant-token loss: step {min(val)} {first:.3f} -> step {max(val)} {last:.3f}")
    assert last < first - 2.0, f"held-out assistant loss did not fall: {first:.3f} -> {last:.3f}"
    train_loss = tensorboard_losses(out)
    assert train_loss[steps] < train_loss[1]
    realized = tensorboard_losses(out, "sft_data/conversations_per_step")  # rank 0's rows so far x rows per step
    assert realized[steps] == pytest.approx(16, rel=0.1)

    # Resuming this run where the data now derives another step count is refused (the LR schedule
    # would change mid-run), naming the step count that keeps it.
    with pytest.raises(
        AssertionError, match=rf"planned for {steps} steps, this start derives \d+ .* --training.steps {steps}"
    ):
        run_trainer(str(general), out, "--dataloader.chat.epochs", "2", "--validator.no-enable", nproc=2)

    # Stage 2 starts from the stage-1 weights (model only), with rope theta x8, in the padded mode of the
    # paper's TRL run: one conversation per row, each micro-batch padded to its longest.
    reasoning = stage_toml(tmp_path / "reasoning.toml", "sft_reasoning.toml", train, heldout, seq_len=256)
    ckpt = out / "checkpoint" / f"step-{steps}"
    assert ckpt.is_dir()
    out2 = tmp_path / "reasoning"
    proc = run_trainer(
        str(reasoning),
        out2,
        "--checkpoint.initial_load_path",
        str(ckpt),
        "--training.steps",
        "3",
        "--validator.no-enable",
        "--dataloader.chat.no-packing",
        nproc=1,
    )
    log = proc.stdout + proc.stderr
    assert "Training starts at step 1" in log and "warmup: 1 steps (warmup_ratio 0.1" in log
    assert "batch: 16 conversations per step, each micro-batch padded to its longest" in log
    losses = tensorboard_losses(out2)
    # A fresh tiny model starts near ln(128256) = 11.76; the fine-tuned weights start far lower.
    assert losses[1] < first - 2.0
