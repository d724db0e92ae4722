"""`mlr1 demo`: train the tiny MobileLLM-R1 on CPU (or GPU) end to end in a few minutes."""

from __future__ import annotations

import os
import subprocess
import sys

from mlr1_titan.demo_corpus import write_corpus


def run_demo(args) -> int:
    if args.write_corpus:
        print(f"wrote {write_corpus(args.write_corpus, args.docs)}")
        return 0
    cmd = [
        sys.executable,
        "-m",
        "torch.distributed.run",
        f"--nproc_per_node={args.nproc}",
        "--rdzv_backend=c10d",
        "--rdzv_endpoint=localhost:0",
        "--local-ranks-filter=0",
        "--role=rank",
        "--tee=3",
        "-m",
        "torchtitan.train",
        "--module",
        "mlr1_titan",
        "--config",
        args.config,
        "--training.steps",
        str(args.steps),
        *args.extra,
    ]
    print("+", " ".join(cmd), flush=True)
    env = dict(os.environ, OMP_NUM_THREADS=os.environ.get("OMP_NUM_THREADS", "1"))
    return subprocess.call(cmd, env=env)


def register(subparsers) -> None:
    p = subparsers.add_parser("demo", help="train the tiny model for a few steps (CPU is fine)")
    p.add_argument("--config", default="mlr1_tiny", help="config name or TOML path (default: mlr1_tiny)")
    p.add_argument("--steps", type=int, default=30)
    p.add_argument("--nproc", type=int, default=2, help="processes (ranks) to launch")
    p.add_argument("--write-corpus", metavar="PATH", help="only (re)write the synthetic demo corpus")
    p.add_argument("--docs", type=int, default=4000, help="documents in a written corpus")
    p.add_argument("extra", nargs="*", help="extra torchtitan CLI overrides, after --")
    p.set_defaults(func=run_demo)
