"""Fill placeholder questions from the benchmark each row names (OpenCodeReasoning-2; docs/sft.md).

OpenCodeReasoning-2 publishes its rows with ``question = "-"``: the question itself belongs to the
benchmark the row comes from, named by the row's ``dataset`` / ``split`` / ``index`` fields (index =
row position in that split). ``fill_source`` streams one chat source in its upstream order, looks
every placeholder up in that benchmark (``benchmark_questions``), and writes the rows to a parquet
file; ``filled_mix`` turns the chat mix into one that reads those files.

Rows that cannot be filled are dropped and counted per reason:
    unknown_benchmark   the row's `dataset` is not in ``BENCHMARKS`` (or it names no split)
    unknown_split       the benchmark has no split of that name
    bad_index           `index` is not a non-negative integer
    index_out_of_range  the benchmark split has fewer rows
    empty_question      the benchmark row has no question text (e.g. an empty description)
"""

from __future__ import annotations

import os
import sys
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field

from mlr1_titan.data.mix_config import SourceSpec
from mlr1_titan.data.sources import (
    DataSourceError,
    TextPlan,
    hub_rows,
    jsonl_blocks,
    open_hub_stream,
    parse_jsonl_row,
    plan_text_source,
)

from .benchmark_questions import QuestionFiller
from .chat_sources import PLACEHOLDER_PROMPTS, ChatMapping

# The fields of an OpenCodeReasoning-2 row that name where its question lives.
ROW_BENCHMARK, ROW_SPLIT, ROW_INDEX = "dataset", "split", "index"
SKIP_REASONS = ("unknown_benchmark", "unknown_split", "bad_index", "index_out_of_range", "empty_question")


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
    import pyarrow as pa
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

    def parquet(path: str):
        try:
            return pq.ParquetFile(path)
        except (pa.ArrowException, OSError) as err:
            raise DataSourceError(f"source '{spec.name}': {path} is not a readable parquet file: {err}") from None

    def local() -> Iterator[tuple[dict, str]]:
        for path in plan.files:
            if path.endswith(".parquet"):
                i = 0
                for batch in parquet(path).iter_batches(batch_size=1024):
                    for row in batch.to_pylist():
                        yield row, f"{path} row {i}"
                        i += 1
                continue
            for block in jsonl_blocks(path, 1024):
                for lineno, line in block:
                    row = parse_jsonl_row(line, spec, path, lineno)
                    if not isinstance(row, dict):
                        raise DataSourceError(
                            f"source '{spec.name}': {path}:{lineno} is a JSON {type(row).__name__}, not an object with fields"
                        )
                    yield row, f"{path}:{lineno}"

    first = next((f for f in plan.files if f.endswith(".parquet")), None)
    return (parquet(first).schema_arrow if first else None), local()


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
        if schema is not None:  # a field the schema lacks would be dropped without a word
            for row in batch:
                extra = set(row) - set(schema.names)
                if extra:
                    raise DataSourceError(
                        f"source '{spec.name}': a row up to {where} has field(s) {sorted(extra)} that the output "
                        f"schema (the source's, or its first {row_group_rows:,} rows') lacks: {schema.names}"
                    )
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
                f"{spec.where}: none of its {report.read:,} rows could be filled (dropped: {dict(report.dropped)})"
                + (
                    "; check --hub-mirror and the benchmark snapshots"
                    if {"unknown_benchmark", "unknown_split", "index_out_of_range"} & set(report.dropped)
                    else ""
                )
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
