"""The files the plugin ships (package data) and the user folders that take precedence over them.

Everything is found with ``importlib.resources``, so an installed wheel works exactly like a
checkout. ``mlr1 paths`` prints these locations, e.g.
``lm_eval --include_path "$(mlr1 paths eval_tasks)" --tasks r1_math500``.
"""

from __future__ import annotations

import os
from importlib.resources import files
from pathlib import Path

CONFIG_DIR_ENV = "MLR1_CONFIG_DIR"
"""os.pathsep-separated folders searched for config names before the shipped model_configs/."""

DATA_MIX_DIR_ENV = "MLR1_DATA_MIX_DIR"
"""os.pathsep-separated folders searched for mix names before the shipped data_mix/."""


def _shipped(*parts: str) -> Path:
    resource = files("mlr1_titan").joinpath(*parts)
    # An ordinary (unzipped) install or checkout: the Traversable is a real path.
    return Path(os.fspath(resource))


def model_configs_dir() -> Path:
    """The shipped model-config TOMLs: one per size and stage, ``base/`` holds paper Table 2."""
    return _shipped("model_configs")


def data_mix_dir() -> Path:
    """The shipped data mixtures (paper Tables 3-4, the SFT sets, the demo mix)."""
    return _shipped("data_mix")


def eval_tasks_dir() -> Path:
    """The lm-eval ``--include_path`` folder with the r1_* tasks."""
    return _shipped("eval_tasks")


def chat_template_file() -> Path:
    """The SFT chat template (Jinja), the twin of ``mlr1_titan.sft.chat_format``."""
    return _shipped("sft", "chat_template.jinja")


def mix_domains_file() -> Path:
    """The capability domains of the pre-training sources (paper Sec. 5.1.1), read by ``mlr1 mix score``."""
    return _shipped("mix", "domains.toml")


def demo_corpus_file() -> Path:
    """The synthetic demo corpus (``mlr1 demo --write-corpus`` regenerates it byte for byte)."""
    return _shipped("data_mix", "demo_corpus.jsonl")


def _env_dirs(variable: str) -> list[Path]:
    return [Path(p) for p in os.environ.get(variable, "").split(os.pathsep) if p]


def config_search_dirs() -> list[Path]:
    """Where config names are looked up, first match wins: $MLR1_CONFIG_DIR, then the shipped configs."""
    return [*_env_dirs(CONFIG_DIR_ENV), model_configs_dir()]


def mix_search_dirs() -> list[Path]:
    """Where mix names are looked up, first match wins: $MLR1_DATA_MIX_DIR, ./data_mix, the shipped mixes."""
    return [*_env_dirs(DATA_MIX_DIR_ENV), Path.cwd() / "data_mix", data_mix_dir()]


RESOURCES = {
    "model_configs": model_configs_dir,
    "data_mix": data_mix_dir,
    "eval_tasks": eval_tasks_dir,
    "chat_template": chat_template_file,
    "demo_corpus": demo_corpus_file,
}
"""Name -> location, as ``mlr1 paths NAME`` prints it."""
