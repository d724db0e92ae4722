"""Packed SFT steps hold the paper's conversations per step: rows sized from measured conversations
(``step_plan``) give, over a whole epoch read by the real loader on every rank, the target mean."""

from __future__ import annotations

import math
import random

import pytest
from sft_testkit import write_jsonl

from mlr1_titan.sft.chat_loader import ChatDataLoader, ChatDataset, OnePassDone
from mlr1_titan.sft.chat_sources import load_chat_mix
from mlr1_titan.sft.packing import simulate_rows
from mlr1_titan.sft.step_plan import ROW_MULTIPLE, measure_mix, plan_packed_rows
from mlr1_titan.tokenizer import Llama3Tokenizer

WORDS = "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda".split()


@pytest.fixture(scope="module")
def tokenizer():
    return Llama3Tokenizer.Config().build()


def long_tailed_mix(root, rows: int, seed: int = 0):
    """Answers of log-normally distributed length (median ~60 words, tail to seq_len)."""
    rng = random.Random(seed)

    def row(i):
        n = min(900, max(3, int(rng.lognormvariate(4.1, 0.8))))
        return {"q": f"Question {i}: list {n} words.", "a": " ".join(rng.choice(WORDS) for _ in range(n))}

    data = write_jsonl(root / "long_tailed.jsonl", [row(i) for i in range(rows)])
    mix = root / "long_tailed.toml"
    mix.write_text(
        'name = "long_tailed"\nunit = "samples"\n[[sources]]\nname = "answers"\nkind = "local"\n'
        f'path = "{data.as_posix()}"\nformat = "qa"\nprompt_field = "q"\nresponse_field = "a"\nweight = 1\n'
    )
    return mix


def test_packed_steps_hold_the_target_conversations_over_an_epoch(tmp_path, tokenizer):
    """The plan measured on the whole epoch (so that only the packing, not the sampling of the mean, is
    under test); the epoch read by two data-parallel ranks exactly as training reads it -- each its own
    stream -- averages the target within 2%."""
    mix = long_tailed_mix(tmp_path, 4000)
    seq_len, target, dp = 1024, 48, 2
    cfg = ChatDataLoader.Config(mix=str(mix), measure_samples=4000)
    measured = measure_mix(cfg, tokenizer, seq_len=seq_len)
    assert len(measured.lengths) == 4000 and max(measured.lengths) <= seq_len
    assert measured.rows == {"answers": 4000} and measured.usable == 1.0
    plan = plan_packed_rows(
        measured.lengths,
        conversations_per_step=target,
        dp=dp,
        seq_len=seq_len,
        max_row_tokens=4 * seq_len,
        lookahead=64,
    )
    assert plan.row_tokens % ROW_MULTIPLE == 0 and seq_len <= plan.row_tokens <= 4 * seq_len
    assert plan.conversations_per_step == pytest.approx(target, rel=0.02)

    steps_per_rank, conversations, real, computed = [], 0, 0, 0
    for rank in range(dp):
        ds = ChatDataset(
            load_chat_mix(str(mix)),
            tokenizer,
            seq_len=seq_len,
            row_tokens=plan.row_tokens,
            row_quota=plan.row_quota,
            dp_rank=rank,
            dp_world_size=dp,
            infinite=False,
        )
        rows = 0
        try:
            while True:
                ds.next_row()
                rows += 1
        except OnePassDone:
            pass
        steps_per_rank.append(rows / plan.rows_per_rank)
        conversations += sum(ds.conversations)
        real, computed = real + ds.real_tokens, computed + ds.row_positions
    assert conversations == 4000  # one pass: every conversation once
    per_step = conversations / (sum(steps_per_rank) / dp)
    print(
        f"target {target}, planned {plan.conversations_per_step:.2f}, epoch mean {per_step:.2f}; rows {real / computed:.1%} full"
    )
    assert per_step == pytest.approx(target, rel=0.02)
    assert real / computed > 0.95


