"""Fill placeholder questions from the benchmark each row names (OpenCodeReasoning-2; docs/sft.md).

OpenCodeReasoning-2 publishes its rows with ``question = "-"``: the question itself belongs to the
benchmark the row comes from, named by the row's ``dataset`` / ``split`` / ``index`` fields (index =
row position in that split). ``fill_source`` streams one chat source in its upstream order, looks
every placeholder up in that benchmark (loaded once per split, random access), and writes the rows
to a parquet file; ``filled_mix`` turns the chat mix into one that reads those files.

Rows that cannot be filled are dropped and counted per reason:
    unknown_benchmark   the row's `dataset` is not in ``BENCHMARKS`` (or it names no split)
    bad_index           `index` is not a non-negative integer
    index_out_of_range  the benchmark split has fewer rows
    empty_question      the benchmark row has no question text (e.g. an empty description)
"""

from __future__ import annotations

import copy
import json
import os
import sys
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlr1_titan.data.mix_config import SourceSpec
from mlr1_titan.data.sources import (
    DataSourceError,
    TextPlan,
    hub_dataset_path,
    hub_rows,
    jsonl_blocks,
    open_hub_stream,
    plan_text_source,
)

from .chat_sources import PLACEHOLDER_PROMPTS, ChatMapping

# The fields of an OpenCodeReasoning-2 row that name where its question lives.
ROW_BENCHMARK, ROW_SPLIT, ROW_INDEX = "dataset", "split", "index"
SKIP_REASONS = ("unknown_benchmark", "bad_index", "index_out_of_range", "empty_question")


# ------------------------------------------------------------------------------------------------
# The benchmarks, as data


@dataclass(frozen=True)
class Section:
    """Text appended to the question when the benchmark row's `field` is non-empty: `heading`, then
    the field's text -- or, for a list of dicts, per item `prefix + item[key]` for each (key, prefix)
    of `item_keys` that the item has."""

    field: str
    heading: str
    item_keys: tuple[tuple[str, str], ...] = ()


@dataclass(frozen=True)
class Benchmark:
    alias: str
    """The value of an OpenCodeReasoning-2 row's `dataset` field."""
    hub_id: str
    """The hub dataset (or `<hub_mirror>/<hub_id>` snapshot) whose splits hold the questions."""
    main_field: str
    """The question text; a row where it is empty has no usable question."""
    sections: tuple[Section, ...] = ()
    """Further fields composed after the main one, in order."""

    @property
    def fields(self) -> list[str]:
        return [self.main_field, *(s.field for s in self.sections)]

    def compose(self, row: Mapping[str, Any]) -> str:
        """The question of one benchmark row ("" when its main field is empty)."""
        main = row.get(self.main_field)
        if not isinstance(main, str) or not main.strip():
            return ""
        parts = [main]
        for section in self.sections:
            value = row.get(section.field)
            if not value:
                continue
            parts.append(section.heading)
            if section.item_keys:
                for item in value:
                    parts += [prefix + str(item[key]) for key, prefix in section.item_keys if item.get(key) is not None]
            else:
                parts.append(str(value))
        return "".join(parts)


_IO = (("input", "\n\nInput\n\n"), ("output", "\n\nOutput\n\n"))

BENCHMARKS: dict[str, Benchmark] = {
    b.alias: b
    for b in (
        Benchmark("taco", "BAAI/TACO", "question"),
        Benchmark("apps", "codeparrot/apps", "question"),
        Benchmark("code_contests", "deepmind/code_contests", "description"),
        # Codeforces problems come in parts; the statement is rebuilt from them in this order.
        Benchmark(
            "open-r1/codeforces",
            "open-r1/codeforces",
            "description",
            sections=(
                Section("input_format", _IO[0][1]),
                Section("output_format", _IO[1][1]),
                Section("examples", "\n\nExamples", item_keys=_IO),
                Section("note", "\n\nNote\n\n"),
            ),
        ),
    )
}


