"""SFT data sub-commands of `mlr1 data`.

`preview-sft MIX --n 2` renders chat samples exactly as SFT trains on them: trained tokens (the
targets of the assistant-only loss) are highlighted, green on a terminal, or wrapped in ⟦ ⟧ with
``--markers`` / when the output is not a terminal.

`fill-questions --mix MIX --out DIR` fills the placeholder questions of the mix's `fill_questions`
sources from the benchmarks their rows name (OpenCodeReasoning-2; docs/sft.md) and writes
DIR/<source>.parquet plus DIR/<mix>.toml, the mix that trains on them.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

from mlr1_titan.cli.config import positive_int
from mlr1_titan.tokenizer_spec import build_tokenizer

GREEN, RESET = "\033[32m", "\033[0m"
OPEN, CLOSE = "⟦", "⟧"


def format_sample(tokenizer, inputs: list[int], labels: list[int], color: bool) -> str:
    """The conversation text with the trained spans marked."""
    from torchtitan.components.loss import IGNORE_INDEX  # deferred: loads torch

    tokens = inputs + [labels[-1] if labels[-1] != IGNORE_INDEX else None]
    trained = [False] + [lab != IGNORE_INDEX for lab in labels]
    out, span, span_trained = [], [], False

    def flush():
        if span:
            text = tokenizer.decode(span)
            if span_trained:
                text = f"{GREEN}{text}{RESET}" if color else f"{OPEN}{text}{CLOSE}"
            out.append(text)

    for token, learn in zip(tokens, trained):
        if token is None:
            continue
        if learn != span_trained:
            flush()
            span, span_trained = [], learn
        span.append(token)
    flush()
    return "".join(out)


def _cmd_preview_sft(args) -> int:
    from mlr1_titan.data.mix_config import MixError
    from mlr1_titan.data.sources import DataSourceError
    from mlr1_titan.sft.chat_loader import ChatDataset
    from mlr1_titan.sft.chat_sources import load_chat_mix

    color = {"always": True, "never": False}.get(args.color, sys.stdout.isatty()) and not args.markers
    try:
        mix = load_chat_mix(args.mix)
        tokenizer = build_tokenizer(args.tokenizer)
        dataset = ChatDataset(
            mix,
            tokenizer,
            seq_len=args.seq_len,
            overlength=args.overlength,
            loss_on=args.loss_on,
            seed=args.seed,
            hub_mirror=args.hub_mirror,
        )
        for k in range(args.n):
            sample = dataset.next_sample()
            name = dataset.names[sample.source]
            print(
                f"=== sample {k + 1}/{args.n} · source '{name}' · {len(sample.inputs) + 1} tokens · "
                f"{sample.num_trained} trained ==="
            )
            print(format_sample(tokenizer, sample.inputs, sample.labels, color))
            print()
    except (MixError, DataSourceError, FileNotFoundError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    skipped = {k: v for k, v in dataset.skips.items()}
    if skipped:
        print(f"skipped / truncated rows: {skipped}")
    return 0


def _fill_targets(chat, names: str | None) -> list:
    """The sources to fill: those with `fill_questions = true`, or the ones `--sources` names."""
    from mlr1_titan.data.mix_config import MixError

    fillable = [s for s in chat.mix.sources if chat.mappings[s.name].fill_questions]
    valid = [s.name for s in fillable]
    if names is None:
        if not fillable:
            raise MixError(
                f"{chat.mix.file}: no source sets 'fill_questions = true' (sources: {[s.name for s in chat.mix.sources]}); "
                "add it to the sources whose questions are placeholders"
            )
        return fillable
    wanted = [n.strip() for n in names.split(",") if n.strip()]
    known = {s.name for s in chat.mix.sources}
    unknown = [n for n in wanted if n not in known]
    if unknown:
        raise MixError(f"--sources: {unknown} not in {chat.mix.file}; sources with fill_questions = true: {valid}")
    plain = [n for n in wanted if n not in valid]
    if plain:
        raise MixError(
            f"--sources: {plain} of {chat.mix.file} do not set fill_questions = true; sources that do: {valid}"
        )
    if not wanted:
        raise MixError(f"--sources: no source named; sources with fill_questions = true: {valid}")
    return [s for s in fillable if s.name in wanted]


def _earlier_outputs(chat, targets, out: Path) -> dict[str, str]:
    """Files an earlier run into the same --out wrote for the mix's other fill_questions sources (e.g. one
    --sources run per source): the written mix reads them too, so that no run undoes another."""
    earlier = {}
    for spec in chat.mix.sources:
        if chat.mappings[spec.name].fill_questions and spec not in targets:
            file = out / f"{spec.name}.parquet"
            if file.is_file():
                earlier[spec.name] = str(file)
                print(f"{spec.name}: reusing {file} from an earlier run into this folder", flush=True)
    return earlier


def _cmd_fill_questions(args) -> int:
    from mlr1_titan.data.mix_config import MixError, read_mix_toml
    from mlr1_titan.data.mix_toml import write_mix_document
    from mlr1_titan.data.sources import DataSourceError
    from mlr1_titan.sft.benchmark_questions import QuestionFiller
    from mlr1_titan.sft.chat_sources import load_chat_mix, parse_chat_mix
    from mlr1_titan.sft.filled_mix import filled_mix
    from mlr1_titan.sft.question_fill import fill_source

    try:
        path, raw = read_mix_toml(args.mix)
        chat = parse_chat_mix(raw, file=str(path))
        targets = _fill_targets(chat, args.sources)
        if Path(chat.name).name != chat.name or chat.name in ("", ".", ".."):
            raise MixError(
                f"{path}: mix name {chat.name!r} is not a plain file name; the filled mix is DIR/<name>.toml"
            )
        if args.hub_mirror and not os.path.isdir(os.path.expanduser(args.hub_mirror)):
            raise MixError(f"--hub-mirror {args.hub_mirror}: no such folder")
        out = Path(args.out).resolve()
        if out.exists() and not out.is_dir():
            raise MixError(f"--out {args.out} is a file; give a folder")
        mix_out = out / f"{chat.name}.toml"
        inputs = {path.resolve()} | {
            Path(p).resolve() for s in chat.mix.sources if s.kind in ("local", "shards") for p in s.path
        }
        clobbered = sorted(str(p) for p in [mix_out, *(out / f"{s.name}.parquet" for s in targets)] if p in inputs)
        if clobbered:
            raise MixError(
                f"--out {args.out}: the output would overwrite input(s) of the mix: {clobbered}; choose another folder"
            )
        out.mkdir(parents=True, exist_ok=True)
        filler = QuestionFiller(args.hub_mirror)
        outputs = _earlier_outputs(chat, targets, out)
        for spec in targets:
            report = fill_source(
                spec,
                chat.mappings[spec.name],
                filler,
                out / f"{spec.name}.parquet",
                hub_mirror=args.hub_mirror,
                progress_interval=args.progress_interval,
            )
            dropped = sum(report.dropped.values())
            reasons = ", ".join(f"{r} {n:,}" for r, n in sorted(report.dropped.items()))
            print(
                f"{spec.name}: {report.read:,} rows read · {report.filled:,} filled · {report.kept:,} kept as they were"
                f" · {dropped:,} dropped{f' ({reasons})' if reasons else ''} -> {report.out_path}",
                flush=True,
            )
            outputs[spec.name] = report.out_path
        header = (
            f"Written by `mlr1 data fill-questions` from {path.resolve()}: source(s) {', '.join(outputs)} read from\n"
            "their files with the placeholder questions filled in; everything else as in that mix."
        )
        write_mix_document(mix_out, filled_mix(raw, str(path), outputs), header)
        written = load_chat_mix(str(mix_out))  # what is written is what loads
    except (MixError, DataSourceError, OSError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted; the unfinished source's file was not written", file=sys.stderr)
        return 1
    hub_left = args.hub_mirror and any(s.kind == "hub" for s in written.mix.sources)
    unfilled = [s.name for s in written.mix.sources if written.mappings[s.name].fill_questions]
    print(f"wrote {mix_out}")
    if unfilled:
        print(
            f"warning: source(s) {', '.join(unfilled)} still have placeholder questions: fill them into this folder too"
        )
    print(
        f"train with: --dataloader.chat.mix {mix_out}"
        + (f" --dataloader.chat.hub_mirror {os.path.abspath(args.hub_mirror)}" if hub_left else "")
    )
    return 0


def register_data(data_subparsers) -> None:
    p = data_subparsers.add_parser(
        "preview-sft", help="render chat samples of an SFT mix with the trained tokens marked"
    )
    p.add_argument("mix", help="chat mix: data_mix name (sft_general, sft_reasoning) or TOML path")
    p.add_argument("--n", type=int, default=2, help="samples to show (default 2)")
    p.add_argument("--seq-len", type=positive_int, default=4096, help="truncation length (default 4096)")
    p.add_argument("--overlength", choices=("truncate", "drop"), default="truncate")
    p.add_argument(
        "--loss-on",
        choices=("assistant", "all"),
        default="assistant",
        help="trained tokens, as dataloader.chat.loss_on",
    )
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markers", action="store_true", help=f"mark trained text with {OPEN} {CLOSE}, no colour")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--tokenizer", default="llama3", help="'llama3' (default) or a tokenizer file/directory")
    p.add_argument("--hub-mirror", default=None, help="directory of local hub snapshots <DIR>/<org>/<name>")
    p.set_defaults(func=_cmd_preview_sft)

    f = data_subparsers.add_parser(
        "fill-questions",
        help="fill placeholder questions (OpenCodeReasoning-2) from the benchmarks the rows name",
        description="For each source of a chat mix with fill_questions = true, write DIR/<source>.parquet: "
        "its rows in order, placeholder questions replaced by the benchmark's question, unfillable rows "
        "dropped (counted per reason). Then write DIR/<mix>.toml, the same mix reading those files.",
    )
    f.add_argument("--mix", required=True, help="chat mix: data_mix name (sft_reasoning) or TOML path")
    f.add_argument("--out", required=True, help="output folder for <source>.parquet and <mix>.toml")
    f.add_argument("--sources", default=None, help="comma-separated sources (default: all with fill_questions)")
    f.add_argument(
        "--hub-mirror",
        default=os.environ.get("MLR1_HUB_MIRROR"),
        help="directory of local hub snapshots <DIR>/<org>/<name>, the benchmarks' too (env MLR1_HUB_MIRROR)",
    )
    f.add_argument("--progress-interval", type=float, default=30.0, help="seconds between progress lines")
    f.set_defaults(func=_cmd_fill_questions)
