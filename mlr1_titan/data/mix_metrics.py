"""Realized-mix accounting: per source, tokens consumed, realized fraction vs target, epoch.

The dataset attaches a small `[3, K]` stats tensor to each batch (tokens emitted per source, documents
started per source, current epoch per source); `MixMeter` sums them in whichever process consumes the
batches (the trainer's, even with dataloader workers), so the numbers are exact and checkpointed.
"""

from __future__ import annotations

import json
from typing import Any

import numpy as np

MIX_STATS_KEY = "mix_stats"
MIX_PHASE_KEY = "mix_phase"


class MixMeter:
    def __init__(self, source_names: list[str], phases: list[tuple[str, dict[str, float]]]):
        """`phases`: (mix name, {source: target fraction}) per phase of the schedule."""
        self.names = list(source_names)
        self.phases = phases
        k = len(self.names)
        self.tokens = np.zeros(k, np.int64)  # whole run
        self.docs = np.zeros(k, np.int64)
        self.phase_tokens = np.zeros(k, np.int64)  # current phase only
        self.epochs = np.zeros(k, np.int64)
        self.phase = 0
        self.batches = 0

    def update(self, stats: np.ndarray, phase: int) -> None:
        if phase != self.phase:
            self.phase = phase
            self.phase_tokens[:] = 0
        self.tokens += stats[0]
        self.phase_tokens += stats[0]
        self.docs += stats[1]
        self.epochs = np.maximum(self.epochs, stats[2])
        self.batches += 1

    # -- reporting ----------------------------------------------------------------------------
    def rows(self) -> list[dict[str, Any]]:
        """One row per source: the current phase's sources first (in mix order), then the rest."""
        mix_name, targets = self.phases[self.phase]
        phase_total = max(int(self.phase_tokens.sum()), 1)
        order = [self.names.index(n) for n in targets] + [i for i, n in enumerate(self.names) if n not in targets]
        out = []
        for i in order:
            name = self.names[i]
            target = targets.get(name, 0.0)
            realized = float(self.phase_tokens[i]) / phase_total
            out.append(
                {
                    "source": name,
                    "target": target,
                    "realized": realized,
                    "delta_pp": 100.0 * (realized - target),
                    "tokens": int(self.tokens[i]),
                    "phase_tokens": int(self.phase_tokens[i]),
                    "documents": int(self.docs[i]),
                    "epoch": int(self.epochs[i]),
                }
            )
        return out

    def metrics(self, prefix: str = "data") -> dict[str, float]:
        """Flat scalars for console / tensorboard: `<prefix>/<source>/{fraction,target,tokens,epoch}`."""
        out: dict[str, float] = {f"{prefix}/phase": float(self.phase)}
        for row in self.rows():
            key = f"{prefix}/{row['source']}"
            out[f"{key}/fraction"] = row["realized"]
            out[f"{key}/target"] = row["target"]
            out[f"{key}/tokens"] = float(row["tokens"])
            out[f"{key}/epoch"] = float(row["epoch"])
        return out

    def summary(self, max_sources: int = 8) -> str:
        """One console line, largest targets first: `mix m (realized/target): web 54.80%/54.84% e0 | ...`."""
        mix_name, _ = self.phases[self.phase]
        rows = sorted((r for r in self.rows() if r["target"] > 0 or r["phase_tokens"] > 0), key=lambda r: -r["target"])
        parts = [
            f"{r['source']} {100 * r['realized']:.2f}%/{100 * r['target']:.2f}% e{r['epoch']}"
            for r in rows[:max_sources]
        ]
        more = f" | +{len(rows) - max_sources} more" if len(rows) > max_sources else ""
        return f"mix {mix_name} (realized/target): " + " | ".join(parts) + more

    def table(self) -> str:
        mix_name, _ = self.phases[self.phase]
        rows = self.rows()
        width = max(12, *(len(r["source"]) for r in rows))
        total = int(self.phase_tokens.sum())
        lines = [
            f"mix {mix_name}: {total:,} tokens in this phase, {self.batches} batches",
            f"{'source':<{width}}  {'target':>8}  {'realized':>8}  {'Δ pp':>6}  {'tokens':>13}  {'docs':>9}  {'epoch':>5}",
        ]
        for r in rows:
            lines.append(
                f"{r['source']:<{width}}  {100 * r['target']:7.2f}%  {100 * r['realized']:7.2f}%  "
                f"{r['delta_pp']:+6.2f}  {r['tokens']:>13,}  {r['documents']:>9,}  {r['epoch']:>5}"
            )
        return "\n".join(lines)

    def to_json(self) -> str:
        mix_name, _ = self.phases[self.phase]
        return json.dumps(
            {
                "mix": mix_name,
                "phase": self.phase,
                "batches": self.batches,
                "tokens": int(self.phase_tokens.sum()),
                "sources": self.rows(),
            },
            indent=2,
        )

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        return {
            "names": self.names,
            "tokens": self.tokens.tolist(),
            "docs": self.docs.tolist(),
            "phase_tokens": self.phase_tokens.tolist(),
            "epochs": self.epochs.tolist(),
            "phase": self.phase,
            "batches": self.batches,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        index = {n: i for i, n in enumerate(state["names"])}
        for attr in ("tokens", "docs", "phase_tokens", "epochs"):
            saved = state[attr]
            arr = np.zeros(len(self.names), np.int64)
            for i, n in enumerate(self.names):
                if n in index:
                    arr[i] = saved[index[n]]
            setattr(self, attr, arr)
        self.phase, self.batches = int(state["phase"]), int(state["batches"])
