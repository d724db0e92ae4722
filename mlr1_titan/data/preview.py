"""`mlr1 data preview`: draw N tokens from a mix exactly as training would, on CPU, and report the
realized mix per source (tokens, realized vs target fraction, documents, epoch)."""

from __future__ import annotations

import time
from typing import Any

from mlr1_titan.data.mix_config import MixSpec, Phase
from mlr1_titan.data.mix_metrics import MIX_PHASE_KEY, MIX_STATS_KEY, MixMeter
from mlr1_titan.data.mixture_dataset import MixtureDataset
from mlr1_titan.data.shards import ShardPlan


def preview_mix(
    mix: MixSpec,
    tokenizer,
    *,
    tokens: int,
    seq_len: int = 2048,
    batch_size: int = 8,
    seed: int = 0,
    dp_rank: int = 0,
    dp_world_size: int = 1,
    shards_root: str | None = None,
    hub_mirror: str | None = None,
) -> tuple[MixMeter, dict[str, Any]]:
    dataset = MixtureDataset(
        [Phase(mix, 0)],
        tokenizer=tokenizer,
        seq_len=seq_len,
        batch_size=batch_size,
        seed=seed,
        dp_rank=dp_rank,
        dp_world_size=dp_world_size,
        shards_root=shards_root,
        hub_mirror=hub_mirror,
    )
    meter = MixMeter(dataset.source_names, [(mix.name, mix.targets())])
    start = time.perf_counter()
    drawn = 0
    for input_dict, _labels in dataset:
        meter.update(input_dict[MIX_STATS_KEY].numpy(), int(input_dict[MIX_PHASE_KEY]))
        drawn += seq_len * batch_size
        if drawn >= tokens:
            break
    elapsed = time.perf_counter() - start
    info = {
        "mix": mix.name,
        "file": mix.file,
        "tokens_drawn": drawn,
        "seconds": round(elapsed, 3),
        "tokens_per_second": round(drawn / elapsed) if elapsed > 0 else None,
        "budget_tokens": mix.budget_tokens,
        "seq_len": seq_len,
        "batch_size": batch_size,
        "seed": seed,
        "dp_rank": dp_rank,
        "dp_world_size": dp_world_size,
        "sources_by_kind": {
            k: sorted(n for n, p in dataset.plans.items() if _kind(p) == k) for k in ("shards", "local", "hub")
        },
    }
    return meter, info


def _kind(plan) -> str:
    return "shards" if isinstance(plan, ShardPlan) else plan.spec.kind
