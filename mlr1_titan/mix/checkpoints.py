"""Scoring checkpoints: `NAME=GLOB` patterns -> ordered torchtitan DCP checkpoints -> loaded models.

A checkpoint is a DCP `step-N` folder (what the trainer writes, with its `mlr1_model.toml`), or a
`checkpoint/` folder, which stands for all of its `step-N` folders. Within a domain they are ordered
by step: the t of the paper's alpha_{c,t} is the position in that order. Every checkpoint of a run
must have the same model shape, and the tokenizer must fit its vocabulary.
"""

from __future__ import annotations

import glob
import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

import torch

from mlr1_titan.data.shards import tokenizer_fingerprint
from mlr1_titan.hf.config import HFInteropError
from mlr1_titan.hf.dcp_io import METADATA_FILE, DCPCheckpoint
from mlr1_titan.hf.export import resolve_flavor
from mlr1_titan.hf.shapes import MODEL_TOML_NAME
from mlr1_titan.hf.tokenizer_record import read_tokenizer_record
from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.model import model_registry
from mlr1_titan.model.flavors import MLR1Flavor

_STEP = re.compile(r"step-(\d+)")


@dataclass(frozen=True)
class ScoringCheckpoint:
    path: Path
    flavor: MLR1Flavor

    def fingerprint(self) -> str:
        """The DCP metadata file's hash: a re-saved checkpoint under the same name is noticed."""
        return hashlib.sha256((self.path / METADATA_FILE).read_bytes()).hexdigest()[:16]

    def load(self, device: torch.device) -> torch.nn.Module:
        """The model with this checkpoint's weights, in float32 on `device`."""
        spec = model_registry(self.flavor, attn_backend="sdpa_doc")
        with torch.device("meta"):
            model = spec.model.build()
        model.to_empty(device=device)
        with torch.no_grad():
            model.init_weights()  # also computes the RoPE caches, which checkpoints do not hold
        wanted = list(model.state_dict())
        ckpt = DCPCheckpoint(self.path)
        missing = [k for k in wanted if k not in ckpt.tensors]
        if missing:
            raise InfluenceError(f"checkpoint {self.path}: model tensors missing: {missing[:5]}")
        model.load_state_dict({k: v.float() for k, v in ckpt.load(wanted).items()}, strict=True)
        return model


def _expand(pattern: str, where: str) -> list[Path]:
    matched = sorted(Path(p) for p in glob.glob(str(Path(pattern).expanduser())))
    out: list[Path] = []
    for path in matched:
        if (path / METADATA_FILE).is_file():
            out.append(path)
        elif path.is_dir():
            steps = [c for c in path.iterdir() if _STEP.fullmatch(c.name) and (c / METADATA_FILE).is_file()]
            out.extend(steps)
    if not out:
        what = f"matches {len(matched)} paths, none a DCP checkpoint" if matched else "matches nothing"
        raise InfluenceError(
            f"{where} {pattern!r} {what}: pass checkpoint/step-N folders (with {METADATA_FILE}) or a "
            "checkpoint/ folder that holds them"
        )
    return out


def _step(path: Path) -> int | None:
    match = _STEP.fullmatch(path.name)
    return int(match.group(1)) if match else None


def resolve_checkpoints(patterns: list[str], where: str, keep: int | None = None) -> list[ScoringCheckpoint]:
    """Checkpoints of one domain, ordered by step; `keep`: that many, evenly spaced, ending at the last."""
    paths = sorted(
        {p.resolve() for pattern in patterns for p in _expand(pattern, where)},
        key=lambda p: (_step(p) is None, _step(p) or 0, str(p)),
    )
    if keep is not None and keep < len(paths):
        stride = len(paths) / keep
        paths = [paths[round(len(paths) - 1 - i * stride)] for i in reversed(range(keep))]
    out = []
    for path in paths:
        try:
            flavor, _ = resolve_flavor(path, DCPCheckpoint(path).shapes)
        except HFInteropError as err:
            raise InfluenceError(
                f"{where}: {err} (mlr1 mix reads the shape from the checkpoint's {MODEL_TOML_NAME}, which the "
                "trainer and `mlr1 import-hf` write; copy one from a checkpoint of the same run)"
            ) from None
        out.append(ScoringCheckpoint(path, flavor))
    return out


def check_same_model(checkpoints: list[ScoringCheckpoint], tokenizer, max_tokens: int) -> None:
    """All checkpoints share one shape and tokenizer, and `tokenizer` is theirs (its fingerprint
    equals their `mlr1_tokenizer.json` records; without records, its ids fit their vocabulary)."""
    first = checkpoints[0]
    given = tokenizer_fingerprint(tokenizer)
    for ckpt in checkpoints:
        record = read_tokenizer_record(ckpt.path)
        if record is not None and record["fingerprint"] != given["fingerprint"]:
            raise InfluenceError(
                f"checkpoint {ckpt.path} was trained with tokenizer {record.get('name')} (fingerprint "
                f"{record['fingerprint']}, vocab {record.get('vocab_size')}), but the scoring run tokenizes with "
                f"{given['name']} (fingerprint {given['fingerprint']}, vocab {given['vocab_size']}); pass the "
                "run's tokenizer with --tokenizer (all checkpoints of one scoring run must share it)"
            )
    for other in checkpoints[1:]:
        if other.flavor != first.flavor:
            diff = {
                k: (getattr(first.flavor, k), getattr(other.flavor, k))
                for k in first.flavor.__dataclass_fields__
                if getattr(first.flavor, k) != getattr(other.flavor, k)
            }
            raise InfluenceError(
                f"checkpoints of different model shapes: {first.path} and {other.path} differ in "
                + ", ".join(f"{k} ({a} vs {b})" for k, (a, b) in diff.items())
                + "; all domain models of one scoring run must have the same shape"
            )
    vocab = int(tokenizer.get_vocab_size())
    if vocab > first.flavor.vocab_size or vocab < first.flavor.vocab_size // 2:
        raise InfluenceError(
            f"tokenizer {type(tokenizer).__name__} has {vocab} ids but the checkpoints ({first.path}) have a "
            f"{first.flavor.vocab_size}-entry vocabulary: they were trained with another tokenizer "
            "(pass the right one with --tokenizer)"
        )
    if max_tokens - 1 > first.flavor.max_seq_len:
        raise InfluenceError(
            f"--max-tokens {max_tokens}: the checkpoints ({first.path}) have a {first.flavor.max_seq_len}-token "
            f"context; pass --max-tokens {first.flavor.max_seq_len + 1} or less"
        )
