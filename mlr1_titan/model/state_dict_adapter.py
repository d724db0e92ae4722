"""torchtitan FQNs <-> Hugging Face ``Llama4ForCausalLM`` (``llama4_text``) names.

The released MobileLLM-R1 checkpoints are dense Llama-4 text models. Llama-4 applies RoPE in the
interleaved (complex-pair) layout, the same as torchtitan's ``ComplexRoPE``, so unlike the Llama-3
adapter no q/k row permutation is needed: the mapping is a pure renaming. The fused ``wqkv`` is
split into ``wq``/``wk``/``wv`` by torchtitan's own state-dict hooks before this adapter runs.
"""

from __future__ import annotations

import re
from typing import Any

from torchtitan.models.common.rope import ComplexRoPE
from torchtitan.protocols.state_dict_adapter import StateDictAdapter

# HF name -> torchtitan name; "{}" is the layer index.
HF_TO_TITAN: dict[str, str] = {
    "model.embed_tokens.weight": "tok_embeddings.weight",
    "model.layers.{}.self_attn.q_proj.weight": "layers.{}.attention.qkv_linear.wq.weight",
    "model.layers.{}.self_attn.k_proj.weight": "layers.{}.attention.qkv_linear.wk.weight",
    "model.layers.{}.self_attn.v_proj.weight": "layers.{}.attention.qkv_linear.wv.weight",
    "model.layers.{}.self_attn.o_proj.weight": "layers.{}.attention.wo.weight",
    "model.layers.{}.feed_forward.gate_proj.weight": "layers.{}.feed_forward.w1.weight",
    "model.layers.{}.feed_forward.up_proj.weight": "layers.{}.feed_forward.w3.weight",
    "model.layers.{}.feed_forward.down_proj.weight": "layers.{}.feed_forward.w2.weight",
    "model.layers.{}.input_layernorm.weight": "layers.{}.attention_norm.weight",
    "model.layers.{}.post_attention_layernorm.weight": "layers.{}.ffn_norm.weight",
    "model.norm.weight": "norm.weight",
    "lm_head.weight": "lm_head.weight",
}
TITAN_TO_HF: dict[str, str] = {v: k for k, v in HF_TO_TITAN.items()}

_LAYER_INDEX = re.compile(r"\.(\d+)\.")


def _abstract(key: str) -> tuple[str, str | None]:
    """'layers.3.attention.wo.weight' -> ('layers.{}.attention.wo.weight', '3')."""
    match = _LAYER_INDEX.search(key)
    if match is None:
        return key, None
    return key[: match.start()] + ".{}." + key[match.end() :], match.group(1)


def _rename(key: str, table: dict[str, str], direction: str) -> str:
    abstract, layer = _abstract(key)
    if abstract not in table:
        raise KeyError(f"{direction}: no mapping for tensor {key!r}; known names: {sorted(table)}")
    return table[abstract].format(layer) if layer is not None else table[abstract]


class MLR1StateDictAdapter(StateDictAdapter):
    def to_hf(self, state_dict: dict[str, Any]) -> dict[str, Any]:
        tied = getattr(self.model_config, "enable_weight_tying", False)
        hf_state_dict = {}
        for key, value in state_dict.items():
            # HF ties lm_head to embed_tokens (tie_word_embeddings=True) and stores only the latter.
            if tied and key == "lm_head.weight":
                if self.fqn_to_index_mapping:
                    self.fqn_to_index_mapping.pop("lm_head.weight", None)
                continue
            hf_state_dict[_rename(key, TITAN_TO_HF, "to_hf")] = value
        return hf_state_dict

    def from_hf(self, hf_state_dict: dict[str, Any]) -> dict[str, Any]:
        self._validate_hf_rope_config(ComplexRoPE.Config)
        hf_state_dict = dict(hf_state_dict)
        tied = getattr(self.model_config, "enable_weight_tying", False)
        if tied:
            # Tied checkpoints may or may not carry lm_head; torchtitan keeps both names.
            hf_state_dict.setdefault("lm_head.weight", hf_state_dict["model.embed_tokens.weight"])
        state_dict = {}
        for key, value in hf_state_dict.items():
            if key.endswith("rotary_emb.inv_freq"):
                continue  # a derived buffer some exporters write
            state_dict[_rename(key, HF_TO_TITAN, "from_hf")] = value
        return state_dict
