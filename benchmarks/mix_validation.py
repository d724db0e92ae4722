"""Influence-based mixture scoring on the controlled problem (mlr1_titan.mix.controlled), CPU.

Prints: the weights `mlr1 mix score` finds for arithmetic / counting / prose / noise against held-out
arithmetic probes; the held-out probe loss of a model trained on the scored mix vs on the uniform
mix with the same token budget (ratio < 1: the scored mix is better); the share of noise documents
injected into a clean source that `mlr1 mix filter` removes; and scoring throughput (samples/s).

    python benchmarks/mix_validation.py [--steps 600] [--samples 256] [--seeds 0 1 2]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

from mlr1_titan.byte_tokenizer import ByteTokenizer
from mlr1_titan.data.mix_config import load_mix
from mlr1_titan.data.shards import ShardReader, plan_shard_source, tokenizer_fingerprint
from mlr1_titan.mix import controlled
from mlr1_titan.mix.filter import FilterJob, run_filter
from mlr1_titan.mix.gradients import GradientSettings
from mlr1_titan.mix.score import ScoreJob, run_score

GRADIENT = GradientSettings(last_blocks=2, batch_size=16, max_tokens=128)


def quiet(*_):
    pass


def one_seed(root: Path, seed: int, steps: int, samples: int) -> dict:
    problem = controlled.write_problem(root, seed=seed)
    controlled.train(problem.uniform_mix, root / "domain", steps=steps, save_every=steps // 3, seed=seed)
    scored = run_score(
        ScoreJob(
            sources=str(problem.uniform_mix),
            probes={"arithmetic": str(problem.probe)},
            checkpoints={"arithmetic": [str(root / "domain" / "step-*")]},
            out=str(root / "scored.toml"),
            report=str(root / "report"),
            tokenizer=ByteTokenizer(),
            samples_per_source=samples,
            gradient=GRADIENT,
        ),
        log=quiet,
    )
    weights = {s.name: s.weight for s in scored.scores}
    losses = {}
    for name, mix in (("uniform", problem.uniform_mix), ("scored", root / "scored.toml")):
        model = controlled.train(mix, None, steps=steps, seed=seed + 100)
        losses[name] = controlled.answer_loss(model, problem.judge)

    # Noise injected into a clean source: what share does the filter drop?
    dirty_mix, clean, noise = controlled.write_dirty_mix(problem, seed=seed)
    filtered = run_filter(
        FilterJob(
            model=str(root / "domain" / f"step-{steps - steps % (steps // 3)}"),
            sources=str(dirty_mix),
            probes={"arithmetic": str(problem.probe)},
            out=str(root / "filtered"),
            tokenizer=ByteTokenizer(),
            gradient=GRADIENT,
            block_size=128,
        ),
        log=quiet,
    )
    spec = load_mix(filtered.mix_file).sources[0]
    plan = plan_shard_source(spec, spec.path[0], tokenizer_fingerprint(ByteTokenizer()), expect_source_hash=False)
    reader = ShardReader(plan, seed=0, rank=0, world=1)
    kept = {ByteTokenizer().decode(reader.next_doc()) for _ in range(plan.total_documents)}
    removed_noise = sum(d not in kept for d in noise) / len(noise)
    kept_clean = sum(d in kept for d in clean) / len(clean)
    return dict(
        weights=weights, losses=losses, recall=removed_noise, kept_clean=kept_clean, rate=scored.samples_per_second
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=600)
    parser.add_argument("--samples", type=int, default=256, help="samples per source to score")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    args = parser.parse_args()
    print(f"controlled problem: {controlled.SOURCES}; probes: held-out arithmetic; {args.steps} steps per model")
    print(
        f"{'seed':>4} | "
        + " | ".join(f"{s:>10}" for s in controlled.SOURCES)
        + " | answer loss uniform -> scored (ratio) | noise removed | clean kept | samples/s"
    )
    for seed in args.seeds:
        with tempfile.TemporaryDirectory() as tmp:
            r = one_seed(Path(tmp), seed, args.steps, args.samples)
        w, loss = r["weights"], r["losses"]
        print(
            f"{seed:>4} | "
            + " | ".join(f"{100 * w[s]:>9.1f}%" for s in controlled.SOURCES)
            + f" | {loss['uniform']:.3f} -> {loss['scored']:.3f} ({loss['scored'] / loss['uniform']:.3f})"
            + f" | {100 * r['recall']:.0f}% | {100 * r['kept_clean']:.0f}% | {r['rate']:.0f}"
        )


if __name__ == "__main__":
    main()
