"""The `score` and `filter` sub-commands: shared by `mlr1 mix ...` and `torchrun -m mlr1_titan.mix ...`."""

from __future__ import annotations

import argparse
import sys
import zipfile

from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.tokenizer_spec import TOKENIZER_HELP


def _gradient_args(p: argparse.ArgumentParser, block_size: int) -> None:
    g = p.add_argument_group("gradients")
    g.add_argument(
        "--last-blocks",
        type=int,
        default=2,
        help="blocks (from the output) in the gradient, with the final norm (default 2)",
    )
    g.add_argument("--embeddings", action="store_true", help="also the token embedding (= tied output head)")
    g.add_argument(
        "--params",
        action="append",
        default=[],
        metavar="REGEX",
        help="more parameters: a regex matching whole names, e.g. 'layers[.]0[.].*' (repeatable)",
    )
    g.add_argument(
        "--projection-dim", type=int, default=0, help="sketch gradients to this many dims (0: exact, default)"
    )
    g.add_argument("--projection-seed", type=int, default=0)
    g.add_argument(
        "--max-tokens", type=int, default=1024, help="score each document on its first N tokens (default 1024)"
    )
    g.add_argument(
        "--batch-size", type=int, default=8, help="documents per per-sample-gradient micro-batch (default 8)"
    )
    g.add_argument("--block-size", type=int, default=block_size, help=f"documents per work unit (default {block_size})")
    r = p.add_argument_group("data and run")
    r.add_argument("--sources", required=True, help="mix TOML (or shipped mix name) whose sources are scored")
    r.add_argument("--tokenizer", default="llama3", help="the checkpoints' " + TOKENIZER_HELP)
    r.add_argument("--shards-root", help="read sources from `mlr1 tokenize` shards under this folder")
    r.add_argument("--hub-mirror", help="local snapshots of hub datasets (<mirror>/<org>/<name>)")
    r.add_argument("--seed", type=int, default=0, help="data-order seed of the source readers")
    r.add_argument("--work-dir", help="partial results, for resuming (must be shared by all ranks)")
    r.add_argument("--domains", help="capability domains TOML for the report (default: the paper's, Sec. 5.1.1)")
    r.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    r.add_argument("--progress", action="store_true", help="print progress with rate and ETA")


def _common(args) -> dict:
    """The RunOptions fields, from the shared flags."""
    from mlr1_titan.mix.gradients import GradientSettings
    from mlr1_titan.tokenizer_spec import build_tokenizer

    return dict(
        tokenizer=build_tokenizer(args.tokenizer),
        gradient=GradientSettings(
            last_blocks=args.last_blocks,
            embeddings=args.embeddings,
            params=tuple(args.params),
            projection_dim=args.projection_dim,
            seed=args.projection_seed,
            max_tokens=args.max_tokens,
            batch_size=args.batch_size,
        ),
        work_dir=args.work_dir,
        block_size=args.block_size,
        seed=args.seed,
        shards_root=args.shards_root,
        hub_mirror=args.hub_mirror,
        domains=args.domains,
        device=args.device,
        progress=args.progress,
    )


def add_score(sub) -> None:
    p = sub.add_parser(
        "score",
        help="influence of each source on probe capabilities over domain-model checkpoints -> a new mix (paper Eqs. 2-6)",
        description="Score --samples-per-source documents of every source of --sources by their influence on each "
        "--probe capability at that capability's --checkpoints; write the re-weighted mix (--out) and a report.",
    )
    p.add_argument(
        "--probe",
        action="append",
        default=[],
        metavar="CAP=FILE",
        required=True,
        help="probe jsonl of a capability (repeatable)",
    )
    p.add_argument(
        "--checkpoints",
        action="append",
        default=[],
        metavar="CAP=GLOB",
        required=True,
        help="DCP checkpoints of that capability's domain model (repeatable; step-N folders or checkpoint/)",
    )
    p.add_argument(
        "--checkpoints-per-domain", type=int, help="keep this many evenly spaced checkpoints (the paper: 10)"
    )
    p.add_argument("--samples-per-source", type=int, default=10_000, help="documents scored per source (default 10000)")
    p.add_argument("--out", required=True, help="the scored mix TOML to write")
    p.add_argument("--report", required=True, help="report folder (summary.md, weights.png, sources.json, samples.npz)")
    _gradient_args(p, block_size=256)
    p.set_defaults(func=_score)


def add_filter(sub) -> None:
    p = sub.add_parser(
        "filter",
        help="step D: keep documents with positive influence at the current model, re-weight, write shards + mix",
    )
    p.add_argument("--model", required=True, help="the current model: DCP step-N folder (or checkpoint/: its latest)")
    p.add_argument("--probes", help="folder of probe files, one CAPABILITY.jsonl per capability")
    p.add_argument("--probe", action="append", default=[], metavar="CAP=FILE", help="a probe file (repeatable)")
    p.add_argument("--max-docs-per-source", type=int, help="candidates per source (default: the whole first epoch)")
    p.add_argument("--out", required=True, help="output folder: one shard folder per source, mix.toml, report/")
    _gradient_args(p, block_size=1024)
    p.set_defaults(func=_filter)


