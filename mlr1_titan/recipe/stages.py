"""The MobileLLM-R1 stage sequence (``stages.toml``), where each stage writes, and whether it finished.

A stage trains with ``torchrun -m torchtitan.train --module mlr1_titan --config <stage config>``,
writes under ``<run dir>/<stage name>`` and starts from the final checkpoint of the stage named in
``after``. A stage has finished when its checkpoint folder holds a complete DCP checkpoint (its
``.metadata`` file, which DCP writes last) of the stage's final step: the step recorded in the
``recipe_done.json`` that ``mlr1 recipe`` writes when the stage's launch exits 0 (so a stage run
with a ``--training.steps`` override hands on its own last step), else, for a stage launched by
hand, ``training.steps`` of its config. A chat SFT stage derives its steps from the data, so only
its ``recipe_done.json`` can tell.
"""

from __future__ import annotations

import json
import re
import tomllib
from dataclasses import dataclass, field
from importlib.resources import files
from pathlib import Path

from mlr1_titan.resources import model_configs_dir

DONE_FILE = "recipe_done.json"
"""Written into a stage's folder by ``mlr1 recipe`` when the stage's launch exited 0."""


class RecipeError(RuntimeError):
    """A stage cannot start: what is missing, and the path that was expected."""


@dataclass(frozen=True)
class Stage:
    name: str
    """Stage name, also its folder under the run dir."""
    config: str
    """Model-config name; ``{size}`` is filled in."""
    paper_hours: tuple[float, float] | None
    """The paper's wall time for the stage in hours, low and high (Table 2); None for a size the
    paper did not train."""
    paper_gpus: int
    """GPUs the paper's wall time was measured on (Table 2)."""
    after: str | None = None
    """Stage whose final checkpoint this one starts from (weights only); None: from scratch."""
    overrides: tuple[str, ...] = field(default_factory=tuple)
    """CLI overrides the stage adds to its config."""

    def folder(self, run_dir: Path) -> Path:
        return run_dir / self.name

    def checkpoint_dir(self, run_dir: Path, checkpoint_folder: str = "checkpoint") -> Path:
        return self.folder(run_dir) / checkpoint_folder


def _stages_file() -> Path:
    return Path(str(files("mlr1_titan.recipe").joinpath("stages.toml")))


def sizes() -> list[str]:
    """The sizes with a shipped config for every stage (from the model_configs/ file names)."""
    raw = tomllib.loads(_stages_file().read_text())["stage"]
    shipped = {p.stem for p in model_configs_dir().glob("*.toml")}
    found = {m.group(1) for name in shipped if (m := re.fullmatch(r"mlr1_([0-9a-z]+)", name))}
    return sorted(s for s in found if all(st["config"].format(size=s) in shipped for st in raw))


def load_stages(size: str) -> list[Stage]:
    """The stage sequence for ``size`` (e.g. "950m"), in order."""
    known = sizes()
    if size not in known:
        raise RecipeError(f"no recipe for size {size!r}: the shipped configs cover {', '.join(known)}")
    spec = tomllib.loads(_stages_file().read_text())
    paper_sizes = spec["paper_sizes"]
    stages = []
    for raw in spec["stage"]:
        stages.append(
            Stage(
                name=raw["name"],
                config=raw["config"].format(size=size),
                paper_hours=tuple(raw["paper_hours"]) if size in paper_sizes else None,
                paper_gpus=raw["paper_gpus"],
                after=raw.get("after"),
                overrides=tuple(raw.get("overrides", ())),
            )
        )
    names = [s.name for s in stages]
    for s in stages:
        if s.after is not None and (s.after not in names or names.index(s.after) >= names.index(s.name)):
            raise RecipeError(f"{_stages_file()}: stage {s.name!r} starts after {s.after!r}, not an earlier stage")
    return stages


def _complete_steps(checkpoint_dir: Path) -> list[int]:
    if not checkpoint_dir.is_dir():
        return []
    steps = []
    for child in checkpoint_dir.iterdir():
        m = re.fullmatch(r"step-(\d+)", child.name)
        if m and (child / ".metadata").is_file():
            steps.append(int(m.group(1)))
    return sorted(steps)


def finished_checkpoint(stage: Stage, run_dir: Path, final_step: int, checkpoint_folder: str = "checkpoint") -> Path:
    """The final checkpoint of a finished ``stage``; raises RecipeError naming the path it expected.

    ``final_step`` is the stage's ``training.steps``, or 0 when the steps are derived from the data
    (then the step recorded in the stage's ``recipe_done.json`` is the final one)."""
    ckpt_dir = stage.checkpoint_dir(run_dir, checkpoint_folder)
    done_file = stage.folder(run_dir) / DONE_FILE
    if done_file.is_file():
        final_step = int(json.loads(done_file.read_text())["final_step"])
    elif final_step <= 0:
        raise RecipeError(
            f"stage {stage.name!r} has not finished: {done_file} is missing (its steps come from the data, "
            f"so only a launch through `mlr1 recipe` that exited 0 marks it finished)"
        )
    expected = ckpt_dir / f"step-{final_step}"
    if not expected.is_dir():
        have = _complete_steps(ckpt_dir)
        found = f"complete checkpoints there: {', '.join(f'step-{n}' for n in have)}" if have else "none there"
        raise RecipeError(f"stage {stage.name!r} has not finished: expected its final checkpoint {expected} ({found})")
    if not (expected / ".metadata").is_file():
        raise RecipeError(
            f"stage {stage.name!r}: {expected} is half-written (no .metadata; DCP writes it last). "
            "Re-run the stage; it resumes from its last complete checkpoint"
        )
    return expected


def mark_finished(stage: Stage, run_dir: Path, checkpoint_folder: str = "checkpoint") -> None:
    """Record that ``stage`` finished (its launch exited 0): its last complete checkpoint is the final one."""
    steps = _complete_steps(stage.checkpoint_dir(run_dir, checkpoint_folder))
    if not steps:
        raise RecipeError(f"stage {stage.name!r} exited 0 but wrote no complete checkpoint under "
                          f"{stage.checkpoint_dir(run_dir, checkpoint_folder)}")  # fmt: skip
    (stage.folder(run_dir) / DONE_FILE).write_text(json.dumps({"stage": stage.name, "final_step": steps[-1]}) + "\n")
