"""Build the transformers reference model (HF Llama4ForCausalLM) for an MLR1 flavor; shared by tests."""

from __future__ import annotations

from mlr1_titan.model.flavors import MLR1Flavor


def llama4_text_config(flavor: MLR1Flavor, max_position_embeddings: int = 4096):
    """A ``llama4_text`` config describing the same dense MobileLLM-R1 block."""
    from transformers import Llama4TextConfig

    return Llama4TextConfig(
        vocab_size=flavor.vocab_size,
        hidden_size=flavor.dim,
        intermediate_size=flavor.ffn_hidden_dim,
        intermediate_size_mlp=flavor.ffn_hidden_dim,
        num_hidden_layers=flavor.n_layers,
        num_attention_heads=flavor.n_heads,
        num_key_value_heads=flavor.n_kv_heads,
        head_dim=flavor.head_dim,
        rms_norm_eps=flavor.norm_eps,
        rope_theta=flavor.rope_theta,
        max_position_embeddings=max_position_embeddings,
        use_qk_norm=True,
        no_rope_layers=[1] * flavor.n_layers,  # 1 = this layer uses RoPE: all of them
        moe_layers=[],
        num_local_experts=0,
        attention_chunk_size=None,
        tie_word_embeddings=True,
        attention_bias=False,
        initializer_range=flavor.init_std,
        bos_token_id=128000,
        eos_token_id=[128001, 128008, 128009],
        pad_token_id=128004,
    )
