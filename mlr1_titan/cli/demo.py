"""`mlr1 demo` (`make demo`): the whole MobileLLM-R1 recipe at tiny scale on a CPU box, offline."""

from __future__ import annotations

import sys
from dataclasses import replace
from pathlib import Path

from mlr1_titan.demo_corpus import write_corpus


def run_demo(args) -> int:
    if args.write_corpus:
        print(f"wrote {write_corpus(args.write_corpus, args.docs)}")
        return 0
    from mlr1_titan.demo.chain import QUICK, Chain, ChainSettings, DemoFolderError
    from mlr1_titan.demo.report import write_report

    settings = replace(QUICK if args.quick else ChainSettings(), seed=args.seed, nproc=args.nproc)
    out = Path(args.out)
    chain = Chain(out, settings)
    print(f"mlr1 demo: the MobileLLM-R1 recipe at tiny scale in {chain.out} (logs in {chain.logs})", flush=True)
    try:
        ok = chain.run()
    except DemoFolderError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    report = write_report(chain)
    print(report.text)
    if not ok:
        print("mlr1 demo: FAILED (see the stage log above)", file=sys.stderr)
        return 1
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "demo",
        help="the whole recipe at tiny scale on a CPU (data, mix scoring, pre-/mid-training, SFT, export, eval)",
    )
    p.add_argument(
        "--out", default="outputs/demo", help="work folder (default outputs/demo; a previous run is replaced)"
    )
    p.add_argument("--seed", type=int, default=0, help="seed of every training stage and of the evaluation")
    p.add_argument(
        "--nproc",
        type=int,
        default=2,
        choices=(1, 2),
        help="ranks of each training stage: 2 (default) or 1 (the tiny "
        "configs' global batch is 2 ranks x their local batch; 1 rank accumulates 2 micro-batches)",
    )
    p.add_argument("--quick", action="store_true", help="a few steps per stage (the test suite's chain, ~3 minutes)")
    p.add_argument("--write-corpus", metavar="PATH", help="only (re)write the shipped synthetic demo corpus")
    p.add_argument("--docs", type=int, default=4000, help="documents in a written corpus")
    p.set_defaults(func=run_demo)
