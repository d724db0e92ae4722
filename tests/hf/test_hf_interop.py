"""HF interop: DCP -> HF folder (transformers loads it, same logits), HF -> DCP, round trips, errors."""

from __future__ import annotations

import json
import re
import shutil

import pytest
import torch
from hf_testkit import (
    TEMPLATE,
    build_model,
    files_of,
    load_model_from_dcp,
    max_logit_diff,
    save_model_dcp,
    tokens,
)

from mlr1_titan.cli import main as mlr1_cli
from mlr1_titan.config_registry import load_trainer_config
from mlr1_titan.hf.config import HFInteropError, hf_config_dict
from mlr1_titan.hf.export import export_hf
from mlr1_titan.hf.importer import import_hf
from mlr1_titan.model.flavors import MLR1_FLAVORS
from mlr1_titan.resources import model_configs_dir

QUIET = lambda message: None  # noqa: E731


@pytest.fixture(scope="module")
def tiny(tmp_path_factory):
    """The tiny flavor with random weights, saved as a DCP checkpoint."""
    model = build_model("tiny", seed=0)
    ckpt = save_model_dcp(model, tmp_path_factory.mktemp("tiny") / "step-0")
    return model, ckpt


@pytest.fixture(scope="module")
def tiny_export(tiny, tmp_path_factory, llama3_tokenizer, chat_template_file):
    _, ckpt = tiny
    out = tmp_path_factory.mktemp("export") / "hf"
    # 60 MB shards: the embedding (131 MB) alone, the layers together -> index + 2 files.
    result = export_hf(
        ckpt, out, tokenizer=llama3_tokenizer, chat_template=chat_template_file, max_shard_size="60MB", log=QUIET
    )
    return result


def test_export_loads_in_transformers_with_equal_logits(tiny, tiny_export):
    from transformers import AutoModelForCausalLM

    model, _ = tiny
    out = tiny_export.out_dir
    assert sorted(tiny_export.files) == [
        "config.json",
        "generation_config.json",
        "model-00001-of-00002.safetensors",
        "model-00002-of-00002.safetensors",
        "model.safetensors.index.json",
        "tokenizer.json",
        "tokenizer_config.json",
    ]
    hf_model = AutoModelForCausalLM.from_pretrained(str(out))
    assert type(hf_model).__name__ == "Llama4ForCausalLM"
    assert hf_model.model.embed_tokens.weight is hf_model.lm_head.weight  # tied
    diff = max_logit_diff(model, out, tokens())
    print(f"\nmax |logit diff| ours vs transformers (tiny, fp32): {diff:.3e}")
    assert diff <= 1e-4


def test_export_config_generation_config_and_tokenizer(tiny_export, llama3_tokenizer):
    from transformers import AutoTokenizer, GenerationConfig

    out = tiny_export.out_dir
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["architectures"] == ["Llama4ForCausalLM"] and cfg["model_type"] == "llama4_text"
    assert cfg["use_qk_norm"] is True and cfg["no_rope_layers"] == [1, 1, 1, 1]
    assert cfg["moe_layers"] == [] and cfg["interleave_moe_layer_step"] == 0 and cfg["num_local_experts"] == 0
    assert cfg["tie_word_embeddings"] is True and cfg["attention_chunk_size"] is None
    assert (cfg["rope_theta"], cfg["max_position_embeddings"]) == (1.0e6, 4096)  # base stage
    assert cfg["rope_parameters"] == {"rope_type": "default", "rope_theta": 1.0e6}
    assert (cfg["bos_token_id"], cfg["eos_token_id"], cfg["pad_token_id"]) == (128000, [128001, 128008, 128009], 128004)
    assert cfg["torch_dtype"] == "float32"

    gen = GenerationConfig.from_pretrained(str(out))
    assert (gen.temperature, gen.top_p, gen.do_sample) == (0.6, 0.95, True)
    assert gen.eos_token_id == [128009, 128001]  # <|eot_id|>, <|end_of_text|>

    tok = AutoTokenizer.from_pretrained(str(out))
    text = "MobileLLM-R1 reasons: 12 + 30 = 42."
    assert tok(text, add_special_tokens=False).input_ids == llama3_tokenizer.encode(text)
    assert tok.chat_template == TEMPLATE
    rendered = tok.apply_chat_template([{"role": "user", "content": "hi"}], tokenize=False, add_generation_prompt=True)
    assert rendered.endswith("<|start_header_id|>assistant<|end_header_id|>\n\n")
    assert tok.model_max_length == 4096


