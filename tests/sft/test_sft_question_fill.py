"""`mlr1 data fill-questions`: OpenCodeReasoning-2 placeholder questions filled from the benchmark
each row names, on small local stand-ins of the hub datasets (written here, nothing downloaded)."""

from __future__ import annotations

import contextlib
import io
import json
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from mlr1_titan.cli import main
from mlr1_titan.data.mix_config import MixError
from mlr1_titan.sft.benchmark_questions import QuestionFiller
from mlr1_titan.sft.chat_sources import load_chat_mix
from mlr1_titan.sft.question_fill import fill_source

OCR2 = "nvidia/OpenCodeReasoning-2"

# The composed Codeforces statements, written out as the rule gives them (not computed).
CODEFORCES_FULL = (
    "Given n, print n squared."
    "\n\nInput\n\nOne integer n."
    "\n\nOutput\n\nOne integer."
    "\n\nExamples"
    "\n\nInput\n\n2\n\n\nOutput\n\n4\n"
    "\n\nInput\n\n3\n"
    "\n\nNote\n\n2 * 2 = 4."
)
CODEFORCES_SHORT = "Print hello.\n\nOutput\n\nThe word hello."

BENCHMARK_ROWS = {
    "BAAI/TACO": {
        "train": [{"question": "TACO train 0", "solutions": "[]"}, {"question": "TACO train 1", "solutions": "[]"}],
        "test": [{"question": "TACO test 0", "solutions": "[]"}],
    },
    "codeparrot/apps": {
        "train": [{"question": "APPS train 0", "problem_id": 0}],
        "test": [{"question": "APPS test 0", "problem_id": 5000}, {"question": "APPS test 1", "problem_id": 5001}],
    },
    "deepmind/code_contests": {
        "train": [{"description": "CC train 0", "name": "a"}, {"description": "", "name": "b"}],
        "valid": [{"description": "CC valid 0", "name": "c"}],
    },
    "open-r1/codeforces": {
        "train": [
            {
                "description": "Given n, print n squared.",
                "input_format": "One integer n.",
                "output_format": "One integer.",
                "examples": [{"input": "2\n", "output": "4\n"}, {"input": "3\n"}],
                "note": "2 * 2 = 4.",
            },
            {
                "description": "Print hello.",
                "input_format": "",
                "output_format": "The word hello.",
                "examples": [],
                "note": None,
            },
        ],
        "test": [{"description": "", "input_format": "x", "output_format": "y", "examples": [], "note": ""}],
    },
}

# (dataset, split, index, question as published) -> the question the filled row must carry (None: dropped).
OCR2_ROWS = [
    ("taco", "train", "1", "-", "TACO train 1"),
    ("apps", "test", "0", "-", "APPS test 0"),
    ("apps", "train", "0", "Reverse the string s.", "Reverse the string s."),  # a real question: kept
    ("code_contests", "valid", "0", "-", "CC valid 0"),
    ("open-r1/codeforces", "train", "0", "-", CODEFORCES_FULL),
    ("code_contests", "train", "1", "-", None),  # empty description
    ("taco", "train", "7", "-", None),  # index out of range
    ("leetcode", "train", "0", "-", None),  # unknown benchmark
    ("open-r1/codeforces", "train", "1", "-", CODEFORCES_SHORT),
    ("apps", "test", "x1", "-", None),  # bad index
    ("taco", "test", "0", " - ", "TACO test 0"),
    ("open-r1/codeforces", "test", "0", "-", None),  # empty description
]


def ocr2_row(i: int, dataset: str, split: str, index: str, question: str) -> dict:
    return {
        "id": f"id{i}",
        "question_id": f"q{i}",
        "question": question,
        "r1_generation": f"<think>\nplan {i}\n</think>\n\nprint({i})",
        "qwq_critique": f"critique {i}",
        "solution": f"print({i})",
        "judgement": "right",
        "pass_rate": 0.5 + i / 100,
        "source": dataset,
        "license": "cc-by-4.0",
        "dataset": dataset,
        "split": split,
        "index": index,
        "difficulty": str(i % 3),
    }


