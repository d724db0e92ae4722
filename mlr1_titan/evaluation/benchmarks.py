"""Benchmark data: pinned hub sources, local jsonl mirrors, prompts and evaluation options.

Every task reads its rows from, in order of precedence:

1. ``data_dir`` in the task metadata (``lm_eval --metadata '{"data_dir": "/data/r1"}'``),
2. the ``MLR1_EVAL_DATA_DIR`` environment variable,
3. the Hugging Face hub at the pinned revision below (``datasets.load_dataset(id, revision=...)``).

A data dir holds one ``<key>.jsonl`` per benchmark (keys of ``SOURCES``), each row in the schema
of the hub dataset; ``mlr1 eval-data OUT_DIR`` writes such a mirror from the hub.

Rows become lm-eval docs with a common shape: ``r1_id``, ``r1_benchmark``, ``prompt`` (the user
turn), ``answer`` (gold answer for math, the id for code) and ``r1_options`` (JSON of the
evaluation options, so grading filters see them). Code tests are large, so they stay out of the
docs (and out of logged samples) in ``TEST_STORE``.
"""

from __future__ import annotations

import ast
import base64
import datetime as dt
import io
import json
import logging
import os
import pickle
import zlib
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .sandbox import ISOLATION_LEVELS

log = logging.getLogger(__name__)

DATA_DIR_ENV = "MLR1_EVAL_DATA_DIR"


@dataclass(frozen=True)
class BenchmarkSource:
    key: str
    """Benchmark key: the local file is ``<data_dir>/<key>.jsonl``."""
    hub_id: str
    revision: str
    """Dataset commit the numbers are tied to."""
    split: str
    config: str | None = None
    data_files: tuple[str, ...] = ()
    """Raw files read instead of the repo's loader (LiveCodeBench's repo is script-based)."""


# Revisions: the `main` commit of each dataset repository when it was pinned (Aug 2026).
SOURCES: dict[str, BenchmarkSource] = {
    s.key: s
    for s in (
        BenchmarkSource("aime24", "HuggingFaceH4/aime_2024", "2fe88a2f1091d5048c0f36abc874fb997b3dd99a", "train"),
        BenchmarkSource("aime25", "math-ai/aime25", "563bb8404243c5f09de6ec262f2db674fe5bce9b", "test"),
        BenchmarkSource("math500", "HuggingFaceH4/MATH-500", "6e4ed1a2a79af7d8630a6b768ec859cb5af4d3be", "test"),
        BenchmarkSource("gsm8k", "openai/gsm8k", "740312add88f781978c0658806c59bc2815b9866", "test", config="main"),
        BenchmarkSource("humaneval_plus", "evalplus/humanevalplus", "d32357cf319e50e9c8d8dab5ea876c72b0fd321b", "test"),
        BenchmarkSource("mbpp_plus", "evalplus/mbppplus", "b2d74c91837c3f2a20c1299ae98133cbe7cfa077", "test"),
        # release_v6 = test.jsonl .. test6.jsonl (1055 problems, May 2023 - Apr 2025). The repo ships
        # a loading script, which datasets>=4 refuses, so the raw jsonl files are read directly.
        BenchmarkSource(
            "livecodebench",
            "livecodebench/code_generation_lite",
            "0fe84c3912ea0c4d4a78037083943e8f0c4dd505",
            "train",
            data_files=(
                "test.jsonl",
                "test2.jsonl",
                "test3.jsonl",
                "test4.jsonl",
                "test5.jsonl",
                "test6.jsonl",
            ),
        ),
    )
}

# The paper does not state its LiveCodeBench-v6 window (paper_facts §4.1, NOT FOUND). Default: problems
# dated Aug 2024 - Apr 2025, the window other small reasoning-model reports label "LCB v6".
LCB_DEFAULT_START = "2024-08-01"
LCB_DEFAULT_END = "2025-05-01"


