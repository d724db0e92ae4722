"""Training throughput of the real trainer on one GPU: tokens/s/GPU and MFU per flavor, compile off/on.

Runs ``torchrun --nproc_per_node=1 -m torchtitan.train --module mlr1_titan --config mlr1_<size>``
(bf16 mixed precision, FSDP wrapping as in production, flex attention with document masks) on the
shipped demo corpus (data_mix/demo.toml) for a few steps and averages the logged tps / MFU after warm-up.

    python benchmarks/gpu_throughput.py [--sizes 140m 360m 950m] [--steps 30] [--batch 16] [--seq 2048]

Needs a CUDA GPU; on a CPU-only host it says so and exits 0.
"""

from __future__ import annotations

import argparse
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"step:\s*(\d+).*?tps:\s*([\d,]+).*?mfu:\s*([\d.]+)%")
_MEM = re.compile(r"memory:\s*([\d.]+)GiB")


def run(size: str, compile_model: bool, args) -> dict:
    with tempfile.TemporaryDirectory() as dump:
        cmd = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--nproc_per_node=1",
            "--rdzv_backend=c10d",
            "--rdzv_endpoint=localhost:0",
            "-m",
            "torchtitan.train",
            "--module",
            "mlr1_titan",
            "--config",
            f"mlr1_{size}",
            "--dump_folder",
            dump,
            "--dataloader.mixture.mix",
            "demo",  # the shipped local corpus: no hub access needed
            "--training.steps",
            str(args.steps),
            "--training.local_batch_size",
            str(args.batch),
            "--training.seq_len",
            str(args.seq),
            "--metrics.log_freq",
            "5",
            "--metrics.no-enable-tensorboard",
            "--checkpoint.no-enable",
            "--compile.enable" if compile_model else "--compile.no-enable",
        ]
        proc = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return {"error": log[-1500:]}
    points = [(int(s), float(t.replace(",", "")), float(m)) for s, t, m in _LINE.findall(log)]
    steady = [p for p in points if p[0] > args.warmup] or points[-1:]
    mem = [float(x) for x in _MEM.findall(log)]
    return {
        "tps": sum(p[1] for p in steady) / len(steady),
        "mfu": sum(p[2] for p in steady) / len(steady),
        "mem_gib": max(mem) if mem else float("nan"),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", nargs="+", default=["140m", "360m", "950m"])
    parser.add_argument("--steps", type=int, default=30)
    parser.add_argument("--warmup", type=int, default=10, help="steps excluded from the averages")
    parser.add_argument("--batch", type=int, default=16)
    parser.add_argument("--seq", type=int, default=2048)
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU on this host: gpu_throughput measures nothing here")
        return 0
    print(f"GPU: {torch.cuda.get_device_name()}  batch={args.batch} seq={args.seq} bf16, 1 GPU, FSDP-wrapped")
    print(f"{'flavor':>8} {'compile':>8} {'tokens/s/GPU':>14} {'MFU %':>7} {'peak mem GiB':>13}")
    for size in args.sizes:
        for compile_model in (False, True):
            r = run(size, compile_model, args)
            if "error" in r:
                print(f"{size:>8} {str(compile_model):>8}  FAILED\n{r['error']}")
                continue
            print(f"{size:>8} {str(compile_model):>8} {r['tps']:>14,.0f} {r['mfu']:>7.2f} {r['mem_gib']:>13.2f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
