"""Model-config TOMLs: names, paths, paper numbers, overrides and the errors users see."""

from __future__ import annotations

import pytest

from mlr1_titan import config_registry
from mlr1_titan.config import ConfigError, available_configs
from mlr1_titan.config_registry import load_trainer_config
from mlr1_titan.resources import model_configs_dir


def test_every_size_is_a_config_name():
    assert {"mlr1_140m", "mlr1_360m", "mlr1_950m", "mlr1_tiny"} <= set(available_configs())
    assert "mlr1_950m" in dir(config_registry)


def test_950m_carries_table2_pretraining_recipe():
    cfg = config_registry.mlr1_950m()
    assert cfg.model_spec.flavor == "950M"
    assert sum(1 for _ in cfg.model_spec.model.layers) == 22
    groups = cfg.optimizer.effective_param_groups()
    assert groups[-1].optimizer_name == "AdamW"
    assert groups[-1].optimizer_kwargs == {"lr": 4e-3, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}
    assert groups[0].optimizer_kwargs["weight_decay"] == 0.0  # norm scales are not decayed
    assert (cfg.lr_scheduler.warmup_steps, cfg.lr_scheduler.decay_type, cfg.lr_scheduler.min_lr_factor) == (
        2000,
        "linear",
        0.1,
    )
    t = cfg.training
    assert (t.local_batch_size, t.seq_len, t.steps, t.max_norm, t.mixed_precision_param) == (
        16,
        2048,
        500000,
        1.0,
        "bfloat16",
    )


def test_config_path_is_accepted_too():
    cfg = getattr(config_registry, str(model_configs_dir() / "mlr1_360m.toml"))()
    assert cfg.model_spec.flavor == "360M"


def test_cli_overrides_apply_on_top_of_the_toml():
    from torchtitan.config import ConfigManager

    cfg = ConfigManager().parse_args(
        [
            "--module",
            "mlr1_titan",
            "--config",
            "mlr1_360m",
            "--training.steps",
            "7",
            "--parallelism.tensor_parallel_degree",
            "2",
            "--compile.enable",
        ]
    )
    assert cfg.training.steps == 7 and cfg.training.seq_len == 2048
    assert cfg.parallelism.tensor_parallel_degree == 2 and cfg.compile.enable


def write(tmp_path, text):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    return str(path)


def test_unknown_key_names_file_key_and_allowed_keys(tmp_path):
    path = write(tmp_path, '[model]\nflavor = "tiny"\n[training]\nsq_len = 64\n')
    with pytest.raises(ConfigError) as err:
        load_trainer_config(path)
    msg = str(err.value)
    assert "bad.toml" in msg and "'sq_len'" in msg and "seq_len" in msg and "[training]" in msg


def test_wrong_type_names_key_and_expected_type(tmp_path):
    path = write(tmp_path, '[model]\nflavor = "tiny"\n[training]\nsteps = "many"\n')
    with pytest.raises(ConfigError, match=r"bad.toml: \[training\] key 'steps' must be int, got 'many'"):
        load_trainer_config(path)


def test_unknown_top_level_table(tmp_path):
    path = write(tmp_path, '[model]\nflavor = "tiny"\n[trainig]\nsteps = 1\n')
    with pytest.raises(ConfigError, match="unknown top-level key 'trainig'"):
        load_trainer_config(path)


def test_unknown_flavor_and_incomplete_shape(tmp_path):
    with pytest.raises(ConfigError, match="Unknown MobileLLM-R1 flavor '2B'"):
        load_trainer_config(write(tmp_path, '[model]\nflavor = "2B"\n'))
    with pytest.raises(ConfigError, match="missing .*ffn_hidden_dim"):
        load_trainer_config(write(tmp_path, "[model]\nn_layers = 2\ndim = 64\nn_heads = 2\nn_kv_heads = 1\n"))


def test_unknown_config_name_lists_available():
    with pytest.raises(ConfigError, match=r"unknown config 'mlr1_9b'.*mlr1_950m"):
        config_registry.mlr1_9b()


def test_pretraining_selects_a_mix_by_name_overridable_on_the_cli():
    from torchtitan.config import ConfigManager

    assert config_registry.mlr1_360m().dataloader.mixture.mix == "pretrain_phase1"
    cfg = ConfigManager().parse_args(
        ["--module", "mlr1_titan", "--config", "mlr1_360m", "--dataloader.mixture.mix", "pretrain_phase2"]
    )
    assert cfg.dataloader.mixture.mix == "pretrain_phase2"
    cfg = ConfigManager().parse_args(
        [
            "--module",
            "mlr1_titan",
            "--config",
            "mlr1_360m",
            "--dataloader.mixture.phases",
            "pretrain_phase1,pretrain_phase2@500000",
        ]
    )
    assert cfg.dataloader.mixture.phases == ["pretrain_phase1", "pretrain_phase2@500000"]


