"""SFT compute efficiency: real tokens / computed tokens and conversations per step, for both SFT stages,
packed vs padded-to-longest vs padded-to-seq_len, on generated conversation lengths.

    .venv/bin/python benchmarks/sft_efficiency.py [--epoch 200000] [--gpus 8 128] [--seed 0]

Lengths (tokens per rendered conversation) are drawn per source from a log-normal distribution and
mixed by the stage's sample counts (the weights of data_mix/sft_*.toml), then cut at the stage's
seq_len as the loader truncates; conversations per step, per-GPU batch and seq_len are the shipped
950M stage configs' (paper Table 2). The means are derived from published dataset sizes, the spreads are assumed
(see ``SOURCES``); change them to your data's measured statistics (``mlr1 data preview-sft`` prints
token counts per sample). Each mode is computed with the loader's own rules:

* packed: ``step_plan.plan_packed_rows`` on the first ``--measure`` conversations (the trainer's
  default ``dataloader.chat.measure_samples``), then the *whole epoch* is packed per data-parallel
  rank with ``BestFitPacker`` (``packing.simulate_rows``): computed = rows x row length;
* padded-to-longest (``packing = false``, the paper's TRL run): micro-batches of
  ``local_batch_size`` consecutive conversations per rank, each padded to its longest rounded up to
  ``pad_multiple`` (64) -- ``chat_loader.PadToLongest``;
* padded-to-seq_len: every conversation padded to seq_len (what the loader did before; the baseline).

Also printed: the estimated peak memory per GPU of 950M reasoning SFT (analytic, see
``peak_memory_gib``). Token counts, not times: on a GPU the step time follows the computed tokens
(attention adds a term in the conversation lengths, the same in every mode since conversations never
attend to each other and each padding token is a one-token document).
"""

from __future__ import annotations

import argparse
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from mlr1_titan.model.flavors import get_flavor  # noqa: E402
from mlr1_titan.sft.packing import simulate_rows  # noqa: E402
from mlr1_titan.sft.step_plan import plan_packed_rows  # noqa: E402

BYTES_PER_TOKEN = 3.8  # Llama-3 tokenizer on English prose and code (our tokenize benchmarks: 3.7-4.2)

# Per source of the shipped mixes: (mean tokens, log-normal sigma). Means from the dataset cards'
# bytes per row (dataset_info num_bytes / num_examples, all fields of a row) / BYTES_PER_TOKEN:
# Tulu-3 SFT mixture 2.91 GB / 939,343 rows = 3.1 kB; OpenCodeReasoning split_0 28.1 GB / 567,850 rows
# = 49.5 kB (question + R1 output + extracted solution; ~45 kB taken as the rendered conversation).
# Math and science: assumed (no published size at hand): R1 / QwQ traces of olympiad problems ~6k
# tokens, science ~3k. Sigmas assumed (long tails: a few conversations reach the 32k cut).
LENGTHS = {
    "tulu3_sft_olmo2_0225": (3100 / BYTES_PER_TOKEN, 1.0),
    "open_math_reasoning": (6000, 0.7),
    "open_science_reasoning_2": (3000, 0.7),
    "open_code_reasoning_2_python": (45_000 / BYTES_PER_TOKEN, 0.6),
    "open_code_reasoning_2_cpp": (45_000 / BYTES_PER_TOKEN, 0.6),
}
STAGE_CONFIGS = {"general": "mlr1_950m_sft_general", "reasoning": "mlr1_950m_sft_reasoning"}
LOOKAHEAD = 64


def stage_settings(config_name: str) -> dict:
    """Conversations per step, per-GPU batch, seq_len, pad multiple and the mix's (source, samples)."""
    from torchtitan.config import ConfigManager

    from mlr1_titan.sft.chat_sources import load_chat_mix

    cfg = ConfigManager().parse_args(["--module", "mlr1_titan", "--config", config_name])
    chat = cfg.dataloader.chat
    sources = [(s.name, s.weight) for s in load_chat_mix(chat.mix).mix.active_sources()]
    t = cfg.training
    return {
        "samples_per_step": t.global_batch_size,
        "local_batch": t.local_batch_size,
        "seq_len": t.seq_len,
        "pad_multiple": chat.pad_multiple,
        "sources": sources,
    }


def draw_lengths(settings: dict, n: int, rng: np.random.Generator) -> np.ndarray:
    sources = settings["sources"]
    weights = np.array([w for _, w in sources], dtype=float)
    which = rng.choice(len(sources), size=n, p=weights / weights.sum())
    out = np.empty(n, dtype=np.int64)
    for i, (name, _) in enumerate(sources):
        mean, sigma = LENGTHS[name]
        mask = which == i
        mu = math.log(mean) - sigma**2 / 2  # a log-normal with this mean
        out[mask] = np.maximum(16, rng.lognormal(mu, sigma, mask.sum()).astype(np.int64))
    return np.minimum(out, settings["seq_len"])


