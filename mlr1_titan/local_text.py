"""Local text files as a torchtitan text dataset (``[dataloader] kind = "text"``).

Registers ``mlr1_local_text`` in torchtitan's dataset table so its ``HuggingFaceTextDataLoader``
(BOS/EOS per document, greedy packing with per-document positions, resumable state) reads local
``.txt`` (one document per line), ``.jsonl``/``.json`` or ``.parquet`` files with a ``text`` field.
``path`` may be a file, a directory or a glob. The mixture-aware loader covers everything beyond this.
"""

from __future__ import annotations

import glob
import os

_FORMATS = {".txt": "text", ".jsonl": "json", ".json": "json", ".parquet": "parquet"}


def resolve_files(path: str | None) -> list[str]:
    if not path:
        raise ValueError(
            "[dataloader] kind='text' needs a path (file, directory or glob); "
            "set it in the TOML or with --dataloader.dataset_path"
        )
    pattern = os.path.join(path, "*") if os.path.isdir(path) else path
    files = sorted(f for f in glob.glob(pattern) if os.path.splitext(f)[1] in _FORMATS)
    if not files:
        raise FileNotFoundError(
            f"no .txt/.jsonl/.json/.parquet files at {path!r} (resolved: {os.path.abspath(pattern)})"
        )
    kinds = {_FORMATS[os.path.splitext(f)[1]] for f in files}
    if len(kinds) > 1:
        raise ValueError(f"{path!r} mixes file formats {sorted(kinds)}; point it at one format")
    return files


def _load(path: str):
    from datasets import load_dataset

    files = resolve_files(path)
    kind = _FORMATS[os.path.splitext(files[0])[1]]
    dataset = load_dataset(kind, data_files=files, split="train")
    if "text" not in dataset.column_names:
        raise KeyError(f"{files[0]}: no 'text' field; columns are {dataset.column_names}")
    return dataset


def _text(sample: dict) -> str:
    return sample["text"]


def register_local_text_dataset() -> None:
    from torchtitan.hf_datasets import DatasetConfig
    from torchtitan.hf_datasets.text_datasets import DATASETS

    from .toml_config import LOCAL_TEXT_DATASET

    DATASETS[LOCAL_TEXT_DATASET] = DatasetConfig(path="", loader=_load, sample_processor=_text)
