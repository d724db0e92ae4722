"""The run's shape: how a step's global batch splits over the job, how many steps, how much warmup.

``training.global_batch_size`` is pinned by the stage configs (paper Table 2), so the recipe is the same
on any number of GPUs: torchtitan turns the difference into gradient-accumulation steps, and the
mixture loader reads one data stream per row block of a step, so the data is the same too.

Chat SFT counts the global batch in conversations. Packed, the rows are sized from measured
conversations (``mlr1_titan.sft.step_plan``) and torchtitan is handed the resulting shape: one row of
``dataloader.chat.row_tokens`` per micro-batch (``training.local_batch_size = 1``) and
``training.global_batch_size`` = rows per step.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from torchtitan.tools.logging import logger

from mlr1_titan.data.mix_config import parse_phases
from mlr1_titan.sft.chat_loader import ChatDataLoader
from mlr1_titan.sft.packing import round_up
from mlr1_titan.sft.source_check import check_sources
from mlr1_titan.sft.step_plan import (
    ROW_MULTIPLE,
    derive_steps,
    describe_measurement,
    describe_packed,
    measure_mix,
    plan_packed_rows,
)

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
    conversations_per_step: float | None = None  # chat SFT: conversations a step holds (on average when packed)
    steps_derived: bool = False  # training.steps came from the data (dataloader.chat.epochs)


def data_parallel_degree(config: MLR1Trainer.Config, world_size: int) -> int:
    p = config.parallelism
    return max(1, world_size // (p.tensor_parallel_degree * p.pipeline_parallel_degree * p.context_parallel_degree))


def _packed_chat(config: MLR1Trainer.Config) -> bool:
    data = config.dataloader.selected()
    return isinstance(data, ChatDataLoader.Config) and data.packing


def plan_batches(config: MLR1Trainer.Config, world_size: int) -> BatchPlan:
    """The split of ``training.global_batch_size`` for ``world_size`` ranks; an impossible one is an
    error naming both numbers and the data-parallel degrees that work. (Packed chat SFT: the split of
    the rows that ``resolve_schedule`` derived.)"""
    t = config.training
    dp = data_parallel_degree(config, world_size)
    if _packed_chat(config) and config.dataloader.chat.row_tokens is None:
        # Not yet sized: global_batch_size counts conversations, any data-parallel degree works.
        return BatchPlan(world_size, dp, t.local_batch_size, t.global_batch_size, 1, t.seq_len)
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
    steps = config.training.steps
    data = config.dataloader.selected()
    chat = isinstance(data, ChatDataLoader.Config)
    if chat and data.packing and data.row_tokens is None:
        line = (
            f"batch: {plan.global_batch_size:,} conversations per step on average, packed into rows sized at "
            f"start-up from measured conversations ({plan.dp_degree} DP ranks, {plan.world_size} ranks); "
        )
        tokens = 0
    elif chat and data.packing:
        tokens = plan.global_batch_size * data.row_tokens
        line = (
            f"batch: {plan.global_batch_size:,} packed rows x {data.row_tokens:,} tokens = {_si(tokens)} tokens per "
            f"step (padding included), ~{plan.conversations_per_step or 0:,.0f} conversations ({plan.dp_degree} DP ranks x 1 row per "
            f"micro-batch x {plan.accumulation} accumulation steps, {plan.world_size} ranks); "
        )
    elif chat and not data.packing:
        tokens = 0  # varies with the data
        padded = (
            "to seq_len (pipeline parallelism)" if config.parallelism.pipeline_parallel_degree > 1 else "to its longest"
        )
        line = (
            f"batch: {plan.global_batch_size:,} conversations per step, each micro-batch padded {padded} "
            f"(at most {plan.seq_len:,} tokens; {plan.dp_degree} DP ranks x {plan.local_batch_size} per rank x "
            f"{plan.accumulation} accumulation steps, {plan.world_size} ranks); "
        )
    else:
        tokens = plan.global_batch_size * plan.seq_len
        line = (
            f"batch: {plan.global_batch_size:,} sequences x {plan.seq_len:,} tokens = {_si(tokens)} tokens per step "
            f"({plan.dp_degree} DP ranks x {plan.local_batch_size} per rank x {plan.accumulation} accumulation steps, "
            f"{plan.world_size} ranks); "
        )
    if steps > 0:
        line += f"{steps:,} steps" + (f" = {_si(tokens * steps)} tokens" if tokens else "")
    else:
        line += "steps derived from the data"
    if chat:
        if data.epochs is not None:
            line += f"; paper budget: {data.epochs:g} epochs over '{data.mix}' (Table 2)"
    else:
        mixes = [phase.mix for phase in parse_phases(data.mix, data.phases)]
        budget = sum(m.budget_tokens or 0 for m in mixes)
        if budget:
            line += f"; paper budget of {', '.join(m.name for m in mixes)}: {_si(budget)} tokens (Table 2)"
    return line


def resolve_schedule(config: MLR1Trainer.Config, world_size: int) -> BatchPlan:
    """The run's batch plan. Checks the chat sources and sizes packed rows (chat SFT), gives the mixture
    loader one data stream per row block of a step, fills ``training.steps`` from the chat data's
    epochs and ``lr_scheduler.warmup_steps`` from ``warmup_ratio``. (The config's own checks have
    already made sure that steps are set or derivable.)"""
    plan = plan_batches(config, world_size)  # an impossible split fails here, naming the valid DP degrees
    data = config.dataloader.selected()
    if isinstance(data, ChatDataLoader.Config):
        plan = _resolve_chat(config, data, plan)
    p = config.parallelism
    microbatches = (
        config.training.local_batch_size // p.pipeline_parallel_microbatch_size if p.pipeline_parallel_degree > 1 else 1
    )
    config.dataloader.mixture.batches_per_step = plan.accumulation * microbatches
    if config.lr_scheduler.warmup_ratio is not None:
        # Written back so that torchtitan's start-up summary reports the warmup actually used.
        config.lr_scheduler.warmup_steps = config.lr_scheduler.resolved_warmup_steps(config.training.steps)
    return plan


def plan_values(config: MLR1Trainer.Config, plan: BatchPlan) -> dict[str, int | float | bool | None]:
    """The derived numbers every rank (and every resume) of a run must agree on."""
    t, data = config.training, config.dataloader.selected()
    return {
        "steps": t.steps,
        "steps_derived": plan.steps_derived,
        "warmup_steps": config.lr_scheduler.warmup_steps,
        "global_batch_size": t.global_batch_size,
        "local_batch_size": t.local_batch_size,
        "row_tokens": getattr(data, "row_tokens", None),
        "row_quota": getattr(data, "row_quota", None),
    }


def _sequence_divisor(config: MLR1Trainer.Config) -> int:
    """What torchtitan requires sequence lengths to be divisible by (sequence / context parallelism)."""
    p = config.parallelism
    tp = p.tensor_parallel_degree if p.enable_sequence_parallel else 1
    return tp * (2 * p.context_parallel_degree if p.context_parallel_degree > 1 else 1)


def _resolve_chat(config: MLR1Trainer.Config, data: ChatDataLoader.Config, plan: BatchPlan) -> BatchPlan:
    t, p = config.training, config.parallelism
    if data.packing and data.row_tokens is not None:
        # Already sized (this config was resolved before): global_batch_size now counts rows.
        return plan
    divisor = _sequence_divisor(config)
    multiple = ROW_MULTIPLE if data.packing else data.pad_multiple
    if multiple % divisor:
        key = "packed rows (multiples of 64)" if data.packing else f"dataloader.chat.pad_multiple {multiple}"
        raise ValueError(
            f"{key}: sequence / context parallelism needs sequence lengths divisible by {divisor}; "
            + (
                f"use packing = false with a pad_multiple divisible by {divisor}"
                if data.packing
                else f"use a multiple of {divisor}"
            )
        )
    if p.pipeline_parallel_degree > 1:  # (packing with pipeline parallelism is refused by the config)
        # Pipeline stages fix their send / receive shapes at the first micro-batch: pad every one to seq_len.
        data.pad_multiple = round_up(t.seq_len, data.pad_multiple)
        logger.info(f"pipeline parallelism: chat micro-batches padded to {data.pad_multiple:,} tokens (one shape)")
    tokenizer = config.tokenizer.build(tokenizer_path=config.hf_assets_path)
    check_sources(data, tokenizer, seq_len=t.seq_len)
    held_out = config.validator.dataloader
    if config.validator.enable and getattr(held_out, "kind", None) == "chat":
        check_sources(held_out.chat, tokenizer, seq_len=t.seq_len)  # not only at the first validation, hours in
    needs_steps = t.steps <= 0
    if not data.packing and not needs_steps:
        return replace(plan, conversations_per_step=plan.global_batch_size)
    measured = measure_mix(data, tokenizer, seq_len=t.seq_len, count=needs_steps)
    logger.info(describe_measurement(measured))
    conversations_per_step = float(plan.global_batch_size)
    if data.packing:
        target = plan.global_batch_size
        packed = plan_packed_rows(
            measured.lengths,
            conversations_per_step=target,
            dp=plan.dp_degree,
            seq_len=t.seq_len,
            max_row_tokens=t.local_batch_size * t.seq_len,
            lookahead=data.lookahead,
        )
        logger.info(describe_packed(packed, target, t.local_batch_size, t.seq_len))
        data.row_tokens, data.row_quota = packed.row_tokens, packed.row_quota
        t.local_batch_size = 1
        t.global_batch_size = packed.dp * packed.rows_per_rank
        conversations_per_step = packed.conversations_per_step
        plan = plan_batches(config, plan.world_size)
        if config.validator.enable and getattr(held_out, "kind", None) == "chat" and held_out.chat.packing:
            # Validation micro-batches take the training row shape (one compiled shape, same tokens per row).
            held_out.chat.row_tokens = data.row_tokens
    plan = replace(plan, conversations_per_step=conversations_per_step, steps_derived=needs_steps)
    if needs_steps:
        t.steps, conversations = derive_steps(
            measured, epochs=data.epochs, conversations_per_step=conversations_per_step
        )
        logger.info(
            f"SFT schedule for mix '{measured.mix}': {data.epochs:g} epochs = {conversations:,.0f} conversations / "
            f"{conversations_per_step:,.1f} per step -> {t.steps:,} steps"
        )
    return plan
