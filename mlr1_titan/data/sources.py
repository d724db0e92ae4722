"""Document readers: one per source, each yielding tokenized documents (BOS ... EOS) forever.

Three kinds share one interface (`next_doc() -> np.ndarray`, `state()`, `load_state()`):
  * `TextReader` over local jsonl/parquet files or a Hugging Face hub dataset (streamed), which
    tokenizes on the fly;
  * `ShardReader` (shards.py) over the uint32 shards written by `mlr1 tokenize`.

Order and resumability. A reader's whole position is `(epoch, cursor)`. Epoch `e` reads the source
in an order fixed by `(seed, source name, e)`: files (or hub shards) permuted, documents shuffled
inside blocks. Data-parallel reader `r` of `R` takes the documents at positions r, r+R, r+2R, ...
of that order, so the R streams are disjoint. When a reader runs out it starts epoch e+1 (a new
order). Resuming text sources replays the epoch up to the cursor without tokenizing (a skip-count);
shards seek directly.
"""

from __future__ import annotations

import glob as globlib
import gzip
import hashlib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from mlr1_titan.data.mix_config import SourceSpec


class DataSourceError(RuntimeError):
    """A source cannot be read as configured. The message names the source and the file."""


def stable_int(text: str) -> int:
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little")


def seeded_rng(seed: int, name: str, *extra: int) -> np.random.Generator:
    return np.random.default_rng([seed & 0xFFFFFFFFFFFFFFFF, stable_int(name), *extra])


# ------------------------------------------------------------------------------------------------
# Record -> text


_MISSING = object()


def _lookup(row: Any, dotted: str) -> Any:
    cur = row
    for part in dotted.split("."):
        if isinstance(cur, dict) and part in cur:
            cur = cur[part]
        elif isinstance(cur, list) and part.isdigit() and int(part) < len(cur):
            cur = cur[int(part)]
        else:
            return _MISSING
    return cur


def _render(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, str):
        return value
    if isinstance(value, bool):  # before int: bool is an int
        return "yes" if value else "no"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, list):
        return "\n".join(t for t in (_render(v) for v in value) if t)
    if isinstance(value, dict):
        # Multiple-choice lists ({"text": [...], "label": [...]}) read as "A. ...".
        texts, labels = value.get("text"), value.get("label")
        if isinstance(texts, list) and isinstance(labels, list) and len(texts) == len(labels):
            return "\n".join(f"{_render(lab)}. {_render(t)}" for lab, t in zip(labels, texts))
        # Chat turns and answer objects carry their text under one of these keys.
        for key in ("content", "text", "value", "response"):
            if isinstance(value.get(key), str):
                return value[key]
        return "\n".join(f"{k}: {t}" for k, v in value.items() if (t := _render(v)))
    return str(value)


def render_text(row: Any, spec: SourceSpec, where: str) -> str:
    """Join `spec.text_fields` of one record into the document text."""
    if len(spec.text_fields) == 1 and isinstance(row, dict):  # the common case, kept cheap
        value = row.get(spec.text_fields[0], _MISSING)
        if isinstance(value, str):
            return value
    if not isinstance(row, dict):
        raise DataSourceError(f"source '{spec.name}': record in {where} is {type(row).__name__}, not an object")
    parts = []
    for name in spec.text_fields:
        value = _lookup(row, name)
        if value is _MISSING:
            raise DataSourceError(
                f"source '{spec.name}' ({spec.mix_file}): text field '{name}' is absent in {where}; "
                f"the record has fields {sorted(row)}. Fix 'text_fields' in the mix TOML."
            )
        parts.append(_render(value))
    return spec.separator.join(p for p in parts if p)


# ------------------------------------------------------------------------------------------------
# Local files


LOCAL_SUFFIXES = (".jsonl", ".json", ".jsonl.gz", ".json.gz", ".parquet")


def resolve_local_files(spec: SourceSpec) -> list[str]:
    files: set[str] = set()
    for pattern in spec.path:
        matched = [p for p in globlib.glob(pattern, recursive=True) if os.path.isfile(p)]
        if not matched:
            raise DataSourceError(f"source '{spec.name}' ({spec.mix_file}): path '{pattern}' matches no files")
        files.update(matched)
    for f in files:
        if not f.endswith(LOCAL_SUFFIXES):
            raise DataSourceError(
                f"source '{spec.name}': unsupported file type {f}; expected one of {', '.join(LOCAL_SUFFIXES)}"
            )
    return sorted(files)


def jsonl_blocks(path: str, block: int) -> Iterator[list[tuple[int, bytes]]]:
    opener = gzip.open if path.endswith(".gz") else open
    with opener(path, "rb") as f:
        buf: list[tuple[int, bytes]] = []
        for lineno, line in enumerate(f, 1):
            if line.strip():
                buf.append((lineno, line))
                if len(buf) == block:
                    yield buf
                    buf = []
        if buf:
            yield buf