def test_export_import_export_is_bit_identical(tiny, tiny_export, tmp_path, llama3_tokenizer, chat_template_file):
    model, _ = tiny
    imported = tmp_path / "dcp"
    result = import_hf(tiny_export.out_dir, imported, log=QUIET)
    assert result.flavor == MLR1_FLAVORS["tiny"]
    # The imported checkpoint holds exactly the weights we started from.
    back = load_model_from_dcp("tiny", imported)
    for key, value in model.state_dict().items():
        assert torch.equal(back.state_dict()[key], value), key
    again = export_hf(
        imported,
        tmp_path / "hf2",
        tokenizer=llama3_tokenizer,
        chat_template=chat_template_file,
        max_shard_size="60MB",
        log=QUIET,
    )
    assert files_of(again.out_dir) == files_of(tiny_export.out_dir)


def test_bfloat16_export(tiny, tmp_path, llama3_tokenizer):
    model, ckpt = tiny
    result = export_hf(
        ckpt, tmp_path / "bf16", dtype="bfloat16", tokenizer=llama3_tokenizer, chat_template=False, log=QUIET
    )
    assert json.loads((result.out_dir / "config.json").read_text())["torch_dtype"] == "bfloat16"
    assert "model.safetensors" in result.files and "model.safetensors.index.json" not in result.files
    assert result.weights_bytes == pytest.approx(model.tok_embeddings.weight.numel() * 2, rel=0.15)
    assert "chat_template" not in json.loads((result.out_dir / "tokenizer_config.json").read_text())
    from safetensors import safe_open

    with safe_open(str(result.out_dir / "model.safetensors"), "pt") as f:
        norm = f.get_tensor("model.norm.weight")
    assert norm.dtype == torch.bfloat16 and torch.equal(norm, model.norm.weight.detach().to(torch.bfloat16))


def test_950m_config_carries_table1_shapes():
    """Built on the meta device: the shapes of our 950M model -> detected flavor -> config.json."""
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    from mlr1_titan.hf.shapes import detect_flavor, hf_shapes, titan_shapes

    flavor = detect_flavor(titan_shapes(MLR1_FLAVORS["950M"]))
    assert flavor == MLR1_FLAVORS["950M"]
    cfg = hf_config_dict(flavor)
    assert (
        cfg["num_hidden_layers"],
        cfg["hidden_size"],
        cfg["num_attention_heads"],
        cfg["num_key_value_heads"],
        cfg["head_dim"],
        cfg["intermediate_size_mlp"],
        cfg["vocab_size"],
    ) == (22, 1536, 24, 6, 64, 6144, 128256)
    hf_config = Llama4TextConfig.from_dict(cfg)
    with torch.device("meta"):
        hf_model = Llama4ForCausalLM(hf_config)
    assert sum(p.numel() for p in hf_model.parameters()) == 949_685_760  # paper Table 1 / paper_facts §1.7
    hf_state = {k: tuple(v.shape) for k, v in hf_model.state_dict().items() if k != "lm_head.weight"}
    assert hf_state == hf_shapes(flavor)


def released_config(n_layers=2):
    """config.json as the released post-trained checkpoints lay it out (paper_facts §1.3)."""
    return {
        "architectures": ["Llama4ForCausalLM"],
        "model_type": "llama4_text",
        "attention_bias": False,
        "attention_chunk_size": 32768,
        "attention_dropout": 0.0,
        "attn_scale": 0.1,
        "attn_temperature_tuning": True,
        "bos_token_id": 128000,
        "eos_token_id": [128001, 128008, 128009],
        "floor_scale": 8192,
        "head_dim": 64,
        "hidden_act": "silu",
        "hidden_size": 256,
        "initializer_range": 0.02,
        "interleave_moe_layer_step": 0,
        "intermediate_size": 768,
        "intermediate_size_mlp": 768,
        "max_position_embeddings": 32768,
        "moe_layers": [],
        "no_rope_layers": [1] * n_layers,
        "num_attention_heads": 4,
        "num_experts_per_tok": 0,
        "num_hidden_layers": n_layers,
        "num_key_value_heads": 2,
        "num_local_experts": 0,
        "pad_token_id": 0,
        "rms_norm_eps": 1e-05,
        "rope_scaling": None,
        "rope_theta": 8000000.0,
        "tie_word_embeddings": True,
        "torch_dtype": "bfloat16",
        "transformers_version": "4.56.0",
        "use_cache": True,
        "use_qk_norm": True,
        "vocab_size": 128256,
    }


@pytest.fixture(scope="module")
def released_folder(tmp_path_factory):
    """A bf16 HF folder in the released layout, weights made by transformers itself."""
    from transformers import Llama4ForCausalLM, Llama4TextConfig

    folder = tmp_path_factory.mktemp("released") / "MobileLLM-R1-tiny"
    torch.manual_seed(3)
    reference = Llama4ForCausalLM(Llama4TextConfig.from_dict(released_config()))
    reference.to(torch.bfloat16).save_pretrained(str(folder))
    (folder / "config.json").write_text(json.dumps(released_config(), indent=2))
    return folder


