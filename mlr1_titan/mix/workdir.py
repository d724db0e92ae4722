"""The resumable state of a scoring run: a folder of finished work units, pinned to its inputs.

`run.json` records everything that decides the results (settings, tokenizer, checkpoint and probe
fingerprints, sample digests). A unit (one checkpoint's probe vectors, or the scores of one block of
documents at one checkpoint) is a file written atomically when it is complete, so an interrupted
run, started again with the same inputs, does only the units that are missing. Every rank must
see the folder (a shared filesystem, like torchtitan's checkpoint folder).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from mlr1_titan.mix.errors import InfluenceError

RUN_FILE = "run.json"
_WHAT = {
    "blocks": "the scored documents: --samples-per-source, --block-size, --seed or the source files",
    "checkpoints": "the checkpoint list or their contents",
    "probes": "the probe files",
    "sources": "the --sources mix",
}


class WorkDir:
    def __init__(self, path: str | os.PathLike, pin: dict[str, Any], *, create: bool):
        """`create` (rank 0): write run.json if absent; every rank checks it against `pin`."""
        self.path = Path(path)
        run_file = self.path / RUN_FILE
        pin = json.loads(json.dumps(pin))  # tuples -> lists, as they come back from the file
        if create and not run_file.is_file():
            leftovers = sorted(p.name for p in self.path.glob("*")) if self.path.is_dir() else []
            if leftovers:
                raise InfluenceError(
                    f"work dir {self.path} is not empty but has no {RUN_FILE} (found {leftovers[:4]}): its files "
                    "cannot be matched to this run; pass an empty or new --work-dir"
                )
            self.path.mkdir(parents=True, exist_ok=True)
            tmp = run_file.with_suffix(".tmp")
            tmp.write_text(json.dumps(pin, indent=1))
            os.replace(tmp, run_file)
            return
        if not run_file.is_file():
            raise InfluenceError(f"work dir {self.path}: {RUN_FILE} is missing (rank 0 did not create it)")
        try:
            old = json.loads(run_file.read_text())
        except ValueError as err:
            raise InfluenceError(
                f"work dir {self.path}: {RUN_FILE} is corrupt ({err}); delete the folder to start over"
            ) from None
        if old != pin:
            changed = []
            for key in sorted(set(old) | set(pin)):
                a, b = old.get(key), pin.get(key)
                if a == b:
                    continue
                if isinstance(a, dict) and isinstance(b, dict):
                    changed += [
                        f"{key}.{k} {a.get(k)!r} -> {b.get(k)!r}"
                        for k in sorted(set(a) | set(b))
                        if a.get(k) != b.get(k)
                    ]
                else:
                    changed.append(f"{key} ({_WHAT.get(key, 'differs')})")
            raise InfluenceError(
                f"work dir {self.path} holds partial results of a run with other inputs (changed: "
                f"{'; '.join(changed)}); use another --work-dir, or delete that folder to start over"
            )

    def _file(self, name: str, suffix: str) -> Path:
        return self.path / f"{name}{suffix}"

    def has(self, name: str) -> bool:
        return self._file(name, ".npz").is_file() or self._file(name, ".pt").is_file()

    def save_arrays(self, name: str, **arrays: np.ndarray) -> None:
        path = self._file(name, ".npz")
        tmp = path.with_name(path.name + ".tmp")
        with open(tmp, "wb") as f:
            np.savez(f, **arrays)
        os.replace(tmp, path)

    def load_arrays(self, name: str) -> dict[str, np.ndarray]:
        with np.load(self._file(name, ".npz"), allow_pickle=False) as data:
            return {k: data[k] for k in data.files}

    def save_tensor(self, name: str, tensor: torch.Tensor) -> None:
        path = self._file(name, ".pt")
        tmp = path.with_name(path.name + ".tmp")
        torch.save(tensor.cpu(), tmp)
        os.replace(tmp, path)

    def load_tensor(self, name: str) -> torch.Tensor:
        return torch.load(self._file(name, ".pt"), weights_only=True)
