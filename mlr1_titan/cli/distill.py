"""`mlr1 distill`: a tiny teacher for CPU runs, and held-out scores of a student against its teacher."""

from __future__ import annotations

from mlr1_titan.demo_corpus import heldout_documents, read_texts


def run_tiny_teacher(args) -> int:
    from mlr1_titan.distill.tiny_teacher import TinyTeacherRecipe, train_tiny_teacher

    train_tiny_teacher(args.out, read_texts(args.text), TinyTeacherRecipe(steps=args.steps, seed=args.seed))
    return 0


def run_heldout(args) -> int:
    from mlr1_titan.distill.heldout import score_heldout
    from mlr1_titan.tokenizer import Llama3Tokenizer

    texts = read_texts(args.text)[: args.docs] if args.text else heldout_documents(args.docs)
    scores = score_heldout(args.student, args.teacher, texts, Llama3Tokenizer())
    print(f"{args.student} vs teacher {args.teacher}: {scores.describe()}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser("distill", help="logit distillation tools (tiny teacher, held-out scores)")
    sub = p.add_subparsers(dest="distill_command", metavar="SUBCOMMAND", required=True)

    t = sub.add_parser("tiny-teacher", help="train a small Llama-3-shaped HF teacher on local text (CPU, minutes)")
    t.add_argument("out", help="output folder (an HF causal-LM folder, for --distill.teacher)")
    t.add_argument("--text", help="jsonl with a 'text' field per line (default: the shipped demo corpus)")
    t.add_argument("--steps", type=int, default=300, help="training steps (default 300)")
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=run_tiny_teacher)

    h = sub.add_parser("heldout", help="CE, KL to the teacher and top-1 agreement of an HF student on held-out text")
    h.add_argument("--student", required=True, help="HF folder of the student (--checkpoint.last_save_in_hf)")
    h.add_argument("--teacher", required=True, help="HF folder of the teacher")
    h.add_argument("--text", help="jsonl with a 'text' field per line (default: the demo's held-out templates)")
    h.add_argument("--docs", type=int, default=200, help="documents to score (default 200)")
    h.set_defaults(func=run_heldout)