def test_import_released_layout_and_reexport(released_folder, tmp_path, llama3_tokenizer):
    out = tmp_path / "r1-tiny"
    result = import_hf(released_folder, out, log=QUIET)
    flavor = result.flavor
    assert flavor.replace(rope_theta=1e6, max_seq_len=4096) == MLR1_FLAVORS["tiny"].replace(n_layers=2)
    assert (flavor.rope_theta, flavor.max_seq_len) == (8.0e6, 32768)  # post-trained stage (x8 theta, 32k)
    assert result.dtype == torch.bfloat16
    ours = load_model_from_dcp(flavor, out)
    # transformers' own model on the same (bf16-valued) weights, in fp32.
    diff = max_logit_diff(ours, released_folder, tokens(length=24))
    print(f"\nreleased layout (bf16 weights made by transformers): max |logit diff| {diff:.3e}")
    assert diff <= 1e-4, diff

    # The written model config trains this shape (and extends the repo's base recipe).
    cfg = load_trainer_config(str(result.model_toml))
    attention = cfg.model_spec.model.layers[0].attention
    assert len(cfg.model_spec.model.layers) == 2 and attention.rope.theta == 8.0e6
    assert attention.rope.max_seq_len == 32768

    # Re-export: the stage comes back from mlr1_model.toml.
    again = export_hf(out, tmp_path / "hf", tokenizer=llama3_tokenizer, chat_template=False, log=QUIET)
    cfg = json.loads((again.out_dir / "config.json").read_text())
    assert (cfg["rope_theta"], cfg["max_position_embeddings"], cfg["torch_dtype"]) == (8.0e6, 32768, "float32")


# ---------------------------------------------------------------------------------------------
# Errors name the input: file, tensor, expected vs actual.


def small_hf_folder(folder, config_overrides=None, tensor_overrides=None, vocab=128_256):
    """A 1-layer HF folder (zeros, bf16) with optional bad config fields or bad tensors."""
    from safetensors.torch import save_file

    from mlr1_titan.hf.shapes import hf_shapes

    flavor = MLR1_FLAVORS["tiny"].replace(
        n_layers=1, dim=64, n_heads=1, n_kv_heads=1, ffn_hidden_dim=128, vocab_size=vocab
    )
    folder.mkdir(parents=True, exist_ok=True)
    cfg = hf_config_dict(flavor) | (config_overrides or {})
    (folder / "config.json").write_text(json.dumps(cfg))
    shapes = hf_shapes(flavor) | (tensor_overrides or {})
    save_file({k: torch.zeros(s, dtype=torch.bfloat16) for k, s in shapes.items()}, str(folder / "model.safetensors"))
    return folder


def test_import_shape_mismatch_names_tensor_and_shapes(tmp_path):
    src = small_hf_folder(tmp_path / "bad", tensor_overrides={"model.layers.0.self_attn.k_proj.weight": (128, 64)})
    with pytest.raises(HFInteropError) as err:
        import_hf(src, tmp_path / "out", log=QUIET)
    assert "tensor model.layers.0.self_attn.k_proj.weight: expected shape [64, 64], found [128, 64]" in str(err.value)
    assert not (tmp_path / "out").exists()  # nothing written


def test_import_vocab_mismatch(tmp_path):
    src = small_hf_folder(tmp_path / "v", vocab=32_000)
    with pytest.raises(HFInteropError, match=r"vocab mismatch: model.embed_tokens.weight has 32000 rows.*128256"):
        import_hf(src, tmp_path / "out", log=QUIET)


@pytest.mark.parametrize(
    "overrides, message",
    [
        ({"no_rope_layers": [0]}, r"no_rope_layers = \[0\].*NoPE layers \[0\]"),
        ({"moe_layers": None, "interleave_moe_layer_step": 1}, r"moe_layers = \[0\]"),
        ({"use_qk_norm": False}, "use_qk_norm"),
        ({"rope_scaling": {"rope_type": "llama3", "factor": 8.0}}, "rope_scaling.rope_type = 'llama3'"),
        ({"model_type": "llama"}, "model_type is 'llama'"),
    ],
)
def test_import_refuses_configs_we_cannot_run(tmp_path, overrides, message):
    src = small_hf_folder(tmp_path / "c", config_overrides=overrides)
    with pytest.raises(HFInteropError, match=message) as err:
        import_hf(src, tmp_path / "out", log=QUIET)
    assert "config.json" in str(err.value)


def test_import_with_config_of_another_size(released_folder, tmp_path, capsys):
    assert mlr1_cli(["import-hf", str(released_folder), str(tmp_path / "out"), "--config", "mlr1_950m"]) == 1
    assert re.search(
        r"different model than --config .*mlr1_950m.toml\): n_layers 22 expected, 2 found", capsys.readouterr().err
    )


