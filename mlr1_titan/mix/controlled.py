"""The controlled problem that validates influence scoring (CPU, seconds): sources whose value for
the probe capability is known in advance, a byte-level tiny model, and a plain training loop over
the real mixture loader.

Sources (jsonl, one document per line):
  * ``arithmetic``: worked additions and subtractions - the capability the probes test;
  * ``counting``: number sequences (digits and the same names, but no sums);
  * ``prose``: clean English sentences without numbers;
  * ``noise``: random printable characters.
Probes: held-out arithmetic, new problems of the source's generator (the paper's probing sets are
representative samples of the domain corpora). Trained models are judged on other held-out
arithmetic, bare equations, a distribution that no source contains. Expected: arithmetic gets the
highest weight, noise the lowest, and a model trained on the scored mix beats the uniform mix.
"""

from __future__ import annotations

import json
import math
import random
import string
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from mlr1_titan.byte_tokenizer import ByteTokenizer
from mlr1_titan.data.mix_config import Phase, load_mix
from mlr1_titan.data.mixture_dataset import MixtureDataset
from mlr1_titan.hf.dcp_io import save_dcp
from mlr1_titan.hf.shapes import MODEL_TOML_NAME, model_toml_text
from mlr1_titan.hf.tokenizer_record import write_tokenizer_record
from mlr1_titan.mix.gradients import pad_batch
from mlr1_titan.model import build_on_cpu
from mlr1_titan.model.flavors import MLR1Flavor

FLAVOR = MLR1Flavor(
    n_layers=2, dim=64, n_heads=2, n_kv_heads=1, ffn_hidden_dim=192, head_dim=32, vocab_size=259, max_seq_len=512
)
"""A byte-vocabulary model of ~115k parameters: a training step is a few milliseconds."""

SOURCES = ("arithmetic", "counting", "prose", "noise")

_NAMES = ["Ada", "Ben", "Chen", "Dara", "Eli", "Fay", "Gus", "Hana"]
_NOUNS = ["river", "garden", "library", "forest", "harbor", "meadow", "village", "mountain", "market"]
_VERBS = ["walks past", "paints", "remembers", "visits", "describes", "leaves", "finds", "watches"]
_ADJS = ["quiet", "old", "green", "bright", "narrow", "distant", "busy", "calm"]


def _counting(rng: random.Random) -> str:
    start, step = rng.randint(10, 60), rng.randint(2, 9)
    seq = ", ".join(str(start + i * step) for i in range(6))
    return f"{rng.choice(_NAMES)} counts by {step}: {seq}."


def _arith(rng: random.Random) -> str:
    a, b = rng.randint(10, 99), rng.randint(10, 99)
    if rng.random() < 0.5:
        op, c = "+", a + b
    else:
        a, b = max(a, b), min(a, b)
        op, c = "-", a - b
    name = rng.choice(_NAMES)
    return f"{name} works it out: {a} {op} {b} = {c}. So {a} {op} {b} is {c}."


def _prose(rng: random.Random) -> str:
    words = []
    for _ in range(rng.randint(2, 3)):
        words.append(
            f"{rng.choice(_NAMES)} {rng.choice(_VERBS)} the {rng.choice(_ADJS)} {rng.choice(_NOUNS)}"
            f" near the {rng.choice(_NOUNS)}."
        )
    return " ".join(words)


def _noise(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + string.punctuation + " "
    return "".join(rng.choice(alphabet) for _ in range(rng.randint(40, 70)))


def source_documents(name: str, n: int, seed: int = 0) -> list[str]:
    rng = random.Random(f"{name}:{seed}")
    make = {
        "arithmetic": lambda: _arith(rng),
        "counting": lambda: _counting(rng),
        "prose": lambda: _prose(rng),
        "noise": lambda: _noise(rng),
    }[name]
    return [make() for _ in range(n)]


def probe_documents(n: int, seed: int = 1) -> list[str]:
    """Scoring probes: new problems from the arithmetic source's generator (as the paper's probing
    sets are representative samples of the domain's own corpora), disjoint from the source's files."""
    return source_documents("arithmetic", n, seed=1000 + seed)


def judge_documents(n: int, seed: int = 2) -> list[str]:
    """Held-out arithmetic for judging trained models: bare equations without the source's words,
    a distribution no source contains."""
    rng = random.Random(f"judge:{seed}")
    out = []
    for _ in range(n):
        a, b = rng.randint(10, 99), rng.randint(10, 99)
        if rng.random() < 0.5:
            out.append(f"{a} + {b} = {a + b}.")
        else:
            out.append(f"{max(a, b)} - {min(a, b)} = {max(a, b) - min(a, b)}.")
    return out


def write_jsonl(path: Path, texts: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps({"text": t}) + "\n" for t in texts))
    return path


def noisy_source(path: Path, n_clean: int, n_noise: int, seed: int) -> tuple[Path, list[str], list[str]]:
    """A clean arithmetic source with noise documents shuffled in: (file, clean docs, noise docs)."""
    clean = source_documents("arithmetic", n_clean, seed=seed)
    noise = source_documents("noise", n_noise, seed=seed)
    docs = clean + noise
    random.Random(seed).shuffle(docs)
    return write_jsonl(path, docs), clean, noise


