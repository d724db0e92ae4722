"""`mlr1 tokenize`: text sources of a mix -> uint32 token shards + document index + manifest.

Work is split into *units*: one input file of a local source, one data file ("shard") of a hub
dataset. Units run in a process pool; each writes `<out>/<source>/u<unit>-<part>.bin/.idx` and, last,
a record `<out>/<source>/units/u<unit>.json`. A unit with a record is finished and is never redone,
so a killed run resumes where it stopped. When all units of a source are finished the source's
`manifest.json` is written (shards.py describes the format).

`<out>/<source>/source.json` pins the source definition, the tokenizer fingerprint and the unit list
at the first run; a later run with another tokenizer, definition or input file set is refused
rather than mixing incompatible shards in one directory.
"""

from __future__ import annotations

import gzip
import json
import multiprocessing as mp
import os
import queue
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass
from typing import Any

from mlr1_titan.data.mix_config import MixSpec, SourceSpec
from mlr1_titan.data.shards import (
    OFFSET_DTYPE,
    TOKEN_DTYPE,
    ShardWriter,
    tokenizer_fingerprint,
    write_manifest,
)
from mlr1_titan.data.sources import (
    DataSourceError,
    hub_rows,
    open_hub_stream,
    parquet_blocks,
    render_text,
    resolve_hub_path,
    resolve_local_files,
)

DEFAULT_SHARD_TOKENS = 1 << 27  # 128M tokens = 512 MiB per .bin


@dataclass(frozen=True)
class Unit:
    source: str
    index: int
    label: str  # input file, or "hub shard k/n"
    size: int | None  # bytes (jsonl) or rows (parquet); None when unknown (hub)


# ------------------------------------------------------------------------------------------------
# Planning


def plan_units(spec: SourceSpec, hub_mirror: str | None) -> list[Unit]:
    if spec.kind == "local":
        units = []
        for i, path in enumerate(resolve_local_files(spec)):
            if path.endswith(".parquet"):
                import pyarrow.parquet as pq  # deferred: only parquet sources need pyarrow

                size = pq.ParquetFile(path).metadata.num_rows
            else:
                size = os.path.getsize(path)
            units.append(Unit(spec.name, i, path, size))
        return units
    if spec.kind == "hub":
        ds = open_hub_stream(spec, resolve_hub_path(spec, hub_mirror))
        n = ds.num_shards
        return [Unit(spec.name, k, f"hub shard {k}/{n}", None) for k in range(n)]
    raise DataSourceError(f"source '{spec.name}': kind '{spec.kind}' is already tokenized")


def iter_unit_records(
    spec: SourceSpec,
    unit: Unit,
    hub_mirror: str | None,
) -> Iterator[tuple[dict, tuple, int]]:
    """(record, location, progress) in input order; progress is in the unit's `size` units and
    `location` becomes text (`describe(location)`) only when an error needs it."""
    if spec.kind == "local":
        if unit.label.endswith(".parquet"):
            for row0, batch in parquet_blocks(unit.label, 1024, spec):
                for j, row in enumerate(batch.to_pylist()):
                    yield row, ("{} row {}", unit.label, row0 + j), row0 + j + 1
        else:
            done = 0  # characters read: progress against the file size (exact for ASCII)
            opener = gzip.open if unit.label.endswith(".gz") else open
            with opener(unit.label, "rt", encoding="utf-8") as f:
                for lineno, line in enumerate(f, 1):
                    done += len(line)
                    if line.isspace():
                        continue
                    try:
                        row = json.loads(line)
                    except ValueError as err:
                        raise DataSourceError(
                            f"source '{spec.name}': {unit.label}:{lineno} is not valid JSON ({err})"
                        ) from None
                    yield row, ("{}:{}", unit.label, lineno), done
        return
    path = resolve_hub_path(spec, hub_mirror)
    ds = open_hub_stream(spec, path)
    ds = ds.shard(num_shards=ds.num_shards, index=unit.index, contiguous=True)
    for i, row in enumerate(hub_rows(ds)):
        yield row, ("hub dataset '{}' {} record {}", path, unit.label, i), 0