def test_rows_never_shorter_than_seq_len_and_a_small_share_caps_the_row(tokenizer):
    from mlr1_titan.sft.step_plan import describe_packed

    rng = random.Random(0)
    lengths = [rng.randint(300, 700) for _ in range(400)]
    # 20 conversations x ~500 tokens over 8 ranks: ~1,250 tokens per rank < one 2,048-token row, so
    # rows take 2.5 conversations on average (~4 would fit: 60% more than the target)
    plan = plan_packed_rows(lengths, conversations_per_step=20, dp=8, seq_len=2048, max_row_tokens=8192, lookahead=64)
    assert (plan.row_tokens, plan.rows_per_rank, plan.row_quota) == (2048, 1, 2.5)
    assert plan.conversations_per_step == pytest.approx(20, rel=0.01)
    assert "2.50 conversations per row on average" in describe_packed(plan, 20, 4, 2048)
    assert "WARNING" not in describe_packed(plan, 20, 4, 2048)
    # More ranks than conversations per step: even one per row is too many, and the log says so.
    over = plan_packed_rows(lengths, conversations_per_step=4, dp=8, seq_len=2048, max_row_tokens=8192, lookahead=64)
    assert over.row_quota == 0.5 and over.conversations_per_step == 8
    assert "WARNING: +100% off the target: 8 ranks share 4 conversations" in describe_packed(over, 4, 4, 2048)
    # A large step splits into several rows per rank of at most local_batch x seq_len tokens.
    big = plan_packed_rows(lengths, conversations_per_step=512, dp=2, seq_len=2048, max_row_tokens=4096, lookahead=64)
    assert big.row_tokens <= 4096 and big.rows_per_rank >= 32
    assert big.conversations_per_step == pytest.approx(512, rel=0.02)


def test_best_fit_beats_next_fit_on_long_tailed_lengths():
    rng = random.Random(1)
    lengths = [min(32768, int(rng.lognormvariate(8.3, 0.9))) for _ in range(3000)]
    next_fit = simulate_rows(lengths, 40960, lookahead=1)
    best_fit = simulate_rows(lengths, 40960, lookahead=64)
    assert best_fit < next_fit
    assert sum(lengths) / (best_fit * 40960) > 0.97


def stage_config(tmp_path, *overrides, packing=True):
    from torchtitan.config import ConfigManager

    from mlr1_titan.resources import model_configs_dir

    train = long_tailed_mix(tmp_path, 600)
    (tmp_path / "held").mkdir(exist_ok=True)
    held = long_tailed_mix(tmp_path / "held", 60, seed=1)
    toml = tmp_path / "stage.toml"
    toml.write_text(
        f'extends = "{(model_configs_dir() / "base" / "sft_general.toml").as_posix()}"\n[model]\nflavor = "tiny"\n'
        f'[dataloader.chat]\nmix = "{train.as_posix()}"\nepochs = 1\npacking = {str(packing).lower()}\n'
        "[training]\nlocal_batch_size = 4\nglobal_batch_size = 32\nseq_len = 1024\n"
        f'[validator]\nenable = true\n[validator.dataloader]\nkind = "chat"\n[validator.dataloader.chat]\nmix = "{held.as_posix()}"\n'
    )
    return ConfigManager().parse_args(["--module", "mlr1_titan", "--config", str(toml), *overrides])


def test_the_trainer_plan_sizes_rows_for_training_and_validation_once(tmp_path):
    from mlr1_titan.schedule import plan_values, resolve_schedule

    cfg = stage_config(tmp_path)
    plan = resolve_schedule(cfg, 2)
    chat, t = cfg.dataloader.chat, cfg.training
    assert chat.row_tokens is not None and t.local_batch_size == 1 and t.global_batch_size == 2 * plan.accumulation
    assert plan.conversations_per_step == pytest.approx(32, rel=0.02)
    assert t.steps == math.ceil(600 / plan.conversations_per_step - 1e-9)  # one epoch: 600 usable conversations
    assert cfg.validator.dataloader.chat.row_tokens == chat.row_tokens  # validation takes the training row shape
    before = plan_values(cfg, plan)
    resolve_schedule(cfg, 2)  # a resolved config is not sized again (global_batch_size now counts rows)
    assert plan_values(cfg, plan) == before and before["steps_derived"]


