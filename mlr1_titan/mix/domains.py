"""Which capability domains a source belongs to (data_mix/domains.toml, paper Sec. 5.1.1)."""

from __future__ import annotations

import os
import tomllib

from mlr1_titan.mix.errors import InfluenceError
from mlr1_titan.resources import mix_domains_file


def load_domains(path: str | os.PathLike | None = None) -> dict[str, list[str]]:
    """capability -> source names; default: the shipped paper membership."""
    path = path or mix_domains_file()
    try:
        with open(path, "rb") as f:
            table = tomllib.load(f).get("domains")
    except (OSError, tomllib.TOMLDecodeError) as err:
        raise InfluenceError(f"--domains {path}: cannot read it: {err}") from None
    if not isinstance(table, dict) or not all(
        isinstance(v, list) and all(isinstance(n, str) for n in v) for v in table.values()
    ):
        raise InfluenceError(f"--domains {path}: expected a [domains] table of capability = [source names]")
    return table
