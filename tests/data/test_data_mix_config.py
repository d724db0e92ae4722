"""Mixtures are data: the paper's four mixes parse, and bad mixes fail with messages naming the culprit."""

from pathlib import Path

import pytest
from data_testkit import write_mix

from mlr1_titan.data.mix_config import MixError, load_mix, parse_mix, parse_phases, resolve_mix_path

PAPER_MIXES = ("pretrain_phase1", "pretrain_phase2", "midtrain_phase1", "midtrain_phase2")


@pytest.mark.parametrize("name", PAPER_MIXES)
def test_paper_mix_parses_and_weights_sum_to_100_percent(name):
    mix = load_mix(name)
    assert mix.name == name
    assert abs(sum(s.weight for s in mix.sources) - 100.0) < 0.05  # table percentages, rounded
    assert abs(sum(mix.targets().values()) - 1.0) < 1e-12
    for s in mix.sources:
        assert s.kind == "hub" and "/" in s.path[0] and s.text_fields and s.split == "train"


def test_paper_mixes_list_every_source_of_tables_3_and_4():
    p1, p2 = load_mix("pretrain_phase1"), load_mix("pretrain_phase2")
    assert [s.name for s in p1.sources] == [s.name for s in p2.sources]
    assert len(p1.sources) == 14
    # Phase 1 leaves seven Table-3 sources out ("-"): listed with weight 0, never read.
    assert sorted(s.name for s in p1.sources if s.weight == 0) == sorted(
        ["nemotron_science", "nemotron_code", "nemotron_math", "cosmopedia", "natural_reasoning", "finemath", "pes2o"]
    )
    assert all(s.weight > 0 for s in p2.sources)
    m1, m2 = load_mix("midtrain_phase1"), load_mix("midtrain_phase2")
    bench = [s for s in m2.sources if s.group == "benchmark_train"]
    assert len(bench) == 8 and len({s.weight for s in bench}) == 1  # one group weight, equal shares
    assert all(s.weight == 0 for s in m1.sources if s.group == "benchmark_train")
    # A source shared by several mixes is the same data (same definition), so its shards are reused.
    every = [s for m in (p1, p2, m1, m2) for s in m.sources]
    for name in ("wiki", "starcoder"):
        assert len({s.source_hash() for s in every if s.name == name}) == 1


def test_mix_resolves_by_name_or_path(tmp_path):
    assert resolve_mix_path("pretrain_phase2").name == "pretrain_phase2.toml"
    path = write_mix(tmp_path / "tiny.toml", [dict(name="a", kind="local", path="docs/*.jsonl", weight=1)])
    mix = load_mix(str(path))
    assert mix.sources[0].path == (str(tmp_path / "docs/*.jsonl"),)  # relative to the TOML
    with pytest.raises(MixError, match="unknown mix 'no_such_mix'.*Known mixes: .*pretrain_phase1"):
        load_mix("no_such_mix")


BAD_SOURCES = [
    ([dict(name="a", path="x", weight=-1)], r"source #1 'a': 'weight' must be >= 0, got -1"),
    ([dict(name="a", path="x", weight=0), dict(name="b", path="y", weight=0)], "all source weights are zero"),
    ([dict(name="a", kind="ftp", path="x", weight=1)], r"source #1 'a': unknown source kind 'ftp'"),
    ([dict(name="a", path="x", weight=1, text_field="t")], r"source #1 'a': unknown key\(s\) \['text_field'\]"),
    ([dict(name="a", path="x", weight=1), dict(name="a", path="y", weight=1)], "duplicate source name 'a'"),
    ([dict(name="a", weight=1)], r"source #1 'a': missing 'path'"),
    ([dict(name="a", path="x")], r"source #1 'a': missing 'weight'"),
    ([dict(name="a", path="x", group="g")], r"group 'g' is not defined"),
    ([dict(name="a", path="x", weight="high")], "'weight' must be a finite number"),
    ([dict(name="a", path=["x", "y"], weight=1)], "a hub source takes one dataset id"),
]


@pytest.mark.parametrize("sources,message", BAD_SOURCES)
def test_bad_mix_error_names_file_source_and_key(tmp_path, sources, message):
    path = write_mix(tmp_path / "bad.toml", sources)
    with pytest.raises(MixError, match=message) as err:
        load_mix(str(path))
    assert str(path) in str(err.value)


def test_group_weight_is_shared_by_members():
    mix = parse_mix(
        {
            "groups": {"bench": {"weight": 3.0}},
            "sources": [
                {"name": "web", "path": "w", "weight": 97},
                {"name": "a", "path": "a", "group": "bench"},
                {"name": "b", "path": "b", "group": "bench", "share": 2},
            ],
        }
    )
    assert mix.targets() == pytest.approx({"web": 0.97, "a": 0.01, "b": 0.02})


def test_phase_schedule_parses_and_rejects_bad_steps(tmp_path):
    a = write_mix(tmp_path / "a.toml", [dict(name="s", kind="local", path="x", weight=1)])
    b = write_mix(tmp_path / "b.toml", [dict(name="s", kind="local", path="x", weight=1)])
    phases = parse_phases("ignored", [str(a), f"{b}@1_000"])
    assert [(p.mix.name, p.start_step) for p in phases] == [("a", 0), ("b", 1000)]
    with pytest.raises(MixError, match="must start at step 0"):
        parse_phases("", [f"{a}@5"])
    with pytest.raises(MixError, match="steps must increase"):
        parse_phases("", [str(a), f"{b}@0"])
    c = write_mix(tmp_path / "c.toml", [dict(name="s", kind="local", path="other", weight=1)])
    with pytest.raises(MixError, match="source 's' is defined differently"):
        parse_phases("", [str(a), f"{c}@10"])


def test_loader_config_rejects_bad_phase_syntax():
    from mlr1_titan.data.loader import MixtureDataLoader

    with pytest.raises(MixError, match="expected MIX or MIX@STEP"):
        MixtureDataLoader.Config(phases=["pretrain_phase1", "pretrain_phase2@soon"])
    assert Path(resolve_mix_path(MixtureDataLoader.Config().mix)).is_file()
