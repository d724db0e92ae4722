"""`mlr1 tokenize` shards, resumability, tokenizer pinning, corruption checks, bad-input errors, CLI."""

import json
import os

import numpy as np
import pytest
from data_testkit import (
    BOS,
    EOS,
    ByteTokenizer,
    dataset_for,
    make_byte_tokenizer,
    make_docs,
    take,
    write_jsonl,
    write_mix,
    write_parquet,
)

from mlr1_titan.cli import main as mlr1
from mlr1_titan.data.mix_config import load_mix
from mlr1_titan.data.shards import MANIFEST, verify_shard_dir
from mlr1_titan.data.sources import DataSourceError
from mlr1_titan.data.tokenize import tokenize_mix

QUIET = open(os.devnull, "w")


def _two_source_mix(root, docs=400):
    for i in range(3):
        write_jsonl(root / "web" / f"w{i}.jsonl", make_docs(f"web{i}", docs))
    write_parquet(root / "code" / "c.parquet", make_docs("code", docs), field="content")
    return load_mix(
        str(
            write_mix(
                root / "m.toml",
                [
                    dict(name="web", kind="local", path=str(root / "web/*.jsonl"), weight=2),
                    dict(
                        name="code", kind="local", path=str(root / "code/*.parquet"), text_fields=["content"], weight=1
                    ),
                ],
            )
        )
    )


def test_tokenize_writes_memory_mappable_shards_and_a_manifest(tmp_path):
    mix = _two_source_mix(tmp_path)
    manifests = tokenize_mix(mix, str(tmp_path / "out"), make_byte_tokenizer, shard_tokens=30_000, stream=QUIET)
    web = manifests["web"]
    texts = [t for i in range(3) for t in make_docs(f"web{i}", 400)]
    assert web["documents"] == 1200 and web["tokens"] == sum(len(t.encode()) + 2 for t in texts)
    assert web["tokenizer"]["name"] == "ByteTokenizer" and web["source"]["hash"] == mix.sources[0].source_hash()
    assert len(web["shards"]) > 3  # rolled over at 30k tokens
    first = web["shards"][0]
    tokens = np.memmap(tmp_path / "out/web" / first["tokens_file"], dtype="<u4", mode="r")
    offsets = np.fromfile(tmp_path / "out/web" / first["index_file"], dtype="<u8")
    assert len(offsets) == first["num_documents"] + 1 and offsets[-1] == len(tokens) == first["num_tokens"]
    doc = tokens[offsets[0] : offsets[1]]
    assert doc[0] == BOS and doc[-1] == EOS
    assert ByteTokenizer().decode(doc) in texts
    assert verify_shard_dir(str(tmp_path / "out/web")) == []


def test_tokenize_with_several_workers_matches_one_worker(tmp_path):
    mix = _two_source_mix(tmp_path)
    one = tokenize_mix(mix, str(tmp_path / "one"), make_byte_tokenizer, workers=1, stream=QUIET)
    two = tokenize_mix(mix, str(tmp_path / "two"), make_byte_tokenizer, workers=2, stream=QUIET)
    for name in ("web", "code"):
        assert one[name]["shards"] == two[name]["shards"]  # same files, counts and checksums


def test_tokenize_resumes_after_a_kill_without_redoing_finished_units(tmp_path):
    mix = _two_source_mix(tmp_path)
    out = tmp_path / "out"
    first = tokenize_mix(mix, str(out), make_byte_tokenizer, stream=QUIET)
    # Simulate a kill while unit 1 of "web" was being written: no manifest, no record, a partial file.
    os.remove(out / "web" / MANIFEST)
    os.remove(out / "web" / "units" / "u00001.json")
    (out / "web" / "u00001-000.bin.tmp").write_bytes(b"partial")
    finished = {p: os.stat(out / "web" / p).st_mtime_ns for p in ("u00000-000.bin", "u00002-000.bin")}
    second = tokenize_mix(mix, str(out), make_byte_tokenizer, stream=QUIET)
    assert {p: os.stat(out / "web" / p).st_mtime_ns for p in finished} == finished  # not redone
    assert not (out / "web" / "u00001-000.bin.tmp").exists()
    assert second["web"]["shards"] == first["web"]["shards"]


