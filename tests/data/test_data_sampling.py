"""Sampling semantics: token fractions, determinism, disjoint DP streams, epochs, packing."""

import numpy as np
import pytest
import torch
from data_testkit import (
    BOS,
    EOS,
    ByteTokenizer,
    build_corpus,
    dataset_for,
    loader_for,
    make_docs,
    same_batches,
    take,
    write_jsonl,
    write_mix,
)

from mlr1_titan.data.mix_config import load_mix
from mlr1_titan.data.mix_metrics import MIX_STATS_KEY, MixMeter
from mlr1_titan.data.shards import ShardReader, plan_shard_source, tokenizer_fingerprint
from mlr1_titan.data.sources import TextReader, plan_text_source


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"))


def test_realized_token_fractions_within_1pp_over_1m_tokens(corpus):
    ds = dataset_for(corpus["mix"], seq_len=512, batch_size=8)
    mix = load_mix(str(corpus["mix"]))
    meter = MixMeter(ds.source_names, [(mix.name, mix.targets())])
    it = iter(ds)
    while meter.phase_tokens.sum() < 1_000_000:
        x, _ = next(it)
        meter.update(x[MIX_STATS_KEY].numpy(), 0)
    rows = {r["source"]: r for r in meter.rows()}
    assert set(rows) == {"web", "code", "papers", "math"}  # local jsonl, parquet, hub dir, shards
    for r in rows.values():
        assert abs(r["delta_pp"]) < 1.0, r
    # The fixtures are small, so some sources were re-read: epochs are tracked.
    assert rows["web"]["epoch"] >= 1 and rows["math"]["epoch"] >= 1


def test_weights_are_token_fractions_not_document_fractions(tmp_path):
    # "long" documents are ~10x longer than "short" ones; equal weights must give equal tokens.
    write_jsonl(tmp_path / "long.jsonl", make_docs("long", 200, min_words=200, max_words=220))
    write_jsonl(tmp_path / "short.jsonl", make_docs("short", 2000, min_words=15, max_words=25))
    mix = write_mix(
        tmp_path / "m.toml",
        [
            dict(name="long", kind="local", path=str(tmp_path / "long.jsonl"), weight=1),
            dict(name="short", kind="local", path=str(tmp_path / "short.jsonl"), weight=1),
        ],
    )
    ds = dataset_for(mix, seq_len=512, batch_size=8)
    stats = sum(x[MIX_STATS_KEY].numpy() for x, _ in take(iter(ds), 100))
    tokens, docs = stats[0], stats[1]
    assert abs(tokens[0] / tokens.sum() - 0.5) < 0.01
    assert docs[1] > 5 * docs[0]


def test_same_seed_same_batches_other_seed_differs(corpus):
    a = take(iter(dataset_for(corpus["mix"], seed=3)), 20)
    b = take(iter(dataset_for(corpus["mix"], seed=3)), 20)
    c = take(iter(dataset_for(corpus["mix"], seed=4)), 20)
    assert same_batches(a, b)
    assert not same_batches(a, c)


def _read_epoch(reader, n):
    return [reader.next_doc().tobytes() for _ in range(n)]


