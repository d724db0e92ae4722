"""torchtitan entry point: ``--module mlr1_titan --config NAME``.

torchtitan 0.3.0 imports this module and calls ``getattr(module, NAME)()``. Every TOML in
``model_configs/`` (and in ``$MLR1_CONFIG_DIR``) is a config name (its file stem); ``NAME`` may also be
a path to a ``.toml`` file. There is no Python per config: adding a size or stage is adding a TOML.
"""

from __future__ import annotations

from collections.abc import Callable

from .toml_config import ConfigError, available_configs, load_trainer_config

__all__ = ["available_configs", "load_trainer_config"]


def _config_function(name: str) -> Callable:
    def build():
        return load_trainer_config(name)

    build.__name__ = name
    build.__doc__ = f"Trainer.Config from {name}"
    return build


def __getattr__(name: str) -> Callable:
    if name.startswith("__"):
        raise AttributeError(name)
    if name.endswith(".toml") or name in available_configs():
        return _config_function(name)

    # torchtitan swallows AttributeError into a generic message; fail with ours when called.
    def unknown():
        raise ConfigError(
            f"unknown config {name!r}; available configs: {sorted(available_configs())} "
            "(or pass a path to a .toml file)"
        )

    return unknown


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(available_configs()))
