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
    if not isinstance(table, dict):
        raise InfluenceError(f"--domains {path}: no [domains] table (capability = [source names])")
    for capability, names in table.items():
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise InfluenceError(
                f"--domains {path}: [domains] {capability} = {names!r}; expected a list of source names"
            )
    return table
