"""`mlr1 distill`: a tiny teacher for CPU runs, and held-out scores of a student against its teacher."""

from __future__ import annotations

from dataclasses import replace

from mlr1_titan.demo_corpus import heldout_documents, read_texts


def run_tiny_teacher(args) -> int:
    from mlr1_titan.distill.tiny_teacher import TinyTeacherRecipe, train_tiny_teacher
    from mlr1_titan.tokenizer import Llama3Tokenizer

    tokenizer = Llama3Tokenizer(Llama3Tokenizer.Config(path=args.tokenizer))
    given = {
        "hidden_size": args.hidden_size,
        "num_hidden_layers": args.layers,
        "intermediate_size": 3 * args.hidden_size if args.hidden_size else None,
        "steps": args.steps,
        "batch_size": args.batch_size,
        "seq_len": args.seq_len,
        "seed": args.seed,
    }
    recipe = replace(TinyTeacherRecipe(), **{k: v for k, v in given.items() if v is not None})
    train_tiny_teacher(args.out, read_texts(args.text), recipe, tokenizer=tokenizer)
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
    t.add_argument("--steps", type=int, help="training steps (default 300)")
    t.add_argument("--hidden-size", type=int, help="width, FFN 3x (default 128)")
    t.add_argument("--layers", type=int, help="decoder blocks (default 2)")
    t.add_argument("--batch-size", type=int, help="sequences per step (default 8)")
    t.add_argument("--seq-len", type=int, help="tokens per sequence (default 64)")
    t.add_argument(
        "--tokenizer",
        help="the students' tokenizer: tiktoken file or folder with tokenizer.model / tokenizer.json "
        "(default: Llama-3's); the teacher's vocabulary is its size",
    )
    t.add_argument("--seed", type=int, default=0)
    t.set_defaults(func=run_tiny_teacher)

    h = sub.add_parser("heldout", help="CE, KL to the teacher and top-1 agreement of an HF student on held-out text")
    h.add_argument("--student", required=True, help="HF folder of the student (--checkpoint.last_save_in_hf)")
    h.add_argument("--teacher", required=True, help="HF folder of the teacher")
    h.add_argument("--text", help="jsonl with a 'text' field per line (default: the demo's held-out templates)")
    h.add_argument("--docs", type=int, default=200, help="documents to score (default 200)")
    h.set_defaults(func=run_heldout)
