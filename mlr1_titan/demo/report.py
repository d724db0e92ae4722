"""The demo's report: wall time per stage, held-out accuracy after each training phase, and the
loss curves of every training stage (one PNG, from the stages' tensorboard logs)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from mlr1_titan.evaluation.report import FILTER

ROW_LABELS = {
    "pretrain_phase2": "after pre-training",
    "midtrain_phase2": "after mid-training",
    "sft_general": "after general SFT",
    "sft_reasoning": "after reasoning SFT",
}
TRAINING_STAGES = (
    "domain_model", "pretrain_phase1", "pretrain_phase2", "midtrain_phase1", "midtrain_phase2", "sft_general",
    "sft_reasoning",
)  # fmt: skip
LOSS_TAG = "loss_metrics/global_avg_loss"
"""torchtitan's tensorboard tag of the training loss."""


@dataclass(frozen=True)
class Report:
    text: str
    path: Path
    accuracy: dict[str, dict[str, float | None]]
    """stage -> "<task> pass@1" / "<task> maj@n" -> value in [0, 1] (None: not measured)."""


def _metric(results: dict, task: str, name: str) -> float | None:
    value = results.get("results", {}).get(task, {}).get(f"{name},{FILTER}")
    return None if value is None or value == "N/A" else float(value)


def read_accuracy(eval_dir: Path, samples: int) -> dict[str, dict[str, float | None]]:
    """stage -> metrics, for every evaluated stage with a results.json under ``eval_dir``: pass@1
    and maj@n for math, pass@1 and pass@n for code (code answers have no majority vote)."""
    out = {}
    for stage in ROW_LABELS:
        path = eval_dir / stage / "results.json"
        if not path.is_file():
            continue
        results = json.loads(path.read_text())
        row = {}
        row["math pass@1"] = _metric(results, "r1_gsm8k", "pass@1")
        row["math maj@n"] = _metric(results, "r1_gsm8k", "maj@n")
        row["code pass@1"] = _metric(results, "r1_humaneval_plus", "pass@1")
        row["code pass@n"] = _metric(results, "r1_humaneval_plus", f"pass@{samples}")
        out[stage] = row
    return out


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def accuracy_table(accuracy: dict[str, dict[str, float | None]], samples: int) -> str:
    lines = [
        f"| held-out problems ({samples} samples each) | math pass@1 (%) | math maj@{samples} (%) | "
        f"code pass@1 (%) | code pass@{samples} (%) |",
        "|---|---:|---:|---:|---:|",
    ]
    for stage, label in ROW_LABELS.items():
        if stage in accuracy:
            a = accuracy[stage]
            lines.append(
                f"| {label} | {_pct(a['math pass@1'])} | {_pct(a['math maj@n'])} | "
                f"{_pct(a['code pass@1'])} | {_pct(a['code pass@n'])} |"
            )
    return "\n".join(lines)


def read_losses(run_dir: Path) -> dict[str, list[tuple[int, float]]]:
    """stage -> [(step, loss)] from the tensorboard events under ``<run_dir>/<stage>/tb``."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out = {}
    for stage in TRAINING_STAGES:
        points: dict[int, float] = {}
        for events in sorted((run_dir / stage).glob("tb/**/events.out.tfevents.*")):
            acc = EventAccumulator(str(events), size_guidance={"scalars": 0})
            acc.Reload()
            if LOSS_TAG in acc.Tags().get("scalars", []):
                points.update({e.step: e.value for e in acc.Scalars(LOSS_TAG)})
        if points:
            out[stage] = sorted(points.items())
    return out


def plot_losses(losses: dict[str, list[tuple[int, float]]], path: Path) -> Path:
    """All stages on one axis, one after the other (each stage's steps offset by the ones before)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(11, 4.5))
    offset = 0
    for stage, points in losses.items():
        steps = [offset + s for s, _ in points]
        ax.plot(steps, [v for _, v in points], label=stage, linewidth=1.4, marker="o" if len(points) < 5 else None)
        ax.axvline(offset, color="0.85", linewidth=0.8)
        offset = steps[-1]
    ax.set_xlabel("step (stages one after the other)")
    ax.set_ylabel("training loss (KD loss in mid-training)")
    ax.set_title("mlr1 demo: the MobileLLM-R1 recipe at tiny scale")
    ax.legend(fontsize=8, ncol=4)
    ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path


def write_report(chain) -> Report:
    """report.md (and loss_curves.png) in the chain's folder; the text is also returned for printing."""
    lines = ["# mlr1 demo report", "", "| stage | result | wall time |", "|---|---|---:|"]
    for r in chain.results:
        lines.append(
            f"| {r.name} | {'ok' if r.returncode == 0 else f'FAILED (exit {r.returncode})'} | {r.seconds:.0f} s |"
        )
    total = sum(r.seconds for r in chain.results)
    lines += [f"| **all** | | **{total / 60:.1f} min** |", ""]
    accuracy = read_accuracy(chain.run_dir / "eval", chain.settings.eval_samples)
    if accuracy:
        lines += [accuracy_table(accuracy, chain.settings.eval_samples), ""]
    losses = read_losses(chain.run_dir)
    if losses:
        png = plot_losses(losses, chain.out / "loss_curves.png")
        lines += [f"loss curves: {png}", f"tensorboard: tensorboard --logdir {chain.run_dir}", ""]
    text = "\n".join(lines)
    path = chain.out / "report.md"
    path.write_text(text + "\n")
    return Report(text + f"report: {path}\n", path, accuracy)