class QuestionFiller:
    """Questions by (benchmark, split, index); each benchmark split is loaded on first use.

    Splits load non-streaming (memory-mapped Arrow, random access by index), reading only the
    question fields; the first load of a split converts it into the datasets cache (`cache_dir`).
    """

    def __init__(
        self,
        hub_mirror: str | None = None,
        *,
        benchmarks: Mapping[str, Benchmark] = BENCHMARKS,
        cache_dir: str | None = None,
    ):
        self.hub_mirror, self.benchmarks, self.cache_dir = hub_mirror, dict(benchmarks), cache_dir
        self._splits: dict[tuple[str, str], Any] = {}

    @property
    def loaded(self) -> list[tuple[str, str]]:
        """(benchmark alias, split) of the splits loaded so far."""
        return sorted(self._splits)

    def split(self, bench: Benchmark, split: str):
        key = (bench.alias, split)
        if key not in self._splits:
            from datasets import load_dataset  # deferred: importing datasets takes seconds

            path = hub_dataset_path(bench.hub_id, self.hub_mirror)
            where = f"benchmark '{bench.alias}' ({bench.hub_id}, read from '{path}')"
            try:
                ds = load_dataset(path, split=split, cache_dir=self.cache_dir)
            except Exception as err:  # datasets raises many types; all mean "cannot open"
                hint = ""
                if path == bench.hub_id:
                    hint = (
                        f" (no folder {os.path.join(self.hub_mirror, path)})" if self.hub_mirror else " (no hub mirror)"
                    )
                fix = ""
                if "scripts are no longer supported" in str(err):
                    # datasets >= 4 runs no loading scripts; the data files themselves still load.
                    fix = (
                        f"; put its data files (one folder of parquet/jsonl per split, no .py script) under "
                        f"<hub mirror>/{bench.hub_id} and pass --hub-mirror (docs/sft.md)"
                    )
                raise DataSourceError(
                    f"{where}: cannot load split '{split}'{hint}: {type(err).__name__}: {err}{fix}"
                ) from err
            missing = [f for f in bench.fields if f not in ds.column_names]
            if missing:
                raise DataSourceError(
                    f"{where}, split '{split}': field(s) {missing} absent; its columns are {ds.column_names}"
                )
            self._splits[key] = ds.select_columns(bench.fields)
        return self._splits[key]

    def question(self, dataset: Any, split: Any, index: Any) -> tuple[str, str | None]:
        """(question, None), or ("", skip reason)."""
        bench = self.benchmarks.get(dataset) if isinstance(dataset, str) else None
        if bench is None or not isinstance(split, str) or not split:
            return "", "unknown_benchmark"
        if isinstance(index, str) and index.strip().isascii() and index.strip().isdecimal():
            i = int(index)
        elif isinstance(index, int) and not isinstance(index, bool) and index >= 0:
            i = index
        else:
            return "", "bad_index"
        ds = self.split(bench, split)
        if i >= len(ds):
            return "", "index_out_of_range"
        text = bench.compose(ds[i])
        return (text, None) if text else ("", "empty_question")


# ------------------------------------------------------------------------------------------------
# One source -> one parquet file


@dataclass
class FillReport:
    source: str
    out_path: str
    read: int = 0
    filled: int = 0
    kept: int = 0
    """Rows that already had a real question, written unchanged."""
    dropped: Counter = field(default_factory=Counter)
    """Skip reason -> rows."""

    @property
    def written(self) -> int:
        return self.filled + self.kept


def source_rows(plan: TextPlan):
    """(Arrow schema or None, iterator of (row, location)): every row with all its fields, in the
    upstream order. The training readers' `records` shuffle and read only the mapped parquet columns."""
    import pyarrow.parquet as pq  # deferred: only this command and parquet sources need pyarrow

    spec = plan.spec
    if spec.kind == "hub":
        ds = open_hub_stream(spec, plan.hub_path)
        where = f"hub dataset '{plan.hub_path}' (config={spec.config}, split={spec.split})"

        def hub() -> Iterator[tuple[dict, str]]:
            rows = enumerate(hub_rows(ds))
            while True:
                try:
                    i, row = next(rows)
                except StopIteration:
                    return
                except Exception as err:  # a vanished file, a network error, a bad shard, ...
                    raise DataSourceError(
                        f"source '{spec.name}': reading {where} failed: {type(err).__name__}: {err}"
                    ) from err
                yield row, f"{where} row {i}"

        return (ds.features.arrow_schema if ds.features is not None else None), hub()

    def local() -> Iterator[tuple[dict, str]]:
        for path in plan.files:
            if path.endswith(".parquet"):
                i = 0
                for batch in pq.ParquetFile(path).iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        yield row, f"{path} row {i}"
                        i += 1
                continue
            for block in jsonl_blocks(path, 1024):
                for lineno, line in block:
                    try:
                        row = json.loads(line)
                    except ValueError as err:
                        raise DataSourceError(
                            f"source '{spec.name}': {path}:{lineno} is not valid JSON ({err})"
                        ) from None
                    yield row, f"{path}:{lineno}"

    first = next((f for f in plan.files if f.endswith(".parquet")), None)
    return (pq.ParquetFile(first).schema_arrow if first else None), local()


