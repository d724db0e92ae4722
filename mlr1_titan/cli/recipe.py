"""`mlr1 recipe`: the paper's stage sequence for a model size, planned for a GPU count, and launched
one stage at a time after checking that the stage before it finished.

Each stage is the ordinary ``torchrun -m torchtitan.train --module mlr1_titan --config <stage config>``
launch, writing under ``<run dir>/<stage>`` and starting from the previous stage's final checkpoint.
"""

from __future__ import annotations

import argparse
import os
import shlex
import subprocess
import sys
from pathlib import Path

from mlr1_titan.cli.config import positive_int, resolve

EPILOG = """\
examples:
  mlr1 recipe --size 950m --gpus 128 --dry-run               # every stage: command, hand-off, batch, wall time
  mlr1 recipe --size 950m --stage sft_reasoning --gpus 8     # launch one stage on this node
  mlr1 recipe --size 950m --stage pretrain_phase1 --gpus 128 # on each of 16 nodes, MASTER_ADDR/MASTER_PORT set
  mlr1 recipe --size 360m --stage midtrain_phase1 --gpus 8 -- --training.steps 100   # extra overrides
"""


def _duration(low_h: float, high_h: float) -> str:
    if high_h < 24:
        return f"{low_h:.1f} h" if low_h == high_h else f"{low_h:.1f}-{high_h:.1f} h"
    return f"{low_h / 24:.1f} days" if low_h == high_h else f"{low_h / 24:.1f}-{high_h / 24:.1f} days"


def wall_time_line(stage, gpus: int) -> str:
    if stage.paper_hours is None:
        return "the paper gives wall times for its own sizes only"
    low, high = stage.paper_hours
    scale = stage.paper_gpus / gpus
    return (
        f"paper: {_duration(low, high)} on {stage.paper_gpus} GPUs (Table 2); "
        f"on {gpus} GPUs at linear scaling: ~{_duration(low * scale, high * scale)}"
    )


def show_command(cmd: list[str]) -> str:
    """Shell text of ``cmd``; the rendezvous placeholders stay unquoted, for the shell of each node."""
    return " ".join(part if "${" in part else shlex.quote(part) for part in cmd)


LOG_RANK_0 = ("--local-ranks-filter=0", "--role=rank", "--tee=3")
"""Console output of local rank 0 only, each line tagged with its rank (torchtitan's run_train.sh);
every rank's whole output also goes to files under the stage's ``torchrun_logs/``."""


