"""`mlr1`: the side tools of mlr1_titan (tokenize, data preview, HF export/import, eval, demo).

Each feature module owns its sub-commands: it exposes ``register(subparsers)`` which adds one or
more ``argparse`` sub-parsers and sets ``func`` on each (``func(args) -> int`` exit code). This
file only lists those modules, so adding a tool never touches the others. Modules are imported
lazily by name so that ``mlr1 --help`` stays fast and a broken optional dependency of one tool
does not take the whole CLI down.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# Modules that contribute sub-commands, in the order they appear in `mlr1 --help`.
_COMMAND_MODULES = (
    "mlr1_titan.data.cli",
    "mlr1_titan.hf.cli",
    "mlr1_titan.evaluation.cli",
    "mlr1_titan.demo",
)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="mlr1", description="MobileLLM-R1 on torchtitan: side tools."
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in _COMMAND_MODULES:
        try:
            module = importlib.import_module(name)
        except ModuleNotFoundError as err:
            if err.name == name or name.startswith(f"{err.name}."):
                continue  # feature not present in this build
            raise
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
