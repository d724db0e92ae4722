"""The MobileLLM-R1 decoder: exact sizes, numerical parity with transformers, document masking."""

from __future__ import annotations

import pytest
import torch
from model_testkit import llama4_text_config

from mlr1_titan.model import MLR1_FLAVORS, build_on_cpu, model_registry
from mlr1_titan.model.attention import document_causal_mask
from mlr1_titan.model.state_dict_adapter import MLR1StateDictAdapter

# Hand-checked totals (tied embedding counted once, weight-free QK norm); see paper_facts §1.7.
EXPECTED_PARAMS = {"140M": 140_248_512, "360M": 359_431_168, "950M": 949_685_760}


def build(flavor, attn_backend="sdpa_doc", seed=0):
    spec, model = build_on_cpu(flavor, attn_backend=attn_backend, seed=seed)
    return spec, model.eval()


@pytest.mark.parametrize("flavor", sorted(EXPECTED_PARAMS))
def test_parameter_counts_match_paper_table1(flavor):
    spec = model_registry(flavor)
    with torch.device("meta"):
        model = spec.model.build()
    assert sum(p.numel() for p in model.parameters()) == EXPECTED_PARAMS[flavor]
    assert MLR1_FLAVORS[flavor].num_params() == EXPECTED_PARAMS[flavor]
    nparams, _ = spec.model.get_nparams_and_flops(model, seq_len=2048)
    assert nparams == EXPECTED_PARAMS[flavor]


def test_shapes_follow_table1():
    cfg = model_registry("950M").model
    assert len(cfg.layers) == 22 and cfg.dim == 1536 and cfg.vocab_size == 128256
    attn = cfg.layers[0].attention
    assert (attn.n_heads, attn.n_kv_heads, attn.head_dim) == (24, 6, 64)
    assert cfg.layers[0].feed_forward.w1.out_features == 6144
    assert cfg.enable_weight_tying


def test_embedding_is_tied_to_lm_head():
    _, model = build("tiny")
    assert model.tok_embeddings.weight is model.lm_head.weight
    assert model.tok_embeddings.weight.std().item() == pytest.approx(0.02, rel=0.05)


def test_logits_match_transformers_llama4():
    from transformers import Llama4ForCausalLM

    flavor = MLR1_FLAVORS["tiny"].replace(n_layers=2, rope_theta=5.0e5)
    spec, ours = build(flavor)
    adapter = MLR1StateDictAdapter(spec.model, None)
    hf_state = adapter.to_hf({k: v for k, v in ours.state_dict().items()})
    assert "lm_head.weight" not in hf_state  # tied: HF stores embed_tokens only

    reference = Llama4ForCausalLM(llama4_text_config(flavor)).eval()
    missing, unexpected = reference.load_state_dict(hf_state, strict=False)
    assert unexpected == [] and set(missing) <= {"lm_head.weight"}
    reference.tie_weights()

    tokens = torch.randint(0, flavor.vocab_size, (2, 48), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours_logits = ours(tokens)
        ref_logits = reference(input_ids=tokens).logits
    max_abs = (ours_logits - ref_logits).abs().max().item()
    assert max_abs <= 1e-4, f"max |logit diff| = {max_abs:.3e}"

    # And the way back: HF names -> ours reproduces every tensor bit for bit.
    back = adapter.from_hf(hf_state)
    for key, value in ours.state_dict().items():
        assert torch.equal(back[key], value), key


def test_packed_documents_do_not_attend_across_boundaries():
    _, model = build("tiny")
    a = torch.randint(0, 5000, (1, 10))
    b = torch.randint(0, 5000, (1, 6))
    packed = torch.cat([a, b], dim=1)
    positions = torch.cat([torch.arange(10), torch.arange(6)]).unsqueeze(0)
    with torch.no_grad():
        packed_logits = model(packed, positions=positions)
        alone_a = model(a)
        alone_b = model(b)
    torch.testing.assert_close(packed_logits[:, :10], alone_a, atol=1e-5, rtol=1e-5)
    torch.testing.assert_close(packed_logits[:, 10:], alone_b, atol=1e-5, rtol=1e-5)
    # Without positions the second document would see the first: the outputs must differ.
    with torch.no_grad():
        causal_only = model(packed)
    assert not torch.allclose(causal_only[:, 10:], alone_b, atol=1e-3)


def test_document_causal_mask_values():
    positions = torch.tensor([[0, 1, 2, 0, 1]])
    mask = document_causal_mask(positions)[0, 0].int().tolist()
    assert mask == [
        [1, 0, 0, 0, 0],
        [1, 1, 0, 0, 0],
        [1, 1, 1, 0, 0],
        [0, 0, 0, 1, 0],
        [0, 0, 0, 1, 1],
    ]


def test_unknown_flavor_lists_available():
    with pytest.raises(ValueError, match="140M.*360M.*950M"):
        model_registry("7B")
