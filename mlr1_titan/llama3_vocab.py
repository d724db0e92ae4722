"""The Llama-3 vocabulary: 128,000 BPE ranks followed by 256 special tokens (paper §3.1).

Every module that needs a special token, its id or the vocabulary size takes it from here, so the
numbers live once. Ids follow the Llama 3.1 / 3.2 layout (``docs/paper_facts.md``, tokenizer).
"""

from __future__ import annotations

NUM_BPE_RANKS = 128_000
NUM_SPECIAL_TOKENS = 256
VOCAB_SIZE = NUM_BPE_RANKS + NUM_SPECIAL_TOKENS
"""128,256: embedding rows of every MobileLLM-R1 size (inferred from the exact Table 1 counts)."""

BOS_TOKEN = "<|begin_of_text|>"
EOS_TOKEN = "<|end_of_text|>"
PAD_TOKEN = "<|finetune_right_pad_id|>"
START_HEADER_TOKEN = "<|start_header_id|>"
END_HEADER_TOKEN = "<|end_header_id|>"
EOM_TOKEN = "<|eom_id|>"
EOT_TOKEN = "<|eot_id|>"

# Every id in the 256-slot block not named here is a `<|reserved_special_token_N|>`, numbered on from 3.
_NAMED_SPECIAL_TOKENS = (
    BOS_TOKEN,
    EOS_TOKEN,
    "<|reserved_special_token_0|>",
    "<|reserved_special_token_1|>",
    PAD_TOKEN,
    "<|reserved_special_token_2|>",
    START_HEADER_TOKEN,
    END_HEADER_TOKEN,
    EOM_TOKEN,
    EOT_TOKEN,
    "<|python_tag|>",
)


def llama3_special_tokens(first_id: int = NUM_BPE_RANKS) -> dict[str, int]:
    """The 256 Llama-3 special tokens, numbered from ``first_id`` (= number of BPE ranks)."""
    reserved = [
        f"<|reserved_special_token_{n}|>" for n in range(3, 3 + NUM_SPECIAL_TOKENS - len(_NAMED_SPECIAL_TOKENS))
    ]
    names = [*_NAMED_SPECIAL_TOKENS, *reserved]
    return {name: first_id + offset for offset, name in enumerate(names)}


_IDS = llama3_special_tokens()
BOS_ID = _IDS[BOS_TOKEN]  # 128000
END_OF_TEXT_ID = _IDS[EOS_TOKEN]  # 128001
PAD_ID = _IDS[PAD_TOKEN]  # 128004
EOM_ID = _IDS[EOM_TOKEN]  # 128008
EOT_ID = _IDS[EOT_TOKEN]  # 128009
