"""`mlr1`: the side tools of mlr1_titan (config, paths, tokenize, data, mix, HF export/import, distill, eval, recipe, demo).

Each module of this package owns its sub-commands: ``register(subparsers)`` adds one or more
``argparse`` sub-parsers and sets ``func`` on each (``func(args) -> int`` exit code). Command bodies
import torch / torchtitan / datasets when they run, not when the parser is built, so that
``mlr1 --help`` answers at once.
"""

from __future__ import annotations

import argparse
import sys

from mlr1_titan.cli import config, data, demo, distill, evaluation, hf, mix, paths, recipe

# In the order they appear in `mlr1 --help`.
_COMMAND_MODULES = (config, paths, data, mix, hf, distill, evaluation, recipe, demo)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="mlr1", description="MobileLLM-R1 on torchtitan: side tools.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for module in _COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not getattr(args, "func", None):
        parser.print_help()
        return 2
    return int(args.func(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
