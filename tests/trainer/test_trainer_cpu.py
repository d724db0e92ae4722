"""The real torchtitan trainer on CPU: FSDP2 and TP over gloo, loss falls, exact resume, TOML sizes."""

from __future__ import annotations

import pytest
from trainer_testkit import run_trainer, tensorboard_losses

from mlr1_titan.resources import model_configs_dir

pytestmark = pytest.mark.slow

# Small steps keep the 2-core CI fast; the tiny model keeps the real 128k vocabulary.
SMALL = ("--training.seq_len", "64", "--training.local_batch_size", "4", "--debug.seed", "7")


def test_fsdp2_training_learns_and_resumes_bitwise(tmp_path):
    """2 ranks, FSDP over gloo: the loss falls, and a run resumed from its step-5 checkpoint
    reproduces steps 6..10 of an uninterrupted run bit for bit (tensorboard float32 values)."""
    # The interrupted run stops after step 5 but keeps the 10-step LR schedule, like a killed job.
    ckpt = (
        "--checkpoint.enable",
        "--checkpoint.interval",
        "5",
        "--checkpoint.no-last-save-model-only",
        "--lr_scheduler.total_steps",
        "10",
        "--parallelism.data_parallel_shard_degree",
        "2",
    )
    straight, resumed = tmp_path / "straight", tmp_path / "resumed"
    proc = run_trainer("mlr1_tiny", straight, *SMALL, *ckpt, "--training.steps", "10")
    assert "dp_shard=2" in proc.stdout + proc.stderr
    run_trainer("mlr1_tiny", resumed, *SMALL, *ckpt, "--training.steps", "5")
    proc = run_trainer("mlr1_tiny", resumed, *SMALL, *ckpt, "--training.steps", "10")
    assert "Training starts at step 6" in proc.stdout + proc.stderr

    a, b = tensorboard_losses(straight), tensorboard_losses(resumed)
    assert sorted(a) == list(range(1, 11))
    assert a[10] < a[1] - 2.0, f"loss did not fall: step 1 {a[1]:.3f}, step 10 {a[10]:.3f}"
    assert [a[s] for s in range(1, 6)] == [b[s] for s in range(1, 6)]
    for step in range(6, 11):
        assert a[step] == b[step], f"step {step}: {a[step]!r} != {b[step]!r}"


def test_one_global_batch_gives_the_same_losses_on_any_layout(tmp_path):
    """mlr1_tiny pins a global batch of 8 rows (local 4): 1 rank with 2 accumulation steps, 2 FSDP
    ranks without, and TP=2 with accumulation train on the same data from the same weights."""
    seed = tmp_path / "seed"
    run_trainer("mlr1_tiny", seed, "--checkpoint.enable", "--checkpoint.create_seed_checkpoint", nproc=1)
    start = (
        "--checkpoint.enable",
        "--checkpoint.initial_load_path",
        str(seed / "checkpoint" / "step-0"),
        "--checkpoint.initial_load_model_only",
        "--checkpoint.interval",
        "1000",
        "--training.steps",
        "3",
    )
    proc = run_trainer("mlr1_tiny", tmp_path / "one", *SMALL, *start, nproc=1)
    assert "(1 DP ranks x 4 per rank x 2 accumulation steps, 1 ranks)" in proc.stdout + proc.stderr
    proc = run_trainer("mlr1_tiny", tmp_path / "dp2", *SMALL, *start, "--parallelism.data_parallel_shard_degree", "2")
    assert "(2 DP ranks x 4 per rank x 1 accumulation steps, 2 ranks)" in proc.stdout + proc.stderr
    proc = run_trainer("mlr1_tiny", tmp_path / "tp2", *SMALL, *start, "--parallelism.tensor_parallel_degree", "2")
    log = proc.stdout + proc.stderr
    # The weights really are sharded: half of w1's 768 rows on each TP rank.
    assert "tensor parallel: layers.0.feed_forward.w1.weight placements" in log
    assert "local shape (384, 256) of (768, 256)" in log

    one, dp, tp = (tensorboard_losses(tmp_path / name) for name in ("one", "dp2", "tp2"))
    print(f"\nlosses: 1 rank x 2 accumulation {one}\n        2 FSDP ranks {dp}\n        TP 2 x 2 accumulation {tp}")
    for step in (1, 2, 3):
        assert dp[step] == pytest.approx(one[step], rel=1e-5), (step, dp[step], one[step])
        assert tp[step] == pytest.approx(one[step], rel=1e-4), (step, tp[step], one[step])


def test_new_size_is_a_toml_file(tmp_path):
    configs = tmp_path / "configs"
    configs.mkdir()
    (configs / "mlr1_micro.toml").write_text(
        f'extends = "{(model_configs_dir() / "mlr1_tiny.toml").as_posix()}"\n'
        "[model]\n"
        "n_layers = 2\ndim = 64\nn_heads = 2\nn_kv_heads = 1\nffn_hidden_dim = 128\nhead_dim = 32\n"
        # The real sizes train with selective activation checkpointing: exercise it here too.
        '[activation_checkpoint]\nmode = "selective"\n'
    )
    proc = run_trainer(
        "mlr1_micro",
        tmp_path / "out",
        *SMALL,
        "--training.steps",
        "4",
        nproc=1,
        env={"MLR1_CONFIG_DIR": str(configs)},
    )
    # 2 * (2*64*2*32 + 2*64*1*32 + 3*64*128 + 2*64) + 128256*64 + 64
    expected = 2 * (8192 + 4096 + 24576 + 128) + 128256 * 64 + 64
    assert f"size: {expected:,} total parameters" in proc.stdout + proc.stderr
    losses = tensorboard_losses(tmp_path / "out")
    assert losses[4] < losses[1]


def test_float8_from_the_config_trains_through_the_job_config_launch_line(tmp_path):
    """`-m mlr1_titan.train --job.config mlr1_tiny.toml` with emulated float8: the built model runs
    every Linear but the tied lm_head in float8, and trains."""
    proc = run_trainer(
        "mlr1_tiny.toml",
        tmp_path / "f8",
        *SMALL,
        "--training.steps",
        "3",
        "--model.float8",
        "tensorwise",
        "--model.float8_emulate",
        nproc=1,
        job_config_launcher=True,
    )
    log = proc.stdout + proc.stderr
    # 4 blocks x (wqkv, wo, w1, w2, w3) = 20 float8 layers; the lm_head stays high precision
    assert "float8 (tensorwise): 20 Linear layers in float8; kept in high precision: ['lm_head']" in log
    losses = tensorboard_losses(tmp_path / "f8")
    assert sorted(losses) == [1, 2, 3] and losses[3] < losses[1]