def write_hub_snapshot(root: Path, config: str, splits: dict[str, list[dict]]) -> None:
    """A folder laid out like a hub dataset: data files per split, named in the README's `configs`."""
    lines = ["---", "configs:", f"- config_name: {config}", "  data_files:"]
    info = ["dataset_info:", f"- config_name: {config}", "  splits:"]
    for split, rows in splits.items():
        (root / config / split).mkdir(parents=True, exist_ok=True)
        pq.write_table(pa.Table.from_pylist(rows), root / config / split / "part-00000.parquet")
        lines += [f"  - split: {split}", f"    path: {config}/{split}/*.parquet"]
        info += [f"  - name: {split}", f"    num_examples: {len(rows)}"]
    (root / "README.md").write_text("\n".join([*lines, *info, "---", ""]))


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("hub")
    for hub_id, splits in BENCHMARK_ROWS.items():
        write_hub_snapshot(root / hub_id, "default", splits)
    python = [ocr2_row(i, *r[:4]) for i, r in enumerate(OCR2_ROWS)]
    cpp = [ocr2_row(100, "taco", "train", "0", "-")]
    write_hub_snapshot(root / OCR2, "train", {"python": python, "cpp": cpp})
    return root


@pytest.fixture(scope="module", autouse=True)
def datasets_cache(tmp_path_factory):
    """Benchmark splits load non-streaming, which converts them into the datasets cache: keep it here."""
    import datasets

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path_factory.mktemp("hf_cache"))
        yield


def write_mix(folder: Path, *, fill: bool = True) -> Path:
    """An sft_reasoning-shaped chat mix: the OCR-2 python split from the hub, and a local source given
    by a path relative to the mix file."""
    folder.mkdir(parents=True, exist_ok=True)
    words = [
        {"messages": [{"role": "user", "content": f"Say {w}."}, {"role": "assistant", "content": w}]}
        for w in ("amber", "basil", "cedar")
    ]
    (folder / "words.jsonl").write_text("".join(json.dumps(r) + "\n" for r in words))
    path = folder / "ocr_fill.toml"
    path.write_text(
        'name = "ocr_fill"\nunit = "samples"\n\n[defaults]\nkind = "hub"\nformat = "qa"\nsplit_think = true\n\n'
        f'[[sources]]\nname = "ocr2_python"\npath = "{OCR2}"\nconfig = "train"\nsplit = "python"\n'
        'prompt_field = "question"\nresponse_field = "r1_generation"\n'
        + ("fill_questions = true\n" if fill else "")
        + "weight = 8\n\n"
        '[[sources]]\nname = "words"\nkind = "local"\npath = "words.jsonl"\nformat = "messages"\nweight = 1\n'
    )
    return path


@pytest.fixture(scope="module")
def filled(hub, tmp_path_factory):
    """The mix and the folders of one run of the command."""
    root = tmp_path_factory.mktemp("run")
    mix = write_mix(root / "mixes")
    return {"mix": mix, "out": root / "out", "hub": hub}


@pytest.fixture(scope="module")
def run_output(filled):
    """(exit code, stdout, stderr) of `mlr1 data fill-questions` on the stand-ins."""
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        rc = main(
            [
                "data",
                "fill-questions",
                "--mix",
                str(filled["mix"]),
                "--out",
                str(filled["out"]),
                "--hub-mirror",
                str(filled["hub"]),
                "--progress-interval",
                "0",
            ]
        )
    return rc, stdout.getvalue(), stderr.getvalue()


def test_placeholders_are_filled_with_the_benchmark_question_in_upstream_order(filled, run_output):
    rc, _, err = run_output
    assert rc == 0, err
    rows = pq.read_table(filled["out"] / "ocr2_python.parquet").to_pylist()
    expected = [(i, r[4]) for i, r in enumerate(OCR2_ROWS) if r[4] is not None]
    assert [(row["id"], row["question"]) for row in rows] == [(f"id{i}", q) for i, q in expected]
    for row, (i, _) in zip(rows, expected):  # every other field as published
        assert {k: v for k, v in row.items() if k != "question"} == {
            k: v for k, v in ocr2_row(i, *OCR2_ROWS[i][:4]).items() if k != "question"
        }


def test_unfillable_rows_are_dropped_and_counted_per_reason(run_output):
    _, out, err = run_output
    assert (
        "ocr2_python: 12 rows read · 6 filled · 1 kept as they were · 5 dropped "
        "(bad_index 1, empty_question 2, index_out_of_range 1, unknown_benchmark 1)"
    ) in out
    assert "[fill-questions] ocr2_python: filled 12 / 12 rows (100.0%)" in err and "ETA" in err


