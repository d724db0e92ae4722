"""Helpers for the data tests: a byte-level tokenizer, synthetic corpora, local hub snapshots."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from mlr1_titan.byte_tokenizer import BOS, EOS, OFFSET, ByteTokenizer  # noqa: F401  (re-exported for the tests)


def make_byte_tokenizer() -> ByteTokenizer:
    return ByteTokenizer()


_WORDS = (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi omicron pi rho "
    "sigma tau upsilon phi chi psi omega"
).split()


def make_docs(source: str, n: int, *, seed: int = 0, min_words: int = 5, max_words: int = 120) -> list[str]:
    """`n` distinct documents; each starts with `<source>#<i>:` so a decoded window tells its origin."""
    rng = random.Random(f"{source}:{seed}")
    return [
        f"{source}#{i}: " + " ".join(rng.choice(_WORDS) for _ in range(rng.randint(min_words, max_words)))
        for i in range(n)
    ]


def write_jsonl(path: Path, docs: list[str], field: str = "text", extra: dict | None = None) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "w") as f:
        for d in docs:
            f.write(json.dumps({field: d, **(extra or {})}) + "\n")
    return path


def write_parquet(path: Path, docs: list[str], field: str = "text", rows_per_group: int = 500) -> Path:
    import pyarrow as pa
    import pyarrow.parquet as pq

    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({field: docs, "id": list(range(len(docs)))}), path, row_group_size=rows_per_group)
    return path


def write_mix(path: Path, sources: list[dict], name: str | None = None, extra: str = "") -> Path:
    """Write a mix TOML from plain dicts (values rendered with json, which TOML accepts for these types)."""
    lines = [f'name = "{name or path.stem}"', extra]
    for s in sources:
        lines.append("[[sources]]")
        for k, v in s.items():
            lines.append(f"{k} = {json.dumps(v)}")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def build_hub_mirror(mirror: Path, mix_sources, docs_per_source: int = 200) -> dict[str, list[str]]:
    """Lay out a local snapshot `<mirror>/<org>/<name>` for every hub source of a parsed mix, so
    `datasets.load_dataset(<snapshot>, name=config, data_dir=..., data_files=...)` finds a parquet file
    with the source's text fields. Returns the documents written per source."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    written: dict[str, list[str]] = {}
    configs: dict[Path, list[str]] = {}
    for s in mix_sources:
        if s.kind != "hub":
            continue
        root = mirror / s.path[0]
        docs = make_docs(s.name, docs_per_source)
        written[s.name] = docs
        if s.data_files:
            rel = s.data_files[0].replace("**/", "").replace("*", "part0")
        elif s.data_dir:
            rel = f"{s.data_dir}/part0.parquet"
        elif s.config:
            rel = f"data/{s.config}/train-part0.parquet"
        else:
            rel = "data/train-part0.parquet"
        if not os.path.splitext(rel)[1]:
            rel += ".parquet"
        if s.config and not s.data_files and not s.data_dir:
            configs.setdefault(root, []).append(
                f"- config_name: {s.config}\n  data_files:\n  - split: {s.split}\n    path: data/{s.config}/*.parquet"
            )
        columns = _columns_for(s.text_fields, docs)
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        if rel.endswith((".jsonl", ".json")):
            rows = [dict(zip(columns, vals)) for vals in zip(*columns.values())]
            path.write_text("".join(json.dumps(r) + "\n" for r in rows))
        elif rel.endswith(".parquet"):
            pq.write_table(pa.table(columns), path)
        else:
            raise ValueError(f"cannot mirror {s.name}: no writer for {rel}")
    for root, entries in configs.items():
        (root / "README.md").write_text("---\nconfigs:\n" + "\n".join(entries) + "\n---\n")
    return written


def _columns_for(text_fields, docs: list[str]) -> dict[str, list]:
    """Columns such that the first text field carries the document (nested fields become structs)."""
    cols: dict[str, list] = {}
    for j, field in enumerate(text_fields):
        head, *rest = field.split(".")
        values = docs if j == 0 else [f"{field} {i}" for i in range(len(docs))]
        if rest:
            values = [{rest[0]: v} for v in values]
        cols[head] = values
    return cols


