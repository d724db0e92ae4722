"""The teacher: its folder is checked, its tokenizer must be the student's, and torchtitan's Llama-3
model loaded through the HF adapter gives transformers' logits, document by document."""

from __future__ import annotations

import json

import pytest
import torch
from distill_testkit import make_hf_teacher, one_process_group, swap_two_token_ids
from torchtitan.config import ConfigManager
from torchtitan.distributed import ParallelDims

from mlr1_titan.distill.teacher import Teacher, TeacherRecord
from mlr1_titan.distill.teacher_folder import TeacherError, TeacherFolder, TeacherShape, check_same_tokenizer
from mlr1_titan.tokenizer import Llama3Tokenizer
from mlr1_titan.trainer import _check_teacher


@pytest.fixture(scope="module")
def teacher_dir(tmp_path_factory):
    return make_hf_teacher(tmp_path_factory.mktemp("teacher"))


def _config(teacher, *extra):
    return ConfigManager().parse_args(
        ["--module", "mlr1_titan", "--config", "mlr1_tiny_midtrain_phase1", "--distill.teacher", str(teacher),
         "--training.seq_len", "64", *extra]
    )  # fmt: skip


def test_teacher_logits_equal_transformers_document_by_document(teacher_dir, tmp_path):
    """Two documents packed in one row (positions restart at 0): our teacher's logits for each equal
    transformers' LlamaForCausalLM run on that document alone (GQA, head_dim, Llama-3.1 RoPE scaling)."""
    from transformers import LlamaForCausalLM

    config = _config(teacher_dir)
    folder = TeacherFolder.open(teacher_dir)
    with one_process_group(tmp_path):
        dims = ParallelDims.from_config(config.parallelism, 1)
        teacher = Teacher.build(
            folder, trainer_config=config, parallel_dims=dims, attn_backend="sdpa_doc", device=torch.device("cpu")
        )
        g = torch.Generator().manual_seed(3)
        doc_a, doc_b = torch.randint(128_000, (1, 40), generator=g), torch.randint(128_000, (1, 24), generator=g)
        tokens = torch.cat([doc_a, doc_b], dim=1)
        positions = torch.cat([torch.arange(40), torch.arange(24)]).unsqueeze(0)
        hidden = teacher.hidden_states(tokens, positions, None)
        with teacher.gathered_lm_head(), torch.no_grad():
            ours = teacher.lm_head(hidden)
    assert not any(p.requires_grad for p in teacher.model.parameters())
    hf = LlamaForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = torch.cat([hf(doc_a).logits, hf(doc_b).logits], dim=1)
    diff = (ours - ref).abs().max().item()
    print(f"\nmax |logit difference| teacher vs transformers: {diff:.2e} (logit scale {ref.abs().max():.2f})")
    assert diff < 1e-4


def test_a_teacher_with_another_vocabulary_is_refused_naming_both(tmp_path):
    other = make_hf_teacher(tmp_path / "other_vocab", vocab_size=32_000)
    with pytest.raises(TeacherError, match=r"vocab_size 32000 \(config.json\), the student 128256") as err:
        _check_teacher(_config(other))
    assert str(other) in str(err.value) and "tokenizer" in str(err.value)


def test_a_teacher_with_another_tokenizer_of_the_same_size_is_refused(teacher_dir, tmp_path):
    import shutil

    other = tmp_path / "other_tokenizer"
    shutil.copytree(teacher_dir, other)
    swap_two_token_ids(other, "Solve the equation")
    with pytest.raises(TeacherError, match="disagree on a probe text") as err:
        check_same_tokenizer(TeacherFolder.open(other), Llama3Tokenizer())
    assert str(other / "tokenizer.json") in str(err.value)
    check_same_tokenizer(TeacherFolder.open(teacher_dir), Llama3Tokenizer())  # the real one passes