def test_export_errors_name_the_input(tiny, tmp_path, capsys):
    _, ckpt = tiny
    with pytest.raises(HFInteropError, match=r"not a torchtitan DCP checkpoint: no \.metadata"):
        export_hf(tmp_path, tmp_path / "out", log=QUIET)
    assert mlr1_cli(["export-hf", str(ckpt), str(tmp_path / "out"), "--config", "mlr1_950m"]) == 1
    assert "tensor tok_embeddings.weight: expected shape [128256, 1536], found [128256, 256]" in capsys.readouterr().err
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    with pytest.raises(HFInteropError, match="not empty; pass --force"):
        export_hf(ckpt, tmp_path / "full", log=QUIET)


def test_cli_commands(tiny_export, tmp_path, capsys):
    from mlr1_titan.cli import main

    out = tmp_path / "dcp"
    assert main(["import-hf", str(tiny_export.out_dir), str(out)]) == 0
    printed = capsys.readouterr().out
    assert "tiny: 4 layers, d 256" in printed and "--checkpoint.initial_load_path" in printed
    assert (out / ".metadata").is_file() and (out / "mlr1_model.toml").is_file()
    assert main(["export-hf", str(out), str(tmp_path / "hf"), "--config", "mlr1_360m"]) == 1
    assert "error: checkpoint" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["export-hf", "--help"])
    assert "--chat-template" in capsys.readouterr().out


def test_default_chat_template_is_the_shipped_sft_one(tmp_path):
    import mlr1_titan.hf.export as export
    from mlr1_titan.resources import chat_template_file

    text, source = export.resolve_chat_template(None)
    assert text == chat_template_file().read_text(encoding="utf-8") and "SFT" in source
    own = tmp_path / "t.jinja"
    own.write_text(TEMPLATE)
    assert export.resolve_chat_template(own) == (TEMPLATE, str(own))
    assert export.resolve_chat_template(False)[0] is None
    with pytest.raises(HFInteropError, match="chat template file not found"):
        export.resolve_chat_template(tmp_path / "missing.jinja")


def test_checkpoint_manager_is_wired_with_cli_and_toml(tmp_path):
    from torchtitan.config import ConfigManager

    from mlr1_titan.hf.checkpoint import MLR1CheckpointManager

    cfg = ConfigManager().parse_args(
        [
            "--module",
            "mlr1_titan",
            "--config",
            "mlr1_tiny",
            "--checkpoint.enable",
            "--checkpoint.last_save_in_hf",
            "--checkpoint.hf_folder",
            "exports",
            "--checkpoint.interval",
            "7",
        ]
    )
    ck = cfg.checkpoint
    assert isinstance(ck, MLR1CheckpointManager.Config)
    assert (ck.enable, ck.last_save_in_hf, ck.hf_folder, ck.interval) == (True, True, "exports", 7)
    assert ck.hf_max_position_embeddings == 4096  # the model's context, not training.seq_len (128)
    toml = tmp_path / "run.toml"
    toml.write_text(
        f'extends = "{(model_configs_dir() / "mlr1_tiny.toml").as_posix()}"\n'
        '[checkpoint]\nhf_chat_template = "/x/t.jinja"\nkeep_latest_k = 0\n'
    )
    ck = load_trainer_config(str(toml)).checkpoint
    assert (ck.hf_chat_template, ck.keep_latest_k, ck.interval) == ("/x/t.jinja", 0, 25)


def test_resume_ignores_the_hf_folder(tmp_path):
    """The HF export lives in checkpoint/hf/step-N: torchtitan's resume scan does not see it."""
    from torchtitan.components.checkpointer import CheckpointManager

    folder = tmp_path / "checkpoint"
    (folder / "step-2").mkdir(parents=True)
    (folder / "step-2" / ".metadata").write_bytes(b"")
    (folder / "hf" / "step-3").mkdir(parents=True)
    (folder / "hf" / "step-3" / "model.safetensors.index.json").write_text("{}")
    assert CheckpointManager._find_load_step(object(), str(folder)) == 2
    shutil.rmtree(folder / "hf")


def test_export_refuses_an_untied_head(tmp_path, llama3_tokenizer):
    from mlr1_titan.hf.dcp_io import save_dcp

    flavor = MLR1_FLAVORS["tiny"].replace(n_layers=1, dim=64, n_heads=1, n_kv_heads=1, ffn_hidden_dim=128)
    state = dict(build_model(flavor).state_dict())
    state["lm_head.weight"] = state["lm_head.weight"].clone() + 1.0
    save_dcp(state, tmp_path / "ckpt")
    with pytest.raises(HFInteropError, match="lm_head.weight differs from tok_embeddings.weight"):
        export_hf(tmp_path / "ckpt", tmp_path / "hf", tokenizer=llama3_tokenizer, head_dim=64, log=QUIET)
    assert not list((tmp_path / "hf").glob("*.safetensors"))