def test_sft_stage_configs_carry_table2():
    general = config_registry.mlr1_950m_sft_general()
    reasoning = config_registry.mlr1_950m_sft_reasoning()
    g = general.optimizer.effective_param_groups()[-1].optimizer_kwargs
    r = reasoning.optimizer.effective_param_groups()[-1].optimizer_kwargs
    assert (g["lr"], g["weight_decay"], r["lr"], r["weight_decay"]) == (5e-6, 0.0, 8e-5, 0.0)
    assert (general.training.seq_len, general.training.local_batch_size) == (4096, 4)
    assert (reasoning.training.seq_len, reasoning.training.local_batch_size) == (32768, 8)
    assert general.dataloader.kind == reasoning.dataloader.kind == "chat"
    assert (general.dataloader.chat.epochs, reasoning.dataloader.chat.epochs) == (2, 4)
    assert (general.lr_scheduler.warmup_ratio, reasoning.lr_scheduler.warmup_ratio) == (0.03, 0.1)
    assert general.lr_scheduler.min_lr_factor == reasoning.lr_scheduler.min_lr_factor == 0.0
    assert general.training.steps <= 0 and reasoning.training.steps <= 0  # derived from epochs
    base_theta = config_registry.mlr1_950m().model_spec.model.layers[0].attention.rope.theta
    rope = reasoning.model_spec.model.layers[0].attention.rope
    assert (rope.theta, rope.max_seq_len) == (8 * base_theta, 32768)
    assert general.checkpoint.initial_load_model_only and reasoning.checkpoint.initial_load_model_only


def test_a_child_config_switches_the_data_engine_by_kind(tmp_path):
    path = tmp_path / "sft_from_pretrain.toml"
    path.write_text(
        f'extends = "{(model_configs_dir() / "mlr1_tiny.toml").as_posix()}"\n'
        '[dataloader]\nkind = "chat"\n[dataloader.chat]\nmix = "sft_general"\n'
    )
    cfg = load_trainer_config(str(path))
    chosen = cfg.dataloader.selected()
    assert type(chosen).__qualname__ == "ChatDataLoader.Config" and chosen.mix == "sft_general"
    assert cfg.dataloader.mixture.mix == "demo"  # the parent's engine settings stay, unused


def test_bare_toml_file_name_resolves_to_the_shipped_config(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert config_registry.load_trainer_config("mlr1_950m.toml").model_spec.flavor == "950M"
    (tmp_path / "mlr1_950m.toml").write_text('[model]\nflavor = "tiny"\n')
    assert config_registry.load_trainer_config("mlr1_950m.toml").model_spec.flavor == "tiny"  # a file here wins
    with pytest.raises(ConfigError, match=r"config file not found: nope.toml; looked for .*nope.toml, .*model_configs"):
        config_registry.load_trainer_config("nope.toml")


def test_context_parallel_is_refused_with_a_clear_message():
    from torchtitan.config import ConfigManager

    cfg = ConfigManager().parse_args(
        ["--module", "mlr1_titan", "--config", "mlr1_tiny", "--parallelism.context_parallel_degree", "2"]
    )
    with pytest.raises(ValueError, match="context_parallel_degree=2"):
        cfg.model_spec.model.update_from_config(config=cfg)


def test_midtrain_stage_configs_carry_table2():
    one, two = config_registry.mlr1_950m_midtrain_phase1(), config_registry.mlr1_950m_midtrain_phase2()
    assert (one.dataloader.mixture.mix, two.dataloader.mixture.mix) == ("midtrain_phase1", "midtrain_phase2")
    for cfg in (one, two):
        t, s = cfg.training, cfg.lr_scheduler
        assert (t.local_batch_size, t.global_batch_size, t.seq_len, t.steps) == (4, 512, 4096, 50_000)
        assert cfg.optimizer.lr == 3.6e-4 and (s.decay_type, s.min_lr_factor) == ("linear", 0.0)
        assert cfg.checkpoint.initial_load_model_only and cfg.model_spec.flavor == "950M"
        # §3.2: the loss is distillation from Llama-3.1-8B-Instruct; T and the CE weight are not stated
        d = cfg.distill
        assert (d.teacher, d.temperature, d.ce_weight) == ("meta-llama/Llama-3.1-8B-Instruct", 1.0, 0.0)
        assert cfg.loss.distillation is not None and cfg.training.disable_cuda_graphs


@pytest.mark.parametrize("size", ["140m", "360m", "950m", "tiny"])
def test_every_size_has_both_midtrain_phases_distilling(size):
    for phase in (1, 2):
        cfg = getattr(config_registry, f"mlr1_{size}_midtrain_phase{phase}")()
        assert cfg.distill.enabled and cfg.checkpoint.initial_load_model_only
        assert cfg.lr_scheduler.decay_type == "linear" and cfg.lr_scheduler.min_lr_factor == 0.0
