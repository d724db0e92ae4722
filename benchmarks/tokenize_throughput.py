"""`mlr1 tokenize` throughput vs raw tiktoken encode, per worker, in one run.

    .venv/bin/python benchmarks/tokenize_throughput.py [--mb 20] [--repeats 2] [--format jsonl|parquet]

Corpus: real text found on this machine (the Python standard library's sources plus the README /
METADATA / LICENSE texts of installed packages), written to one file per ~2 MB, jsonl or parquet
(`--format`; parquet is how most large hub datasets are stored).
  raw   = tiktoken.Encoding over the same Llama-3 BPE file, `encode_ordinary` per document, text in memory.
  ours  = `tokenize_mix` with one worker (in-process): read jsonl, render, Llama3Tokenizer.encode with
          BOS/EOS, write uint32 shards + index + checksums + manifest.
  Llama3Tokenizer.encode alone is also timed, to split the gap between the tokenizer wrapper and
  the pipeline around it.
Both rates count text tokens only (ours minus its 2 BOS/EOS per document). The best of `--repeats`
alternating runs is kept for each. Rates are given per wall-clock second and per CPU-second of the
process (user + system); on a shared machine the CPU-time ratio is the one to trust.
"""

from __future__ import annotations

import argparse
import glob
import itertools
import json
import os
import shutil
import site
import sysconfig
import tempfile
import time
from pathlib import Path

DOC_MAX_CHARS = 8_000  # web documents are a few thousand characters (FineWeb-Edu ~1k tokens)


def corpus_documents(target_mb: float) -> list[str]:
    """Deterministic mix of code and prose from files shipped with Python and its packages."""
    stdlib = sysconfig.get_paths()["stdlib"]
    code = sorted(glob.glob(os.path.join(stdlib, "**", "*.py"), recursive=True))
    prose: list[str] = []
    for sp in site.getsitepackages():
        for pattern in ("*.dist-info/METADATA", "*.dist-info/LICENSE*", "**/README*", "**/*.md", "**/*.rst"):
            prose.extend(glob.glob(os.path.join(sp, pattern), recursive=True))
    prose = sorted(set(prose))
    docs: list[str] = []
    budget = int(target_mb * 1e6)
    size = 0
    # Interleave prose and code so every slice of the corpus has both.
    for pair in itertools.zip_longest(prose, code):
        for path in filter(None, pair):
            try:
                text = Path(path).read_text(encoding="utf-8")[:DOC_MAX_CHARS]
            except (OSError, UnicodeDecodeError):
                continue
            if text.strip():
                docs.append(text)
                size += len(text.encode())
        if size >= budget:
            break
    return docs


def write_corpus(docs: list[str], directory: Path, file_mb: float = 2.0, fmt: str = "jsonl") -> None:
    """`docs` as ~`file_mb` files of `{"text": ...}` records, jsonl or parquet (the hub's usual format)."""
    directory.mkdir(parents=True, exist_ok=True)
    parts: list[list[str]] = [[]]
    size = 0
    for d in docs:
        if size > file_mb * 1e6:
            parts.append([])
            size = 0
        parts[-1].append(d)
        size += len(d)
    for i, part in enumerate(parts):
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            pq.write_table(pa.table({"text": part}), directory / f"part-{i:04d}.parquet")
        else:
            with open(directory / f"part-{i:04d}.jsonl", "w") as f:
                f.writelines(json.dumps({"text": d}) + "\n" for d in part)


def raw_tiktoken_rate(docs: list[str]) -> tuple[float, float, int]:
    import tiktoken
    from tiktoken.load import load_tiktoken_bpe

    from mlr1_titan.tokenizer import PRETOKENIZE_REGEX, default_tokenizer_file

    enc = tiktoken.Encoding(
        "llama3-raw",
        pat_str=PRETOKENIZE_REGEX,
        mergeable_ranks=load_tiktoken_bpe(str(default_tokenizer_file())),
        special_tokens={},
    )
    enc.encode_ordinary("warm up")
    wall, cpu = time.perf_counter(), time.process_time()
    n = sum(len(enc.encode_ordinary(d)) for d in docs)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu), n


