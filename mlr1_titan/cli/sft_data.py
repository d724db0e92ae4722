"""`mlr1 data preview-sft MIX --n 2`: render chat samples exactly as SFT trains on them.

Trained tokens (the targets of the assistant-only loss) are highlighted: green on a terminal, or
wrapped in ⟦ ⟧ with ``--markers`` / when the output is not a terminal.
"""

from __future__ import annotations

import sys

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
            mix, tokenizer, seq_len=args.seq_len, overlength=args.overlength, seed=args.seed, hub_mirror=args.hub_mirror
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


def register_data(data_subparsers) -> None:
    p = data_subparsers.add_parser(
        "preview-sft", help="render chat samples of an SFT mix with the trained tokens marked"
    )
    p.add_argument("mix", help="chat mix: data_mix name (sft_general, sft_reasoning) or TOML path")
    p.add_argument("--n", type=int, default=2, help="samples to show (default 2)")
    p.add_argument("--seq-len", type=int, default=4096, help="truncation length (default 4096)")
    p.add_argument("--overlength", choices=("truncate", "drop"), default="truncate")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--markers", action="store_true", help=f"mark trained text with {OPEN} {CLOSE}, no colour")
    p.add_argument("--color", choices=("auto", "always", "never"), default="auto")
    p.add_argument("--tokenizer", default="llama3", help="'llama3' (default) or a tokenizer file/directory")
    p.add_argument("--hub-mirror", default=None, help="directory of local hub snapshots <DIR>/<org>/<name>")
    p.set_defaults(func=_cmd_preview_sft)