def parquet_blocks(path: str, block: int, spec: SourceSpec) -> Iterator[Any]:
    import pyarrow as pa
    import pyarrow.parquet as pq  # deferred: only parquet sources need pyarrow

    try:
        pf = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as err:
        raise DataSourceError(
            f"source '{spec.name}' ({spec.mix_file}): {path} is not a readable parquet file: {err}"
        ) from None
    columns = pf.schema_arrow.names
    wanted = sorted({f.split(".")[0] for f in spec.text_fields})
    missing = [c for c in wanted if c not in columns]
    if missing:
        raise DataSourceError(
            f"source '{spec.name}' ({spec.mix_file}): text field(s) {missing} absent in {path}; "
            f"its columns are {columns}. Fix 'text_fields' (a chat source: its *_field keys) in the mix TOML."
        )
    row0 = 0
    for batch in pf.iter_batches(batch_size=block, columns=wanted):
        yield row0, batch
        row0 += batch.num_rows


def parse_jsonl_row(line: bytes, spec: SourceSpec, path: str, lineno: int) -> Any:
    """One jsonl line -> its JSON value; invalid JSON is an error naming the source, file and line."""
    try:
        return json.loads(line)
    except ValueError as err:
        raise DataSourceError(f"source '{spec.name}': {path}:{lineno} is not valid JSON ({err})") from None


def iter_local_records(
    spec: SourceSpec,
    files: list[str],
    *,
    epoch: int,
    seed: int,
    rank: int,
    world: int,
    skip: int,
    block: int,
) -> Iterator[tuple[dict, str]]:
    """Records of `rank`'s share of epoch `epoch`, after skipping its first `skip` records.

    Skipped records are never parsed, so a resume costs one raw read of the epoch prefix.
    """
    order = seeded_rng(seed, spec.name, epoch).permutation(len(files))
    g = 0  # position in the epoch's global order
    mine = 0  # records of this rank seen so far
    for fi in order:
        path = files[fi]
        blocks = parquet_blocks(path, block, spec) if path.endswith(".parquet") else jsonl_blocks(path, block)
        for bi, blk in enumerate(blocks):
            n = blk[1].num_rows if isinstance(blk, tuple) else len(blk)
            perm = seeded_rng(seed, spec.name, epoch, int(fi), bi).permutation(n)
            picks = perm[(rank - g) % world :: world]
            g += n
            first = max(0, skip - mine)  # this rank's records of the block still to skip
            mine += len(picks)
            if first >= len(picks):
                continue
            picks = picks[first:]
            if isinstance(blk, tuple):
                row0, batch = blk
                for j, row in zip(picks, batch.take(picks).to_pylist()):
                    yield row, f"{path} row {row0 + int(j)}"
            else:
                for j in picks:
                    lineno, line = blk[j]
                    yield parse_jsonl_row(line, spec, path, lineno), f"{path}:{lineno}"


# ------------------------------------------------------------------------------------------------
# Hugging Face hub (streaming)


def hub_dataset_path(dataset_id: str, hub_mirror: str | None) -> str:
    """`dataset_id`, or the local snapshot `<hub_mirror>/<dataset_id>` when it exists (offline clusters)."""
    if hub_mirror:
        local = os.path.join(os.path.expanduser(hub_mirror), dataset_id)
        if os.path.isdir(local):
            return local
    return dataset_id


def resolve_hub_path(spec: SourceSpec, hub_mirror: str | None) -> str:
    """Where a hub source is read from: its id, or its local snapshot under `hub_mirror`."""
    return hub_dataset_path(spec.path[0], hub_mirror)


def open_hub_stream(spec: SourceSpec, path: str):
    """`datasets.load_dataset(..., streaming=True)` for a hub source, with a clear error."""
    from datasets import load_dataset  # deferred: importing datasets takes seconds; local runs never need it

    kwargs: dict[str, Any] = {"split": spec.split, "streaming": True}
    if spec.config:
        kwargs["name"] = spec.config
    if spec.data_dir:
        kwargs["data_dir"] = spec.data_dir
    if spec.data_files:
        kwargs["data_files"] = list(spec.data_files)
    if spec.revision:
        kwargs["revision"] = spec.revision
    try:
        return load_dataset(path, **kwargs)
    except Exception as err:  # datasets raises many types; all mean "cannot open"
        raise DataSourceError(
            f"source '{spec.name}' ({spec.mix_file}): cannot open hub dataset '{path}' with "
            f"{ {k: v for k, v in kwargs.items() if k != 'streaming'} }: {type(err).__name__}: {err}"
        ) from err


def iter_hub_records(
    spec: SourceSpec,
    path: str,
    *,
    epoch: int,
    seed: int,
    rank: int,
    world: int,
    skip: int,
    shuffle_buffer: int,
) -> Iterator[tuple[dict, str]]:
    from datasets.distributed import split_dataset_by_node  # deferred, as above

    ds = open_hub_stream(spec, path)
    if shuffle_buffer > 1:
        # Shuffles the file order and a buffer of examples; `set_epoch` re-seeds per epoch.
        ds = ds.shuffle(seed=stable_int(f"{seed}:{spec.name}") % 2**32, buffer_size=shuffle_buffer)
        ds.set_epoch(epoch)
    ds = split_dataset_by_node(ds, rank=rank, world_size=world)
    if skip:
        ds = ds.skip(skip)
    where = f"hub dataset '{path}' (config={spec.config}, split={spec.split})"
    rows = enumerate(hub_rows(ds), skip)
    while True:
        try:
            i, row = next(rows)
        except StopIteration:
            return
        except Exception as err:  # a file that vanished, a network error, a bad shard, ...
            raise DataSourceError(f"source '{spec.name}': reading {where} failed: {type(err).__name__}: {err}") from err
        yield row, f"{where} record {i} of reader {rank}/{world}"


