"""`mlr1 mix score` / `mlr1 mix filter`: influence-based data mixing (the commands live in mlr1_titan.mix)."""

from __future__ import annotations


def register(subparsers) -> None:
    from mlr1_titan.mix.commands import add_controlled, add_filter, add_score, run

    p = subparsers.add_parser(
        "mix", help="influence-based data mixing: score sources over checkpoints, filter mid-training data"
    )
    sub = p.add_subparsers(dest="mix_command", metavar="COMMAND", required=True)
    add_score(sub)
    add_filter(sub)
    add_controlled(sub)
    for action in sub.choices.values():
        func = action.get_default("func")
        action.set_defaults(func=lambda args, func=func: run(func, args))
