"""The Markdown table of an evaluation (written next to results.json by ``mlr1 eval``)."""

from __future__ import annotations

from .metrics import PASS_AT_K_LADDER

FILTER = "graded"


def _pct(value) -> str:
    return f"{100 * value:.1f}" if isinstance(value, (int, float)) else "–"


def _with_stderr(metrics: dict, name: str) -> str:
    value = metrics.get(f"{name},{FILTER}")
    err = metrics.get(f"{name}_stderr,{FILTER}")
    if not isinstance(value, (int, float)):
        return "–"
    return f"{_pct(value)} ± {_pct(err)}" if isinstance(err, (int, float)) else _pct(value)


def _pass_at_k(metrics: dict) -> str:
    """Every reported pass@k with k >= 2, e.g. ``k=2: 50.0, k=4: 75.0``."""
    values = [
        f"k={k}: {_pct(metrics[f'pass@{k},{FILTER}'])}"
        for k in PASS_AT_K_LADDER
        if isinstance(metrics.get(f"pass@{k},{FILTER}"), (int, float))
    ]
    return ", ".join(values) or "–"


def markdown_table(results: dict) -> str:
    """One row per task (problems, samples per problem, metrics in %), then one row per group."""
    header = (
        "| Task | Problems | Samples/problem | pass@1 (%) | maj@n (%) | pass@k (%) | Truncated (%) | No answer (%) |\n"
        "|---|---:|---:|---:|---:|---:|---:|---:|\n"
    )
    rows = []
    per_task = results.get("results", {})
    groups = results.get("groups", {})
    for task in sorted(per_task):
        if task in groups:
            continue
        metrics = per_task[task]
        n_docs = results.get("n-samples", {}).get(task, {}).get("effective", "?")
        repeats = results.get("configs", {}).get(task, {}).get("repeats", "?")
        rows.append(
            f"| {task} | {n_docs} | {repeats} | {_with_stderr(metrics, 'pass@1')} | "
            f"{_pct(metrics.get(f'maj@n,{FILTER}'))} | {_pass_at_k(metrics)} | "
            f"{_pct(metrics.get(f'truncated,{FILTER}'))} | {_pct(metrics.get(f'no_answer,{FILTER}'))} |"
        )
    for group in sorted(groups):
        metrics = groups[group]
        rows.append(
            f"| **{group}** (mean of tasks) | | | {_pct(metrics.get(f'pass@1,{FILTER}'))} | | | "
            f"{_pct(metrics.get(f'truncated,{FILTER}'))} | |"
        )
    return header + "\n".join(rows) + "\n"
