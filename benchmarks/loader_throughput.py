"""Loader throughput: `MixtureDataLoader` over pre-tokenized shards vs torchtitan's on-the-fly
`HuggingFaceTextDataLoader`, on the same text, with the same Llama-3 tokenizer, in one run.

    .venv/bin/python benchmarks/loader_throughput.py [--mb 20] [--seq-len 2048] [--batch-size 16]

Both are built the way torchtitan's Trainer builds a dataloader (`config.build(dp_world_size=1,
dp_rank=0, tokenizer=..., seq_len=..., local_batch_size=...)`, num_workers=0) and iterated as the
trainer does; the rate is training tokens (B x L per batch) per second of this one rank process.
The corpus (see tokenize_throughput.py) is tokenized once up front, outside the timed region. Also
reported: our loader reading the jsonl directly (tokenizing on the fly), for reference.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(__file__))
from tokenize_throughput import corpus_documents, write_corpus  # noqa: E402


def _rate(loader, seconds: float, max_batches: int) -> tuple[float, int]:
    it = iter(loader)
    next(it)  # first batch: opens files / warms caches, not timed
    start = time.perf_counter()
    tokens = batches = 0
    while batches < max_batches and time.perf_counter() - start < seconds:
        _, labels = next(it)
        tokens += labels.numel()
        batches += 1
    return tokens / (time.perf_counter() - start), tokens


def torchtitan_loader(corpus_dir: Path, tokenizer, seq_len: int, batch_size: int):
    from datasets import load_dataset
    from torchtitan.hf_datasets import DatasetConfig
    from torchtitan.hf_datasets.text_datasets import DATASETS, HuggingFaceTextDataLoader

    files = sorted(str(p) for p in corpus_dir.glob("*.jsonl"))
    DATASETS["mlr1_bench_corpus"] = DatasetConfig(
        path=str(corpus_dir),
        loader=lambda path: load_dataset("json", data_files=files, split="train"),
        sample_processor=lambda sample: sample["text"],
    )
    config = HuggingFaceTextDataLoader.Config(dataset="mlr1_bench_corpus")
    return config.build(dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=seq_len, local_batch_size=batch_size)


def mixture_loader(mix_file: str, tokenizer, seq_len: int, batch_size: int, shards_root: str | None):
    from mlr1_titan.data.loader import MixtureDataLoader

    config = MixtureDataLoader.Config(mix=mix_file, shards_root=shards_root)
    return config.build(dp_world_size=1, dp_rank=0, tokenizer=tokenizer, seq_len=seq_len, local_batch_size=batch_size)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0, help="corpus size in MB of text")
    parser.add_argument("--seq-len", type=int, default=2048)
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=5.0, help="time budget per loader")
    args = parser.parse_args()

    from mlr1_titan.data.mix_config import load_mix
    from mlr1_titan.data.tokenize import tokenize_mix
    from mlr1_titan.tokenizer_spec import build_tokenizer

    with tempfile.TemporaryDirectory(prefix="mlr1_loader_bench_") as tmp:
        os.environ.setdefault("HF_DATASETS_CACHE", os.path.join(tmp, "hf_cache"))
        corpus = Path(tmp) / "corpus"
        write_corpus(corpus_documents(args.mb), corpus)
        mix_file = Path(tmp) / "bench.toml"
        mix_file.write_text(f'[[sources]]\nname = "corpus"\nkind = "local"\npath = "{corpus}/*.jsonl"\nweight = 1\n')
        tokenizer = build_tokenizer()
        manifest = tokenize_mix(
            load_mix(str(mix_file)),
            os.path.join(tmp, "shards"),
            lambda: tokenizer,
            progress_interval=1e9,
            stream=open(os.devnull, "w"),
        )["corpus"]

        batch, seq = args.batch_size, args.seq_len
        ours, ours_tokens = _rate(
            mixture_loader(str(mix_file), tokenizer, seq, batch, os.path.join(tmp, "shards")),
            args.seconds,
            max_batches=100_000,
        )
        titan, titan_tokens = _rate(torchtitan_loader(corpus, tokenizer, seq, batch), args.seconds, max_batches=100_000)
        text, _ = _rate(mixture_loader(str(mix_file), tokenizer, seq, batch, None), args.seconds, max_batches=100_000)

    print(
        f"corpus: {manifest['documents']:,} documents, {manifest['tokens']:,} tokens in shards; "
        f"batch {batch} x {seq}, 1 rank process, num_workers=0"
    )
    print(f"MixtureDataLoader, pre-tokenized shards:      {ours / 1e6:8.2f} M tokens/s  ({ours_tokens:,} tokens)")
    print(f"torchtitan HuggingFaceTextDataLoader (jsonl):  {titan / 1e6:8.2f} M tokens/s  ({titan_tokens:,} tokens)")
    print(f"MixtureDataLoader, jsonl tokenized on the fly: {text / 1e6:8.2f} M tokens/s")
    print(f"shards vs torchtitan: {ours / titan:.1f}x (goal >= 20x); shard reader goal >= 5M tokens/s")


if __name__ == "__main__":
    main()