def test_the_trainer_plan_refuses_what_it_cannot_size(tmp_path, capsys):
    from mlr1_titan.schedule import resolve_schedule

    for flags, message in (
        (["--training.global_batch_size", "-1"], "training.global_batch_size is -1: packed chat SFT needs the"),
        (["--parallelism.pipeline_parallel_degree", "2"], "dataloader.chat.packing with pipeline parallelism"),
    ):
        with pytest.raises(SystemExit):  # tyro reports the config's error, at parse time
            stage_config(tmp_path, *flags)
        assert message in " ".join(capsys.readouterr().err.replace("│", " ").split())
    padded = stage_config(tmp_path, "--parallelism.pipeline_parallel_degree", "2", packing=False)
    resolve_schedule(padded, 2)
    assert padded.dataloader.chat.pad_multiple == 1024  # pipeline stages: one micro-batch shape, seq_len
    cp = stage_config(tmp_path, "--dataloader.chat.pad_multiple", "6", packing=False)
    cp.parallelism.context_parallel_degree = 2
    with pytest.raises(ValueError, match="pad_multiple 6: sequence / context parallelism needs .* divisible by 4"):
        resolve_schedule(cp, 2)


def test_a_resume_with_another_step_count_is_refused_and_a_new_shape_logged(tmp_path, tokenizer, caplog):
    """The plan travels in the loader's checkpoint state; loading it into a start that derived another
    step count is refused, another shape is logged, a checkpoint without a plan loads unchecked."""
    import json

    mix = long_tailed_mix(tmp_path, 50)

    def loader_with(plan):
        ds = ChatDataset(load_chat_mix(str(mix)), tokenizer, seq_len=1024)
        ds.plan = plan
        return ds

    saved = {"steps": 100, "steps_derived": True, "warmup_steps": 3, "global_batch_size": 8, "row_tokens": 4096}
    state = json.loads(json.dumps(loader_with(saved).state_dict()))
    loader_with(dict(saved)).load_state_dict(state)
    with pytest.raises(ValueError, match="planned for 100 steps, this start derives 97 .* --training.steps 100"):
        loader_with({**saved, "steps": 97}).load_state_dict(state)
    loader_with({**saved, "global_batch_size": 16, "row_tokens": 2048}).load_state_dict(state)
    assert "global_batch_size 8 -> 16, row_tokens 4096 -> 2048" in caplog.text
    # --training.steps given by hand (e.g. to train longer): the user's choice, logged only
    loader_with({**saved, "steps": 150, "steps_derived": False}).load_state_dict(state)
    assert "steps 100 -> 150" in caplog.text
    loader_with({**saved, "steps": 97}).load_state_dict({**state, "plan": None})  # an older checkpoint


def test_the_trainer_checks_the_sources_before_measuring_anything(tmp_path):
    """A source of placeholder questions stops the start-up (resolve_schedule), before any step."""
    from mlr1_titan.data.sources import DataSourceError
    from mlr1_titan.schedule import resolve_schedule

    rows = write_jsonl(tmp_path / "ocr.jsonl", [{"q": "-", "a": f"print({i})"} for i in range(50)])
    mix = tmp_path / "placeholders.toml"
    mix.write_text(
        'name = "placeholders"\n[[sources]]\nname = "code"\nkind = "local"\n'
        f'path = "{rows.as_posix()}"\nformat = "qa"\nprompt_field = "q"\nresponse_field = "a"\nweight = 1\n'
    )
    cfg = stage_config(tmp_path, "--dataloader.chat.mix", str(mix))
    with pytest.raises(DataSourceError, match="source 'code' .* 50 of its first 50 rows are unusable"):
        resolve_schedule(cfg, 1)
    assert cfg.dataloader.chat.row_tokens is None and cfg.training.steps == -1  # nothing was planned
