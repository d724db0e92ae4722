"""Export (and re-import) the 950M flavor with random weights on this machine: sizes, time, peak RSS.

    .venv/bin/python benchmarks/export_hf.py                 # fp32 + bf16 export, then import
    .venv/bin/python benchmarks/export_hf.py --flavor 140M --workdir ./bench_export --keep

Step 1 builds ``model_registry(flavor)`` on CPU with its real init and saves it as a single-rank DCP
checkpoint (what a seed / model-only checkpoint holds). Each conversion then runs as its own
``mlr1`` process, so the peak RSS reported is that of the conversion alone (``os.wait4`` of the child).
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def build_checkpoint(flavor: str, out: Path) -> None:
    code = f"""
import torch, torch.distributed.checkpoint as dcp
from mlr1_titan.model import model_registry
spec = model_registry({flavor!r}, attn_backend="sdpa_doc")
with torch.device("meta"):
    model = spec.model.build()
model.to_empty(device="cpu")
torch.manual_seed(0)
with torch.no_grad():
    model.init_weights()
dcp.save(dict(model.state_dict()), checkpoint_id={str(out)!r}, no_dist=True)
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO)


def folder_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def run_child(args: list[str]) -> tuple[float, float]:
    """Run ``mlr1 <args>``; returns (seconds, peak RSS in GB) of that process alone (wait4)."""
    start = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "mlr1_titan.cli", *args], cwd=REPO)
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode:
        raise subprocess.CalledProcessError(proc.returncode, proc.args)
    return time.monotonic() - start, usage.ru_maxrss / 1e6  # ru_maxrss is in KB on Linux


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--flavor", default="950M")
    parser.add_argument("--workdir", default=None, help="where to write (default: a temp dir, removed)")
    parser.add_argument("--keep", action="store_true", help="keep the written checkpoints")
    parser.add_argument("--dtypes", default="float32,bfloat16")
    parser.add_argument("--no-import", action="store_true")
    args = parser.parse_args()

    work = Path(args.workdir or tempfile.mkdtemp(prefix="mlr1_export_bench_"))
    work.mkdir(parents=True, exist_ok=True)
    ckpt = work / "checkpoint" / "step-0"
    rows = []
    try:
        start = time.monotonic()
        if not (ckpt / ".metadata").is_file():
            build_checkpoint(args.flavor, ckpt)
        print(
            f"DCP checkpoint ({args.flavor}, fp32 random weights): {folder_size(ckpt) / 1e9:.2f} GB "
            f"[{time.monotonic() - start:.0f} s to build]"
        )
        dtypes = args.dtypes.split(",")
        for dtype in dtypes:
            out = work / f"hf-{dtype}"
            shutil.rmtree(out, ignore_errors=True)
            seconds, rss = run_child(["export-hf", str(ckpt), str(out), "--dtype", dtype])
            weights = sum(p.stat().st_size for p in out.glob("*.safetensors"))
            rows.append((f"export-hf {dtype}", seconds, rss, weights, folder_size(out)))
        if not args.no_import:
            source_dtype = "float32" if "float32" in dtypes else dtypes[0]
            source = work / f"hf-{source_dtype}"
            out = work / "imported"
            shutil.rmtree(out, ignore_errors=True)
            seconds, rss = run_child(["import-hf", str(source), str(out)])
            rows.append((f"import-hf ({source_dtype})", seconds, rss, folder_size(out), folder_size(out)))
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)
    print(f"\n{'step':24s} {'time':>8s} {'peak RSS':>9s} {'weights':>9s} {'folder':>9s}")
    for name, seconds, rss, weights, total in rows:
        print(f"{name:24s} {seconds:7.1f}s {rss:8.2f}G {weights / 1e9:8.2f}G {total / 1e9:8.2f}G")
    return 0


if __name__ == "__main__":
    sys.exit(main())
