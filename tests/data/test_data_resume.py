"""Exact resume: batches after a resume are bit-identical to an uninterrupted run, including through
torchtitan's own CheckpointManager (DCP, `dataloader` key), mid-epoch and across a phase switch."""

import pickle

import pytest
import torch
from data_testkit import (
    build_corpus,
    dataset_for,
    loader_for,
    make_docs,
    same_batches,
    take,
    write_jsonl,
    write_mix,
)
from torchtitan.components.checkpointer.dcp import CheckpointManager

from mlr1_titan.data.mix_metrics import MIX_PHASE_KEY


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return build_corpus(tmp_path_factory.mktemp("corpus"), docs=600)


class _Stateful:
    def state_dict(self):
        return {}

    def load_state_dict(self, state):
        pass


def _checkpointer(loader, folder):
    config = CheckpointManager.Config(enable=True, folder="checkpoint", interval=1, keep_latest_k=0)
    return config.build(
        dataloader=loader,
        model_parts=[torch.nn.Linear(2, 2)],
        optimizers=_Stateful(),
        lr_schedulers=_Stateful(),
        states={},
        sd_adapter=None,
        base_folder=str(folder),
    )


def test_resume_through_torchtitan_checkpointer_is_bitwise_identical(corpus, tmp_path):
    # Enough batches that the 600-document sources are in their second epoch at the cut.
    run = loader_for(corpus["mix"], seq_len=512, local_batch_size=4)
    it = iter(run)
    take(it, 250)
    assert run.mix_metrics()["data/math/epoch"] == 1 and run.mix_metrics()["data/web/epoch"] == 1
    _checkpointer(run, tmp_path).save(curr_step=250)
    expected = take(it, 20)
    expected_metrics = run.mix_metrics()

    resumed = loader_for(corpus["mix"], seq_len=512, local_batch_size=4)
    assert _checkpointer(resumed, tmp_path).load(step=250)
    got = take(iter(resumed), 20)
    assert same_batches(expected, got)
    assert resumed.mix_metrics() == expected_metrics


@pytest.mark.parametrize("cut", [1, 7, 33, 80])
def test_dataset_state_resumes_at_any_batch_including_half_packed_documents(corpus, cut):
    ds = dataset_for(corpus["mix"], seq_len=200, batch_size=3)
    it = iter(ds)
    take(it, cut)
    state = pickle.loads(pickle.dumps(ds.state_dict()))
    expected = take(it, 12)
    fresh = dataset_for(corpus["mix"], seq_len=200, batch_size=3)
    fresh.load_state_dict(state)
    assert same_batches(expected, take(iter(fresh), 12))


def test_resume_in_the_middle_of_a_sources_second_epoch(tmp_path):
    write_jsonl(tmp_path / "tiny.jsonl", make_docs("tiny", 25))
    write_jsonl(tmp_path / "big.jsonl", make_docs("big", 3000))
    mix = write_mix(
        tmp_path / "m.toml",
        [
            dict(name="tiny", kind="local", path=str(tmp_path / "tiny.jsonl"), weight=30),
            dict(name="big", kind="local", path=str(tmp_path / "big.jsonl"), weight=70),
        ],
    )
    ds = dataset_for(mix, seq_len=128, batch_size=2)
    it = iter(ds)
    while True:
        next(it)
        state = ds.state_dict()
        tiny = state["readers"]["tiny"]
        if tiny["epoch"] == 1 and 5 < tiny["cursor"] < 20:
            break
    expected = take(it, 30)
    fresh = dataset_for(mix, seq_len=128, batch_size=2)
    fresh.load_state_dict(state)
    assert same_batches(expected, take(iter(fresh), 30))


def test_changing_dp_degree_on_resume_fails_with_a_clear_message(corpus):
    rank0 = loader_for(corpus["mix"], dp_world_size=2, dp_rank=0)
    take(iter(rank0), 3)
    state = rank0.state_dict()
    single = loader_for(corpus["mix"], dp_world_size=1, dp_rank=0)
    with pytest.raises(ValueError, match="data-parallel degree 2, this run has 1"):
        single.load_state_dict(state)


