"""``mlr1 eval`` and ``mlr1 eval-data`` sub-commands (registered by ``mlr1_titan/cli.py``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

EPILOG = """\
examples:
  mlr1 eval hf/mlr1-950m --tasks r1_reasoning --samples aime=64,lcb=16
  mlr1 eval hf/mlr1-950m --tasks r1_math500,r1_gsm8k --samples all=1 --max-gen-toks 8192
  MLR1_EVAL_DATA_DIR=/data/r1 mlr1 eval ckpt --tasks r1_livecodebench --lcb-window 2025-02-01:2025-05-01
  mlr1 eval-data /data/r1          # on a machine with hub access: pinned jsonl mirror for offline use

protocol (paper §4): zero-shot, question as the user turn of the model's chat template, T=0.6,
top-p 0.95, up to 30,000 new tokens, n samples per problem; see docs/evaluation.md.
"""


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "eval",
        help="evaluate an HF checkpoint on AIME/MATH-500/GSM8K/HumanEval+/MBPP+/LiveCodeBench (lm-eval)",
        description="Run the r1_* lm-eval tasks (eval_tasks/) with the paper's sampling protocol and "
        "write results.json, results.md and per-task samples.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", help="HF checkpoint dir (config, weights, tokenizer with chat template) or hub id")
    p.add_argument("--tasks", default="r1_reasoning", help="comma-separated tasks/groups (default: r1_reasoning)")
    p.add_argument(
        "--samples",
        default=None,
        metavar="NAME=N,...",
        help="samples per problem, e.g. aime=64,lcb=16 (names: all, aime, aime24, aime25, math500, "
        "gsm8k, humaneval, mbpp, lcb, or a task name); default: each task's YAML",
    )
    p.add_argument("--max-gen-toks", type=int, default=30000, help="generation budget per sample (default 30000)")
    p.add_argument(
        "--backend",
        default="auto",
        choices=("auto", "vllm", "hf"),
        help="auto: vllm if installed, else hf (default auto)",
    )
    p.add_argument(
        "--model-args",
        default=None,
        metavar="K=V,...",
        help="extra lm-eval model args, e.g. dtype=bfloat16,gpu_memory_utilization=0.85",
    )
    p.add_argument("--batch-size", default=None, help="lm-eval batch size (default: auto for vllm, 1 for hf)")
    p.add_argument("--device", default=None, help="hf backend device (cuda, cpu, ...)")
    p.add_argument("--limit", type=int, default=None, help="only the first N problems of each task (debugging)")
    p.add_argument("--seed", type=int, default=0, help="sampling seed (default 0, as the paper's script)")
    p.add_argument("--output-dir", type=Path, default=None, help="default: outputs/eval/<model>-<time>")
    p.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="local <benchmark>.jsonl mirror instead of the hub (also: MLR1_EVAL_DATA_DIR)",
    )
    p.add_argument(
        "--lcb-window",
        default=None,
        metavar="START:END",
        help="LiveCodeBench contest dates, START inclusive, END exclusive (default 2024-08-01:2025-05-01)",
    )
    p.add_argument(
        "--think-prefilled",
        default="auto",
        choices=("auto", "yes", "no"),
        help="does the chat template open <think> itself? auto: render it and look (default)",
    )
    p.add_argument(
        "--math-instruction",
        default=None,
        help="text appended to math questions (default none: the paper's raw prompt)",
    )
    p.add_argument("--code-timeout", type=float, default=None, help="seconds per code candidate (default 20)")
    p.add_argument("--sandbox-workers", type=int, default=None, help="code candidates run in parallel (default: CPUs)")
    p.add_argument(
        "--include-path",
        type=Path,
        default=None,
        help="r1 task folder (default: the shipped eval_tasks/, `mlr1 paths eval_tasks`)",
    )
    p.add_argument("--no-log-samples", action="store_true", help="do not write samples_<task>.jsonl")
    p.add_argument(
        "--sandbox-isolation",
        default=None,
        choices=("strict", "no_cgroup", "weak"),
        help="code sandbox level (default strict: bubblewrap + per-candidate cgroup); the weaker levels are "
        "an explicit opt-in, recorded in results.json and in every graded sample",
    )
    p.set_defaults(func=run_eval)

    d = subparsers.add_parser(
        "eval-data",
        help="write the pinned benchmark data as <benchmark>.jsonl for offline evaluation",
        description="Download every r1 benchmark at its pinned hub revision into OUT_DIR/<benchmark>.jsonl; "
        "point MLR1_EVAL_DATA_DIR (or mlr1 eval --data-dir) at OUT_DIR on the air-gapped cluster.",
    )
    d.add_argument("out_dir", type=Path)
    d.add_argument("--benchmarks", default=None, help="comma-separated subset (default: all)")
    d.set_defaults(func=run_eval_data)


def build_request(args: argparse.Namespace):
    from mlr1_titan.evaluation.runner import (
        EVAL_TASKS_DIR,
        EvalRequest,
        default_output_dir,
        parse_key_values,
        parse_samples,
    )

    metadata: dict = {}
    if args.data_dir is not None:
        metadata["data_dir"] = str(args.data_dir.expanduser().resolve())
    if args.lcb_window:
        start, sep, end = args.lcb_window.partition(":")
        if not sep or not start or not end:
            raise ValueError(f"--lcb-window {args.lcb_window!r}: expected START:END, e.g. 2024-08-01:2025-05-01")
        metadata.update(lcb_start_date=start, lcb_end_date=end)
    if args.think_prefilled != "auto":
        metadata["think_prefilled"] = args.think_prefilled == "yes"
    if args.math_instruction is not None:
        metadata["math_instruction"] = args.math_instruction
    if args.code_timeout is not None:
        metadata["code_timeout_s"] = args.code_timeout
    if args.sandbox_workers is not None:
        metadata["sandbox_workers"] = args.sandbox_workers
    if args.sandbox_isolation is not None:
        metadata["sandbox_isolation"] = args.sandbox_isolation
    batch = args.batch_size
    if batch is not None and batch != "auto":
        try:
            batch = int(batch)
        except ValueError:
            raise ValueError(f"--batch-size {batch!r}: expected an integer or auto") from None
    return EvalRequest(
        model=args.model,
        tasks=[t.strip() for t in args.tasks.split(",") if t.strip()],
        samples=parse_samples(args.samples),
        backend=args.backend,
        max_gen_toks=args.max_gen_toks,
        model_args=parse_key_values(args.model_args, "--model-args"),
        metadata=metadata,
        output_dir=args.output_dir or default_output_dir(args.model),
        limit=args.limit,
        seed=args.seed,
        batch_size=batch,
        device=args.device,
        log_samples=not args.no_log_samples,
        include_path=args.include_path or EVAL_TASKS_DIR,
    )


def run_eval(args: argparse.Namespace) -> int:
    from mlr1_titan.evaluation.report import markdown_table
    from mlr1_titan.evaluation.runner import run_evaluation

    try:
        request = build_request(args)
        results = run_evaluation(request)
    except (ValueError, FileNotFoundError, KeyError, RuntimeError) as err:
        print(f"mlr1 eval: error: {err}", file=sys.stderr)
        return 2
    print(markdown_table(results))
    return 0


def run_eval_data(args: argparse.Namespace) -> int:
    from mlr1_titan.evaluation.benchmarks import SOURCES, write_snapshot

    keys = [k.strip() for k in args.benchmarks.split(",")] if args.benchmarks else list(SOURCES)
    unknown = [k for k in keys if k not in SOURCES]
    if unknown:
        print(
            f"mlr1 eval-data: error: unknown benchmark(s) {unknown}; known: {', '.join(SOURCES)}",
            file=sys.stderr,
        )
        return 2
    counts = write_snapshot(args.out_dir, keys)
    print(json.dumps({"out_dir": str(args.out_dir), "rows": counts}, indent=2))
    return 0
