"""Sub-commands `mlr1 tokenize` and `mlr1 data {preview,show,verify,preview-sft}`.

Command bodies import the data engine when they run (deferred: it loads torch and datasets), so
building the parser stays instant.
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import sys

from mlr1_titan.cli import sft_data
from mlr1_titan.tokenizer_spec import TOKENIZER_HELP, build_tokenizer


def _add_source_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--tokenizer", default="llama3", help=TOKENIZER_HELP)
    p.add_argument(
        "--hub-mirror",
        default=os.environ.get("MLR1_HUB_MIRROR"),
        help="directory of local hub snapshots <DIR>/<org>/<name> (env MLR1_HUB_MIRROR)",
    )


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "tokenize",
        help="tokenize a mix's sources into uint32 shards (resumable, multi-process)",
        description="Tokenize every source of a mix (weight > 0) into <out>/<source>/ shards. "
        "Re-running with the same --out resumes; finished units are not redone.",
    )
    p.add_argument("--mix", required=True, help="data_mix name or path to a mix TOML")
    p.add_argument("--out", required=True, help="output root; one sub-directory per source")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="worker processes (default: all cores)")
    p.add_argument("--sources", default=None, help="comma-separated source names (default: all with weight > 0)")
    p.add_argument("--shard-tokens", type=int, default=None, help="tokens per shard file (default 2^27)")
    p.add_argument("--progress-interval", type=float, default=10.0, help="seconds between progress lines")
    _add_source_args(p)
    p.set_defaults(func=_cmd_tokenize)

    data = subparsers.add_parser("data", help="inspect data mixtures and token shards")
    data_sub = data.add_subparsers(dest="data_command", metavar="SUBCOMMAND")
    data.set_defaults(func=lambda args: (data.print_help(), 2)[1])

    pv = data_sub.add_parser("preview", help="draw N tokens from a mix and print the realized mix (CPU only)")
    pv.add_argument("mix", help="data_mix name or path to a mix TOML")
    pv.add_argument("--tokens", type=float, default=2_000_000, help="tokens to draw (default 2M)")
    pv.add_argument("--seq-len", type=int, default=2048)
    pv.add_argument("--batch-size", type=int, default=8)
    pv.add_argument("--seed", type=int, default=0)
    pv.add_argument("--dp-rank", type=int, default=0)
    pv.add_argument("--dp-world-size", type=int, default=1)
    pv.add_argument("--shards", default=None, help="read sources from <DIR>/<source> (mlr1 tokenize --out)")
    pv.add_argument("--json", action="store_true", help="print JSON instead of a table")
    _add_source_args(pv)
    pv.set_defaults(func=_cmd_preview)

    sh = data_sub.add_parser("show", help="print a mix's sources and normalised target fractions (reads no data)")
    sh.add_argument("mix")
    sh.set_defaults(func=_cmd_show)

    vf = data_sub.add_parser("verify", help="check shard directories: sizes and checksums of every shard")
    vf.add_argument("dirs", nargs="+", help="a source directory (with manifest.json) or a root of them")
    vf.set_defaults(func=_cmd_verify)

    sft_data.register_data(data_sub)


def _fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 1


def _cmd_tokenize(args) -> int:
    from mlr1_titan.data.mix_config import MixError, load_mix
    from mlr1_titan.data.sources import DataSourceError
    from mlr1_titan.data.tokenize import DEFAULT_SHARD_TOKENS, tokenize_mix

    try:
        mix = load_mix(args.mix)
        tokenize_mix(
            mix,
            args.out,
            functools.partial(build_tokenizer, args.tokenizer),
            workers=args.workers,
            sources=args.sources.split(",") if args.sources else None,
            shard_tokens=args.shard_tokens or DEFAULT_SHARD_TOKENS,
            hub_mirror=args.hub_mirror,
            progress_interval=args.progress_interval,
        )
    except (MixError, DataSourceError) as err:
        return _fail(err)
    return 0


def _cmd_preview(args) -> int:
    from mlr1_titan.data.mix_config import MixError, load_mix
    from mlr1_titan.data.preview import preview_mix
    from mlr1_titan.data.sources import DataSourceError

    try:
        mix = load_mix(args.mix)
        meter, info = preview_mix(
            mix,
            build_tokenizer(args.tokenizer),
            tokens=int(args.tokens),
            seq_len=args.seq_len,
            batch_size=args.batch_size,
            seed=args.seed,
            dp_rank=args.dp_rank,
            dp_world_size=args.dp_world_size,
            shards_root=args.shards,
            hub_mirror=args.hub_mirror,
        )
    except (MixError, DataSourceError) as err:
        return _fail(err)
    if args.json:
        print(json.dumps({**info, "sources": meter.rows()}, indent=2))
        return 0
    print(f"{info['mix']} ({info['file']})")
    if info["budget_tokens"]:
        print(
            f"paper budget: {info['budget_tokens']:,} tokens; preview of rank {args.dp_rank}/{args.dp_world_size}, seed {args.seed}"
        )
    print(meter.table())
    print(f"drew {info['tokens_drawn']:,} tokens in {info['seconds']:.1f}s ({info['tokens_per_second']:,} tok/s)")
    return 0


def _cmd_show(args) -> int:
    from mlr1_titan.data.mix_config import MixError, parse_mix, read_mix_toml
    from mlr1_titan.sft.chat_sources import parse_chat_mix

    unit, chat = "tokens", None
    try:
        path, raw = read_mix_toml(args.mix)
        if _is_chat_mix(raw):
            chat = parse_chat_mix(raw, file=str(path))
            mix, unit = chat.mix, chat.unit
        else:
            mix = parse_mix(raw, file=str(path))
    except MixError as err:
        return _fail(err)
    targets = mix.targets()
    print(
        f"{mix.name} ({mix.file}): {len(mix.sources)} sources, weights are fractions of {unit}"
        + (f", paper budget {mix.budget_tokens:,} tokens" if mix.budget_tokens else "")
    )
    width = max(len(s.name) for s in mix.sources)
    for s in mix.sources:
        where = (
            s.path[0]
            + (f" [{s.config}]" if s.config else "")
            + (f" {s.data_dir}" if s.data_dir else "")
            + (f" {','.join(s.data_files)}" if s.data_files else "")
        )
        fields = f"format={chat.mappings[s.name].format}" if chat else f"fields={list(s.text_fields)}"
        print(f"  {s.name:<{width}}  {100 * targets[s.name]:7.3f}%  {s.kind:<6}  {where}  {fields}")
    return 0


def _is_chat_mix(raw: dict) -> bool:
    """A chat (SFT) mix: it has a top-level `unit` or a source/default with a chat `format`."""
    entries = [raw.get("defaults", {}), *raw.get("sources", [])]
    return "unit" in raw or any(isinstance(e, dict) and "format" in e for e in entries)


def _cmd_verify(args) -> int:
    from mlr1_titan.data.shards import MANIFEST, verify_shard_dir

    dirs = []
    for d in args.dirs:
        if os.path.isfile(os.path.join(d, MANIFEST)) or os.path.isfile(os.path.join(d, "source.json")):
            dirs.append(d)
        else:
            dirs.extend(sorted(os.path.join(d, n) for n in os.listdir(d) if os.path.isdir(os.path.join(d, n))))
    bad = 0
    for d in dirs:
        problems = verify_shard_dir(d)
        bad += bool(problems)
        print(f"{'OK  ' if not problems else 'FAIL'} {d}")
        for p in problems:
            print(f"     {p}")
    return 1 if bad else 0