def test_tokenize_and_loader_refuse_shards_of_another_tokenizer(tmp_path):
    mix = _two_source_mix(tmp_path, docs=50)
    out = tmp_path / "out"
    tokenize_mix(mix, str(out), make_byte_tokenizer, stream=QUIET)

    class ShiftedTokenizer(ByteTokenizer):
        def encode(self, text, add_bos=False, add_eos=False):
            return [i + 1 if i > 2 else i for i in super().encode(text, add_bos, add_eos)]

    with pytest.raises(DataSourceError, match="made by tokenizer ByteTokenizer.*Refusing to mix"):
        tokenize_mix(mix, str(out), ShiftedTokenizer, stream=QUIET)
    from mlr1_titan.data.mix_config import parse_phases
    from mlr1_titan.data.mixture_dataset import MixtureDataset

    with pytest.raises(DataSourceError, match=r"source 'web'.*shards were made by tokenizer ByteTokenizer"):
        MixtureDataset(
            parse_phases(mix.file, []), tokenizer=ShiftedTokenizer(), seq_len=64, batch_size=1, shards_root=str(out)
        )


def test_truncated_or_corrupted_shard_is_reported_with_its_file(tmp_path):
    mix = _two_source_mix(tmp_path, docs=100)
    out = tmp_path / "out"
    tokenize_mix(mix, str(out), make_byte_tokenizer, stream=QUIET)
    bin_path = out / "web" / "u00000-000.bin"
    data = bytearray(bin_path.read_bytes())
    data[100] ^= 0xFF
    bin_path.write_bytes(bytes(data))
    ds = dataset_for(mix.file, shards_root=str(out), seq_len=512, batch_size=8)
    with pytest.raises(DataSourceError, match=r"source 'web'.*u00000-000.bin is corrupted: xxh3_64"):
        take(iter(ds), 20)
    bin_path.write_bytes(bytes(data[:-8]))
    (problem,) = verify_shard_dir(str(out / "web"))
    assert "u00000-000.bin is truncated or corrupted" in problem
    assert mlr1(["data", "verify", str(out)]) == 1


def test_loader_reads_shards_by_source_name_from_shards_root(tmp_path):
    mix = _two_source_mix(tmp_path, docs=200)
    tokenize_mix(mix, str(tmp_path / "out"), make_byte_tokenizer, stream=QUIET)
    ds = dataset_for(mix.file, shards_root=str(tmp_path / "out"))
    assert {type(p).__name__ for p in ds.plans.values()} == {"ShardPlan"}
    x, y = next(iter(ds))
    assert x["input"][0, 0] == BOS
    with pytest.raises(DataSourceError, match=r"source 'web': no shard manifest at .*mlr1 tokenize"):
        dataset_for(mix.file, shards_root=str(tmp_path / "nowhere"))


BAD_INPUT = [
    ("missing", None, r"source 'a' \(.*m.toml\): path '.*nothing/\*.jsonl' matches no files"),
    (
        "jsonl",
        {"txt": "x"},
        r"source 'a' .*: text field 'text' is absent in .*a.jsonl:1; the record has fields \['txt'\]",
    ),
    (
        "parquet",
        None,
        r"source 'a' .*: text field\(s\) \['text'\] absent in .*a.parquet; its columns are \['content', 'id'\]",
    ),
    ("empty", {"text": ""}, r"source 'a' .* is empty"),
    ("badjson", None, r"source 'a': .*a.jsonl:2 is not valid JSON"),
]


@pytest.mark.parametrize("case,row,message", BAD_INPUT)
def test_bad_input_error_names_source_and_file(tmp_path, case, row, message):
    if case == "missing":
        path = tmp_path / "nothing/*.jsonl"
    elif case == "parquet":
        path = write_parquet(tmp_path / "a.parquet", ["x"], field="content")
    elif case == "badjson":
        path = tmp_path / "a.jsonl"
        path.write_text('{"text": "ok"}\n{"text": broken\n')
    else:
        path = tmp_path / "a.jsonl"
        path.write_text(json.dumps(row) + "\n")
    mix = write_mix(tmp_path / "m.toml", [dict(name="a", kind="local", path=str(path), weight=1)])
    with pytest.raises(DataSourceError, match=message):
        take(iter(dataset_for(mix, seq_len=8, batch_size=1)), 2)
    if case != "missing":
        with pytest.raises(DataSourceError, match=message):
            tokenize_mix(load_mix(str(mix)), str(tmp_path / "out"), make_byte_tokenizer, stream=QUIET)