# --- evaluation options ---------------------------------------------------------------------------
@dataclass(frozen=True)
class EvalOptions:
    """Runtime options, read from lm-eval task metadata (``--metadata`` JSON or ``mlr1 eval`` flags)."""

    think_prefilled: bool = False
    """The chat template's generation prompt already opens ``<think>``: a completion without
    ``</think>`` is truncated reasoning. Auto-detected from ``pretrained`` when it is a local dir."""
    math_instruction: str = ""
    """Appended to math questions. Empty = the paper's "raw" prompt (the bare question)."""
    math_timeout_s: float = 5.0
    """Per-answer math-verify timeout."""
    code_timeout_s: float = 20.0
    """Wall-clock limit for one candidate and all its tests."""
    test_timeout_s: float = 6.0
    """Per-test limit for LiveCodeBench tests."""
    code_memory_mb: int = 4096
    """Address-space limit per candidate process."""
    sandbox_workers: int = 0
    """Candidates run in parallel; 0 = one per CPU core."""
    sandbox_isolation: str = "strict"
    """Code sandbox level: ``strict`` (bubblewrap + cgroup), or the weaker ``no_cgroup`` / ``weak``,
    which must be chosen explicitly and are recorded with every graded sample."""
    lcb_start_date: str = LCB_DEFAULT_START
    """First LiveCodeBench contest date included (YYYY-MM-DD)."""
    lcb_end_date: str = LCB_DEFAULT_END
    """First contest date excluded (YYYY-MM-DD)."""

    def to_json(self) -> str:
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "EvalOptions":
        return cls(**json.loads(text))


def _parse_bool(key: str, value: Any) -> bool:
    if isinstance(value, bool):
        return value
    if isinstance(value, str) and value.lower() in ("1", "true", "yes", "0", "false", "no"):
        return value.lower() in ("1", "true", "yes")
    raise ValueError(f"metadata {key}={value!r}: expected true/false")


def _parse_date(key: str, value: Any) -> str:
    try:
        return dt.date.fromisoformat(str(value)).isoformat()
    except ValueError:
        raise ValueError(f"metadata {key}={value!r}: expected a date as YYYY-MM-DD") from None


def options_from_metadata(metadata: dict[str, Any]) -> EvalOptions:
    """Build ``EvalOptions`` from lm-eval task metadata (which also carries model args and
    lm-eval's own keys; those are ignored). Bad values raise naming the key."""
    defaults = EvalOptions()
    values: dict[str, Any] = {}
    for key in ("math_timeout_s", "code_timeout_s", "test_timeout_s"):
        if key in metadata:
            try:
                values[key] = float(metadata[key])
            except (TypeError, ValueError):
                raise ValueError(f"metadata {key}={metadata[key]!r}: expected seconds") from None
            if values[key] <= 0:
                raise ValueError(f"metadata {key}={metadata[key]!r}: must be > 0")
    for key in ("code_memory_mb", "sandbox_workers"):
        if key in metadata:
            try:
                values[key] = int(metadata[key])
            except (TypeError, ValueError):
                raise ValueError(f"metadata {key}={metadata[key]!r}: expected an integer") from None
            if values[key] < (1 if key == "code_memory_mb" else 0):
                raise ValueError(f"metadata {key}={metadata[key]!r}: out of range")
    for key in ("lcb_start_date", "lcb_end_date"):
        if key in metadata:
            values[key] = _parse_date(key, metadata[key])
    if "sandbox_isolation" in metadata:
        values["sandbox_isolation"] = str(metadata["sandbox_isolation"])
        if values["sandbox_isolation"] not in ISOLATION_LEVELS:
            raise ValueError(
                f"metadata sandbox_isolation={metadata['sandbox_isolation']!r}: expected one of "
                + ", ".join(ISOLATION_LEVELS)
            )
    if "math_instruction" in metadata:
        values["math_instruction"] = str(metadata["math_instruction"])
    prefill = metadata.get("think_prefilled", "auto")
    if prefill == "auto" or prefill is None:
        model_path = metadata.get("tokenizer") or metadata.get("pretrained")
        values["think_prefilled"] = detect_think_prefill(str(model_path)) if model_path else defaults.think_prefilled
    else:
        values["think_prefilled"] = _parse_bool("think_prefilled", prefill)
    options = EvalOptions(**values)
    if options.lcb_start_date >= options.lcb_end_date:
        raise ValueError(
            f"metadata lcb_start_date={options.lcb_start_date} must be before lcb_end_date={options.lcb_end_date}"
        )
    return options


