"""torchtitan entry point: ``--module mlr1_titan --config NAME``.

torchtitan 0.3.0 imports this module, calls ``getattr(module, NAME)()`` and parses the rest of the
command line onto the returned ``MLR1Trainer.Config`` with tyro (CLI > TOML > defaults). Every TOML in
the config folders is a config name (its file stem); ``NAME`` may also be a path to a ``.toml``
file or a bare ``NAME.toml``. Adding a size or stage is adding a TOML, no Python.
"""

from __future__ import annotations

# Every public name of this module is a config name torchtitan may call (`--config NAME`), so the
# imports are private: a config file named like one of them still resolves to the file.
from collections.abc import Callable as _Callable
from pathlib import Path as _Path

from mlr1_titan import config as _config
from mlr1_titan.trainer import MLR1Trainer as _MLR1Trainer

__all__ = ["load_trainer_config"]


def load_trainer_config(name_or_path: str | _Path) -> _MLR1Trainer.Config:
    """The ``MLR1Trainer.Config`` a config name or TOML path describes (before CLI overrides)."""
    path = _config.resolve_config_path(str(name_or_path))
    return _config.build_config(_MLR1Trainer.Config, _config.read_config_file(path), path)


def _config_function(name: str) -> _Callable[[], _MLR1Trainer.Config]:
    def build() -> _MLR1Trainer.Config:
        return load_trainer_config(name)

    build.__name__ = name
    build.__doc__ = f"MLR1Trainer.Config from {name}"
    return build


def __getattr__(name: str) -> _Callable:
    if name.startswith("__"):
        raise AttributeError(name)
    if name.endswith(".toml") or name in _config.available_configs():
        return _config_function(name)

    # torchtitan swallows AttributeError into a generic message; fail with ours when called.
    def unknown():
        _config.resolve_config_path(name)  # raises, listing the available configs
        raise _config.ConfigError(f"unknown config {name!r}")

    return unknown


def __dir__() -> list[str]:
    return sorted({"load_trainer_config", *_config.available_configs()})
