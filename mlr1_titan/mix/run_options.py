"""What `mlr1 mix score` and `mlr1 mix filter` share: how documents are read and scored, where
partial results go, which device runs it."""

from __future__ import annotations

from dataclasses import dataclass, field

from mlr1_titan.mix.gradients import GradientSettings


@dataclass(kw_only=True)
class RunOptions:
    tokenizer: object
    """The checkpoints' tokenizer (a torchtitan tokenizer object)."""
    gradient: GradientSettings = field(default_factory=GradientSettings)
    work_dir: str | None = None
    """Partial results, for resuming (default: beside the outputs); every rank must see it."""
    block_size: int = 256
    """Documents per work unit."""
    seed: int = 0
    """Data-order seed of the source readers (the trainer's data seed gives the loader's order)."""
    shards_root: str | None = None
    """Read sources from `mlr1 tokenize` shards under this folder instead of their text."""
    hub_mirror: str | None = None
    """Local snapshots of hub datasets (<mirror>/<org>/<name>)."""
    domains: str | None = None
    """Capability-domain TOML for the report (default: the paper's, mix/domains.toml)."""
    device: str = "auto"
    progress: bool = False
