"""How many optimizer steps an SFT stage takes, and (packing) how long its rows are.

The paper counts a step's batch in **conversations** (Table 2: 512 for general SFT, 1,024 for reasoning
SFT), so ``training.global_batch_size`` is a number of conversations in both loader modes:

* ``packing = false``: one conversation per row, so rows = conversations (the paper's TRL run);
* ``packing = true``: every rank runs ``rows_per_rank`` rows of ``row_tokens`` tokens per step (one row per
  micro-batch). They are sized from conversations measured at start-up: a step's tokens = the
  target conversations x their mean length / how full the packer fills rows (simulated on the same
  lengths). Rows are as long as a micro-batch of the padded run may be
  (``local_batch_size x seq_len``) but never shorter than ``seq_len``, so the longest
  conversation fits. A step therefore holds the target number of conversations *on average*, every
  step has the same shape, and the step count per epoch -- hence the LR schedule -- is the paper's.

Conversations are measured exactly as the loader builds them (same mix, seed, truncation, loss scope).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from .chat_loader import ChatDataLoader, count_rows
from .packing import round_up, simulate_rows

# Packed rows are a multiple of this: divisible for sequence parallelism (TP <= 64) and context
# parallelism's load balancing (2 x CP <= 64).
ROW_MULTIPLE = 64


@dataclass(frozen=True)
class MixMeasurement:
    """The first conversations of a mix, as the loader builds them."""

    mix: str
    rows: dict[str, int]  # rows per source (line / row counts or split metadata); empty when not counted
    lengths: list[int]  # input tokens of each measured conversation
    usable: float  # fraction of rows read that became a conversation

    @property
    def mean_tokens(self) -> float:
        return sum(self.lengths) / len(self.lengths)

    @property
    def mean_tokens_rel_ci95(self) -> float:
        """Half-width of the 95% confidence interval of the mean length, relative to the mean."""
        n, mean = len(self.lengths), self.mean_tokens
        if n < 2:
            return float("inf")
        var = sum((x - mean) ** 2 for x in self.lengths) / (n - 1)
        return 1.96 * math.sqrt(var / n) / mean


def measure_mix(config: ChatDataLoader.Config, tokenizer, *, seq_len: int, count: bool = True) -> MixMeasurement:
    """The first ``measure_samples`` conversations of the mix as training reads them (small sources
    re-read as the sampler re-reads them; a mix smaller than that, when counted, is measured whole);
    ``count``: also the rows per source (needed to derive the step count)."""
    probe = config.build_dataset(tokenizer, seq_len=seq_len, infinite=True)
    mix = probe.mix
    rows = {s.name: count_rows(s, config.hub_mirror) for s in mix.mix.active_sources()} if count else {}
    n = min(config.measure_samples, sum(rows.values())) if rows else config.measure_samples
    lengths = [len(probe.next_sample().inputs) for _ in range(max(1, n))]
    skipped = sum(v for k, v in probe.skips.items() if not k.endswith("/truncated"))
    return MixMeasurement(mix.name, rows, lengths, len(lengths) / (len(lengths) + skipped))


@dataclass(frozen=True)
class PackedRows:
    """The shape of a packed step: ``dp`` ranks x ``rows_per_rank`` rows of ``row_tokens`` tokens."""

    row_tokens: int
    rows_per_rank: int
    dp: int
    conversations_per_row: float  # simulated on the measured lengths
    fill: float  # conversation tokens / row tokens, simulated
    row_quota: float | None = None  # conversations per row on average, when a rank's share is < one row

    @property
    def conversations_per_step(self) -> float:
        return self.dp * self.rows_per_rank * self.conversations_per_row

    @property
    def tokens_per_step(self) -> int:
        return self.dp * self.rows_per_rank * self.row_tokens


def plan_packed_rows(
    lengths: list[int], *, conversations_per_step: int, dp: int, seq_len: int, max_row_tokens: int, lookahead: int
) -> PackedRows:
    """Rows per rank and row length so that a step holds ``conversations_per_step`` on average.

    A fixed point: the row length sets how full rows are, which sets the tokens a step needs; a few
    rounds settle it, trying the row lengths on both sides of the exact one (rows are a multiple of
    ``ROW_MULTIPLE``) and keeping the closest to the target. Rows never drop below ``seq_len``: when one rank's share of a step is less
    than that, rows take the conversations that keep a step at the target on average
    (``row_quota``), the rest of each row padded.
    """
    floor = round_up(seq_len, ROW_MULTIPLE)
    ceiling = max(floor, max_row_tokens // ROW_MULTIPLE * ROW_MULTIPLE)
    total = sum(lengths)
    step_tokens = conversations_per_step * total / len(lengths)  # first guess: rows 100% full
    tried: dict[tuple[int, int], PackedRows] = {}
    for _ in range(8):
        per_rank = step_tokens / dp
        rows_per_rank = max(1, math.ceil(per_rank / ceiling))
        exact = per_rank / rows_per_rank
        below = math.floor(exact / ROW_MULTIPLE) * ROW_MULTIPLE
        candidates = {min(ceiling, max(floor, n)) for n in (below, below + ROW_MULTIPLE)}
        new = [(n, rows_per_rank) for n in candidates if (n, rows_per_rank) not in tried]
        if not new:
            break
        for row_tokens, per in new:
            rows = simulate_rows(lengths, row_tokens, lookahead)
            tried[(row_tokens, per)] = PackedRows(row_tokens, per, dp, len(lengths) / rows, total / (rows * row_tokens))
        best = min(tried.values(), key=lambda p: abs(p.conversations_per_step - conversations_per_step))
        step_tokens = conversations_per_step * total / len(lengths) / best.fill
    best = min(tried.values(), key=lambda p: abs(p.conversations_per_step - conversations_per_step))
    if best.conversations_per_step <= conversations_per_step * 1.02:
        return best
    # A rank's share of a step is less than one row: a running quota of conversations per row instead.
    quota = conversations_per_step / (dp * best.rows_per_rank)
    rows = simulate_rows(lengths, best.row_tokens, lookahead, quota)
    quoted = PackedRows(
        best.row_tokens, best.rows_per_rank, dp, len(lengths) / rows, total / (rows * best.row_tokens), quota
    )
    return min((best, quoted), key=lambda p: abs(p.conversations_per_step - conversations_per_step))


def derive_steps(measured: MixMeasurement, *, epochs: float, conversations_per_step: float) -> tuple[int, float]:
    """Optimizer steps for ``epochs`` passes over the mix, and the conversations they cover."""
    conversations = sum(measured.rows.values()) * measured.usable * epochs
    return max(1, math.ceil(conversations / conversations_per_step - 1e-9)), conversations  # 1e-9: float noise


def describe_measurement(measured: MixMeasurement) -> str:
    rows = ", ".join(f"{k} {v:,}" for k, v in measured.rows.items())
    counted = f"{sum(measured.rows.values()):,} rows ({rows}), " if measured.rows else ""
    return (
        f"SFT data '{measured.mix}': {counted}{measured.usable:.1%} usable; mean conversation "
        f"{measured.mean_tokens:,.0f} tokens (+-{measured.mean_tokens_rel_ci95:.1%} at 95%, measured on the first "
        f"{len(measured.lengths):,}; raise dataloader.chat.measure_samples to narrow it)"
    )


def describe_packed(plan: PackedRows, target: int, local_batch_size: int, seq_len: int) -> str:
    cap = f", {plan.row_quota:.2f} conversations per row on average" if plan.row_quota else ""
    line = (
        f"SFT packing: {plan.dp} DP ranks x {plan.rows_per_rank} row(s) of {plan.row_tokens:,} tokens per step "
        f"(micro-batch of at most {local_batch_size} x {seq_len:,} tokens{cap}), rows {plan.fill:.1%} full -> "
        f"{plan.conversations_per_step:,.1f} conversations per step on average (training.global_batch_size {target:,})"
    )
    if abs(plan.conversations_per_step / target - 1) > 0.02:
        line += (
            f"; WARNING: {plan.conversations_per_step / target - 1:+.0%} off the target: {plan.dp} ranks share "
            f"{target:,} conversations; use fewer data-parallel ranks (e.g. tensor parallelism) or packing = false"
        )
    elif plan.fill < 0.95:
        line += (
            f"; rows are only {plan.fill:.0%} full: one rank's share of a step is less than a {plan.row_tokens:,}-token "
            "row; fewer data-parallel ranks (e.g. tensor_parallel_degree 2) fill them"
        )
    return line