def hub_rows(ds, batch_size: int = 256) -> Iterator[dict]:
    """Rows of a streaming dataset. Batched iteration is faster, and unlike `iter(ds)` it does not
    re-split the stream across torch dataloader workers (our readers already stride by worker)."""
    for batch in ds.iter(batch_size=batch_size):
        columns = list(batch)
        yield from (dict(zip(columns, values)) for values in zip(*batch.values()))


# ------------------------------------------------------------------------------------------------
# Tokenizing reader


@dataclass(frozen=True)
class TextPlan:
    """What a text source resolves to (picklable, checked once at startup)."""

    spec: SourceSpec
    files: tuple[str, ...] = ()  # local
    hub_path: str = ""  # hub

    def records(
        self, *, epoch: int, seed: int, rank: int, world: int, skip: int, block: int, shuffle_buffer: int
    ) -> Iterator[tuple[dict, str]]:
        if self.spec.kind == "local":
            return iter_local_records(
                self.spec, list(self.files), epoch=epoch, seed=seed, rank=rank, world=world, skip=skip, block=block
            )
        return iter_hub_records(
            self.spec,
            self.hub_path,
            epoch=epoch,
            seed=seed,
            rank=rank,
            world=world,
            skip=skip,
            shuffle_buffer=shuffle_buffer,
        )


def plan_text_source(spec: SourceSpec, hub_mirror: str | None) -> TextPlan:
    if spec.kind == "local":
        return TextPlan(spec, files=tuple(resolve_local_files(spec)))
    if spec.kind == "hub":
        path = resolve_hub_path(spec, hub_mirror)
        # Open it now (streaming resolves files, reads no data) so a wrong id, config or pattern
        # fails at startup; when the schema is known, check the text fields too.
        features = open_hub_stream(spec, path).features
        if features is not None:
            missing = sorted({f.split(".")[0] for f in spec.text_fields} - set(features))
            if missing:
                raise DataSourceError(
                    f"source '{spec.name}' ({spec.mix_file}): text field(s) {missing} absent in hub "
                    f"dataset '{path}' (config={spec.config}); its columns are {sorted(features)}"
                )
        return TextPlan(spec, hub_path=path)
    raise DataSourceError(f"source '{spec.name}': kind '{spec.kind}' is not a text source")


class TextReader:
    """Tokenizes a text source on the fly. State = (epoch, records consumed by this reader)."""

    def __init__(
        self,
        plan: TextPlan,
        tokenizer,
        *,
        seed: int,
        rank: int,
        world: int,
        block: int = 4096,
        shuffle_buffer: int = 10_000,
    ):
        self.plan, self.spec = plan, plan.spec
        self.tokenizer = tokenizer
        self.seed, self.rank, self.world = seed, rank, world
        self.block, self.shuffle_buffer = block, shuffle_buffer
        self.epoch = 0
        self.consumed = 0
        self._it: Iterator[tuple[dict, str]] | None = None
        self._fresh_epoch_docs = -1  # non-empty docs seen in an epoch read from its start

    def position(self) -> tuple[int, int]:
        return self.epoch, self.consumed

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.consumed}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.consumed = int(state["epoch"]), int(state["cursor"])
        self._it = None

    def next_doc(self) -> np.ndarray:
        while True:
            if self._it is None:
                self._fresh_epoch_docs = 0 if self.consumed == 0 else -1
                self._it = self.plan.records(
                    epoch=self.epoch,
                    seed=self.seed,
                    rank=self.rank,
                    world=self.world,
                    skip=self.consumed,
                    block=self.block,
                    shuffle_buffer=self.shuffle_buffer,
                )
            try:
                row, where = next(self._it)
            except StopIteration:
                if self._fresh_epoch_docs == 0:
                    raise DataSourceError(
                        f"source '{self.spec.name}' ({self.spec.mix_file}) is empty for data reader "
                        f"{self.rank} of {self.world}: a whole epoch yielded no non-empty document"
                        + (" (fewer documents than readers?)" if self.world > 1 else "")
                    ) from None
                self.epoch += 1
                self.consumed = 0
                self._it = None
                continue
            self.consumed += 1
            text = render_text(row, self.spec, where)
            if not text:
                continue  # an empty record is not a document
            if self._fresh_epoch_docs >= 0:
                self._fresh_epoch_docs += 1
            return np.asarray(self.tokenizer.encode(text, add_bos=True, add_eos=True), dtype=np.int64)