class _Progress:
    """A stderr line every `interval` seconds: rows read of the total, rate and ETA."""

    def __init__(self, source: str, total: int | None, interval: float, stream):
        self.source, self.total, self.interval, self.stream = source, total, interval, stream
        self.start = self.last = time.monotonic()
        self.shown = -1  # rows read at the last line

    def tick(self, read: int, force: bool = False) -> None:
        """A line when `interval` has passed since the last one (`force`: now, unless it says the same)."""
        now = time.monotonic()
        if (not force and now - self.last < self.interval) or read == self.shown:
            return
        self.last, self.shown = now, read
        rate = read / max(now - self.start, 1e-9)
        if self.total:
            eta = (self.total - read) / rate if rate > 0 else float("nan")
            line = (
                f"filled {read:,} / {self.total:,} rows ({100 * read / self.total:.1f}%) · {rate:,.0f} rows/s · "
                f"ETA {_hms(eta)}"
            )
        else:
            line = f"filled {read:,} rows · {rate:,.0f} rows/s"
        print(f"[fill-questions] {self.source}: {line}", file=self.stream, flush=True)


def _hms(seconds: float) -> str:
    if seconds != seconds or seconds < 0:
        return "?"
    s = int(seconds)
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


def _total_rows(spec: SourceSpec, hub_mirror: str | None) -> int | None:
    try:
        from .chat_loader import count_rows  # deferred: the loader imports torch

        return count_rows(spec, hub_mirror)
    except Exception:  # no size metadata (a snapshot without dataset_info, ...): progress without ETA
        return None