def build_corpus(root: Path, *, docs: int = 1500) -> dict[str, Path]:
    """Four sources, one per reader kind: local jsonl (2 files), local parquet, a hub dataset
    directory (with a named config), and shards tokenized from jsonl. Returns their paths and a mix."""
    from mlr1_titan.data.mix_config import load_mix
    from mlr1_titan.data.tokenize import tokenize_mix

    write_jsonl(root / "web" / "part-0.jsonl", make_docs("web", docs // 2))
    write_jsonl(root / "web" / "part-1.jsonl", make_docs("web1", docs - docs // 2))
    write_parquet(root / "code" / "code.parquet", make_docs("code", docs), field="content")
    hub_dir = root / "hub" / "org" / "papers"
    write_parquet(hub_dir / "data" / "main" / "train-0.parquet", make_docs("papers", docs // 2))
    write_parquet(hub_dir / "data" / "main" / "train-1.parquet", make_docs("papers1", docs - docs // 2))
    (hub_dir / "README.md").write_text(
        "---\nconfigs:\n- config_name: main\n  data_files:\n  - split: train\n    path: data/main/*.parquet\n---\n"
    )
    write_jsonl(root / "math_raw" / "math.jsonl", make_docs("math", docs // 3, max_words=60), field="problem")
    raw = write_mix(
        root / "math_raw.toml",
        [dict(name="math", kind="local", path=str(root / "math_raw/*.jsonl"), text_fields=["problem"], weight=1)],
    )
    tokenize_mix(
        load_mix(str(raw)),
        str(root / "shards"),
        make_byte_tokenizer,
        workers=1,
        shard_tokens=20_000,
        stream=open(os.devnull, "w"),
    )
    mix = write_mix(
        root / "four_kinds.toml",
        [
            dict(name="web", kind="local", path=str(root / "web/*.jsonl"), weight=50),
            dict(name="code", kind="local", path=str(root / "code/*.parquet"), text_fields=["content"], weight=20),
            dict(name="papers", kind="hub", path=str(hub_dir), config="main", weight=20),
            dict(name="math", kind="shards", path=str(root / "shards" / "math"), weight=10),
        ],
    )
    return {"mix": mix, "hub_dir": hub_dir, "shards": root / "shards", "math_mix": raw}


def dataset_for(mix: str | Path, *, phases: list[str] | None = None, seq_len: int = 256, batch_size: int = 4, **kwargs):
    from mlr1_titan.data.mix_config import parse_phases
    from mlr1_titan.data.mixture_dataset import MixtureDataset

    return MixtureDataset(
        parse_phases(str(mix), phases or []),
        tokenizer=ByteTokenizer(),
        seq_len=seq_len,
        batch_size=batch_size,
        **kwargs,
    )


def loader_for(
    mix: str | Path,
    *,
    dp_world_size: int = 1,
    dp_rank: int = 0,
    seq_len: int = 128,
    local_batch_size: int = 2,
    **config,
):
    from mlr1_titan.data.loader import MixtureDataLoader

    cfg = MixtureDataLoader.Config(mix=str(mix), **config)
    return cfg.build(
        dp_world_size=dp_world_size,
        dp_rank=dp_rank,
        tokenizer=ByteTokenizer(),
        seq_len=seq_len,
        local_batch_size=local_batch_size,
        snapshot_every_n_steps=1,
    )


def take(iterator, n: int) -> list:
    return [next(iterator) for _ in range(n)]


def same_batches(a: list, b: list) -> bool:
    import torch

    return len(a) == len(b) and all(
        x[0].keys() == y[0].keys() and all(torch.equal(x[0][k], y[0][k]) for k in x[0]) and torch.equal(x[1], y[1])
        for x, y in zip(a, b)
    )
