"""What logit distillation costs over cross-entropy: step time and peak memory, in one run.

Three kinds of step on the same student, teacher and batch (random weights; cost does not depend on them):

* ``ce``: student forward + chunked CE + backward + AdamW step (the CE-only step);
* ``teacher``: teacher forward + its lm_head over every chunk of tokens, under no_grad;
* ``kd``: the distillation step (teacher forward, student forward, chunked KL, backward, AdamW step).

The floor of a KD step is ``ce + teacher``: printed are kd / ce, kd / floor (goal <= 1.1), and the
peak memory of each step above the resident models, at two sequence lengths -- the KD excess must
not grow with the sequence (the logits are bounded by loss.chunk_tokens). Each (kind, sequence) is
measured in its own process, so a peak is that step's alone (CPU: peak RSS; CUDA: peak allocated).

    .venv/bin/python benchmarks/kd_overhead.py                       # tiny student + tiny teacher, CPU
    .venv/bin/python benchmarks/kd_overhead.py --student 950M --teacher 8B --seq-lens 4096 \
        --batch 4 --chunk-tokens 2048 --device cuda --dtype bfloat16  # one GPU: 950M + 8B
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time

import torch

from mlr1_titan.components.loss import MLR1Loss
from mlr1_titan.distill.kd_loss import DistillationLoss
from mlr1_titan.distill.teacher import teacher_model_config
from mlr1_titan.distill.teacher_folder import TeacherShape
from mlr1_titan.distill.tiny_teacher import TinyTeacherRecipe
from mlr1_titan.model import document_causal_mask, model_registry

_TINY = TinyTeacherRecipe()
TEACHERS = {
    "tiny": TeacherShape(
        dim=_TINY.hidden_size, n_layers=_TINY.num_hidden_layers, n_heads=_TINY.num_attention_heads,
        n_kv_heads=_TINY.num_key_value_heads, head_dim=_TINY.hidden_size // _TINY.num_attention_heads,
        ffn_hidden_dim=_TINY.intermediate_size, vocab_size=128256, norm_eps=1e-5, rope_theta=5e5,
        rope_scaling=None, tie_word_embeddings=False,
    ),
    # Llama-3.1-8B-Instruct's config.json
    "8B": TeacherShape(
        dim=4096, n_layers=32, n_heads=32, n_kv_heads=8, head_dim=128, ffn_hidden_dim=14336, vocab_size=128256,
        norm_eps=1e-5, rope_theta=5e5, tie_word_embeddings=False,
        rope_scaling={"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                      "original_max_position_embeddings": 8192},
    ),
}  # fmt: skip


def _build(config, device, dtype):
    with torch.device("meta"):
        model = config.build()
    model.to_empty(device=device)
    torch.manual_seed(0)
    with torch.no_grad():
        model.init_weights()
    return model.to(dtype)


def measure(kind: str, args) -> dict:
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    backend = "sdpa_doc" if device.type == "cpu" else "flex"
    student = _build(model_registry(args.student, attn_backend=backend).model, device, dtype)
    teacher = _build(teacher_model_config(TEACHERS[args.teacher], backend, max_seq_len=args.seq), device, dtype)
    teacher.requires_grad_(False)
    student._skip_lm_head = teacher._skip_lm_head = True
    vocab = 128256
    ce_loss = MLR1Loss.Config(chunk_tokens=args.chunk_tokens, vocab_size=vocab).build()
    kd_loss = MLR1Loss.Config(
        chunk_tokens=args.chunk_tokens, vocab_size=vocab, distillation=DistillationLoss.Config(global_vocab_size=vocab)
    ).build()
    for loss in (ce_loss, kd_loss):
        loss.set_lm_head(student.lm_head)
    kd_loss.loss_fn.set_teacher_lm_head(teacher.lm_head)
    kd_loss.loss_fn.stats.collect_agreement = False  # as on the steps that are not logged
    optimizer = torch.optim.AdamW(student.parameters(), lr=1e-4, foreach=True)

    g = torch.Generator().manual_seed(0)
    tokens = torch.randint(vocab, (args.batch, args.seq + 1), generator=g).to(device)
    inputs, labels = tokens[:, :-1], tokens[:, 1:]
    positions = torch.arange(args.seq, device=device).repeat(args.batch, 1)
    positions[:, args.seq // 2 :] -= args.seq // 2  # two documents per row
    masks = document_causal_mask(positions) if backend == "sdpa_doc" else student.get_attention_masks(positions)
    gvt = torch.tensor(float(labels.numel()), device=device)

    def teacher_step():
        with torch.no_grad():
            hidden = teacher(inputs, positions=positions, attention_masks=masks)
            for chunk in hidden.flatten(0, 1).split(args.chunk_tokens):
                teacher.lm_head(chunk)

    def student_step(loss_fn, **teacher_kw):
        optimizer.zero_grad(set_to_none=True)
        hidden = student(inputs, positions=positions, attention_masks=masks)
        loss, _ = loss_fn(hidden, labels, gvt, **teacher_kw)
        loss.backward()
        optimizer.step()

    def kd_step():
        with torch.no_grad():
            hidden = teacher(inputs, positions=positions, attention_masks=masks)
        student_step(kd_loss, teacher_hidden=hidden)

    step = {"ce": lambda: student_step(ce_loss), "teacher": teacher_step, "kd": kd_step}[kind]
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
        base = torch.cuda.memory_allocated()
    else:
        base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    times = []
    for i in range(args.warmup + args.steps):
        sync()
        start = time.perf_counter()
        step()
        sync()
        if i >= args.warmup:
            times.append(time.perf_counter() - start)
    peak = (
        torch.cuda.max_memory_allocated()
        if device.type == "cuda"
        else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    )
    return {"seconds": statistics.median(times), "peak_bytes": peak - base, "tokens": labels.numel()}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--student", default="tiny")
    p.add_argument("--teacher", default="tiny", choices=sorted(TEACHERS))
    p.add_argument("--seq-lens", default="128,512", help="comma-separated sequence lengths")
    p.add_argument("--batch", type=int, default=2)
    p.add_argument("--chunk-tokens", type=int, default=256)
    p.add_argument("--steps", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--_measure", help=argparse.SUPPRESS)
    p.add_argument("--seq", type=int, help=argparse.SUPPRESS)
    args = p.parse_args()
    if args._measure:
        print(json.dumps(measure(args._measure, args)))
        return 0

    print(f"student {args.student}, teacher {args.teacher}, batch {args.batch}, chunk_tokens {args.chunk_tokens}, "
          f"{args.device} {args.dtype}, median of {args.steps} steps after {args.warmup}")  # fmt: skip
    rows = {}
    for seq in [int(s) for s in args.seq_lens.split(",")]:
        for kind in ("ce", "teacher", "kd"):
            cmd = [sys.executable, __file__, "--_measure", kind, "--seq", str(seq)]
            for name in ("student", "teacher", "batch", "chunk_tokens", "steps", "warmup", "device", "dtype"):
                cmd += [f"--{name.replace('_', '-')}", str(getattr(args, name))]
            run = subprocess.run(cmd, capture_output=True, text=True)
            if run.returncode != 0:
                print(f"seq {seq} {kind}: failed (rc {run.returncode})\n{run.stderr[-3000:]}")
                return 1
            rows[seq, kind] = json.loads(run.stdout.strip().splitlines()[-1])
        ce, teacher, kd = (rows[seq, k] for k in ("ce", "teacher", "kd"))
        floor = ce["seconds"] + teacher["seconds"]
        print(
            f"seq {seq:6d}: step s  ce {ce['seconds']:.3f}  teacher {teacher['seconds']:.3f}  kd {kd['seconds']:.3f}  "
            f"| kd/ce {kd['seconds'] / ce['seconds']:.2f}  kd/floor {kd['seconds'] / floor:.2f}  "
            f"| peak MiB  ce {ce['peak_bytes'] / 2**20:.0f}  kd {kd['peak_bytes'] / 2**20:.0f}  "
            f"kd-ce {(kd['peak_bytes'] - ce['peak_bytes']) / 2**20:.0f}  "
            f"| teacher {teacher['tokens'] / teacher['seconds']:,.0f} tok/s"
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
