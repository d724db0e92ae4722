"""Cost of influence scoring per sample, measured here, and the GPU-hours it implies for the paper's run.

For a flavor, times `mlr1 mix score`'s two kinds of work - per-sample gradients over the last 2
blocks with torch.func.vmap dotted with a probe vector, and batched probe gradients - against a full
training forward + backward of the same tokens, in the same run. With those ratios the estimate for
the paper's Datamix run (10k samples x 14 sources x 10 checkpoints x 3 domains, plus the probe sets'
gradients at every checkpoint; 950M) is 6 N tokens x ratio x count / (TF32 peak x utilisation).

    python benchmarks/mix_score_cost.py [--flavors tiny 950M] [--tokens 256] [--batch 4]
"""

from __future__ import annotations

import argparse
import time

import numpy as np
import torch

from mlr1_titan.mix.gradients import GradientModel, GradientSettings
from mlr1_titan.model import build_on_cpu

PAPER_SCORINGS = 10_000 * 14 * 10 * 3  # samples/source x sources x checkpoints x domains (paper Sec. 5.2)
PAPER_PROBE_DOCS = (6 + 7 + 7) * 10_000 * 10  # probe sets (member corpora x ~10k, Sec. 5.1.1) x 10 checkpoints
H100_TF32_FLOPS = 495e12  # dense TF32 peak: scoring runs in float32 with TF32 matmuls on CUDA
ASSUMED_MFU = 0.3


def measure(flavor: str, tokens: int, batch: int, repeats: int) -> dict:
    _, model = build_on_cpu(flavor)
    n_params = sum(p.numel() for p in model.parameters())
    rng = np.random.default_rng(0)
    docs = [rng.integers(3, 128_000, tokens) for _ in range(batch)]
    gm = GradientModel(model, GradientSettings(last_blocks=2, batch_size=batch, max_tokens=tokens))
    vector = torch.randn(1, gm.vector_dim)
    gm.scores(docs, vector)  # warm-up
    start = time.perf_counter()
    for _ in range(repeats):
        gm.scores(docs, vector)
    score_s = (time.perf_counter() - start) / repeats
    start = time.perf_counter()
    for _ in range(repeats):
        gm.mean_gradient(docs)
    probe_s = (time.perf_counter() - start) / repeats
    x = torch.as_tensor(np.stack(docs))
    params = list(model.parameters())

    def train_step():  # the baseline: a full forward + backward, what 6 N FLOPs per token counts
        logits = model(x[:, :-1])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), x[:, 1:].flatten())
        torch.autograd.grad(loss, params)

    train_step()
    start = time.perf_counter()
    for _ in range(repeats):
        train_step()
    plain_s = (time.perf_counter() - start) / repeats
    return dict(params=n_params, selected=gm.num_params, score_s=score_s, probe_s=probe_s, plain_s=plain_s)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--flavors", nargs="+", default=["tiny", "950M"])
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()
    print(
        f"per-sample influence scoring, last 2 blocks, {args.batch} x {args.tokens} tokens, {torch.get_num_threads()} CPU threads"
    )
    for flavor in args.flavors:
        r = measure(flavor, args.tokens, args.batch, args.repeats)
        score_ratio, probe_ratio = r["score_s"] / r["plain_s"], r["probe_s"] / r["plain_s"]
        print(
            f"{flavor:>5}: {r['params'] / 1e6:.0f}M params ({r['selected'] / 1e6:.1f}M in the gradient); "
            f"scoring {args.batch / r['score_s']:.2f} samples/s, probe gradient {args.batch / r['probe_s']:.2f} docs/s, "
            f"full fwd+bwd {args.batch / r['plain_s']:.2f} samples/s -> scoring costs x{score_ratio:.2f}, "
            f"probes x{probe_ratio:.2f} of a training step"
        )
        if flavor == "950M":
            for seq in (1024, 2048):
                step_flops = 6 * r["params"] * seq
                flops = step_flops * (PAPER_SCORINGS * score_ratio + PAPER_PROBE_DOCS * probe_ratio)
                hours = flops / (H100_TF32_FLOPS * ASSUMED_MFU) / 3600
                print(
                    f"  paper's Datamix run at {seq} tokens/sample ({PAPER_SCORINGS:,} sample-scorings + "
                    f"{PAPER_PROBE_DOCS:,} probe gradients): ~{hours:.0f} H100-hours at {ASSUMED_MFU:.0%} MFU"
                )


if __name__ == "__main__":
    main()