def test_written_mix_reads_the_filled_file_and_keeps_everything_else(filled, run_output):
    _, out, _ = run_output
    path = filled["out"] / "ocr_fill.toml"
    assert f"train with: --dataloader.chat.mix {path}" in out
    chat = load_chat_mix(str(path))
    ocr, words = chat.mix.sources
    assert (ocr.kind, ocr.path) == ("local", (str(filled["out"] / "ocr2_python.parquet"),))
    assert (words.kind, words.path) == ("local", (str(filled["mix"].parent / "words.jsonl"),))
    assert (chat.unit, chat.name, [s.weight for s in chat.mix.sources]) == ("samples", "ocr_fill", [8.0, 1.0])
    mapping = chat.mappings["ocr2_python"]
    assert (mapping.format, mapping.prompt_field, mapping.response_field, mapping.split_think) == (
        "qa",
        "question",
        "r1_generation",
        True,
    )
    assert not mapping.fill_questions and "fill_questions" not in path.read_text()


def test_chat_loader_trains_on_the_filled_questions(filled, run_output):
    from mlr1_titan.sft.chat_loader import ChatDataset
    from mlr1_titan.tokenizer import Llama3Tokenizer

    tokenizer = Llama3Tokenizer.Config().build()
    ds = ChatDataset(load_chat_mix(str(filled["out"] / "ocr_fill.toml")), tokenizer, seq_len=512)
    questions = {r[4] for r in OCR2_ROWS if r[4] is not None}
    seen = set()
    for _ in range(20):
        sample = ds.next_sample()
        if ds.names[sample.source] != "ocr2_python":
            continue
        text = tokenizer.decode(sample.inputs)
        user = text.split("user<|end_header_id|>\n\n", 1)[1].split("<|eot_id|>", 1)[0]
        assert user in questions
        seen.add(user)
    assert CODEFORCES_FULL in seen and not any(k.startswith("ocr2_python/") for k in ds.skips)


def test_rows_are_written_in_row_groups_and_the_file_appears_when_complete(filled, tmp_path):
    chat = load_chat_mix(str(filled["mix"]))
    spec = chat.mix.sources[0]
    out = tmp_path / "ocr.parquet"
    report = fill_source(
        spec,
        chat.mappings[spec.name],
        QuestionFiller(str(filled["hub"])),
        out,
        hub_mirror=str(filled["hub"]),
        row_group_rows=2,
        stream=io.StringIO(),
    )
    assert (report.read, report.written, sum(report.dropped.values())) == (12, 7, 5)
    assert pq.ParquetFile(out).metadata.num_row_groups == 4 and [p.name for p in tmp_path.iterdir()] == [out.name]


def test_sft_reasoning_marks_both_opencodereasoning_sources():
    chat = load_chat_mix("sft_reasoning")
    marked = [name for name, m in chat.mappings.items() if m.fill_questions]
    assert marked == ["open_code_reasoning_2_python", "open_code_reasoning_2_cpp"]


def test_fill_questions_needs_a_question_field(tmp_path):
    mix = tmp_path / "m.toml"
    mix.write_text('[[sources]]\nname = "w"\nkind = "local"\npath = "w.jsonl"\nfill_questions = true\nweight = 1\n')
    with pytest.raises(MixError, match=r"source 'w': 'fill_questions' fills a question field, so it needs format 'qa'"):
        load_chat_mix(str(mix))


def test_benchmark_splits_load_on_first_use(hub):
    filler = QuestionFiller(str(hub))
    assert filler.question("taco", "test", "0") == ("TACO test 0", None)
    assert filler.question("apps", "test", 5) == ("", "index_out_of_range")
    assert filler.question("taco", "train", "-1") == ("", "bad_index")
    assert filler.loaded == [("apps", "test"), ("taco", "test")]  # a bad index needs no lookup


def test_a_split_the_benchmark_lacks_drops_the_row(hub):
    filler = QuestionFiller(str(hub))
    assert filler.question("code_contests", "dev", "0") == ("", "unknown_split")
    assert filler.question("code_contests", "valid", "0") == ("CC valid 0", None)  # the benchmark itself loads