def test_changing_seed_on_resume_fails(corpus):
    ds = dataset_for(corpus["mix"], seed=1)
    take(iter(ds), 2)
    with pytest.raises(ValueError, match="seed 1, this run has seed 2"):
        dataset_for(corpus["mix"], seed=2).load_state_dict(ds.state_dict())


def test_phase_schedule_switches_mix_at_a_step_and_the_switch_resumes(tmp_path):
    write_jsonl(tmp_path / "a.jsonl", make_docs("a", 400))
    write_jsonl(tmp_path / "b.jsonl", make_docs("b", 400))
    only_a = write_mix(
        tmp_path / "only_a.toml",
        [
            dict(name="a", kind="local", path=str(tmp_path / "a.jsonl"), weight=1),
            dict(name="b", kind="local", path=str(tmp_path / "b.jsonl"), weight=0),
        ],
    )
    only_b = write_mix(
        tmp_path / "only_b.toml", [dict(name="b", kind="local", path=str(tmp_path / "b.jsonl"), weight=1)]
    )
    schedule = [str(only_a), f"{only_b}@3"]  # three optimizer steps of a, then b
    loader = loader_for("unused", phases=schedule, batches_per_step=2)
    it = iter(loader)
    phases, sources = [], []
    for _ in range(10):
        before = loader.meter.tokens.copy()
        next(it)
        phases.append(loader.meter.phase)
        sources.append(tuple((loader.meter.tokens - before) > 0))
    assert phases == [0] * 6 + [1] * 4  # batches per step = 2: the switch lands on batch 6
    assert all(s == (True, False) for s in sources[:6])
    assert all(s[1] for s in sources[6:])  # b from the switch on (a may finish its last document)
    assert loader.mix_metrics()["data/b/target"] == 1.0

    for cut in (5, 7):  # resume just before and just after the switch
        ref = loader_for("unused", phases=schedule, batches_per_step=2)
        ref_it = iter(ref)
        take(ref_it, cut)
        state = ref.state_dict()
        expected = take(ref_it, 4)
        resumed = loader_for("unused", phases=schedule, batches_per_step=2)
        resumed.load_state_dict(state)
        assert same_batches(expected, take(iter(resumed), 4))
        assert resumed.meter.phase == ref.meter.phase


def test_resume_with_dataloader_workers(corpus):
    run = loader_for(corpus["mix"], num_workers=2)
    it = iter(run)
    take(it, 9)
    state = run.state_dict()
    expected = take(it, 6)
    resumed = loader_for(corpus["mix"], num_workers=2)
    resumed.load_state_dict(state)
    assert same_batches(expected, take(iter(resumed), 6))
    assert MIX_PHASE_KEY not in expected[0][0]


def _global_batches(corpus, dp: int, accumulation: int, steps: int) -> list[torch.Tensor]:
    """Every step's global batch (rows of all ranks and micro-batches, in row-block order)."""
    ranks = [
        iter(
            loader_for(
                corpus["mix"],
                dp_world_size=dp,
                dp_rank=r,
                seq_len=96,
                local_batch_size=2,
                batches_per_step=accumulation,
            )
        )
        for r in range(dp)
    ]
    out = []
    for _ in range(steps):
        blocks = [next(it)[0]["input"] for it in ranks for _ in range(accumulation)]
        # rank r serves blocks r*k .. r*k+k-1 in turn: regroup them in block order
        ordered = [blocks[r * accumulation + j] for r in range(dp) for j in range(accumulation)]
        out.append(torch.cat(ordered))
    return out


