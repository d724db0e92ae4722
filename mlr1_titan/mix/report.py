"""The report folder of a scoring run: per-source table (markdown + JSON), a bar chart, per-sample scores.

summary.md      what was scored, with what, and the per-source table
sources.json    the same table, machine-readable
weights.png     bar chart of the new weights (and rho_g)
samples.npz     per-sample source id, scored tokens, joint influence and every influence column
influence.png   (filter) histogram of the joint influence per source, the paper's Fig. 8 view
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from mlr1_titan.mix.aggregate import Evaluation, SourceScore


def _plot():
    import matplotlib  # deferred: only the report needs it

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def bar_chart(path: Path, scores: list[SourceScore], title: str) -> None:
    plt = _plot()
    names = [s.name for s in scores]
    fig, (ax_w, ax_r) = plt.subplots(1, 2, figsize=(11, 0.45 * len(names) + 1.6), sharey=True)
    y = np.arange(len(names))
    ax_w.barh(y, [100 * s.weight for s in scores], color="#3b6ea8")
    ax_w.set_yticks(y, names)
    ax_w.invert_yaxis()
    ax_w.set_xlabel("new weight (% of tokens)")
    ax_r.barh(y, [s.rho for s in scores], color=["#3b8a4a" if s.rho > 0 else "#b5443b" for s in scores])
    ax_r.axvline(0, color="black", linewidth=0.8)
    ax_r.set_xlabel("rho_g (token-weighted joint influence)")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def histograms(path: Path, names: list[str], joint_by_source: list[np.ndarray], title: str) -> None:
    plt = _plot()
    cols = min(4, len(names))
    rows = -(-len(names) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.2 * cols, 2.4 * rows), squeeze=False)
    for ax, name, values in zip(axes.flat, names, joint_by_source):
        ax.hist(values, bins=40, color="#3b6ea8")
        ax.axvline(0, color="#b5443b", linewidth=1)
        ax.set_title(f"{name} ({100 * float((values > 0).mean()):.0f}% > 0)", fontsize=9)
    for ax in list(axes.flat)[len(names) :]:
        ax.axis("off")
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def _fmt(x: float) -> str:
    return f"{x:.4g}"


def source_table_md(
    scores: list[SourceScore], domains: dict[str, list[str]], extra: dict[str, list[str]] | None = None
) -> str:
    caps = list(scores[0].per_capability)
    head = (
        ["source", "samples", "tokens", "rho_g", "weight %"]
        + [f"rho {c}" for c in caps]
        + ["checkpoint spread", "domains"]
    )
    head += list(extra or {})
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for i, s in enumerate(scores):
        per_ckpt = [v for values in s.per_checkpoint.values() for v in values]
        spread = f"{_fmt(min(per_ckpt))} .. {_fmt(max(per_ckpt))}" if len(per_ckpt) > 1 else "-"
        member = [c for c, names in domains.items() if s.name in names]
        row = [s.name, str(s.samples), str(s.tokens), _fmt(s.rho), f"{100 * s.weight:.2f}"]
        row += [_fmt(s.per_capability[c]) for c in caps] + [spread, ", ".join(member) or "-"]
        row += [values[i] for values in (extra or {}).values()]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def write_report(
    report_dir: str | os.PathLike,
    *,
    title: str,
    intro: list[str],
    scores: list[SourceScore],
    evals: list[Evaluation],
    domains: dict[str, list[str]],
    samples: dict[str, np.ndarray],
    extra_columns: dict[str, list[str]] | None = None,
    notes: list[str] = (),
) -> Path:
    out = Path(report_dir)
    out.mkdir(parents=True, exist_ok=True)
    np.savez(out / "samples.npz", **samples)
    (out / "sources.json").write_text(
        json.dumps(
            {
                "evaluations": [e.__dict__ for e in evals],
                "sources": [s.__dict__ for s in scores],
            },
            indent=1,
        )
    )
    bar_chart(out / "weights.png", scores, title)
    clipped = [s.name for s in scores if s.rho <= 0]
    body = [f"# {title}", "", *intro, "", source_table_md(scores, domains, extra_columns), ""]
    if clipped:
        body += [f"Weight 0 (rho_g <= 0, their tokens on average raise the probe loss): {', '.join(clipped)}.", ""]
    body += [*notes, "", "![weights](weights.png)", ""]
    (out / "summary.md").write_text("\n".join(body))
    return out