def write_dirty_mix(problem: Problem, seed: int = 0) -> tuple[Path, list[str], list[str]]:
    """`dirty.toml`: 450 clean arithmetic documents with 50 noise documents shuffled in, beside the
    prose source; returns (mix file, clean docs, noise docs) for measuring what `filter` removes."""
    dirty, clean, noise = noisy_source(problem.root / "dirty" / "arithmetic.jsonl", 450, 50, seed=seed + 7)
    mix = write_mix_toml(
        problem.root / "dirty.toml",
        {"arithmetic_dirty": dirty, "prose": problem.sources["prose"]},
        {"arithmetic_dirty": 1, "prose": 1},
        "controlled_dirty",
    )
    return mix, clean, noise


def write_mix_toml(path: Path, files: dict[str, Path], weights: dict[str, float], name: str) -> Path:
    lines = [f'name = "{name}"', ""]
    for source, file in files.items():
        lines += [
            "[[sources]]",
            f'name = "{source}"',
            'kind = "local"',
            f'path = "{file}"',
            f"weight = {weights[source]}",
            "",
        ]
    path.write_text("\n".join(lines))
    return path


@dataclass(frozen=True)
class Problem:
    """The files of one controlled problem (see write_problem)."""

    root: Path
    sources: dict[str, Path]
    uniform_mix: Path
    probe: Path
    judge: Path


def write_problem(root: str | Path, docs_per_source: int = 2000, probe_docs: int = 64, seed: int = 0) -> Problem:
    """Source jsonl files, the uniform mix over them, the probe file (probes/arithmetic.jsonl, for
    scoring) and the judge file (judge/arithmetic.jsonl: bare equations, for judging trained models)."""
    root = Path(root)
    files = {
        s: write_jsonl(root / "sources" / f"{s}.jsonl", source_documents(s, docs_per_source, seed)) for s in SOURCES
    }
    mix = write_mix_toml(root / "uniform.toml", files, {s: 1.0 for s in SOURCES}, "controlled_uniform")
    probe = write_jsonl(root / "probes" / "arithmetic.jsonl", probe_documents(probe_docs, seed=1 + 10 * seed))
    judge = write_jsonl(root / "judge" / "arithmetic.jsonl", judge_documents(probe_docs, seed=2 + 10 * seed))
    return Problem(root, files, mix, probe, judge)


def train(
    mix: str | Path,
    out_dir: str | Path | None,
    *,
    steps: int,
    save_every: int = 0,
    batch_size: int = 16,
    seq_len: int = 128,
    lr: float = 3e-3,
    seed: int = 0,
) -> torch.nn.Module:
    """Train the controlled-problem model on `mix` with the real mixture loader; DCP checkpoints
    (`step-N`, with their mlr1_model.toml) every `save_every` steps into `out_dir`."""
    torch.manual_seed(seed)
    _, model = build_on_cpu(FLAVOR, seed=seed)
    data = MixtureDataset(
        [Phase(load_mix(mix), 0)], tokenizer=ByteTokenizer(), seq_len=seq_len, batch_size=batch_size, seed=seed
    )
    opt = torch.optim.AdamW(model.parameters(), lr=lr, betas=(0.9, 0.95), weight_decay=0.1)
    batches = iter(data)
    for step in range(1, steps + 1):
        for group in opt.param_groups:  # linear warmup, cosine decay to 10%
            warm = min(1.0, step / max(1, steps // 10))
            group["lr"] = lr * warm * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * step / steps)))
        inputs, labels = next(batches)
        logits = model(inputs["input"], inputs["positions"])
        loss = torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if out_dir is not None and save_every and step % save_every == 0:
            save_checkpoint(model, Path(out_dir) / f"step-{step}")
    return model


def save_checkpoint(model: torch.nn.Module, path: Path) -> Path:
    save_dcp({k: v.detach().clone() for k, v in model.state_dict().items()}, path)
    (path / MODEL_TOML_NAME).write_text(model_toml_text(FLAVOR, header="controlled-problem model"))
    write_tokenizer_record(path, ByteTokenizer())
    return path


@torch.no_grad()
def answer_loss(model: torch.nn.Module, judge_file: str | Path) -> float:
    """Mean next-token loss on the answers of the judge equations: the tokens after the last '='
    (the byte tokenizer maps one ASCII character to one token)."""
    tok = ByteTokenizer()
    texts = [json.loads(line)["text"] for line in open(judge_file) if line.strip()]
    docs = [np.asarray(tok.encode(t, add_bos=True, add_eos=True)) for t in texts]
    tokens_BL, mask_BL = pad_batch(docs, 10_000)
    answer_BL = torch.zeros_like(mask_BL)
    for i, text in enumerate(texts):
        answer_BL[i, text.rindex("=") + 3 : len(text) + 1] = True  # token = char + 1 (BOS): digits and "."
    logits = model(tokens_BL[:, :-1])
    nll = torch.nn.functional.cross_entropy(logits.float().transpose(1, 2), tokens_BL[:, 1:], reduction="none")
    weight = answer_BL[:, 1:].float()
    return float((nll * weight).sum() / weight.sum())