def test_a_steps_global_batch_is_the_same_for_any_split_into_ranks_and_accumulation(corpus):
    one_rank = _global_batches(corpus, dp=1, accumulation=4, steps=6)
    assert all(torch.equal(a, b) for a, b in zip(one_rank, _global_batches(corpus, dp=2, accumulation=2, steps=6)))
    assert all(torch.equal(a, b) for a, b in zip(one_rank, _global_batches(corpus, dp=4, accumulation=1, steps=6)))
    assert not torch.equal(one_rank[0], one_rank[1])


def test_resume_with_accumulation_streams_is_bitwise_identical(corpus, tmp_path):
    run = loader_for(corpus["mix"], seq_len=96, local_batch_size=2, batches_per_step=3)
    it = iter(run)
    take(it, 7)  # mid-step: the next batch comes from the second stream
    _checkpointer(run, tmp_path).save(curr_step=7)
    expected = take(it, 9)
    resumed = loader_for(corpus["mix"], seq_len=96, local_batch_size=2, batches_per_step=3)
    assert _checkpointer(resumed, tmp_path).load(step=7)
    assert same_batches(expected, take(iter(resumed), 9))
    other = loader_for(corpus["mix"], seq_len=96, local_batch_size=2, batches_per_step=2)
    with pytest.raises(ValueError, match=r"holds 3 streams per rank .* this run has 2"):
        _checkpointer(other, tmp_path).load(step=7)
        next(iter(other))  # torchdata hands the state to the dataset when iteration starts


def test_accumulation_streams_with_workers_keep_the_data_and_the_phase_switch(corpus, tmp_path):
    without = _global_batches(corpus, dp=1, accumulation=4, steps=5)
    ranks = [
        iter(
            loader_for(
                corpus["mix"],
                dp_world_size=2,
                dp_rank=r,
                seq_len=96,
                local_batch_size=2,
                batches_per_step=2,
                num_workers=2,
            )
        )
        for r in range(2)
    ]
    for step in range(5):
        blocks = [next(it)[0]["input"] for it in ranks for _ in range(2)]
        assert torch.equal(torch.cat(blocks), without[step]), step
    # the phase switch lands on the step, with two workers serving two streams each
    write_jsonl(tmp_path / "a.jsonl", make_docs("a", 300))
    only_a = write_mix(tmp_path / "a.toml", [dict(name="a", kind="local", path=str(tmp_path / "a.jsonl"), weight=1)])
    only_b = write_mix(
        tmp_path / "b.toml", [dict(name="a", kind="local", path=str(tmp_path / "a.jsonl"), weight=1)], name="b"
    )
    loader = loader_for("unused", phases=[str(only_a), f"{only_b}@3"], batches_per_step=4, num_workers=2)
    it = iter(loader)
    phases = []
    for _ in range(20):
        next(it)
        phases.append(loader.meter.phase)
    assert phases == [0] * 12 + [1] * 8
    with pytest.raises(ValueError, match=r"num_workers 3 must divide the 4 batches per step"):
        loader_for(corpus["mix"], batches_per_step=4, num_workers=3)


def test_resuming_across_a_change_of_accumulation_is_refused_clearly(corpus, tmp_path):
    plain = loader_for(corpus["mix"], seq_len=96, local_batch_size=2)
    take(iter(plain), 3)
    _checkpointer(plain, tmp_path / "plain").save(curr_step=3)
    streams = loader_for(corpus["mix"], seq_len=96, local_batch_size=2, batches_per_step=2)
    take(iter(streams), 4)
    _checkpointer(streams, tmp_path / "streams").save(curr_step=4)
    with pytest.raises(ValueError, match=r"holds 1 stream per rank .* this run reads 2"):
        other = loader_for(corpus["mix"], seq_len=96, local_batch_size=2, batches_per_step=2)
        _checkpointer(other, tmp_path / "plain").load(step=3)
        next(iter(other))
    with pytest.raises(ValueError, match=r"holds 2 streams per rank .* this run reads 1"):
        other = loader_for(corpus["mix"], seq_len=96, local_batch_size=2)
        _checkpointer(other, tmp_path / "streams").load(step=4)
        next(iter(other))
