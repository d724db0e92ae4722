"""The teacher: its folder is checked, its tokenizer must be the student's, and torchtitan's Llama-3
model loaded through the HF adapter gives transformers' logits, document by document."""

from __future__ import annotations

import json
import re

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


def _one_line(tyro_error: str) -> str:
    """tyro's boxed error message as one line of single-spaced text."""
    return re.sub(r"[\s│]+", " ", tyro_error)


def _build_teacher(folder, config):
    dims = ParallelDims.from_config(config.parallelism, 1)
    return Teacher.build(
        folder, trainer_config=config, parallel_dims=dims, attn_backend="sdpa_doc", device=torch.device("cpu")
    )


@pytest.mark.parametrize("layout", ["untied", "tied", "sharded"])
def test_teacher_logits_equal_transformers_document_by_document(teacher_dir, tmp_path, layout):
    """Two documents packed in one row (positions restart at 0): our teacher's logits for each equal
    transformers' LlamaForCausalLM run on that document alone (GQA, head_dim, Llama-3.1 RoPE scaling),
    for the Llama-3.1 layout, a tied-embedding (Llama-3.2 style) and a sharded-safetensors folder."""
    from transformers import LlamaForCausalLM

    if layout == "tied":
        teacher_dir = make_hf_teacher(tmp_path / "tied", tie_word_embeddings=True)
    elif layout == "sharded":
        teacher_dir = make_hf_teacher(tmp_path / "sharded", max_shard_size="20MB")
        assert len(list(teacher_dir.glob("model-*.safetensors"))) > 1
    config = _config(teacher_dir)
    folder = TeacherFolder.open(teacher_dir)
    with one_process_group(tmp_path):
        teacher = _build_teacher(folder, config)
        g = torch.Generator().manual_seed(3)
        doc_a, doc_b = torch.randint(128_000, (1, 40), generator=g), torch.randint(128_000, (1, 24), generator=g)
        tokens = torch.cat([doc_a, doc_b], dim=1)
        positions = torch.cat([torch.arange(40), torch.arange(24)]).unsqueeze(0)
        hidden = teacher.hidden_states(tokens, positions, None)
        with teacher.loss_scope(), torch.no_grad():
            ours = teacher.lm_head(hidden)
    assert not any(p.requires_grad for p in teacher.model.parameters())
    hf = LlamaForCausalLM.from_pretrained(teacher_dir, dtype=torch.float32).eval()
    with torch.no_grad():
        ref = torch.cat([hf(doc_a).logits, hf(doc_b).logits], dim=1)
    diff = (ours - ref).abs().max().item()
    print(f"\n{layout}: max |logit difference| teacher vs transformers: {diff:.2e} (scale {ref.abs().max():.2f})")
    assert diff < 1e-4


def test_fsdp_records_of_teacher_forwards_do_not_pile_up(teacher_dir, tmp_path):
    """FSDP logs each forward for a backward; the teacher has none, so each micro-batch must clear them."""
    config = _config(teacher_dir)
    with one_process_group(tmp_path):
        teacher = _build_teacher(TeacherFolder.open(teacher_dir), config)
        group = teacher.lm_head._get_fsdp_state()._fsdp_param_group
        tokens, positions = torch.randint(1000, (1, 16)), torch.arange(16).unsqueeze(0)
        sizes = []
        for _ in range(4):
            hidden = teacher.hidden_states(tokens, positions, None)
            with teacher.loss_scope(), torch.no_grad():
                for chunk in hidden.split(4, dim=1):
                    teacher.lm_head(chunk)
            sizes.append(len(group.comm_ctx.post_forward_order))
    assert sizes == [0, 0, 0, 0]


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


def test_a_hub_id_is_resolved_from_the_local_cache_only(monkeypatch, teacher_dir, tmp_path):
    """Ranks never download the teacher: a cached snapshot is used, a missing one is a clear error."""
    import shutil

    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path / "hf_home" / "hub"))
    config = _config("meta-llama/Llama-3.1-8B-Instruct")
    with pytest.raises(TeacherError, match=r"not in the local HF cache .*hf download meta-llama/Llama-3.1-8B-Instruct"):
        _check_teacher(config)
    # The hub cache layout: models--org--name/{refs/main, snapshots/<commit>/...}
    repo = tmp_path / "hf_home" / "hub" / "models--meta-llama--Llama-3.1-8B-Instruct"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("0" * 40)
    shutil.copytree(teacher_dir, repo / "snapshots" / ("0" * 40))
    assert _check_teacher(config).path == repo / "snapshots" / ("0" * 40)


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


def test_distillation_refuses_pipeline_parallel_and_dtensor_backends_at_config_time(teacher_dir, capsys):
    for flags, message in (
        (("--parallelism.pipeline_parallel_degree", "2"), "distillation with pipeline_parallel_degree 2"),
        (("--parallelism.spmd_backend", "full_dtensor"), "distillation with spmd_backend 'full_dtensor'"),
        (("--parallelism.tensor_parallel_degree", "2", "--parallelism.spmd_backend", "partial_dtensor"),
         "distillation with spmd_backend 'partial_dtensor' and tensor_parallel_degree 2"),
    ):  # fmt: skip
        with pytest.raises(SystemExit):  # tyro reports the config's ValueError and exits 2
            _config(teacher_dir, *flags)
        assert message in _one_line(capsys.readouterr().err)
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


def test_a_teacher_that_cannot_cover_the_run_is_refused_before_training(teacher_dir, tmp_path):
    import shutil

    short = tmp_path / "short_context"
    shutil.copytree(teacher_dir, short)
    cfg = json.loads((short / "config.json").read_text())
    (short / "config.json").write_text(json.dumps({**cfg, "max_position_embeddings": 32}))
    with pytest.raises(TeacherError, match="training.seq_len 64 exceeds the teacher's max_position_embeddings 32"):
        _check_teacher(_config(short))
    three_kv = make_hf_teacher(
        tmp_path / "three_kv", num_attention_heads=6, num_key_value_heads=3, head_dim=16, hidden_size=96
    )
    with pytest.raises(
        TeacherError, match="tensor_parallel_degree 2 does not divide the teacher's num_key_value_heads 3"
    ):
        _check_teacher(_config(three_kv, "--parallelism.tensor_parallel_degree", "2"))
    gelu = tmp_path / "gelu"
    shutil.copytree(teacher_dir, gelu)
    (gelu / "config.json").write_text(json.dumps({**cfg, "hidden_act": "gelu"}))
    with pytest.raises(TeacherError, match="hidden_act 'gelu'"):
        TeacherFolder.open(gelu)


def test_a_git_lfs_pointer_instead_of_weights_is_named(teacher_dir, tmp_path):
    import shutil

    pointer = tmp_path / "lfs_pointer"
    shutil.copytree(teacher_dir, pointer)
    (pointer / "model.safetensors").write_text(
        "version https://git-lfs.github.com/spec/v1\noid sha256:" + "0" * 64 + "\nsize 132911872\n"
    )
    with pytest.raises(TeacherError, match=r"model.safetensors is not a safetensors file .*Git LFS pointer"):
        TeacherFolder.open(pointer)


def test_initial_load_path_without_an_enabled_checkpointer_is_refused(teacher_dir, capsys):
    with pytest.raises(SystemExit):
        _config(teacher_dir, "--checkpoint.no-enable", "--checkpoint.initial_load_path", "/abs/ckpt/step-30")
    assert "checkpoint.enable is false" in _one_line(capsys.readouterr().err)