_PREFILL_CACHE: dict[str, bool] = {}


def detect_think_prefill(model_path: str) -> bool:
    """Does the chat template of the local model/tokenizer dir end its generation prompt inside
    ``<think>``? False (with a log line) when it cannot tell, e.g. for a hub id."""
    if model_path in _PREFILL_CACHE:
        return _PREFILL_CACHE[model_path]
    result = False
    if Path(model_path).is_dir():
        try:
            from transformers import AutoTokenizer  # deferred: heavy, only for local checkpoints

            tok = AutoTokenizer.from_pretrained(model_path, local_files_only=True)
            rendered = tok.apply_chat_template(
                [{"role": "user", "content": "1+1?"}], tokenize=False, add_generation_prompt=True
            )
            result = rendered.rstrip().endswith("<think>")
        except Exception as err:  # no template, or not a tokenizer dir: the rule without prefill applies
            log.warning(
                "could not render the chat template of %s (%s); assuming think_prefilled=false",
                model_path,
                err,
            )
    _PREFILL_CACHE[model_path] = result
    return result


# --- reading rows -----------------------------------------------------------------------------------
def resolve_data_dir(metadata: dict[str, Any]) -> Path | None:
    raw = metadata.get("data_dir") or os.environ.get(DATA_DIR_ENV)
    if not raw:
        return None
    path = Path(str(raw)).expanduser().resolve()
    if not path.is_dir():
        origin = "metadata data_dir" if metadata.get("data_dir") else DATA_DIR_ENV
        raise FileNotFoundError(f"{origin}={raw!r}: not a directory (resolved to {path})")
    return path


def read_jsonl(path: Path) -> list[dict]:
    rows = []
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError as err:
                raise ValueError(f"{path}:{lineno}: not valid JSON ({err.msg})") from None
    if not rows:
        raise ValueError(f"{path}: no rows")
    return rows


def load_rows(key: str, data_dir: Path | None) -> list[dict]:
    """Rows of benchmark ``key`` from ``data_dir`` if given, else from the hub at the pinned revision."""
    source = SOURCES[key]
    if data_dir is not None:
        path = data_dir / f"{key}.jsonl"
        if not path.is_file():
            raise FileNotFoundError(
                f"{path} not found: a local data dir must hold one <benchmark>.jsonl per task "
                f"({', '.join(f'{k}.jsonl' for k in SOURCES)}); `mlr1 eval-data DIR` writes them"
            )
        return read_jsonl(path)
    import datasets  # deferred: only hub downloads need it

    if source.data_files:
        files = [f"hf://datasets/{source.hub_id}@{source.revision}/{name}" for name in source.data_files]
        ds = datasets.load_dataset("json", data_files=files, split=source.split)
    else:
        ds = datasets.load_dataset(source.hub_id, source.config, split=source.split, revision=source.revision)
    return [dict(row) for row in ds]


def _require(row: dict, fields: tuple[str, ...], where: str) -> None:
    missing = [f for f in fields if f not in row]
    if missing:
        raise KeyError(f"{where}: row is missing field(s) {missing}; has {sorted(row)[:12]}")


# --- benchmark-specific docs ------------------------------------------------------------------------
TEST_STORE: dict[tuple[str, str], dict] = {}
"""(benchmark, r1_id) -> what the grader needs to build the test program (see code_answers)."""


def _doc(key: str, r1_id: str, prompt: str, answer: str, options: EvalOptions, **extra: str) -> dict:
    return {
        "r1_benchmark": key,
        "r1_id": r1_id,
        "prompt": prompt,
        "answer": answer,
        "r1_options": options.to_json(),
        **extra,
    }


def _math_prompt(question: str, options: EvalOptions) -> str:
    question = question.strip()
    return f"{question}\n\n{options.math_instruction}" if options.math_instruction else question


