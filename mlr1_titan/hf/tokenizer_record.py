"""`mlr1_tokenizer.json` beside a DCP checkpoint: which tokenizer the run trained with.

The tensors tell the vocabulary size but not the ids; tools that feed text to a checkpoint (`mlr1
mix score`) compare this record (the shard format's tokenizer fingerprint: ids of a probe text,
vocabulary size, BOS/EOS) with the tokenizer they are given.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from mlr1_titan.data.shards import tokenizer_fingerprint

TOKENIZER_RECORD = "mlr1_tokenizer.json"


def write_tokenizer_record(folder: str | Path, tokenizer) -> Path:
    path = Path(folder) / TOKENIZER_RECORD
    path.write_text(json.dumps(tokenizer_fingerprint(tokenizer), indent=1) + "\n")
    return path


def read_tokenizer_record(folder: str | Path) -> dict[str, Any] | None:
    """The record, or None for checkpoints written without one (older runs, import-hf)."""
    path = Path(folder) / TOKENIZER_RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text())
    except ValueError:
        return None
    return record if isinstance(record, dict) and "fingerprint" in record else None