def test_missing_or_partial_teacher_folders_name_what_is_missing(teacher_dir, tmp_path):
    import shutil

    with pytest.raises(TeacherError, match="not a folder"):
        TeacherFolder.open(tmp_path / "nowhere")
    no_tok = tmp_path / "no_tokenizer"
    shutil.copytree(teacher_dir, no_tok)
    (no_tok / "tokenizer.json").unlink()
    with pytest.raises(TeacherError, match="missing: tokenizer.json"):
        TeacherFolder.open(no_tok)

    # An index naming two shards, one of them not downloaded.
    sharded = tmp_path / "sharded"
    shutil.copytree(teacher_dir, sharded)
    (sharded / "model.safetensors").rename(sharded / "model-00001-of-00002.safetensors")
    names = json.loads((teacher_dir / "config.json").read_text())  # noqa: F841 (shape comes from config.json)
    weight_map = {
        "model.embed_tokens.weight": "model-00001-of-00002.safetensors",
        "lm_head.weight": "model-00002-of-00002.safetensors",
    }
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"metadata": {}, "weight_map": weight_map}))
    with pytest.raises(TeacherError, match="missing: model-00002-of-00002.safetensors"):
        TeacherFolder.open(sharded)

    # All files present, but a tensor absent from the weights (a truncated conversion).
    from safetensors.torch import load_file, save_file

    partial = tmp_path / "partial"
    shutil.copytree(teacher_dir, partial)
    tensors = load_file(partial / "model.safetensors")
    del tensors["model.layers.1.mlp.down_proj.weight"]
    save_file(tensors, partial / "model.safetensors", metadata={"format": "pt"})
    with pytest.raises(TeacherError, match="lack 1 tensors .* model.layers.1.mlp.down_proj.weight"):
        TeacherFolder.open(partial)


def test_a_hub_id_that_is_not_cached_offline_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", "/nonexistent-hf-home")
    config = _config("meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(TeacherError, match="not a local folder, and the hub snapshot is unavailable"):
        _check_teacher(config)


def test_fingerprint_follows_the_weights_and_resume_refuses_another_teacher(teacher_dir, tmp_path):
    a = TeacherFolder.open(teacher_dir).fingerprint()
    assert a == TeacherFolder.open(teacher_dir).fingerprint()
    other = make_hf_teacher(tmp_path / "other_weights", seed=1)
    b = TeacherFolder.open(other).fingerprint()
    assert a != b
    record = TeacherRecord(str(other), b)
    record.load_state_dict({"path": str(teacher_dir), "fingerprint": b})  # same weights: fine
    with pytest.raises(TeacherError, match=f"fingerprint {a}.*fingerprint {b}"):
        record.load_state_dict({"path": str(teacher_dir), "fingerprint": a})


def test_distillation_refuses_pipeline_parallel_and_dtensor_tp_at_config_time(teacher_dir):
    with pytest.raises((ValueError, SystemExit)):
        _config(teacher_dir, "--parallelism.pipeline_parallel_degree", "2")
    with pytest.raises((ValueError, SystemExit)):
        _config(teacher_dir, "--parallelism.tensor_parallel_degree", "2", "--parallelism.spmd_backend", "full_dtensor")
    assert _config(teacher_dir, "--parallelism.tensor_parallel_degree", "2").parallelism.tensor_parallel_degree == 2
    config = _config(teacher_dir)
    assert config.training.disable_cuda_graphs
    assert config.loss.distillation is not None and config.loss.distillation.temperature == 1.0
    assert _config("").loss.distillation is None  # no teacher: cross-entropy


def test_the_hub_llama31_8b_instruct_config_reads_as_torchtitans_8b():
    """config.json of meta-llama/Llama-3.1-8B-Instruct (transformers 4 layout: rope_theta + rope_scaling)."""
    hub = {
        "architectures": ["LlamaForCausalLM"], "model_type": "llama", "attention_bias": False, "mlp_bias": False,
        "hidden_size": 4096, "intermediate_size": 14336, "num_attention_heads": 32, "num_hidden_layers": 32,
        "num_key_value_heads": 8, "head_dim": 128, "rms_norm_eps": 1e-05, "rope_theta": 500000.0,
        "rope_scaling": {"factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                         "original_max_position_embeddings": 8192, "rope_type": "llama3"},
        "tie_word_embeddings": False, "vocab_size": 128256, "max_position_embeddings": 131072,
    }  # fmt: skip
    shape = TeacherShape.from_hf_config(hub, "config.json")
    assert shape.describe() == "32 layers, dim 4096, 32/8 heads x 128, FFN 14336, vocab 128256"
    assert shape.rope_theta == 500000.0 and shape.rope_scaling["factor"] == 8.0
    assert len(shape.hf_tensor_names()) == 3 + 32 * 9
    with pytest.raises(TeacherError, match="rope_type default or llama3"):
        TeacherShape.from_hf_config({**hub, "rope_scaling": {"rope_type": "yarn", "factor": 4.0}}, "config.json")