def two_source_mix(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "two.toml"
    path.write_text(
        'name = "two"\nunit = "samples"\n[defaults]\nkind = "hub"\nformat = "qa"\nprompt_field = "question"\n'
        'response_field = "r1_generation"\nfill_questions = true\n'
        + "".join(
            f'[[sources]]\nname = "{s}"\npath = "{OCR2}"\nconfig = "train"\nsplit = "{s}"\nweight = 1\n'
            for s in ("python", "cpp")
        )
    )
    return path


def test_one_run_per_source_into_one_folder_gives_a_mix_reading_both(hub, tmp_path, capsys):
    mix, out = two_source_mix(tmp_path / "m"), tmp_path / "o"
    base = ["data", "fill-questions", "--mix", str(mix), "--out", str(out), "--hub-mirror", str(hub)]
    assert main([*base, "--sources", "python"]) == 0
    assert "warning: source(s) cpp still have placeholder questions" in capsys.readouterr().out
    assert main([*base, "--sources", "cpp"]) == 0
    assert f"python: reusing {out / 'python.parquet'} from an earlier run" in capsys.readouterr().out
    chat = load_chat_mix(str(out / "two.toml"))
    assert [(s.name, s.kind, s.path) for s in chat.mix.sources] == [
        ("python", "local", (str(out / "python.parquet"),)),
        ("cpp", "local", (str(out / "cpp.parquet"),)),
    ]


def test_an_output_that_would_overwrite_an_input_is_refused(hub, tmp_path, capsys):
    source = tmp_path / "ocr.parquet"
    pq.write_table(pa.Table.from_pylist([ocr2_row(0, "taco", "train", "0", "-")]), source)
    mix = tmp_path / "local.toml"
    mix.write_text(
        'name = "local"\n[[sources]]\nname = "ocr"\nkind = "local"\npath = "ocr.parquet"\nformat = "qa"\n'
        'prompt_field = "question"\nresponse_field = "r1_generation"\nfill_questions = true\nweight = 1\n'
    )
    before = source.read_bytes()
    assert main(["data", "fill-questions", "--mix", str(mix), "--out", str(tmp_path), "--hub-mirror", str(hub)]) == 1
    assert "the output would overwrite input(s) of the mix" in capsys.readouterr().err
    assert source.read_bytes() == before


def test_a_field_the_output_schema_lacks_is_an_error_not_a_silent_drop(hub, tmp_path):
    from mlr1_titan.data.sources import DataSourceError

    rows = [ocr2_row(i, "taco", "train", "0", "-") for i in range(3)]
    rows[2]["extra"] = "only here"
    (tmp_path / "ocr.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    mix = tmp_path / "j.toml"
    mix.write_text(
        'name = "j"\n[[sources]]\nname = "ocr"\nkind = "local"\npath = "ocr.jsonl"\nformat = "qa"\n'
        'prompt_field = "question"\nresponse_field = "r1_generation"\nfill_questions = true\nweight = 1\n'
    )
    chat = load_chat_mix(str(mix))
    spec = chat.mix.sources[0]
    with pytest.raises(DataSourceError, match=r"field\(s\) \['extra'\] that the output schema .* lacks"):
        fill_source(
            spec,
            chat.mappings["ocr"],
            QuestionFiller(str(hub)),
            tmp_path / "o.parquet",
            row_group_rows=2,
            stream=io.StringIO(),
        )


def test_cli_refuses_sources_that_are_unknown_or_not_marked(filled, tmp_path, capsys):
    base = ["data", "fill-questions", "--mix", str(filled["mix"]), "--out", str(tmp_path / "o")]
    assert main([*base, "--sources", "nope"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("error: --sources: ['nope'] not in ") and "['ocr2_python']" in err
    assert main([*base, "--sources", "words"]) == 1
    err = capsys.readouterr().err
    assert "['words']" in err and "do not set fill_questions = true" in err and "['ocr2_python']" in err
    assert not (tmp_path / "o").exists()


def test_cli_refuses_a_mix_without_fill_questions_sources(tmp_path, capsys):
    mix = write_mix(tmp_path / "m", fill=False)
    assert main(["data", "fill-questions", "--mix", str(mix), "--out", str(tmp_path / "o")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and f"error: {mix}: no source sets 'fill_questions = true'" in err


def test_cli_names_a_missing_benchmark(tmp_path, hub, capsys):
    mirror = tmp_path / "mirror"
    write_hub_snapshot(mirror / OCR2, "train", {"python": [ocr2_row(0, "taco", "train", "0", "-")]})
    mix = write_mix(tmp_path / "m")
    rc = main(["data", "fill-questions", "--mix", str(mix), "--out", str(tmp_path / "o"), "--hub-mirror", str(mirror)])
    err = capsys.readouterr().err.strip().splitlines()[-1]
    assert rc == 1 and err.startswith("error: source 'ocr2_python', hub dataset ")
    assert (
        f"row 0: benchmark 'taco' (BAAI/TACO, read from 'BAAI/TACO'): cannot load split 'train' (no folder {mirror / 'BAAI/TACO'})"
        in err
    )
    assert not list((tmp_path / "o").glob("*.parquet*"))
