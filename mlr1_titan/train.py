"""``python -m mlr1_titan.train --job.config mlr1_950m.toml [overrides]``: the launch line of torchtitan's
TOML era, for the same run as ``-m torchtitan.train --module mlr1_titan --config mlr1_950m.toml``.

torchtitan 0.3.0 dropped ``--job.config_file`` and offers no hook for it, so this module rewrites
the command line (``--job.config`` / ``--job.config_file``, with a space or ``=``) into torchtitan's
``--module mlr1_titan --config ...`` and runs ``torchtitan.train`` itself: the same config, the same
trainer, the same overrides.

    torchrun --nproc_per_node=8 -m mlr1_titan.train --job.config mlr1_950m.toml --training.steps 10
"""

from __future__ import annotations

import sys

_CONFIG_FLAGS = ("--job.config", "--job.config_file", "--job.config-file")


def torchtitan_argv(argv: list[str]) -> list[str]:
    """``[--job.config X, rest...]`` -> ``[--module mlr1_titan, --config X, rest...]``."""
    out: list[str] = []
    config: str | None = None
    i = 0
    while i < len(argv):
        arg = argv[i]
        flag, eq, value = arg.partition("=")
        if flag in _CONFIG_FLAGS:
            if not eq:
                if i + 1 >= len(argv) or argv[i + 1].startswith("--"):
                    raise SystemExit(f"{arg} needs a config name or TOML path")
                value = argv[i + 1]
                i += 1
            if not value:
                raise SystemExit(f"{flag} needs a config name or TOML path")
            if config is not None:
                raise SystemExit(f"{flag} given twice ({config!r} and {value!r})")
            config = value
        elif flag in ("--module", "--config"):
            raise SystemExit(f"{flag}: this launcher takes --job.config; or use `-m torchtitan.train {flag} ...`")
        else:
            out.append(arg)
        i += 1
    if config is None:
        raise SystemExit("--job.config NAME_OR_TOML is required, e.g. --job.config mlr1_950m.toml (then --help)")
    return ["--module", "mlr1_titan", "--config", config, *out]


def main() -> None:
    sys.argv = [sys.argv[0], *torchtitan_argv(sys.argv[1:])]
    from torchtitan.train import main as torchtitan_main

    from mlr1_titan.config import ConfigError  # deferred: torchtitan loads in seconds; argv errors come first

    try:
        torchtitan_main()
    except ConfigError as err:  # a bad config file or name: one line, not a traceback per rank
        raise SystemExit(f"error: {err}") from None


if __name__ == "__main__":
    main()