def fill_source(
    spec: SourceSpec,
    mapping: ChatMapping,
    filler: QuestionFiller,
    out_path: str | os.PathLike,
    *,
    hub_mirror: str | None = None,
    progress_interval: float = 30.0,
    row_group_rows: int = 2000,
    stream=None,
) -> FillReport:
    """Write `spec`'s rows to `out_path` (parquet) with placeholder questions filled in, in order.

    Progress goes to `stream` (default stderr) every `progress_interval` seconds; the file appears
    only when complete (written under a temporary name, then renamed)."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    question = mapping.prompt_field
    if mapping.format != "qa" or "." in question:
        raise DataSourceError(
            f"{spec.where}: fill_questions needs format 'qa' with a top-level prompt_field, "
            f"got format {mapping.format!r}, prompt_field {question!r}"
        )
    out_path = str(out_path)
    report = FillReport(spec.name, out_path)
    schema, rows = source_rows(plan_text_source(spec, hub_mirror))
    progress = _Progress(spec.name, _total_rows(spec, hub_mirror), progress_interval, stream or sys.stderr)
    tmp = f"{out_path}.tmp"
    writer, batch = None, []

    def flush() -> None:
        nonlocal writer, schema
        try:
            table = pa.Table.from_pylist(batch, schema=schema)
        except (pa.ArrowException, TypeError, ValueError) as err:
            raise DataSourceError(
                f"source '{spec.name}': rows up to {where} do not fit the output schema (the source's, or its first rows') "
                f"({type(err).__name__}: {err})"
            ) from err
        if writer is None:
            schema = table.schema
            writer = pq.ParquetWriter(tmp, schema)
        writer.write_table(table)
        batch.clear()

    where = ""
    try:
        for row, where in rows:
            report.read += 1
            prompt = row.get(question)
            if prompt is not None and not (isinstance(prompt, str) and prompt.strip() in PLACEHOLDER_PROMPTS):
                report.kept += 1
            else:
                missing = [f for f in (ROW_BENCHMARK, ROW_SPLIT, ROW_INDEX) if f not in row]
                if missing:
                    raise DataSourceError(
                        f"source '{spec.name}': {where} has placeholder {question} {prompt!r} but no field(s) "
                        f"{missing} naming its benchmark (fields: {sorted(row)})"
                    )
                try:
                    text, reason = filler.question(row[ROW_BENCHMARK], row[ROW_SPLIT], row[ROW_INDEX])
                except DataSourceError as err:
                    raise DataSourceError(f"source '{spec.name}', {where}: {err}") from err
                if reason:
                    report.dropped[reason] += 1
                    progress.tick(report.read)
                    continue
                row[question] = text
                report.filled += 1
            batch.append(row)
            if len(batch) >= row_group_rows:
                flush()
            progress.tick(report.read)
        if not report.read:
            raise DataSourceError(f"{spec.where}: the source has no rows")
        if not report.written:
            raise DataSourceError(
                f"{spec.where}: none of its {report.read:,} rows could be filled "
                f"(dropped: {dict(report.dropped)}); check --hub-mirror and the benchmark snapshots"
            )
        if batch:
            flush()
        writer.close()
        writer = None
        os.replace(tmp, out_path)
    finally:
        if writer is not None:
            writer.close()
        if os.path.exists(tmp):
            os.remove(tmp)
    progress.tick(report.read, force=True)
    return report


# ------------------------------------------------------------------------------------------------
# The chat mix that reads the filled files


_HUB_LOCATION_KEYS = ("config", "split", "data_dir", "data_files", "revision")


def filled_mix(raw: dict[str, Any], mix_file: str, outputs: Mapping[str, str]) -> dict[str, Any]:
    """The chat mix `raw` (as read from `mix_file`) with each source of `outputs` (name -> parquet
    path) read from that file; other sources' relative paths made absolute (the new TOML lives elsewhere)."""
    doc = copy.deepcopy(raw)
    base = Path(mix_file).resolve().parent
    defaults = doc.get("defaults", {})
    default_fill = defaults.pop("fill_questions", None)
    sources = []
    for entry in doc["sources"]:
        name = entry.get("name")
        if name in outputs:
            rest = {k: v for k, v in entry.items() if k not in ("name", "kind", "path", "fill_questions")}
            for key in _HUB_LOCATION_KEYS:  # where the hub copy was; the file replaces it
                rest.pop(key, None)
            entry = {"name": name, "kind": "local", "path": str(Path(outputs[name]).resolve()), **rest}
        else:
            if default_fill is not None:
                entry.setdefault("fill_questions", default_fill)
            if entry.get("kind", defaults.get("kind", "hub")) in ("local", "shards") and "path" in entry:
                entry["path"] = _absolute(entry["path"], base)
        sources.append(entry)
    doc["sources"] = sources
    if not defaults and "defaults" in doc:
        del doc["defaults"]
    return doc


def _absolute(path: str | list[str], base: Path) -> str | list[str]:
    if isinstance(path, list):
        return [_absolute(p, base) for p in path]
    expanded = os.path.expanduser(os.path.expandvars(path))
    return path if os.path.isabs(expanded) else str(base / path)


def write_mix_toml(path: str | os.PathLike, doc: dict[str, Any], header: str) -> Path:
    """Write a mix document as TOML (one [[sources]] table per source, like the shipped mixes), atomically."""
    import tomli_w

    path = Path(path)
    top = {k: v for k, v in doc.items() if k != "sources"}
    comment = "".join(f"# {line}\n" for line in header.splitlines())
    body = tomli_w.dumps(top) + "".join(f"\n[[sources]]\n{tomli_w.dumps(s)}" for s in doc["sources"])
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(comment + body)
    os.replace(tmp, path)
    return path


__all__ = [
    "BENCHMARKS",
    "Benchmark",
    "FillReport",
    "QuestionFiller",
    "Section",
    "fill_source",
    "filled_mix",
    "write_mix_toml",
]
