"""`mlr1 demo`: train the tiny MobileLLM-R1 on CPU (or GPU) end to end in a few minutes.

The demo corpus is synthetic and generated here (deterministic for a seed): short worked arithmetic
and counting documents, so a few-million-parameter model visibly learns within 50 steps. It ships as
``data/demo/tiny_corpus.jsonl``; ``mlr1 demo --write-corpus PATH`` regenerates it.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

from .toml_config import REPO_ROOT

DEFAULT_CORPUS = REPO_ROOT / "data" / "demo" / "tiny_corpus.jsonl"
_NAMES = ["Ada", "Ben", "Chen", "Dara", "Eli", "Fatima", "Gus", "Hana", "Ivo", "June"]
_ITEMS = ["apples", "books", "coins", "marbles", "pencils", "shells", "stamps", "tickets"]


def _document(rng: random.Random) -> str:
    kind = rng.randrange(3)
    if kind == 0:
        a, b = rng.randint(2, 99), rng.randint(2, 99)
        name, item = rng.choice(_NAMES), rng.choice(_ITEMS)
        return (
            f"{name} has {a} {item} and finds {b} more. How many {item} does {name} have now? "
            f"We add {a} and {b}: {a} + {b} = {a + b}. The answer is \\boxed{{{a + b}}}."
        )
    if kind == 1:
        a, b = rng.randint(2, 12), rng.randint(2, 12)
        return f"Multiplication table: {a} times {b} is {a * b}. So {a} x {b} = {a * b} and {b} x {a} = {a * b}."
    start, step = rng.randint(0, 50), rng.randint(1, 9)
    seq = ", ".join(str(start + i * step) for i in range(8))
    return f"Count by {step} starting at {start}: {seq}. Each number is {step} more than the one before."


def write_corpus(path: str | os.PathLike, n_docs: int = 4000, seed: int = 0) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    rng = random.Random(seed)
    with open(path, "w") as f:
        for _ in range(n_docs):
            f.write(json.dumps({"text": _document(rng)}) + "\n")
    return path


def run_demo(args) -> int:
    if args.write_corpus:
        print(f"wrote {write_corpus(args.write_corpus, args.docs)}")
        return 0
    if not DEFAULT_CORPUS.exists():
        write_corpus(DEFAULT_CORPUS)
    cmd = [
        sys.executable, "-m", "torch.distributed.run",
        f"--nproc_per_node={args.nproc}", "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0",
        "--local-ranks-filter=0", "--role=rank", "--tee=3",
        "-m", "torchtitan.train", "--module", "mlr1_titan", "--config", args.config,
        "--training.steps", str(args.steps), *args.extra,
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
