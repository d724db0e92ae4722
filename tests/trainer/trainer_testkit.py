"""Launch the real torchtitan trainer (``torchrun -m torchtitan.train``) from tests, read its losses."""

from __future__ import annotations

import glob
import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def run_trainer(
    config: str,
    dump_folder: Path,
    *overrides: str,
    nproc: int = 2,
    env: dict | None = None,
    timeout: int = 900,
    job_config_launcher: bool = False,
) -> subprocess.CompletedProcess:
    """Run ``torchrun --nproc_per_node=nproc -m torchtitan.train --module mlr1_titan --config config``
    (or, with ``job_config_launcher``, ``-m mlr1_titan.train --job.config config``)."""
    launch = ["mlr1_titan.train", "--job.config", config] if job_config_launcher else [
        "torchtitan.train", "--module", "mlr1_titan", "--config", config,
    ]  # fmt: skip
    cmd = [
        sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}",
        "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0",
        "-m", *launch,
        "--dump_folder", str(dump_folder), "--metrics.log_freq", "1", "--metrics.enable_tensorboard",
        *overrides,
    ]  # fmt: skip
    full_env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    proc = subprocess.run(cmd, cwd=REPO, env=full_env, capture_output=True, text=True, timeout=timeout)
    if proc.returncode != 0:
        raise AssertionError(
            f"trainer failed (rc={proc.returncode}): {' '.join(cmd)}\n"
            f"--- stdout tail ---\n{proc.stdout[-4000:]}\n--- stderr tail ---\n{proc.stderr[-6000:]}"
        )
    return proc


def tensorboard_losses(dump_folder: Path, tag: str = "loss_metrics/global_avg_loss") -> dict[int, float]:
    """step -> scalar `tag` (default: the global average loss, float32 as logged), from every TB
    event file under dump_folder."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    losses: dict[int, float] = {}
    runs = sorted({os.path.dirname(p) for p in glob.glob(f"{dump_folder}/tb/**/events.out.tfevents.*", recursive=True)})
    assert runs, f"no tensorboard event files under {dump_folder}/tb"
    for run in runs:
        acc = EventAccumulator(run, size_guidance={"scalars": 0})
        acc.Reload()
        if tag not in acc.Tags()["scalars"]:
            continue
        for event in acc.Scalars(tag):
            losses[event.step] = event.value
    return losses
