"""torchtitan entry point: ``--module mlr1_titan --config NAME``.

torchtitan 0.3.0 imports this module, calls ``getattr(module, NAME)()`` and parses the rest of the
command line onto the returned ``MLR1Trainer.Config`` with tyro (CLI > TOML > defaults). Every TOML in
the config folders is a config name (its file stem); ``NAME`` may also be a path to a ``.toml``
file or a bare ``NAME.toml``. Adding a size or stage is adding a TOML, no Python.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

from mlr1_titan.config import ConfigError, available_configs, build_config, read_config_file, resolve_config_path
from mlr1_titan.trainer import MLR1Trainer

__all__ = ["available_configs", "load_trainer_config"]


def load_trainer_config(name_or_path: str | Path) -> MLR1Trainer.Config:
    """The ``MLR1Trainer.Config`` a config name or TOML path describes (before CLI overrides)."""
    path = resolve_config_path(str(name_or_path))
    return build_config(MLR1Trainer.Config, read_config_file(path), path)


def _config_function(name: str) -> Callable[[], MLR1Trainer.Config]:
    def build() -> MLR1Trainer.Config:
        return load_trainer_config(name)

    build.__name__ = name
    build.__doc__ = f"MLR1Trainer.Config from {name}"
    return build


def __getattr__(name: str) -> Callable:
    if name.startswith("__"):
        raise AttributeError(name)
    if name.endswith(".toml") or name in available_configs():
        return _config_function(name)

    # torchtitan swallows AttributeError into a generic message; fail with ours when called.
    def unknown():
        resolve_config_path(name)  # raises, listing the available configs
        raise ConfigError(f"unknown config {name!r}")

    return unknown


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(available_configs()))
