"""TOML files <-> the config dataclass tree: read (``extends``), validate and build, write back, compare.

Nothing here knows the trainer: it works on any tree of config dataclasses, so the schema stays
where torchtitan keeps it (``MLR1Trainer.Config``) and this layer only carries files onto it.
"""

from .errors import ConfigError
from .files import available_configs, read_config_file, resolve_config_path
from .schema import build_config, diff_tables, flatten, to_table, toml_text

__all__ = [
    "ConfigError",
    "available_configs",
    "build_config",
    "diff_tables",
    "flatten",
    "read_config_file",
    "resolve_config_path",
    "to_table",
    "toml_text",
]
