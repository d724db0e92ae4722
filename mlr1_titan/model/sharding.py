"""Declarative TP/SP layout of MobileLLM-R1 (torchtitan 0.3 ``ShardingConfig`` on every sub-config).

The block is the stock dense decoder: colwise q/k/v and w1/w3, rowwise wo and w2, vocab-parallel
embedding and lm_head. The weight-free QK norm works per head on the local head shard, so unlike
Qwen3's learnable ``qk_norm`` it needs no sharding entry.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import spmd_types as spmd
from torchtitan.models.common.attention import GQAttention
from torchtitan.models.common.decoder_sharding import (
    dense_activation_placement,
    dense_sequence_parallel_placement,
    norm_config,
    set_decoder_sharding_config,
    set_dense_ffn_sharding,
    set_gqa_attention_sharding,
    set_gqa_inner_attention_local_map,
)

if TYPE_CHECKING:
    from .model import MLR1Model


def set_mlr1_sharding_config(config: "MLR1Model.Config", *, enable_sp: bool) -> None:
    """Fill ``sharding_config`` on every sub-config; disabled mesh axes are dropped at runtime."""
    set_decoder_sharding_config(config, enable_sp=enable_sp)
    attn_x_layout = dense_sequence_parallel_placement() if enable_sp else dense_activation_placement(tp=spmd.I)
    for layer_cfg in config.layers:
        attention = layer_cfg.attention
        assert isinstance(attention, GQAttention.Config)
        norm = norm_config(enable_sp=enable_sp)
        layer_cfg.attention_norm.sharding_config = norm
        layer_cfg.ffn_norm.sharding_config = norm
        set_gqa_attention_sharding(attention, enable_sp=enable_sp)
        set_gqa_inner_attention_local_map(attention.inner_attention)
        set_dense_ffn_sharding(layer_cfg.feed_forward, attn_x_layout=attn_x_layout, enable_sp=enable_sp)
