"""A small BPE vocabulary learnt from the demo's own text, written as a tiktoken file.

The demo's model is tiny; with the 128,000-rank Llama-3 vocabulary the embedding and the output
layer would be most of its cost. So the demo learns ``n_ranks`` byte-level BPE ranks from its
generated corpus (the HF ``tokenizers`` trainer, with Llama-3's pre-tokenizer) and writes them in
Meta's tiktoken format. ``Llama3Tokenizer`` reads that file exactly as it reads Llama-3's: the same
pre-tokenizer, the same 256 special tokens (numbered after the ranks), the same chat format and HF
export. Only the ranks differ. Numbers stay one token per digit (multi-digit merges are dropped), so
the tiny model can learn arithmetic digit by digit.
"""

from __future__ import annotations

import base64
import json
from collections.abc import Iterable
from pathlib import Path

from tokenizers import Regex, Tokenizer, models, pre_tokenizers, trainers

from mlr1_titan.tokenizer import PRETOKENIZE_REGEX, _byte_level_to_bytes


def learn_ranks(texts: Iterable[str], n_ranks: int) -> dict[bytes, int]:
    """At most ``n_ranks`` BPE ranks (the 256 bytes first, then merges in the order they were learnt;
    fewer when the text has no more pairs worth merging)."""
    if n_ranks < 256:
        raise ValueError(f"a byte-level vocabulary needs at least 256 ranks, got {n_ranks}")
    hf = Tokenizer(models.BPE())
    hf.pre_tokenizer = pre_tokenizers.Sequence(
        [
            pre_tokenizers.Split(Regex(PRETOKENIZE_REGEX), behavior="isolated"),
            pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False),
        ]
    )
    # Room for the multi-digit merges dropped below.
    trainer = trainers.BpeTrainer(
        vocab_size=n_ranks + 1500, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False
    )
    hf.train_from_iterator(texts, trainer)
    merges = json.loads(hf.to_str())["model"]["merges"]
    ranks = {bytes([b]): b for b in range(256)}
    for merge in merges:
        left, right = merge if isinstance(merge, list) else merge.split(" ")
        token = _byte_level_to_bytes(left + right)
        if token is None or token in ranks or (len(token) > 1 and token.isdigit()):
            continue
        ranks[token] = len(ranks)
        if len(ranks) == n_ranks:
            break
    return ranks


def write_tiktoken_file(ranks: dict[bytes, int], path: str | Path) -> Path:
    """Meta's format: one ``<base64 token bytes> <rank>`` line per rank."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = [f"{base64.b64encode(token).decode()} {rank}" for token, rank in sorted(ranks.items(), key=lambda x: x[1])]
    path.write_text("\n".join(lines) + "\n")
    return path
