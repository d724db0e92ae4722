"""The GPU check: one prepared script (about 8 minutes on one H100 / H200) that prints four tables.

Budget on one H100/H200: (a) + (b) about 1.5 minutes, (c) about 6 (9 trainer runs, 3 of them
compiling); where one command may take at most 10 minutes, run the parts separately
(``--parts a b``, then ``--parts c``).

(a) flex vs sdpa_doc attention, forward + backward on a packed batch: max logit and gradient
    differences (bf16 tolerance), same weights;
(b) CUDA graphs on vs off: 6 steps of the real trainer for tiny and 140M: equal losses, peak memory;
(c) throughput of the real trainer: tokens/s/GPU, MFU and peak memory for 140M / 360M / 950M at the
    Table 2 per-GPU batch: compile off, compile on, compile + float8 rowwise (SM89+ only), on documents
    of realistic length (log-normal around 1,000 words, not the demo's 40-token ones);
(d) distillation: benchmarks/kd_overhead.py with the 950M student and an 8B-shaped teacher on one card.

    python benchmarks/gpu_check.py                    # everything
    python benchmarks/gpu_check.py --parts a b        # a subset
    python benchmarks/gpu_check.py --sizes 950m --steps 20

Targets (issue "cluster fidelity"): 950M bf16 + compile >= 50k tokens/s/GPU and >= 45% MFU on one
H100/H200. On a host without CUDA it says so and exits 0.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
_LINE = re.compile(r"step:\s*(\d+).*?loss:\s*([\d.]+).*?memory:\s*([\d.]+)GiB.*?tps:\s*([\d,]+).*?mfu:\s*([\d.]+)%")
_WORDS = "the of and to in is that for it as with was on be by this are from at or an which".split()


def _trainer(config: str, dump: Path, *overrides: str, timeout: int = 600) -> dict:
    cmd = [
        sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=1",
        "--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0",
        "-m", "torchtitan.train", "--module", "mlr1_titan", "--config", config,
        "--dump_folder", str(dump), "--metrics.log_freq", "1", "--metrics.no-enable-tensorboard",
        "--checkpoint.no-enable", *overrides,
    ]  # fmt: skip
    begin = time.monotonic()
    try:
        proc = subprocess.run(
            cmd, capture_output=True, text=True, timeout=timeout, env=dict(os.environ, PYTHONUNBUFFERED="1")
        )
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout} s: {' '.join(cmd)}"}
    log = proc.stdout + proc.stderr
    if proc.returncode != 0:
        return {"error": log[-2000:]}
    rows = [
        {"step": int(s), "loss": float(loss), "mem": float(m), "tps": float(t.replace(",", "")), "mfu": float(u)}
        for s, loss, m, t, u in _LINE.findall(log)
    ]
    return {"rows": rows, "seconds": time.monotonic() - begin}


def _realistic_mix(folder: Path, n_docs: int = 20_000, seed: int = 0) -> Path:
    """A local jsonl corpus of documents ~ log-normal(1000 words) and a mix TOML that reads it."""
    rng = random.Random(seed)
    with open(folder / "docs.jsonl", "w") as f:
        for _ in range(n_docs):
            n = max(50, min(16_000, int(rng.lognormvariate(math.log(1000), 0.8))))
            f.write(json.dumps({"text": " ".join(rng.choice(_WORDS) for _ in range(n))}) + "\n")
    mix = folder / "realistic.toml"
    mix.write_text(
        f'name = "realistic"\n[[sources]]\nname = "docs"\nkind = "local"\npath = "{folder / "docs.jsonl"}"\nweight = 1.0\n'
    )
    return mix


def part_a(args) -> None:
    import torch

    from mlr1_titan.model import model_registry

    print("\n(a) flex vs sdpa_doc, forward + backward, packed batch (bf16 autocast), same weights")
    print(f"{'flavor':>6} {'B x L':>10} {'docs/row':>9} {'max|dlogit|':>12} {'rel grad diff':>14}")
    for flavor, batch, seq in (("tiny", 4, 2048), ("140M", 4, 2048)):
        models = {}
        for backend in ("flex", "sdpa_doc"):
            spec = model_registry(flavor, attn_backend=backend)
            with torch.device("meta"):
                model = spec.model.build()
            model.to_empty(device="cuda")
            torch.manual_seed(0)
            with torch.no_grad():
                model.init_weights()
            models[backend] = model
        models["sdpa_doc"].load_state_dict(models["flex"].state_dict())
        g = torch.Generator().manual_seed(1)
        tokens = torch.randint(0, 128_000, (batch, seq), generator=g).cuda()
        cuts = sorted(set(torch.randint(1, seq, (7,), generator=g).tolist()))
        positions = torch.cat([torch.arange(b - a) for a, b in zip([0, *cuts], [*cuts, seq])]).repeat(batch, 1).cuda()
        out, grads = {}, {}
        for backend, model in models.items():
            model.zero_grad()
            masks = model.get_attention_masks(positions)
            with torch.autocast("cuda", dtype=torch.bfloat16):
                logits = model(tokens, positions=positions, attention_masks=masks)
            logits.float().square().mean().backward()
            out[backend] = logits.float()
            grads[backend] = torch.cat([p.grad.float().flatten() for p in model.parameters() if p.grad is not None])
        dlogit = (out["flex"] - out["sdpa_doc"]).abs().max().item()
        dgrad = ((grads["flex"] - grads["sdpa_doc"]).norm() / grads["flex"].norm()).item()
        print(f"{flavor:>6} {f'{batch}x{seq}':>10} {len(cuts) + 1:>9} {dlogit:>12.3e} {dgrad:>14.3e}")
        del models, out, grads
        torch.cuda.empty_cache()


def part_b(args, work: Path) -> None:
    print("\n(b) CUDA graphs on vs off: 6 steps of the real trainer, same seed")
    print(f"{'config':>10} {'graphs':>7} {'losses (steps 1..6)':>48} {'peak GiB':>9}")
    for config, batch, seq in (("mlr1_tiny", 4, 2048), ("mlr1_140m", 16, 2048)):
        runs = {}
        for graphs in (True, False):
            flags = ["--training.steps", "6", "--training.local_batch_size", str(batch),
                     "--training.global_batch_size", str(batch), "--training.seq_len", str(seq),
                     "--debug.seed", "0", "--debug.deterministic",
                     "--dataloader.mixture.mix", str(args.mix)]  # fmt: skip
            if not graphs:
                flags.append("--training.disable_cuda_graphs")
            r = runs[graphs] = _trainer(config, work / f"b_{config}_{graphs}", *flags)
            if "error" in r:
                print(f"{config:>10} {str(graphs):>7}  FAILED\n{r['error']}")
                continue
            losses = " ".join(f"{row['loss']:.4f}" for row in r["rows"])
            print(f"{config:>10} {str(graphs):>7} {losses:>48} {max(row['mem'] for row in r['rows']):>9.2f}")
        if all("rows" in r for r in runs.values()):
            a, b = ([row["loss"] for row in runs[g]["rows"]] for g in (True, False))
            print(f"{'':>10} max |loss difference| graphs on vs off: {max(abs(x - y) for x, y in zip(a, b)):.2e}")


def part_c(args, work: Path) -> None:
    import torch

    float8_ok = torch.cuda.get_device_capability() >= (8, 9)
    print(f"\n(c) throughput, 1 GPU, Table 2 per-GPU batch, realistic documents (mean of steps > {args.warmup})")
    print(f"{'flavor':>6} {'B x L':>9} {'compile':>8} {'float8':>7} {'tokens/s/GPU':>13} {'MFU %':>6} {'peak GiB':>9}")
    for size in args.sizes:
        batch, seq = 16, 2048  # Table 2 pre-training
        variants = [(False, "none"), (True, "none")] + ([(True, "rowwise")] if float8_ok else [])
        for compile_model, float8 in variants:
            flags = ["--training.steps", str(args.steps), "--training.local_batch_size", str(batch),
                     "--training.global_batch_size", str(batch), "--training.seq_len", str(seq),
                     "--dataloader.mixture.mix", str(args.mix), "--model.float8", float8,
                     "--compile.enable" if compile_model else "--compile.no-enable"]  # fmt: skip
            r = _trainer(f"mlr1_{size}", work / f"c_{size}_{compile_model}_{float8}", *flags)
            label = f"{size:>6} {f'{batch}x{seq}':>9} {str(compile_model):>8} {float8:>7}"
            if "error" in r:
                print(f"{label}  FAILED\n{r['error']}")
                continue
            steady = [row for row in r["rows"] if row["step"] > args.warmup] or r["rows"][-1:]
            tps = sum(row["tps"] for row in steady) / len(steady)
            mfu = sum(row["mfu"] for row in steady) / len(steady)
            print(f"{label} {tps:>13,.0f} {mfu:>6.1f} {max(row['mem'] for row in r['rows']):>9.2f}")
    if not float8_ok:
        print(f"float8 skipped: {torch.cuda.get_device_name()} is below SM89")


def part_d(args, work: Path) -> None:
    """950M student + Llama-3.1-8B-shaped teacher (random weights) on one card: kd_overhead.py's table."""
    print("\n(d) distillation (950M student + 8B-shaped teacher, bf16, batch 4 x 4096, chunk 2048 tokens)", flush=True)
    cmd = [sys.executable, str(Path(__file__).with_name("kd_overhead.py")), "--student", "950M", "--teacher", "8B",
           "--seq-lens", "2048,4096", "--batch", "4", "--chunk-tokens", "2048", "--device", "cuda",
           "--dtype", "bfloat16", "--steps", "5", "--warmup", "2"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True)
    try:
        proc.wait(timeout=420)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)  # its measuring children hold the GPU too
        print("(d) timed out after 420 s")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--parts", nargs="+", default=["a", "b", "c", "d"], choices=["a", "b", "c", "d"])
    parser.add_argument("--sizes", nargs="+", default=["140m", "360m", "950m"])
    parser.add_argument("--steps", type=int, default=20, help="steps per throughput run")
    parser.add_argument("--warmup", type=int, default=10, help="steps left out of the throughput means")
    args = parser.parse_args()

    import torch

    if not torch.cuda.is_available():
        print("no CUDA GPU on this host: gpu_check measures nothing here")
        return 0
    print(
        f"GPU: {torch.cuda.get_device_name()} (SM {'.'.join(map(str, torch.cuda.get_device_capability()))}), torch {torch.__version__}"
    )
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        args.mix = _realistic_mix(work)
        for part in args.parts:
            {"a": lambda: part_a(args), "b": lambda: part_b(args, work), "c": lambda: part_c(args, work),
             "d": lambda: part_d(args, work)}[part]()  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