def wrapper_rate(docs: list[str]) -> tuple[float, float, int]:
    """Llama3Tokenizer.encode alone (text in memory): separates the tokenizer wrapper's cost from ours."""
    from mlr1_titan.tokenizer_spec import build_tokenizer

    tok = build_tokenizer()
    wall, cpu = time.perf_counter(), time.process_time()
    n = sum(len(tok.encode(d, add_bos=False, add_eos=False)) for d in docs)
    return n / (time.perf_counter() - wall), n / (time.process_time() - cpu), n


def pipeline_rate(corpus_dir: Path, out_dir: Path, fmt: str) -> tuple[float, float, int]:
    from mlr1_titan.data.mix_config import parse_mix
    from mlr1_titan.data.tokenize import tokenize_mix
    from mlr1_titan.tokenizer_spec import build_tokenizer

    mix = parse_mix(
        {
            "name": "bench",
            "sources": [{"name": "corpus", "kind": "local", "path": str(corpus_dir / f"*.{fmt}"), "weight": 1}],
        }
    )
    shutil.rmtree(out_dir, ignore_errors=True)
    tokenizer = build_tokenizer()  # built once outside the timed region, like a warm worker
    wall, cpu = time.perf_counter(), time.process_time()
    manifest = tokenize_mix(
        mix, str(out_dir), lambda: tokenizer, workers=1, progress_interval=1e9, stream=open(os.devnull, "w")
    )["corpus"]
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    text_tokens = manifest["tokens"] - 2 * manifest["documents"]
    return text_tokens / wall, text_tokens / cpu, text_tokens


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--mb", type=float, default=20.0, help="corpus size in MB of text")
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--format", choices=("jsonl", "parquet"), default="jsonl", help="input file format")
    args = parser.parse_args()
    docs = corpus_documents(args.mb)
    with tempfile.TemporaryDirectory(prefix="mlr1_tok_bench_") as tmp:
        corpus_dir = Path(tmp) / "corpus"
        write_corpus(docs, corpus_dir, fmt=args.format)
        raw, wrapper, ours = [], [], []
        for _ in range(args.repeats):
            raw.append(raw_tiktoken_rate(docs))
            wrapper.append(wrapper_rate(docs))
            ours.append(pipeline_rate(corpus_dir, Path(tmp) / "shards", args.format))
    raw_wall, raw_cpu = max(r[0] for r in raw), max(r[1] for r in raw)
    our_wall, our_cpu = max(r[0] for r in ours), max(r[1] for r in ours)
    raw_tokens, our_tokens = raw[0][2], ours[0][2]
    assert raw_tokens == our_tokens, f"token counts differ: raw {raw_tokens} vs pipeline {our_tokens}"
    mb = sum(len(d.encode()) for d in docs) / 1e6
    print(
        f"corpus: {len(docs):,} documents, {mb:.1f} MB as {args.format}, {raw_tokens:,} Llama-3 tokens; "
        f"best of {args.repeats}"
    )
    print(f"{'':40s} {'wall':>12s} {'per CPU-second':>16s}")
    print(f"{'raw tiktoken encode_ordinary (1 thread)':40s} {raw_wall / 1e6:8.3f} M/s {raw_cpu / 1e6:12.3f} M/s")
    wrap_wall, wrap_cpu = max(r[0] for r in wrapper), max(r[1] for r in wrapper)
    print(f"{'Llama3Tokenizer.encode alone':40s} {wrap_wall / 1e6:8.3f} M/s {wrap_cpu / 1e6:12.3f} M/s")
    print(f"{'mlr1 tokenize, 1 worker (read+write)':40s} {our_wall / 1e6:8.3f} M/s {our_cpu / 1e6:12.3f} M/s")
    print(f"ratio: {our_wall / raw_wall:.1%} (wall), {our_cpu / raw_cpu:.1%} (CPU time) of raw tiktoken; goal >= 80%")
    print(
        f"  of which Llama3Tokenizer.encode vs raw: {wrap_cpu / raw_cpu:.1%}; pipeline vs Llama3Tokenizer.encode: "
        f"{our_cpu / wrap_cpu:.1%} (CPU time)"
    )


if __name__ == "__main__":
    main()
