"""The benchmarks OpenCodeReasoning-2 takes its questions from, as data, and random access to them.

An OpenCodeReasoning-2 row names its question by ``dataset`` (a benchmark alias), ``split`` and
``index`` (row position in that split); ``BENCHMARKS`` says, per alias, which hub dataset holds the
split and how its question text is composed (docs/sft.md). ``QuestionFiller`` answers
(alias, split, index) -> question, loading each benchmark split once.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from mlr1_titan.data.sources import DataSourceError, hub_dataset_path


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
            except Exception as err:  # datasets raises many types; all but one mean "cannot open"
                if isinstance(err, ValueError) and "Unknown split" in str(err):
                    self._splits[key] = None  # the benchmark loads, the row names a split it lacks: a bad row
                    return None
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
        if ds is None:
            return "", "unknown_split"
        if i >= len(ds):
            return "", "index_out_of_range"
        text = bench.compose(ds[i])
        return (text, None) if text else ("", "empty_question")
