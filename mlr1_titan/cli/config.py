"""`mlr1 config show NAME|PATH [overrides...]` and `mlr1 config diff A B`.

``show`` prints the fully resolved run configuration as TOML: ``extends`` followed, the command-line
overrides parsed exactly as ``torchtitan.train`` parses them, derived values applied. Loading its
output gives an equal configuration. The settings derived from others (the model's shape and size,
the optimizer's parameter groups) come first as comments.
"""

from __future__ import annotations

import argparse
import logging
import sys

EPILOG = """\
examples:
  mlr1 config show mlr1_950m --optimizer.lr 1e-3 --model.flavor 360M
  mlr1 config show --world-size 128 mlr1_950m    # + the batch split on 128 GPUs
  mlr1 config show mlr1_950m > my_run.toml      # then: --config my_run.toml
  mlr1 config diff mlr1_950m mlr1_950m_sft_reasoning
"""


def positive_int(text: str) -> int:
    value = int(text)
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, got {value}")
    return value


def resolve(name_or_path: str, overrides: list[str]):
    """The MLR1Trainer.Config that `torchrun -m torchtitan.train --module mlr1_titan --config NAME
    OVERRIDES...` trains with."""
    # deferred: torchtitan (and torch) load in seconds; `mlr1 --help` must not wait for them
    from torchtitan.config import ConfigManager

    root = logging.getLogger()  # torchtitan's logger
    root.addFilter(_drop_default_checkpoint_warning)
    try:
        return ConfigManager().parse_args(["--module", "mlr1_titan", "--config", name_or_path, *overrides])
    finally:
        root.removeFilter(_drop_default_checkpoint_warning)


def _drop_default_checkpoint_warning(record: logging.LogRecord) -> bool:
    """torchtitan's checkpoint config warns "initial_load_model_only=True has no effect without an
    initial_load_path" each time tyro builds a default instance while parsing, a dozen times for one
    `mlr1 recipe` plan, whatever the stage's own settings; the trainer still warns once at start-up."""
    return "initial_load_model_only=True has no effect" not in record.getMessage()


def derived_lines(config, world_size: int | None = None) -> list[str]:
    from mlr1_titan.schedule import describe_batches, plan_batches

    shape = config.model.shape()
    lines = [
        f"model: {config.model_spec.flavor}: {shape.n_layers} layers, dim {shape.dim}, "
        f"{shape.n_heads}/{shape.n_kv_heads} heads x {shape.head_dim}, FFN {shape.ffn_hidden_dim}, "
        f"vocab {shape.vocab_size}, rope_theta {shape.rope_theta:g}, context {shape.max_seq_len}: "
        f"{shape.num_params():,} parameters",
    ]
    for group in config.optimizer.effective_param_groups():
        kwargs = ", ".join(f"{k}={v}" for k, v in group.optimizer_kwargs.items())
        lines.append(f"optimizer group {group.pattern!r}: {group.optimizer_name}({kwargs})")
    if config.training.steps > 0:
        warmup = config.lr_scheduler.resolved_warmup_steps(config.training.steps)
        lines.append(f"lr_scheduler: {warmup} warmup steps of {config.training.steps}")
    else:
        lines.append("training.steps: derived from dataloader.chat.epochs at start-up")
    d = config.distill
    if d.enabled:
        lines.append(
            f"loss: {d.describe_loss()}, teacher {d.teacher}, chunks of <= {config.loss.chunk_tokens} tokens; "
            "CUDA graphs off"
        )
    else:
        lines.append(f"loss: cross-entropy, chunks of <= {config.loss.chunk_tokens} tokens")
    if world_size is not None:
        lines.append(f"on {world_size} ranks: {describe_batches(config, plan_batches(config, world_size))}")
    return lines


def _cmd_show(args) -> int:
    from mlr1_titan.config import ConfigError, toml_text

    try:
        config = resolve(args.config, args.overrides)
        world = ["--world-size", str(args.world_size)] if args.world_size else []
        header = "\n".join(
            [f"mlr1 config show {' '.join([*world, args.config, *args.overrides])}", "derived:"]
            + [f"  {line}" for line in derived_lines(config, args.world_size)]
        )
        sys.stdout.write(toml_text(config, header=header))
    except (ConfigError, ValueError, AssertionError) as err:  # torchtitan validates with asserts too
        print(f"error: {err}", file=sys.stderr)
        return 1
    return 0


def _cmd_diff(args) -> int:
    from mlr1_titan.config import ConfigError, diff_tables, to_table

    try:
        a, b = (to_table(resolve(name, [])) for name in (args.a, args.b))
    except (ConfigError, ValueError, AssertionError) as err:
        print(f"error: {err}", file=sys.stderr)
        return 1
    rows = diff_tables(a, b)
    for key, left, right in rows:
        print(f"{key}: {left!r} -> {right!r}")
    if not rows:
        print(f"{args.a} and {args.b} resolve to the same configuration")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "config",
        help="print a resolved run configuration, or the keys two configurations differ in",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = p.add_subparsers(dest="config_command", metavar="ACTION", required=True)
    show = sub.add_parser("show", help="the resolved configuration as TOML (loadable with --config)")
    show.add_argument(
        "--world-size",
        type=positive_int,
        default=None,
        metavar="N",
        help="also print the start-up batch line for N ranks (accumulation, tokens per step, paper budget)",
    )
    show.add_argument("config", help="config name (mlr1_950m) or TOML path")
    show.add_argument("overrides", nargs=argparse.REMAINDER, help="CLI overrides, as for torchtitan.train")
    show.set_defaults(func=_cmd_show)
    diff = sub.add_parser("diff", help="keys whose resolved values differ between two configurations")
    diff.add_argument("a", help="config name or TOML path")
    diff.add_argument("b", help="config name or TOML path")
    diff.set_defaults(func=_cmd_diff)
