"""KD vs CE mid-training of the tiny student on CPU, scored on held-out text against the teacher.

Protocol (all through the real trainer, one rank):

1. a tiny Llama-3-shaped HF teacher trained on the demo corpus (``mlr1 distill tiny-teacher``), or ``--teacher``;
2. ``mlr1_tiny`` pre-trained ``--pretrain-steps`` with CE (the start of mid-training);
3. from those weights (model only), ``mlr1_tiny_midtrain_phase1`` for ``--steps`` twice: with the
   teacher (KD) and with ``--distill.teacher ""`` (CE); same data, LR schedule and seed;
4. both exported students and the teacher scored with transformers on held-out text whose
   templates none of them trained on (``demo_corpus.heldout_documents``), and on training-like text.

Prints CE, KL(teacher || student) and top-1 agreement of each student, and the teacher's own CE.

    .venv/bin/python benchmarks/kd_vs_ce.py [--steps 30 --pretrain-steps 30 --teacher-steps 300 --work DIR]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

from mlr1_titan.demo_corpus import heldout_documents, read_texts
from mlr1_titan.distill.heldout import score_heldout
from mlr1_titan.distill.tiny_teacher import TinyTeacherRecipe, train_tiny_teacher
from mlr1_titan.tokenizer import Llama3Tokenizer


def trainer(config: str, dump: Path, *flags: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1", "--rdzv_backend=c10d",
           "--rdzv_endpoint=localhost:0", "-m", "torchtitan.train", "--module", "mlr1_titan", "--config", config,
           "--dump_folder", str(dump), "--training.seq_len", "64", "--debug.seed", "7", *flags]  # fmt: skip
    print(f"+ {config} -> {dump}", flush=True)
    subprocess.run(cmd, check=True, capture_output=True, env=dict(os.environ, OMP_NUM_THREADS="2"))


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--steps", type=int, default=30, help="mid-training steps of each student")
    p.add_argument("--pretrain-steps", type=int, default=30)
    p.add_argument("--teacher", help="an HF teacher folder (default: train a tiny one)")
    p.add_argument("--teacher-steps", type=int, default=300)
    p.add_argument("--docs", type=int, default=100, help="held-out documents scored")
    p.add_argument("--work", help="working folder (default: a temporary one)")
    args = p.parse_args()
    work = Path(args.work or tempfile.mkdtemp(prefix="kd_vs_ce_"))
    tokenizer = Llama3Tokenizer()

    teacher = Path(args.teacher) if args.teacher else work / "teacher"
    if not args.teacher:
        train_tiny_teacher(teacher, read_texts(), TinyTeacherRecipe(steps=args.teacher_steps))
    n = args.pretrain_steps
    trainer("mlr1_tiny", work / "pretrain", "--checkpoint.enable", "--checkpoint.interval", str(n),
            "--training.steps", str(n))  # fmt: skip
    students = {}
    for name, teacher_flag in (("KD", str(teacher)), ("CE", "")):
        dump = work / name.lower()
        trainer("mlr1_tiny_midtrain_phase1", dump, "--distill.teacher", teacher_flag, "--checkpoint.enable",
                "--checkpoint.initial_load_path", str(work / "pretrain" / "checkpoint" / f"step-{n}"),
                "--training.steps", str(args.steps), "--checkpoint.interval", str(args.steps),
                "--checkpoint.last_save_in_hf", "--loss.chunk_tokens", "96")  # fmt: skip
        students[name] = dump / "checkpoint" / "hf" / f"step-{args.steps}"

    held_out = heldout_documents(args.docs)
    train_like = read_texts()[-args.docs :]
    print(f"\n{args.steps} mid-training steps after {n} CE pre-training steps (tiny student, teacher {teacher})")
    for label, texts in (("held-out templates", held_out), ("training templates", train_like)):
        print(f"{label}: teacher CE {score_heldout(teacher, teacher, texts, tokenizer).ce:.4f}")
        scores = {name: score_heldout(path, teacher, texts, tokenizer) for name, path in students.items()}
        for name, s in scores.items():
            print(f"  {name} student: {s.describe()}")
        kd, ce = scores["KD"], scores["CE"]
        print(f"  KD / CE: KL {kd.kl / ce.kl:.3f}  CE {kd.ce / ce.ce:.3f}  (< 1: KD better)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
