"""`mlr1 paths [NAME]`: where the shipped configs, mixes, eval tasks, chat template and demo corpus are.

lm_eval --include_path "$(mlr1 paths eval_tasks)" --tasks r1_math500 ...
"""

from __future__ import annotations

from mlr1_titan.resources import RESOURCES


def _cmd_paths(args) -> int:
    if args.name:
        print(RESOURCES[args.name]())
        return 0
    width = max(map(len, RESOURCES))
    for name, where in RESOURCES.items():
        print(f"{name:<{width}}  {where()}")
    return 0


def register(subparsers) -> None:
    p = subparsers.add_parser(
        "paths",
        help="where the shipped resources live (for lm_eval --include_path, copying a config, ...)",
        description="Print the location of each resource the package ships, or of one (NAME).",
    )
    p.add_argument("name", nargs="?", choices=sorted(RESOURCES), help="print only this one")
    p.set_defaults(func=_cmd_paths)