def describe(location: tuple) -> str:
    return location[0].format(*location[1:])


# ------------------------------------------------------------------------------------------------
# One unit (runs in a worker)

_worker_tokenizer = None
_worker_queue = None


def _init_worker(tokenizer_factory: Callable[[], Any], progress_queue) -> None:
    global _worker_tokenizer, _worker_queue
    _worker_tokenizer = tokenizer_factory()
    _worker_queue = progress_queue


def _unit_record_path(source_dir: str, unit: Unit) -> str:
    return os.path.join(source_dir, "units", f"u{unit.index:05d}.json")


def tokenize_unit(
    spec: SourceSpec,
    unit: Unit,
    source_dir: str,
    shard_tokens: int,
    hub_mirror: str | None,
    tokenizer=None,
    report=None,
) -> dict[str, Any]:
    tokenizer = tokenizer or _worker_tokenizer
    report = report or (lambda *msg: _worker_queue.put(msg) if _worker_queue is not None else None)
    prefix = f"u{unit.index:05d}"
    for name in os.listdir(source_dir):  # leftovers of a killed attempt at this unit
        if name.startswith(prefix + "-"):
            os.remove(os.path.join(source_dir, name))
    writer = ShardWriter(source_dir, prefix, shard_tokens)
    docs = tokens = empty = 0
    last_docs = last_tokens = 0
    last_report = time.monotonic()
    progress = 0
    # One plain string field is by far the common case: read it without the general renderer.
    field = spec.text_fields[0] if len(spec.text_fields) == 1 else None
    for row, location, progress in iter_unit_records(spec, unit, hub_mirror):
        text = row.get(field) if field is not None and type(row) is dict else None
        if type(text) is not str:
            text = render_text(row, spec, describe(location))
        if not text:
            empty += 1
            continue
        ids = tokenizer.encode(text, add_bos=True, add_eos=True)
        writer.add(ids)
        docs += 1
        tokens += len(ids)
        if docs & 255 == 0 and time.monotonic() - last_report > 0.5:
            report("progress", unit.source, unit.index, docs - last_docs, tokens - last_tokens, progress)
            last_docs, last_tokens, last_report = docs, tokens, time.monotonic()
    shards = writer.close()
    record = {"unit": asdict(unit), "documents": docs, "tokens": tokens, "skipped_empty": empty, "shards": shards}
    path = _unit_record_path(source_dir, unit)
    with open(path + ".tmp", "w") as f:
        json.dump(record, f)
    os.replace(path + ".tmp", path)  # the record is what marks the unit finished
    report("done", unit.source, unit.index, docs - last_docs, tokens - last_tokens, unit.size or 0)
    return record


def _tokenize_unit_task(args) -> dict[str, Any]:
    return tokenize_unit(*args)


def _unit_done(source_dir: str, unit: Unit) -> dict[str, Any] | None:
    path = _unit_record_path(source_dir, unit)
    if not os.path.isfile(path):
        return None
    with open(path) as f:
        record = json.load(f)
    for s in record["shards"]:  # a finished unit whose files were damaged is redone
        tok = os.path.join(source_dir, s["tokens_file"])
        idx = os.path.join(source_dir, s["index_file"])
        if (
            not os.path.isfile(tok)
            or os.path.getsize(tok) != s["num_tokens"] * TOKEN_DTYPE.itemsize
            or not os.path.isfile(idx)
            or os.path.getsize(idx) != (s["num_documents"] + 1) * OFFSET_DTYPE.itemsize
        ):
            os.remove(path)
            return None
    return record


# ------------------------------------------------------------------------------------------------
# Driver