def math_docs(key: str, rows: list[dict], options: EvalOptions) -> list[dict]:
    docs = []
    for i, row in enumerate(rows):
        where = f"{key} row {i}"
        if key == "gsm8k":
            _require(row, ("question", "answer"), where)
            gold = row["answer"].split("####")[-1].strip().replace(",", "")
            docs.append(_doc(key, str(i), _math_prompt(row["question"], options), gold, options))
            continue
        _require(row, ("problem", "answer"), where)
        ident = row.get("unique_id", row.get("id"))
        r1_id = str(ident) if ident is not None else str(i)
        docs.append(_doc(key, r1_id, _math_prompt(row["problem"], options), str(row["answer"]).strip(), options))
    return docs


def humaneval_prompt(function_stub: str) -> str:
    """The user turn of an HumanEval+ problem: the completion instruction, then the stub in a code block."""
    return (
        "Complete the Python function below so that it meets its specification. Reply with the "
        "complete function, including its signature and any imports it needs, in a single "
        f"```python code block.\n\n```python\n{function_stub.rstrip()}\n```"
    )


def humaneval_plus_docs(rows: list[dict], options: EvalOptions) -> list[dict]:
    docs = []
    for i, row in enumerate(rows):
        _require(row, ("task_id", "prompt", "entry_point", "test"), f"humaneval_plus row {i}")
        r1_id = str(row["task_id"])
        _require(row, ("canonical_solution",), f"humaneval_plus row {i}")
        TEST_STORE[("humaneval_plus", r1_id)] = {
            k: row[k] for k in ("prompt", "entry_point", "test", "canonical_solution")
        }
        docs.append(_doc("humaneval_plus", r1_id, humaneval_prompt(row["prompt"]), r1_id, options))
    return docs


def _called_names(source: str) -> set[str]:
    return {n.func.id for n in ast.walk(ast.parse(source)) if isinstance(n, ast.Call) and isinstance(n.func, ast.Name)}


def mbpp_entry_point(code: str, test: str, test_list: list[str], where: str) -> str:
    """The function an MBPP+ test calls (MBPP+ rows do not name it): the one top-level function of
    the reference ``code`` that the ``test`` field calls, else the one the first ``test_list``
    assert calls. ``ValueError`` naming the row if neither is unique."""
    try:
        tree = ast.parse(code)
        defined = [n.name for n in tree.body if isinstance(n, ast.FunctionDef | ast.AsyncFunctionDef)]
        for source in (test, *test_list[:1]):
            names = [name for name in defined if name in _called_names(source)]
            if len(names) == 1:
                return names[0]
    except SyntaxError as err:
        raise ValueError(f"{where}: code or test is not valid Python ({err})") from None
    raise ValueError(f"{where}: cannot tell which function of the reference code the test calls (defined: {defined})")


def mbpp_plus_docs(rows: list[dict], options: EvalOptions) -> list[dict]:
    docs = []
    for i, row in enumerate(rows):
        _require(row, ("task_id", "prompt", "test_list", "test", "code"), f"mbpp_plus row {i}")
        r1_id = str(row["task_id"])
        TEST_STORE[("mbpp_plus", r1_id)] = {
            "test_imports": list(row.get("test_imports") or []),
            "test": row["test"],
            "code": row["code"],
        }
        try:
            TEST_STORE[("mbpp_plus", r1_id)]["entry_point"] = mbpp_entry_point(
                row["code"], row["test"], list(row["test_list"]), f"mbpp_plus row {i} ({r1_id})"
            )
        except ValueError as err:  # this problem's samples become sandbox errors naming it
            log.error("%s", err)
            TEST_STORE[("mbpp_plus", r1_id)]["entry_error"] = str(err)
        prompt = (
            f"{row['prompt'].strip()}\n\nYour function must pass this example test:\n"
            f"```python\n{row['test_list'][0].strip()}\n```\n"
            "Reply with the complete Python solution in a single ```python code block."
        )
        docs.append(_doc("mbpp_plus", r1_id, prompt, r1_id, options))
    return docs


class _PlainDataUnpickler(pickle.Unpickler):
    """LiveCodeBench pickles plain strings; any class reference is refused instead of imported."""

    def find_class(self, module: str, name: str):
        raise pickle.UnpicklingError(f"refusing {module}.{name} in LiveCodeBench test data")


