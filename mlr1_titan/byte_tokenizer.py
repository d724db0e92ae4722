"""``ByteTokenizer``: one token per UTF-8 byte (vocabulary 259), for controlled experiments.

The mixture-scoring validation (``mlr1_titan.mix.controlled``) trains models small enough that the
128k-entry Llama-3 vocabulary would dominate their cost; a byte vocabulary keeps the whole problem a
few seconds of CPU. ``--tokenizer bytes`` selects it in the ``mlr1`` data and mix commands.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torchtitan.components.tokenizer import BaseTokenizer

BOS, EOS, OFFSET = 1, 2, 3
"""Token 0 is unused (padding), 1 and 2 are BOS / EOS, byte b is token b + 3."""


class ByteTokenizer(BaseTokenizer):
    """One token per UTF-8 byte (id = byte + 3), BOS = 1, EOS = 2."""

    @dataclass(kw_only=True, slots=True)
    class Config(BaseTokenizer.Config):
        pass

    def __init__(self, config=None, **kwargs):
        super().__init__()
        self.bos_id, self.eos_id = BOS, EOS

    def encode(self, text: str, add_bos: bool = False, add_eos: bool = False) -> list[int]:
        ids = (np.frombuffer(text.encode(), dtype=np.uint8).astype(np.int64) + OFFSET).tolist()
        return ([BOS] if add_bos else []) + ids + ([EOS] if add_eos else [])

    def decode(self, ids) -> str:
        return bytes(int(i) - OFFSET for i in ids if i >= OFFSET).decode(errors="replace")

    def get_vocab_size(self) -> int:
        return 256 + OFFSET