def test_cli_tokenize_and_preview_table_and_json(tmp_path, capsys, monkeypatch):
    monkeypatch.syspath_prepend(os.path.dirname(__file__))
    mix = _two_source_mix(tmp_path, docs=300)
    tok = "data_testkit:make_byte_tokenizer"
    assert (
        mlr1(["tokenize", "--mix", mix.file, "--out", str(tmp_path / "out"), "--workers", "2", "--tokenizer", tok]) == 0
    )
    err = capsys.readouterr().err
    assert "ETA" in err and "web: 900 documents" in err
    assert (
        mlr1(
            [
                "data",
                "preview",
                mix.file,
                "--tokens",
                "100000",
                "--tokenizer",
                tok,
                "--shards",
                str(tmp_path / "out"),
                "--seq-len",
                "512",
            ]
        )
        == 0
    )
    table = capsys.readouterr().out
    assert "target  realized" in table and "web" in table and "66.67%" in table
    assert mlr1(["data", "preview", mix.file, "--tokens", "50000", "--tokenizer", tok, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert {r["source"] for r in report["sources"]} == {"web", "code"}
    assert all(abs(r["delta_pp"]) < 2 for r in report["sources"])
    assert mlr1(["data", "show", "pretrain_phase2"]) == 0
    assert "fineweb_edu" in capsys.readouterr().out
    assert mlr1(["data", "preview", str(tmp_path / "missing.toml"), "--tokenizer", tok]) == 1
    assert "mix file not found" in capsys.readouterr().err


def test_tokenize_with_the_llama3_tokenizer_round_trips(tmp_path):
    from mlr1_titan.tokenizer_spec import build_tokenizer

    texts = ["Hello world, this is MobileLLM-R1.", "def f(x):\n    return x ** 2\n", "naïve café 東京"]
    write_jsonl(tmp_path / "t.jsonl", texts)
    mix = load_mix(
        str(write_mix(tmp_path / "m.toml", [dict(name="t", kind="local", path=str(tmp_path / "t.jsonl"), weight=1)]))
    )
    manifest = tokenize_mix(mix, str(tmp_path / "out"), build_tokenizer, stream=QUIET)["t"]
    assert manifest["tokenizer"]["name"] == "Llama3Tokenizer" and manifest["tokenizer"]["vocab_size"] == 128256
    tok = build_tokenizer()
    rec = manifest["shards"][0]
    tokens = np.fromfile(tmp_path / "out/t" / rec["tokens_file"], dtype="<u4")
    offsets = np.fromfile(tmp_path / "out/t" / rec["index_file"], dtype="<u8")
    docs = [tokens[a:b].tolist() for a, b in zip(offsets[:-1], offsets[1:])]
    assert docs == [tok.encode(t, add_bos=True, add_eos=True) for t in texts]


def test_tokenize_hub_source_from_a_local_dataset_directory(tmp_path):
    hub = tmp_path / "hub" / "org" / "qa"
    write_parquet(hub / "data" / "train-0.parquet", make_docs("qa0", 120), field="question")
    write_parquet(hub / "data" / "train-1.parquet", make_docs("qa1", 80), field="question")
    mix = load_mix(
        str(
            write_mix(
                tmp_path / "m.toml", [dict(name="qa", kind="hub", path="org/qa", text_fields=["question"], weight=1)]
            )
        )
    )
    manifest = tokenize_mix(
        mix, str(tmp_path / "out"), make_byte_tokenizer, workers=2, hub_mirror=str(tmp_path / "hub"), stream=QUIET
    )["qa"]
    assert manifest["documents"] == 200 and len(manifest["shards"]) == 2  # one unit per hub data file
    ds = dataset_for(mix.file, shards_root=str(tmp_path / "out"))
    assert ByteTokenizer().decode(next(iter(ds))[0]["input"][0]).startswith("qa")


def test_bad_hub_source_fails_at_startup_naming_source_and_dataset(tmp_path):
    hub = tmp_path / "org" / "qa"
    write_parquet(hub / "data" / "train-0.parquet", make_docs("qa", 10), field="question")
    wrong_field = write_mix(tmp_path / "f.toml", [dict(name="qa", kind="hub", path=str(hub), weight=1)])
    with pytest.raises(
        DataSourceError,
        match=r"source 'qa' .*text field\(s\) \['text'\] absent in hub dataset .*columns are \['id', 'question'\]",
    ):
        dataset_for(wrong_field)
    missing = write_mix(tmp_path / "m.toml", [dict(name="qa", kind="hub", path=str(tmp_path / "org/none"), weight=1)])
    with pytest.raises(DataSourceError, match=r"source 'qa' .*cannot open hub dataset '.*org/none'"):
        dataset_for(missing)