def _score(args) -> int:
    from mlr1_titan.mix.documents import parse_named, parse_single
    from mlr1_titan.mix.score import ScoreJob, run_score

    probes = parse_single(args.probe, "--probe")
    job = ScoreJob(
        sources=args.sources,
        probes=probes,
        checkpoints=parse_named(args.checkpoints, "--checkpoints"),
        out=args.out,
        report=args.report,
        samples_per_source=args.samples_per_source,
        checkpoints_per_domain=args.checkpoints_per_domain,
        **_common(args),
    )
    result = run_score(job)
    if result is not None:
        width = max(len(s.name) for s in result.scores)
        for s in result.scores:
            print(f"  {s.name:<{width}}  rho {s.rho:+.4g}  weight {100 * s.weight:6.2f}%")
        rate = result.samples_per_second
        speed = f"{rate:.1f} sample-scorings/s" if rate == rate else "all units were done already"
        print(f"wrote {args.out} and {result.report}/summary.md ({speed})")
    return 0


def _filter(args) -> int:
    from mlr1_titan.mix.documents import parse_single
    from mlr1_titan.mix.filter import FilterJob, probe_files, run_filter

    named = parse_single(args.probe, "--probe")
    job = FilterJob(
        model=args.model,
        sources=args.sources,
        probes=probe_files(args.probes, named),
        out=args.out,
        max_docs_per_source=args.max_docs_per_source,
        **_common(args),
    )
    result = run_filter(job)
    if result is not None:
        for name, (kept, total) in result.kept.items():
            print(f"  {name}: kept {kept} of {total} ({100 * kept / max(total, 1):.1f}%)")
        out = result.mix_file.parent
        print(f"wrote {result.mix_file} (kept documents in {out}/shards/, report in {out}/report/)")
    return 0


def add_controlled(sub) -> None:
    p = sub.add_parser(
        "controlled",
        help="write the controlled problem (4 sources, probes, domain-model checkpoints) to try score and filter on CPU",
        description="Writes OUT/sources/*.jsonl (arithmetic, counting, prose, noise), OUT/uniform.toml, "
        "OUT/probes/arithmetic.jsonl, OUT/dirty.toml (noise shuffled into arithmetic) and trains the byte-level "
        "controlled model on the uniform mix, with DCP checkpoints in OUT/domain/step-N; then prints the "
        "`mlr1 mix score` and `mlr1 mix filter` commands for it.",
    )
    p.add_argument("out", help="folder to write")
    p.add_argument("--steps", type=int, default=600, help="training steps of the domain model (default 600)")
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=_controlled)


def _controlled(args) -> int:
    from pathlib import Path

    from mlr1_titan.mix import controlled

    if args.steps < 3:
        raise InfluenceError(f"--steps must be >= 3 (three checkpoints), got {args.steps}")
    out = Path(args.out).resolve()
    problem = controlled.write_problem(out, seed=args.seed)
    controlled.write_dirty_mix(problem, seed=args.seed)
    print(f"training the domain model on {problem.uniform_mix} ({args.steps} steps, checkpoints at thirds) ...")
    controlled.train(problem.uniform_mix, out / "domain", steps=args.steps, save_every=args.steps // 3, seed=args.seed)
    last = max((p for p in (out / "domain").glob("step-*")), key=lambda p: int(p.name.split("-")[1]))
    common = "--tokenizer bytes --max-tokens 128 --batch-size 16"
    print(
        f"wrote {out}. Next:\n"
        f"  mlr1 mix score --sources {problem.uniform_mix} --probe arithmetic={problem.probe} \\\n"
        f"      --checkpoints 'arithmetic={out}/domain/step-*' --samples-per-source 256 {common} \\\n"
        f"      --out {out}/scored.toml --report {out}/report --progress\n"
        f"  mlr1 mix filter --model {last} --sources {out}/dirty.toml --probes {out}/probes \\\n"
        f"      {common} --out {out}/filtered --progress"
    )
    return 0


def run(func, args) -> int:
    """Run a command; bad input (and unreadable files) end in one line naming it (exit 2)."""
    try:
        return func(args)
    except InfluenceError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except (OSError, EOFError, UnicodeError, zipfile.BadZipFile) as err:  # a file that cannot be read or written
        print(f"error: {type(err).__name__}: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted: run the same command again to resume from its work dir", file=sys.stderr)
        return 130


def build_parser(prog: str) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog=prog, description="Influence-based data mixing (paper Sec. 5-6).")
    sub = parser.add_subparsers(dest="mix_command", metavar="COMMAND", required=True)
    add_score(sub)
    add_filter(sub)
    add_controlled(sub)
    return parser