def padded_to_longest(lengths: np.ndarray, local_batch: int, multiple: int) -> int:
    n = len(lengths) // local_batch * local_batch
    batches = lengths[:n].reshape(-1, local_batch)
    width = -(-batches.max(axis=1) // multiple) * multiple
    return int((width * local_batch).sum())


def packed_epoch(lengths: np.ndarray, plan, dp: int) -> tuple[int, float]:
    """Computed tokens and mean conversations per step when each rank packs its share of the epoch."""
    rows = 0
    for rank in range(dp):
        rows += simulate_rows(lengths[rank::dp].tolist(), plan.row_tokens, LOOKAHEAD, plan.row_quota)
    steps = rows / (dp * plan.rows_per_rank)
    return rows * plan.row_tokens, len(lengths) / steps


def peak_memory_gib(flavor: str, micro_batch_tokens: int, gpus: int, chunk_tokens: int = 2048) -> dict[str, float]:
    """Per-GPU memory of FSDP training with full activation checkpointing, bf16 compute, fp32 master
    weights and AdamW states sharded over ``gpus``; an estimate, not a measurement."""
    f = get_flavor(flavor)
    n_params = f.num_params()
    t, d, h = micro_batch_tokens, f.dim, f.ffn_hidden_dim
    gib = 2**30
    q = f.n_heads * f.head_dim
    kv = f.n_kv_heads * f.head_dim
    block = 4 * f.dim * (q + kv) + 3 * f.dim * h  # one block's parameters (approx.)
    return {
        "weights+grads+adam (fp32, sharded)": 16 * n_params / gpus / gib,
        "gathered bf16 block + lm_head": 2 * (2 * block + f.vocab_size * d) / gib,
        "saved block inputs (bf16, full AC)": 2 * t * d * f.n_layers / gib,
        # one block recomputed and back-propagated: q/k/v/o + 3 MLP tensors and their gradients
        "one block recompute + backward": 2 * 2 * t * (2 * d + q + 2 * kv + 3 * h) / gib,
        "loss: fp32 hidden grad + one logits chunk": (4 * t * d + 3 * 4 * chunk_tokens * f.vocab_size) / gib,
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--epoch", type=int, default=200_000, help="conversations generated per stage (one epoch)")
    ap.add_argument("--measure", type=int, default=10_000, help="conversations measured for the packed plan")
    ap.add_argument("--gpus", type=int, nargs="+", default=[8, 128], help="data-parallel GPU counts")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    rng = np.random.default_rng(args.seed)
    reasoning_plans = {}

    print("| stage | GPUs | mode | real / computed | x vs padded-to-seq_len | conversations / step (Table 2) | row |")
    print("|---|---|---|---|---|---|---|")
    for stage, config_name in STAGE_CONFIGS.items():
        s = stage_settings(config_name)
        lengths = draw_lengths(s, args.epoch, rng)
        real = int(lengths.sum())
        baseline = len(lengths) * s["seq_len"]
        for gpus in args.gpus:
            local = s["local_batch"]
            per_rank = [lengths[r::gpus] for r in range(gpus)]
            longest = sum(padded_to_longest(p, local, s["pad_multiple"]) for p in per_rank)
            longest_real = sum(int(p[: len(p) // local * local].sum()) for p in per_rank)
            plan = plan_packed_rows(
                lengths[: args.measure].tolist(),
                conversations_per_step=s["samples_per_step"],
                dp=gpus,
                seq_len=s["seq_len"],
                max_row_tokens=local * s["seq_len"],
                lookahead=LOOKAHEAD,
            )
            computed, per_step = packed_epoch(lengths, plan, gpus)
            if stage == "reasoning":
                reasoning_plans[gpus] = plan
            target = s["samples_per_step"]
            rows = [
                ("packed", real / computed, baseline / computed, f"{per_step:,.1f} ({per_step / target - 1:+.1%})",
                 f"{gpus} x {plan.rows_per_rank} x {plan.row_tokens:,}" + (f", {plan.row_quota:.2f} per row" if plan.row_quota else "")),
                ("padded-to-longest", longest_real / longest, baseline / longest, f"{target:,} (exact)",
                 f"{local} x longest"),
                ("padded-to-seq_len", real / baseline, 1.0, f"{target:,} (exact)", f"{local} x {s['seq_len']:,}"),
            ]  # fmt: skip
            for mode, eff, speed, conv, row in rows:
                print(f"| {stage} | {gpus} | {mode} | {eff:.1%} | {speed:.2f} | {conv} | {row} |")
        print(
            f"<!-- {stage}: {len(lengths):,} conversations, mean {lengths.mean():,.0f} tokens, median "
            f"{np.median(lengths):,.0f}, p99 {np.percentile(lengths, 99):,.0f}, at seq_len {(lengths == s['seq_len']).mean():.2%} -->"
        )

    print()
    for gpus, plan in reasoning_plans.items():
        for label, tokens in (
            (f"packed row of {plan.row_tokens:,} tokens", plan.row_tokens),
            ("padded 8 x 32,768", 8 * 32768),
        ):
            parts = peak_memory_gib("950M", tokens, gpus)
            detail = ", ".join(f"{k} {v:.1f}" for k, v in parts.items())
            print(f"950M reasoning SFT, {gpus} GPUs, {label}: ~{sum(parts.values()):.0f} GiB per GPU ({detail})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