class _Progress:
    """Plain stderr lines with rate and ETA (log-friendly; no terminal control codes)."""

    def __init__(self, units: list[Unit], done: set[tuple[str, int]], interval: float, stream):
        self.size = {(u.source, u.index): u.size for u in units}
        self.total_units = len(units)
        self.done = set(done)
        self.partial: dict[tuple[str, int], float] = {}
        self.tokens = self.docs = 0
        self.start = time.monotonic()
        self.f0 = self.fraction()
        self.interval, self.stream = interval, stream
        self.last_print = self.start

    def fraction(self) -> float:
        if not self.total_units:
            return 1.0
        return (len(self.done) + sum(self.partial.values())) / self.total_units

    def update(self, kind: str, source: str, index: int, ddocs: int, dtokens: int, progress: int) -> None:
        self.docs += ddocs
        self.tokens += dtokens
        key = (source, index)
        if kind == "done":
            self.done.add(key)
            self.partial.pop(key, None)
        elif self.size.get(key):
            self.partial[key] = min(progress / self.size[key], 0.99)

    def maybe_print(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self.last_print < self.interval:
            return
        self.last_print = now
        elapsed = now - self.start
        f = self.fraction()
        rate = self.tokens / elapsed if elapsed > 0 else 0.0
        eta = elapsed * (1 - f) / (f - self.f0) if f > self.f0 else float("nan")
        print(
            f"[tokenize] {100 * f:5.1f}% | units {len(self.done)}/{self.total_units} | "
            f"{self.tokens / 1e6:,.1f}M tokens | {rate / 1e6:.2f}M tok/s | {self.docs:,} docs | "
            f"elapsed {_hms(elapsed)} | ETA {_hms(eta)}",
            file=self.stream,
            flush=True,
        )


def _hms(seconds: float) -> str:
    if seconds != seconds or seconds == float("inf"):
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _prepare_source_dir(spec: SourceSpec, source_dir: str, units: list[Unit], tok_info: dict) -> None:
    os.makedirs(os.path.join(source_dir, "units"), exist_ok=True)
    pin = {
        "source": spec.name,
        "identity": spec.identity(),
        "hash": spec.source_hash(),
        "tokenizer": tok_info,
        "units": [u.label for u in units],
    }
    path = os.path.join(source_dir, "source.json")
    if os.path.isfile(path):
        with open(path) as f:
            old = json.load(f)
        if old["tokenizer"]["fingerprint"] != tok_info["fingerprint"]:
            raise DataSourceError(
                f"source '{spec.name}': {source_dir} holds shards made by tokenizer {old['tokenizer']['name']} "
                f"(fingerprint {old['tokenizer']['fingerprint']}); this run uses {tok_info['name']} "
                f"(fingerprint {tok_info['fingerprint']}). Refusing to mix them: use another --out."
            )
        if old["hash"] != spec.source_hash():
            raise DataSourceError(
                f"source '{spec.name}': {source_dir} was made from {old['identity']}, the mix now says "
                f"{spec.identity()}. Use another --out (or delete the directory) to re-tokenize."
            )
        if old["units"] != pin["units"]:
            raise DataSourceError(
                f"source '{spec.name}': the input files changed since {source_dir} was started "
                f"({len(old['units'])} units then, {len(units)} now). Use another --out to re-tokenize."
            )
    else:
        with open(path + ".tmp", "w") as f:
            json.dump(pin, f, indent=2)
        os.replace(path + ".tmp", path)


def _write_manifest(spec: SourceSpec, source_dir: str, records: list[dict], tok_info: dict) -> dict:
    if sum(r["documents"] for r in records) == 0:
        raise DataSourceError(f"source '{spec.name}' ({spec.mix_file}) is empty: no non-empty document in its input")
    return write_manifest(
        source_dir,
        source={"name": spec.name, "identity": spec.identity(), "hash": spec.source_hash()},
        tokenizer_info=tok_info,
        shards=[s for r in sorted(records, key=lambda r: r["unit"]["index"]) for s in r["shards"]],
        created_by="mlr1 tokenize",
        skipped_empty=sum(r["skipped_empty"] for r in records),
    )


def tokenize_mix(
    mix: MixSpec,
    out_dir: str,
    tokenizer_factory: Callable[[], Any],
    *,
    workers: int = 1,
    sources: list[str] | None = None,
    shard_tokens: int = DEFAULT_SHARD_TOKENS,
    hub_mirror: str | None = None,
    progress_interval: float = 10.0,
    stream=None,
) -> dict[str, dict]:
    """Tokenize `mix`'s text sources (weight > 0, or exactly `sources`) into `out_dir/<source>/`.

    Returns {source: manifest}. `tokenizer_factory` must be picklable (it is called in each worker).
    Progress lines go to `stream` (default stderr).
    """
    stream = stream or sys.stderr
    by_name = {s.name: s for s in mix.sources}
    if sources:
        unknown = [n for n in sources if n not in by_name]
        if unknown:
            raise DataSourceError(f"{mix.file}: no source(s) {unknown}; the mix has {list(by_name)}")
        chosen = [by_name[n] for n in sources]
    else:
        chosen = list(mix.active_sources())
    skipped = [s.name for s in chosen if s.kind == "shards"]
    if skipped:
        print(f"[tokenize] skipping already-tokenized sources: {skipped}", file=stream)
    chosen = [s for s in chosen if s.kind != "shards"]

    tokenizer = tokenizer_factory()
    tok_info = tokenizer_fingerprint(tokenizer)
    plans: dict[str, list[Unit]] = {}
    finished: dict[str, list[dict]] = {}
    todo: list[tuple[SourceSpec, Unit]] = []
    for spec in chosen:  # plan and check everything before starting any work
        units = plan_units(spec, hub_mirror)
        if not units:
            raise DataSourceError(f"source '{spec.name}' ({spec.mix_file}): no input to tokenize")
        source_dir = os.path.join(out_dir, spec.name)
        _prepare_source_dir(spec, source_dir, units, tok_info)
        plans[spec.name] = units
        finished[spec.name] = []
        for u in units:
            rec = _unit_done(source_dir, u)
            if rec is None:
                todo.append((spec, u))
            else:
                finished[spec.name].append(rec)

    all_units = [u for us in plans.values() for u in us]
    already = {(name, rec["unit"]["index"]) for name, recs in finished.items() for rec in recs}
    progress = _Progress(all_units, already, progress_interval, stream)
    print(
        f"[tokenize] {len(chosen)} source(s), {len(all_units)} unit(s), {len(todo)} to do, "
        f"{min(workers, max(len(todo), 1))} worker(s) -> {out_dir}",
        file=stream,
        flush=True,
    )

    if todo and workers <= 1:
        for spec, unit in todo:
            rec = tokenize_unit(
                spec,
                unit,
                os.path.join(out_dir, spec.name),
                shard_tokens,
                hub_mirror,
                tokenizer=tokenizer,
                report=lambda *m: (progress.update(*m), progress.maybe_print()),
            )
            finished[spec.name].append(rec)
    elif todo:
        ctx = mp.get_context("fork" if sys.platform == "linux" else "spawn")
        q = ctx.Queue()
        with ctx.Pool(min(workers, len(todo)), initializer=_init_worker, initargs=(tokenizer_factory, q)) as pool:
            pending = [
                pool.apply_async(
                    _tokenize_unit_task, ((spec, u, os.path.join(out_dir, spec.name), shard_tokens, hub_mirror),)
                )
                for spec, u in todo
            ]
            while pending:
                try:
                    while True:
                        progress.update(*q.get(timeout=0.2))
                except queue.Empty:
                    pass
                progress.maybe_print()
                still = []
                for r in pending:
                    if r.ready():
                        rec = r.get()  # re-raises a worker's error (pool is then terminated)
                        finished[rec["unit"]["source"]].append(rec)
                    else:
                        still.append(r)
                pending = still
            while not q.empty():
                progress.update(*q.get())
    progress.maybe_print(force=True)

    manifests = {}
    for spec in chosen:
        manifests[spec.name] = _write_manifest(spec, os.path.join(out_dir, spec.name), finished[spec.name], tok_info)
        m = manifests[spec.name]
        print(
            f"[tokenize] {spec.name}: {m['documents']:,} documents, {m['tokens']:,} tokens, "
            f"{len(m['shards'])} shard(s)",
            file=stream,
        )
    return manifests
