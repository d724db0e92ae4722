"""Candidate documents of a mix's sources, and probe documents of a capability, as token arrays.

Sources are read exactly as the mixture loader reads them (same readers, same seeded epoch-0 order),
from the raw text or, with `shards_root`, from `mlr1 tokenize` shards. Blocks of consecutive
documents are the unit of work (and of resuming) of the scoring commands.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mlr1_titan.data.mix_config import MixError, MixSpec, SourceSpec, load_mix
from mlr1_titan.data.shards import ShardReader, plan_shard_source, tokenizer_fingerprint
from mlr1_titan.data.sources import DataSourceError, TextReader, plan_text_source
from mlr1_titan.mix.errors import InfluenceError

PROBE_FIELDS = ("text", "content")


@dataclass(frozen=True)
class DocumentBlock:
    source: str
    index: int
    """Block number inside its source: documents [index * size, index * size + len(docs))."""
    docs: list[np.ndarray]

    def digest(self) -> str:
        return docs_digest(self.docs)


def docs_digest(docs: list[np.ndarray]) -> str:
    """A hash of the documents' tokens, computed incrementally."""
    h = hashlib.sha256()
    for d in docs:
        h.update(np.asarray(d, dtype="<u4").tobytes())
        h.update(b"|")
    return h.hexdigest()[:16]


def load_sources(name: str) -> MixSpec:
    """The mix whose sources are scored (`--sources`), parse errors as InfluenceError."""
    try:
        return load_mix(name)
    except MixError as err:
        raise InfluenceError(f"--sources: {err}") from None


def open_reader(spec: SourceSpec, tokenizer, *, seed: int, shards_root: str | None, hub_mirror: str | None):
    """The loader's reader for one source (one reader: rank 0 of 1)."""
    info = tokenizer_fingerprint(tokenizer)
    try:
        if spec.kind == "shards":
            return ShardReader(
                plan_shard_source(spec, spec.path[0], info, expect_source_hash=False), seed=seed, rank=0, world=1
            )
        if shards_root:
            directory = os.path.join(os.path.expanduser(shards_root), spec.name)
            return ShardReader(
                plan_shard_source(spec, directory, info, expect_source_hash=True), seed=seed, rank=0, world=1
            )
        return TextReader(plan_text_source(spec, hub_mirror), tokenizer, seed=seed, rank=0, world=1)
    except DataSourceError as err:
        raise InfluenceError(str(err)) from None


def iter_blocks(
    reader, spec: SourceSpec, block_size: int, limit: int | None, keep_tokens: int | None = None
) -> Iterator[DocumentBlock]:
    """The source's epoch-0 documents (at most `limit`) in blocks of `block_size`; `keep_tokens`:
    only each document's first tokens are kept (as uint32), for documents that are only scored."""
    docs: list[np.ndarray] = []
    index = seen = 0
    while limit is None or seen < limit:
        try:
            doc = reader.next_doc()
        except DataSourceError as err:  # an empty source, an unreadable file
            raise InfluenceError(str(err)) from None
        if reader.epoch > 0:
            break
        docs.append(np.asarray(doc[:keep_tokens] if keep_tokens else doc, dtype=np.uint32))
        seen += 1
        if len(docs) == block_size:
            yield DocumentBlock(spec.name, index, docs)
            docs, index = [], index + 1
    if docs:
        yield DocumentBlock(spec.name, index, docs)
    if seen == 0:
        raise InfluenceError(f"source '{spec.name}' ({spec.mix_file}) is empty: no document to score")


def read_probe_file(path: str | os.PathLike, tokenizer, capability: str) -> list[np.ndarray]:
    """Documents of a probe file: jsonl rows with a 'text' (or 'content') string, or plain .txt lines."""
    path = Path(path)
    if not path.is_file():
        raise InfluenceError(f"probe '{capability}': file not found: {path}")
    texts: list[str] = []
    rows = 0
    with open(path, "rb") as f:
        for lineno, raw in enumerate(f, 1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError as err:
                raise InfluenceError(f"probe '{capability}': {path}:{lineno} is not UTF-8 ({err})") from None
            if not line.strip():
                continue
            rows += 1
            if path.suffix == ".txt":
                texts.append(line.rstrip("\n"))
                continue
            try:
                row = json.loads(line)
            except ValueError as err:
                raise InfluenceError(f"probe '{capability}': {path}:{lineno} is not valid JSON ({err})") from None
            text = next((row[k] for k in PROBE_FIELDS if isinstance(row, dict) and isinstance(row.get(k), str)), "")
            if text.strip():
                texts.append(text)
    if not texts:
        raise InfluenceError(
            f"probe '{capability}': {path} has no usable row ({rows} non-empty lines; each must be a JSON "
            f"object with a non-empty string under {' or '.join(repr(k) for k in PROBE_FIELDS)}, or a .txt line)"
        )
    return [np.asarray(tokenizer.encode(t, add_bos=True, add_eos=True), dtype=np.int64) for t in texts]


def parse_single(values: list[str], flag: str) -> dict[str, str]:
    """['code=a', 'math=c'] -> {'code': 'a', 'math': 'c'}; a name given twice is an error."""
    out = {}
    for name, paths in parse_named(values, flag).items():
        if len(paths) > 1:
            raise InfluenceError(
                f"{flag} {name}= is given {len(paths)} times ({', '.join(paths)}); give one file per capability"
            )
        out[name] = paths[0]
    return out


def parse_named(values: list[str], flag: str) -> dict[str, list[str]]:
    """['code=a', 'code=b', 'math=c'] -> {'code': ['a', 'b'], 'math': ['c']} (order of first appearance)."""
    out: dict[str, list[str]] = {}
    for value in values:
        name, sep, rest = value.partition("=")
        if not sep or not name or not rest:
            raise InfluenceError(f"{flag} {value!r}: expected NAME=PATH")
        out.setdefault(name, []).append(rest)
    return out
