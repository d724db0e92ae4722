"""The run's shape: how a step's global batch splits over the job, how many steps, how much warmup.

``training.global_batch_size`` is pinned by the stage configs (paper Table 2), so the recipe is the same
on any number of GPUs: torchtitan turns the difference into gradient-accumulation steps, and the
mixture loader reads one data stream per row block of a step, so the data is the same too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from torchtitan.tools.logging import logger

from mlr1_titan.data.mix_config import parse_phases
from mlr1_titan.sft.chat_loader import ChatDataLoader, derive_steps

if TYPE_CHECKING:
    from mlr1_titan.trainer import MLR1Trainer


@dataclass(frozen=True)
class BatchPlan:
    """How a step's global batch is split over the job (torchtitan derives the same accumulation)."""

    world_size: int
    dp_degree: int
    local_batch_size: int
    global_batch_size: int
    accumulation: int
    seq_len: int


def data_parallel_degree(config: MLR1Trainer.Config, world_size: int) -> int:
    p = config.parallelism
    return max(1, world_size // (p.tensor_parallel_degree * p.pipeline_parallel_degree * p.context_parallel_degree))


def plan_batches(config: MLR1Trainer.Config, world_size: int) -> BatchPlan:
    """The split of ``training.global_batch_size`` for ``world_size`` ranks; an impossible one is an
    error naming both numbers and the data-parallel degrees that work."""
    t = config.training
    dp = data_parallel_degree(config, world_size)
    if t.global_batch_size == 0:
        raise ValueError("training.global_batch_size must be > 0, or -1 for local_batch_size x data-parallel degree")
    global_batch = t.global_batch_size if t.global_batch_size > 0 else t.local_batch_size * dp
    if global_batch % (t.local_batch_size * dp):
        blocks = global_batch // t.local_batch_size if global_batch % t.local_batch_size == 0 else 0
        valid = [d for d in range(1, blocks + 1) if blocks % d == 0]
        raise ValueError(
            f"training.global_batch_size {global_batch} is not a multiple of training.local_batch_size "
            f"{t.local_batch_size} x data-parallel degree {dp} (= {t.local_batch_size * dp}); with local batch "
            f"{t.local_batch_size} the data-parallel degrees that work are {valid or 'none'} "
            "(or change training.local_batch_size)"
        )
    accumulation = global_batch // (t.local_batch_size * dp)
    return BatchPlan(world_size, dp, t.local_batch_size, global_batch, accumulation, t.seq_len)


def _si(value: float) -> str:
    for unit, scale in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if value >= scale:
            return f"{value / scale:.2f}{unit}"
    return f"{value:.0f}"


def describe_batches(config: MLR1Trainer.Config, plan: BatchPlan) -> str:
    """The start-up line: global batch, its split, the run's length, and the stage's paper budget."""
    tokens = plan.global_batch_size * plan.seq_len
    steps = config.training.steps
    data = config.dataloader.selected()
    chat = isinstance(data, ChatDataLoader.Config)
    rows = "conversations of up to" if chat and not data.packing else "sequences x"
    line = (
        f"batch: {plan.global_batch_size:,} {rows} {plan.seq_len:,} tokens = {_si(tokens)} tokens per step "
        f"({plan.dp_degree} DP ranks x {plan.local_batch_size} per rank x {plan.accumulation} accumulation steps, "
        f"{plan.world_size} ranks); "
    )
    line += f"{steps:,} steps = {_si(tokens * steps)} tokens" if steps > 0 else "steps derived from the data"
    if chat:
        if data.epochs is not None:
            line += f"; paper budget: {data.epochs:g} epochs over '{data.mix}' (Table 2)"
    else:
        mixes = [phase.mix for phase in parse_phases(data.mix, data.phases)]
        budget = sum(m.budget_tokens or 0 for m in mixes)
        if budget:
            line += f"; paper budget of {', '.join(m.name for m in mixes)}: {_si(budget)} tokens (Table 2)"
    return line


def resolve_schedule(config: MLR1Trainer.Config, plan: BatchPlan) -> None:
    """Give the mixture loader one data stream per row block of a step, fill ``training.steps`` from the
    chat data's epochs and ``lr_scheduler.warmup_steps`` from ``warmup_ratio``."""
    p = config.parallelism
    microbatches = (
        config.training.local_batch_size // p.pipeline_parallel_microbatch_size if p.pipeline_parallel_degree > 1 else 1
    )
    config.dataloader.mixture.batches_per_step = plan.accumulation * microbatches
    if config.training.steps <= 0:
        _derive_steps_from_data(config, plan)
    if config.lr_scheduler.warmup_ratio is not None:
        # Written back so that torchtitan's start-up summary reports the warmup actually used.
        config.lr_scheduler.warmup_steps = config.lr_scheduler.resolved_warmup_steps(config.training.steps)


def _derive_steps_from_data(config: MLR1Trainer.Config, plan: BatchPlan) -> None:
    data = config.dataloader.selected()
    if not isinstance(data, ChatDataLoader.Config) or data.epochs is None:
        raise ValueError(
            f"training.steps is {config.training.steps}: set it, or use dataloader.kind = chat with "
            "dataloader.chat.epochs so that the step count is derived from the data"
        )
    tokenizer = config.tokenizer.build(tokenizer_path=config.hf_assets_path)
    steps, report = derive_steps(
        data, tokenizer, seq_len=config.training.seq_len, global_batch_size=plan.global_batch_size
    )
    logger.info(report)
    config.training.steps = steps