def launch_command(config_name: str, overrides: list[str], gpus: int, gpus_per_node: int, log_dir: Path) -> list[str]:
    nodes, per_node = (gpus // gpus_per_node, gpus_per_node) if gpus > gpus_per_node else (1, gpus)
    rdzv = (
        ["--rdzv_backend=c10d", "--rdzv_endpoint=${MASTER_ADDR}:${MASTER_PORT}"]
        if nodes > 1
        else ["--rdzv_backend=c10d", "--rdzv_endpoint=localhost:0"]
    )
    return [
        "torchrun", f"--nnodes={nodes}", f"--nproc_per_node={per_node}", *rdzv, *LOG_RANK_0, f"--log-dir={log_dir}",
        "-m", "torchtitan.train", "--module", "mlr1_titan", "--config", config_name, *overrides,
    ]  # fmt: skip


def stage_overrides(stage, stages, run_dir: Path, final_steps: dict[str, int], extra: list[str]) -> list[str]:
    out = ["--dump_folder", str(stage.folder(run_dir)), "--checkpoint.enable", *stage.overrides]
    if stage.after is not None:
        before = next(s for s in stages if s.name == stage.after)
        step = final_steps.get(before.name, 0)
        name = f"step-{step}" if step > 0 else "step-N"
        out += ["--checkpoint.initial_load_path", str(before.checkpoint_dir(run_dir) / name)]
    return [*out, *extra]


def stage_command(stage, stages, run_dir: Path, final_steps: dict[str, int], extra: list[str], args) -> list[str]:
    """The torchrun command of ``stage`` (its output logs under ``<stage>/torchrun_logs``)."""
    overrides = stage_overrides(stage, stages, run_dir, final_steps, extra)
    return launch_command(
        stage.config, overrides, args.gpus, args.gpus_per_node, stage.folder(run_dir) / "torchrun_logs"
    )


_RECIPE_OWNED = ("--dump_folder", "--checkpoint.folder", "--checkpoint.initial_load_path", "--checkpoint.no_enable")
"""Overrides the hand-off checks depend on: the recipe sets them for each stage."""


def _flag_name(override: str) -> str:
    """``--checkpoint.initial-load-path=x`` -> ``--checkpoint.initial_load_path`` (tyro takes - and _ alike)."""
    return "--" + override.split("=")[0][2:].replace("-", "_")


def _check_gpus(gpus: int, per_node: int) -> None:
    if gpus > per_node and gpus % per_node:
        raise ValueError(f"--gpus {gpus} is not a whole number of {per_node}-GPU nodes (--gpus-per-node {per_node})")


def _cmd_recipe(args) -> int:
    from mlr1_titan.recipe import DONE_FILE, RecipeError, finished_checkpoint, load_stages, mark_finished
    from mlr1_titan.schedule import describe_batches, plan_batches

    extra = args.overrides[1:] if args.overrides[:1] == ["--"] else args.overrides
    run_dir = Path(args.run_dir or f"outputs/mlr1_{args.size}").absolute()
    try:
        _check_gpus(args.gpus, args.gpus_per_node)
        owned = [o for o in extra if o.startswith("--") and _flag_name(o) in _RECIPE_OWNED]
        if owned:
            raise RecipeError(f"{', '.join(owned)}: the recipe sets these per stage; use --run-dir instead")
        stages = load_stages(args.size)
        if args.stage is not None and args.stage not in [s.name for s in stages]:
            raise RecipeError(f"no stage {args.stage!r}; the stages are {', '.join(s.name for s in stages)}")
        # Every stage's config resolves before anything is printed or launched; the user's overrides
        # apply to the chosen stage (to every stage in a whole-plan dry run).
        configs = {
            s.name: resolve(
                s.config,
                stage_overrides(s, stages, run_dir, {}, extra if args.stage in (None, s.name) else []),
            )
            for s in stages
        }
        final_steps = {name: c.training.steps for name, c in configs.items()}
    except (RecipeError, ValueError, AssertionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    except SystemExit:  # tyro has printed which override it could not parse, and why
        return 1
    chosen = [s for s in stages if args.stage in (None, s.name)]
    if args.dry_run:
        print(f"MobileLLM-R1-{args.size.upper()} on {args.gpus} GPUs, run dir {run_dir}")
        for i, stage in enumerate(chosen, 1):
            config = configs[stage.name]
            cmd = stage_command(stage, stages, run_dir, final_steps, extra, args)
            step = final_steps[stage.name]
            print(f"\n[{i}/{len(chosen)}] {stage.name}  (config {stage.config})")
            print(f"  command: {show_command(cmd)}")
            source = f"the final checkpoint of {stage.after}, weights only" if stage.after else "from scratch"
            print(f"  input: {source}")
            print(f"  output: {stage.checkpoint_dir(run_dir)}/step-{step if step > 0 else 'N'}")
            try:
                print(f"  {describe_batches(config, plan_batches(config, args.gpus))}")
            except ValueError as err:
                print(f"  batch: cannot split on {args.gpus} GPUs: {err}")
            print(f"  wall time: {wall_time_line(stage, args.gpus)}")
        return 0
    if args.stage is None:
        print("error: a launch runs one stage: pass --stage (or --dry-run for the whole plan)", file=sys.stderr)
        return 2
    stage = chosen[0]
    try:
        if stage.after is not None:
            before = next(s for s in stages if s.name == stage.after)
            final_steps[before.name] = int(finished_checkpoint(before, run_dir, final_steps[before.name]).name[5:])
        done = stage.folder(run_dir) / DONE_FILE
        if done.is_file():
            raise RecipeError(
                f"stage {stage.name!r} has finished already ({done}); its final save holds the model only, so "
                f"it cannot resume: remove {stage.folder(run_dir)} to run it again"
            )
        nodes = args.gpus // args.gpus_per_node if args.gpus > args.gpus_per_node else 1
        if nodes > 1 and not (os.environ.get("MASTER_ADDR") and os.environ.get("MASTER_PORT")):
            raise RecipeError(f"{nodes} nodes: set MASTER_ADDR and MASTER_PORT (the rendezvous host) on every node")
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    cmd = stage_command(stage, stages, run_dir, final_steps, extra, args)
    cmd = [os.path.expandvars(part) for part in cmd]
    print(f"mlr1 recipe: {stage.name}: {shlex.join(cmd)}", flush=True)
    if stage.checkpoint_dir(run_dir).is_dir():
        print(
            f"mlr1 recipe: {stage.name}: {stage.checkpoint_dir(run_dir)} exists; the stage resumes from its latest checkpoint"
        )
    stage.folder(run_dir).mkdir(parents=True, exist_ok=True)
    rc = subprocess.run([sys.executable, "-m", "torch.distributed.run", *cmd[1:]]).returncode
    if rc != 0:
        print(f"error: stage {stage.name} exited with status {rc}; it is not marked finished", file=sys.stderr)
        return rc
    try:
        mark_finished(stage, run_dir)
    except RecipeError as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    print(f"mlr1 recipe: {stage.name} finished; next stage can start from {stage.checkpoint_dir(run_dir)}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "recipe",
        help="the paper's stage sequence for a size: plan it for N GPUs (--dry-run), or launch one stage",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("--size", required=True, help="model size with a config for every stage (140m, 360m, 950m, tiny)")
    p.add_argument("--gpus", type=positive_int, required=True, help="GPUs in all (a multiple of --gpus-per-node)")
    p.add_argument("--gpus-per-node", type=positive_int, default=8, help="GPUs per node (default 8)")
    p.add_argument("--stage", default=None, help="the stage to plan or launch (default with --dry-run: all)")
    p.add_argument("--run-dir", default=None, help="where the stages write (default outputs/mlr1_<size>)")
    p.add_argument("--dry-run", action="store_true", help="print the plan; launch nothing")
    p.add_argument(
        "overrides",
        nargs=argparse.REMAINDER,
        help="after --: CLI overrides for the stage (every stage in a whole-plan dry run)",
    )
    p.set_defaults(func=_cmd_recipe)
