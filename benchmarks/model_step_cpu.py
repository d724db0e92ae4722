"""Forward+backward throughput of our MobileLLM-R1 block vs transformers' Llama4ForCausalLM, on CPU.

Same shape, same weights (copied through the state-dict adapter), same batch, fp32, one run.
Prints tokens/s of each and the ratio (ours / transformers; > 1 means we are faster).

    .venv/bin/python benchmarks/model_step_cpu.py [--layers 4 --dim 256 --batch 4 --seq 256 --iters 5]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))

from model_testkit import llama4_text_config  # noqa: E402

from mlr1_titan.model import build_on_cpu  # noqa: E402
from mlr1_titan.model.flavors import MLR1_FLAVORS  # noqa: E402
from mlr1_titan.model.state_dict_adapter import MLR1StateDictAdapter  # noqa: E402


def step_times(fns, tokens, iters: int, warmup: int = 1) -> list[float]:
    """Median seconds per step of each fn; iterations are interleaved so load drifts hit both alike."""
    for _ in range(warmup):
        for fn in fns:
            fn(tokens)
    times = [[] for _ in fns]
    for _ in range(iters):
        for fn, acc in zip(fns, times):
            start = time.perf_counter()
            fn(tokens)
            acc.append(time.perf_counter() - start)
    return [statistics.median(t) for t in times]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--dim", type=int, default=256)
    parser.add_argument("--heads", type=int, default=4)
    parser.add_argument("--kv-heads", type=int, default=2)
    parser.add_argument("--ffn", type=int, default=768)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--seq", type=int, default=256)
    parser.add_argument("--iters", type=int, default=5)
    args = parser.parse_args()
    torch.manual_seed(0)

    flavor = MLR1_FLAVORS["tiny"].replace(
        n_layers=args.layers,
        dim=args.dim,
        n_heads=args.heads,
        n_kv_heads=args.kv_heads,
        ffn_hidden_dim=args.ffn,
        head_dim=args.dim // args.heads,
    )
    spec, ours = build_on_cpu(flavor)
    ours.train()

    from transformers import Llama4ForCausalLM

    theirs = Llama4ForCausalLM(llama4_text_config(flavor, max_position_embeddings=max(4096, args.seq)))
    theirs.load_state_dict(MLR1StateDictAdapter(spec.model, None).to_hf(ours.state_dict()), strict=False)
    theirs.tie_weights()
    theirs.config._attn_implementation = "sdpa"
    theirs.train()

    tokens = torch.randint(0, flavor.vocab_size, (args.batch, args.seq))
    labels = tokens.roll(-1, dims=1)

    def ours_step(x):
        logits = ours(x)
        torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten()).backward()
        ours.zero_grad(set_to_none=True)

    def theirs_step(x):
        logits = theirs(input_ids=x).logits
        torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten()).backward()
        theirs.zero_grad(set_to_none=True)

    n_tokens = args.batch * args.seq
    t_ours, t_theirs = step_times([ours_step, theirs_step], tokens, args.iters)
    print(
        f"config: layers={args.layers} dim={args.dim} heads={args.heads}/{args.kv_heads} ffn={args.ffn} "
        f"vocab={flavor.vocab_size} batch={args.batch} seq={args.seq} threads={torch.get_num_threads()}"
    )
    print(f"mlr1_titan   fwd+bwd: {n_tokens / t_ours:10.1f} tokens/s  ({t_ours * 1e3:.1f} ms/step)")
    print(f"transformers fwd+bwd: {n_tokens / t_theirs:10.1f} tokens/s  ({t_theirs * 1e3:.1f} ms/step)")
    print(f"ratio (mlr1_titan / transformers): {t_theirs / t_ours:.3f}")


if __name__ == "__main__":
    main()