def decode_lcb_tests(field: str, where: str) -> list[dict]:
    """LCB test lists are JSON, or (private tests) base64(zlib(pickle(JSON string)))."""
    try:
        tests = json.loads(field)
    except json.JSONDecodeError:
        try:
            blob = zlib.decompress(base64.b64decode(field))
            tests = json.loads(_PlainDataUnpickler(io.BytesIO(blob)).load())
        except Exception as err:
            raise ValueError(f"{where}: test cases are neither JSON nor base64/zlib/pickle JSON ({err})") from None
    if not isinstance(tests, list) or not all(isinstance(t, dict) and {"input", "output"} <= t.keys() for t in tests):
        raise ValueError(f"{where}: expected a list of {{input, output, testtype}} objects")
    return tests


def _contest_date(row: dict, where: str) -> dt.date:
    try:
        return dt.datetime.fromisoformat(str(row["contest_date"])).date()
    except ValueError:
        raise ValueError(f"{where}: contest_date={row['contest_date']!r} is not an ISO date") from None


def livecodebench_docs(rows: list[dict], options: EvalOptions) -> list[dict]:
    start = dt.date.fromisoformat(options.lcb_start_date)
    end = dt.date.fromisoformat(options.lcb_end_date)
    docs = []
    for i, row in enumerate(rows):
        where = f"livecodebench row {i} ({row.get('question_id', '?')})"
        _require(
            row,
            ("question_id", "question_content", "contest_date", "public_test_cases", "private_test_cases"),
            where,
        )
        if not start <= _contest_date(row, where) < end:
            continue
        tests = decode_lcb_tests(row["public_test_cases"], where) + decode_lcb_tests(row["private_test_cases"], where)
        if not tests:
            raise ValueError(f"{where}: no test cases")
        style = "functional" if tests[0].get("testtype") == "functional" else "stdin"
        meta = row.get("metadata") or "{}"
        meta = json.loads(meta) if isinstance(meta, str) else meta
        func_name = meta.get("func_name")
        if style == "functional" and not func_name:
            raise ValueError(f"{where}: functional problem without metadata.func_name")
        r1_id = str(row["question_id"])
        TEST_STORE[("livecodebench", r1_id)] = {"tests": tests, "style": style, "func_name": func_name}
        starter = (row.get("starter_code") or "").strip()
        if style == "functional":
            task = (
                "Complete the Python class below; keep the method signature unchanged. Reply with the "
                f"complete class in a single ```python code block.\n\n```python\n{starter}\n```"
            )
        else:
            task = (
                "Write a Python 3 program that reads the input from standard input and prints the "
                "answer to standard output. Reply with the complete program in a single ```python code block."
            )
        prompt = f"{row['question_content'].strip()}\n\n{task}"
        extra = {k: str(row.get(k, "")) for k in ("platform", "difficulty", "contest_date")}
        docs.append(_doc("livecodebench", r1_id, prompt, r1_id, options, **extra))
    if not docs:
        raise ValueError(
            f"livecodebench: no problem dated in [{options.lcb_start_date}, {options.lcb_end_date}); "
            "widen lcb_start_date/lcb_end_date"
        )
    return docs


def build_docs(key: str, metadata: dict[str, Any]) -> list[dict]:
    """All docs of benchmark ``key`` under the options in ``metadata``."""
    if key not in SOURCES:
        raise KeyError(f"unknown benchmark {key!r}; known: {', '.join(SOURCES)}")
    options = options_from_metadata(metadata)
    rows = load_rows(key, resolve_data_dir(metadata))
    if key in ("aime24", "aime25", "math500", "gsm8k"):
        return math_docs(key, rows, options)
    return {
        "humaneval_plus": humaneval_plus_docs,
        "mbpp_plus": mbpp_plus_docs,
        "livecodebench": livecodebench_docs,
    }[key](rows, options)


def write_snapshot(out_dir: Path, keys: list[str] | None = None) -> dict[str, int]:
    """Write ``<out_dir>/<key>.jsonl`` from the hub at the pinned revisions (for air-gapped clusters)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    counts = {}
    for key in keys or list(SOURCES):
        rows = load_rows(key, None)
        with open(out_dir / f"{key}.jsonl", "w", encoding="utf-8") as f:
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False, default=str) + "\n")
        counts[key] = len(rows)
    return counts