def test_dp_ranks_read_disjoint_documents_covering_the_source(corpus):
    mix = load_mix(str(corpus["mix"]))
    specs = {s.name: s for s in mix.sources}
    info = tokenizer_fingerprint(ByteTokenizer())
    world = 3
    # shards
    plan = plan_shard_source(specs["math"], str(corpus["shards"] / "math"), info, expect_source_hash=False)
    n = plan.total_documents
    per_rank = [
        _read_epoch(ShardReader(plan, seed=0, rank=r, world=world), (n - r + world - 1) // world) for r in range(world)
    ]
    everything = [d for docs in per_rank for d in docs]
    assert len(set(everything)) == len(everything) == n
    # local text (jsonl over two files)
    text_plan = plan_text_source(specs["web"], None)
    readers = [TextReader(text_plan, ByteTokenizer(), seed=0, rank=r, world=world) for r in range(world)]
    per_rank = [[] for _ in range(world)]
    for r, reader in enumerate(readers):
        while reader.epoch == 0:
            per_rank[r].append(reader.next_doc().tobytes())
        per_rank[r].pop()  # the first document of epoch 1
    everything = [d for docs in per_rank for d in docs]
    assert len(set(everything)) == len(everything) == 1500


def test_exhausted_source_starts_a_new_reshuffled_epoch(corpus):
    mix = load_mix(str(corpus["mix"]))
    spec = next(s for s in mix.sources if s.name == "math")
    plan = plan_shard_source(
        spec, str(corpus["shards"] / "math"), tokenizer_fingerprint(ByteTokenizer()), expect_source_hash=False
    )
    reader = ShardReader(plan, seed=0, rank=0, world=1)
    n = plan.total_documents
    epoch0 = _read_epoch(reader, n)
    assert reader.epoch == 0
    epoch1 = _read_epoch(reader, n)
    assert reader.epoch == 1
    assert sorted(epoch0) == sorted(epoch1) and epoch0 != epoch1  # same documents, new order


def test_packing_puts_bos_eos_at_document_edges_and_resets_positions(corpus):
    ds = dataset_for(corpus["mix"], seq_len=300, batch_size=4)
    batches = take(iter(ds), 10)
    inputs = torch.cat([x["input"].reshape(-1) for x, _ in batches]).numpy()
    labels = torch.cat([y.reshape(-1) for _, y in batches]).numpy()
    positions = torch.cat([x["positions"].reshape(-1) for x, _ in batches]).numpy()
    assert all(x["input"].dtype == torch.int64 and x["input"].shape == (4, 300) for x, _ in batches)
    # Every document start (BOS input) is a position reset, and attention never crosses documents:
    # positions only reset at a BOS or at a window start.
    starts = np.flatnonzero(inputs == BOS)
    assert (positions[starts] == 0).all()
    resets = np.flatnonzero(positions == 0)
    assert set(resets) <= set(starts) | set(range(0, len(inputs), 300))
    # Labels are the next token inside the document; the target before a BOS is EOS, never BOS.
    assert (labels != BOS).all()
    assert (labels[starts[1:] - 1] == EOS).all()
    inner = np.setdiff1d(np.arange(len(inputs) - 1), starts - 1)
    assert (labels[inner] == inputs[inner + 1]).all()
    # Each packed document decodes to one of the fixture documents, whole.
    tok = ByteTokenizer()
    for a, b in zip(starts[:-1], starts[1:]):
        text = tok.decode(inputs[a:b])
        assert text.split(": ", 1)[0].rstrip("0123456789").rstrip("#") in {
            "web",
            "web1",
            "code",
            "papers",
            "papers1",
            "math",
        }


def test_hub_source_streams_a_local_dataset_directory_and_mirror(tmp_path, corpus):
    hub_dir = corpus["hub_dir"]
    direct = write_mix(
        tmp_path / "direct.toml", [dict(name="papers", kind="hub", path=str(hub_dir), config="main", weight=1)]
    )
    mirrored = write_mix(
        tmp_path / "mirrored.toml", [dict(name="papers", kind="hub", path="org/papers", config="main", weight=1)]
    )
    a = take(iter(dataset_for(direct)), 5)
    b = take(iter(dataset_for(mirrored, hub_mirror=str(hub_dir.parent.parent))), 5)
    assert same_batches(a, b)
    text = ByteTokenizer().decode(a[0][0]["input"][0])
    assert text.startswith("papers")


def test_loader_mix_metrics_report_every_source(corpus):
    loader = loader_for(corpus["mix"])
    take(iter(loader), 50)
    m = loader.mix_metrics()
    for name in ("web", "code", "papers", "math"):
        assert {f"data/{name}/{k}" for k in ("fraction", "target", "tokens", "epoch")} <= m.keys()
    assert m["data/web/target"] == pytest.approx(0.5)
    assert sum(m[f"data/{n}/tokens"] for n in ("web", "code", "papers", "math")) == 50 * 2 * 128
    assert "web" in loader.mix_summary()


def test_finite_loader_stops_after_one_pass_for_validation(tmp_path):
    write_jsonl(tmp_path / "v.jsonl", make_docs("v", 40))
    mix = write_mix(tmp_path / "v.toml", [dict(name="v", kind="local", path=str(tmp_path / "v.jsonl"), weight=1)])
    batches = list(loader_for(mix, infinite=False, seq_len=64, local_batch_size=2))
    again = list(loader_for(mix, infinite=False, seq_len=64, local_batch_size=2))
    tokens = sum(len(t.encode()) + 1 for t in make_docs("v", 40))  # +BOS/EOS -1 shift per document
    assert len(batches) == tokens // (64 * 2) and same_batches(batches, again)


@pytest.mark.parametrize("world", [1, 3])
def test_text_reader_resumes_at_every_cursor_across_blocks_and_files(tmp_path, world):
    write_jsonl(tmp_path / "a.jsonl", make_docs("a", 23))
    write_jsonl(tmp_path / "b.jsonl", make_docs("b", 17))
    spec = load_mix(
        str(write_mix(tmp_path / "m.toml", [dict(name="s", kind="local", path=str(tmp_path / "*.jsonl"), weight=1)]))
    ).sources[0]
    plan = plan_text_source(spec, None)
    reader = TextReader(plan, ByteTokenizer(), seed=5, rank=world - 1, world=world, block=7)
    positions, docs = [], []
    for _ in range(2 * 40 // world + 3):  # into the second epoch
        positions.append(reader.state())
        docs.append(reader.next_doc().tobytes())
    for i in range(len(docs)):
        resumed = TextReader(plan, ByteTokenizer(), seed=5, rank=world - 1, world=world, block=7)
        resumed.load_state(positions[i])
        assert [resumed.next_doc().tobytes() for _ in range(len(docs) - i)] == docs[i:], i


def test_shard_reader_resumes_at_every_cursor_into_the_next_epoch(corpus):
    spec = next(s for s in load_mix(str(corpus["mix"])).sources if s.name == "math")
    plan = plan_shard_source(
        spec, str(corpus["shards"] / "math"), tokenizer_fingerprint(ByteTokenizer()), expect_source_hash=False
    )
    assert len(plan.shards) > 3  # several shards: the cursor crosses shard edges
    reader = ShardReader(plan, seed=1, rank=1, world=2)
    positions, docs = [], []
    for _ in range(plan.total_documents // 2 + 20):
        positions.append(reader.state())
        docs.append(reader.next_doc().tobytes())
    for i in range(0, len(docs), 7):
        resumed = ShardReader(plan, seed=1, rank=1, world=2)
        resumed.load_state(positions[i])
        assert [resumed.next_doc().tobytes() for _ in range(len(docs) - i)] == docs[i:], i


def test_paper_mix_streams_every_hub_source_from_a_local_mirror(tmp_path):
    """pretrain_phase2's real hub definitions (configs, data_dir, data_files) through `datasets`."""
    from data_testkit import build_hub_mirror

    mix = load_mix("pretrain_phase2")
    build_hub_mirror(tmp_path, mix.sources, docs_per_source=300)
    ds = dataset_for("pretrain_phase2", hub_mirror=str(tmp_path), seq_len=1024, batch_size=8)
    meter = MixMeter(ds.source_names, [(mix.name, mix.targets())])
    for x, _ in take(iter(ds), 40):
        meter.update(x[MIX_STATS_KEY].numpy(), 0)
    rows = meter.rows()
    assert len(rows) == 14 and all(r["documents"] > 0 for r in rows if r["target"] > 0.001)
    assert all(abs(r["delta_pp"]) < 1.0 for r in rows)
