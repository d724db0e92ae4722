"""One vocabulary: a TOML key [a] b and the CLI flag --a.b set the same field; `mlr1 config show`
output is a TOML that loads back to the same configuration."""

from __future__ import annotations

import dataclasses

import pytest
from torchtitan.config import ConfigManager

from mlr1_titan.config import ConfigError, available_configs, build_config, read_config_file, to_table, toml_text
from mlr1_titan.config.schema import settable_fields
from mlr1_titan.config_registry import load_trainer_config
from mlr1_titan.trainer import MLR1Trainer


def parse(name: str, *overrides: str) -> MLR1Trainer.Config:
    return ConfigManager().parse_args(["--module", "mlr1_titan", "--config", name, *overrides])


def from_toml(tmp_path, text: str) -> MLR1Trainer.Config:
    path = tmp_path / "run.toml"
    path.write_text(text)
    return load_trainer_config(str(path))


# Each plugin setting, spelled as a TOML table + key, a value, and the same setting on the CLI.
SETTINGS = [
    ("model", "flavor", "360M", ["--model.flavor", "360M"]),
    ("model", "n_layers", 3, ["--model.n_layers", "3"]),
    ("model", "attn_backend", "sdpa_doc", ["--model.attn_backend", "sdpa_doc"]),
    ("model", "rope_theta_multiplier", 8.0, ["--model.rope_theta_multiplier", "8"]),
    ("optimizer", "lr", 1e-3, ["--optimizer.lr", "1e-3"]),
    ("optimizer", "betas", (0.8, 0.9), ["--optimizer.betas", "0.8", "0.9"]),
    ("optimizer", "eps", 1e-6, ["--optimizer.eps", "1e-6"]),
    ("optimizer", "weight_decay", 0.05, ["--optimizer.weight_decay", "0.05"]),
    ("optimizer", "no_decay_pattern", r"\.bias$", ["--optimizer.no_decay_pattern", r"\.bias$"]),
    ("lr_scheduler", "warmup_ratio", 0.1, ["--lr_scheduler.warmup_ratio", "0.1"]),
    ("activation_checkpoint", "mode", "full", ["--activation_checkpoint.mode", "full"]),
    ("loss", "chunked", False, ["--loss.no-chunked"]),
    ("loss", "chunk_tokens", 512, ["--loss.chunk_tokens", "512"]),
    ("dataloader", "kind", "chat", ["--dataloader.kind", "chat"]),
    ("dataloader.mixture", "mix", "pretrain_phase2", ["--dataloader.mixture.mix", "pretrain_phase2"]),
    (
        "dataloader.mixture",
        "phases",
        ["demo", "pretrain_phase2@9"],
        ["--dataloader.mixture.phases", "demo,pretrain_phase2@9"],
    ),
    ("dataloader.mixture", "shards_root", "/data/shards", ["--dataloader.mixture.shards_root", "/data/shards"]),
    ("dataloader.chat", "epochs", 3.0, ["--dataloader.chat.epochs", "3"]),
    ("dataloader.chat", "packing", False, ["--dataloader.chat.no-packing"]),
    ("training", "steps", 7, ["--training.steps", "7"]),  # torchtitan's own field, unchanged
]


def _get(config, table: str, key: str):
    for part in table.split("."):
        config = getattr(config, part)
    return getattr(config, key)


def _toml_value(value) -> str:
    if isinstance(value, str):
        return "'" + value + "'"  # literal string: no escapes
    if isinstance(value, bool):
        return str(value).lower()
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    return repr(value)


@pytest.mark.parametrize(("table", "key", "value", "flags"), SETTINGS, ids=[f"{t}.{k}" for t, k, _, _ in SETTINGS])
def test_toml_key_and_cli_flag_set_the_same_field(tmp_path, table, key, value, flags):
    from mlr1_titan.resources import model_configs_dir

    base = (model_configs_dir() / "mlr1_tiny.toml").as_posix()
    by_toml = from_toml(tmp_path, f'extends = "{base}"\n[{table}]\n{key} = {_toml_value(value)}\n')
    by_cli = parse("mlr1_tiny", *flags)
    expected = tuple(value) if isinstance(value, tuple) else value
    assert _get(by_toml, table, key) == _get(by_cli, table, key) == expected
    assert to_table(by_toml) == to_table(by_cli)


def test_cli_overrides_reach_the_derived_model_and_optimizer():
    cfg = parse("mlr1_950m", "--optimizer.lr", "1e-3", "--model.flavor", "360M")
    assert cfg.model_spec.flavor == "360M" and len(cfg.model_spec.model.layers) == 15
    assert cfg.model_spec.model.dim == 1024
    kwargs = [g.optimizer_kwargs for g in cfg.optimizer.effective_param_groups()]
    assert [k["lr"] for k in kwargs] == [1e-3, 1e-3]
    assert [k["weight_decay"] for k in kwargs] == [0.0, 0.1]  # no-decay group, then everything else


def test_explicit_torchtitan_param_groups_match_first_and_win_key_by_key(tmp_path):
    from mlr1_titan.resources import model_configs_dir

    cfg = from_toml(
        tmp_path,
        f'extends = "{(model_configs_dir() / "mlr1_950m.toml").as_posix()}"\n'
        "[[optimizer.param_groups]]\npattern = 'tok_embeddings'\noptimizer_name = 'AdamW'\n"
        "optimizer_kwargs = { lr = 1.0e-4 }\n",
    )
    first, no_decay, rest = cfg.optimizer.effective_param_groups()
    assert first.pattern == "tok_embeddings"
    assert first.optimizer_kwargs == {"lr": 1e-4, "betas": (0.9, 0.95), "eps": 1e-8, "weight_decay": 0.1}
    assert no_decay.optimizer_kwargs["lr"] == rest.optimizer_kwargs["lr"] == 4e-3


def test_plugin_settings_appear_in_help_with_their_docstrings(capsys):
    with pytest.raises(SystemExit):
        parse("mlr1_tiny", "--help")
    text = " ".join(capsys.readouterr().out.split())
    for flag, doc in [
        ("--model.flavor", "Named size: 140M, 360M, 950M"),
        ("--optimizer.lr", "Peak learning rate"),
        ("--optimizer.no-decay-pattern", "trained without weight decay"),
        ("--lr-scheduler.warmup-ratio", "warmup_ratio x total steps"),
        ("--activation-checkpoint.mode", "recompute whole blocks"),
        ("--loss.chunked", "on chunks of tokens"),
        ("--dataloader.kind", "conversations (SFT)"),
        ("--dataloader.mixture.shards-root", "mlr1 tokenize --out"),
        ("--training.steps", ""),
    ]:
        assert flag in text and doc in text, flag


@pytest.mark.parametrize("name", sorted(available_configs()))
def test_every_shipped_config_round_trips_through_its_toml(tmp_path, name):
    config = load_trainer_config(name)
    text = toml_text(config, header="round trip")
    path = tmp_path / f"{name}_resolved.toml"
    path.write_text(text)
    again = load_trainer_config(str(path))
    assert to_table(again) == to_table(config)
    assert toml_text(again, header="round trip") == text
    assert again.model.shape() == config.model.shape()


def test_settable_keys_are_the_init_fields_minus_hidden_ones():
    keys = settable_fields(MLR1Trainer.Config)
    assert "model_spec" not in keys  # derived, hidden from the CLI too
    assert {"model", "optimizer", "dataloader", "training", "parallelism"} <= set(keys)
    hidden = {f.name for f in dataclasses.fields(MLR1Trainer.Config)} - set(keys)
    assert hidden == {"model_spec"}


def test_errors_inside_a_table_name_the_file_and_the_table(tmp_path):
    with pytest.raises(ConfigError, match=r"run.toml: \[optimizer\] optimizer.lr must be > 0, got -1.0"):
        from_toml(tmp_path, '[model]\nflavor = "tiny"\n[optimizer]\nlr = -1.0\n')
    with pytest.raises(ConfigError, match=r"run.toml: \[activation_checkpoint\] key 'mode' must be .*got 'partial'"):
        from_toml(tmp_path, '[model]\nflavor = "tiny"\n[activation_checkpoint]\nmode = "partial"\n')
    with pytest.raises(ConfigError, match=r"run.toml: missing \[model\] table"):
        from_toml(tmp_path, "[training]\nsteps = 3\n")
    with pytest.raises(ConfigError, match=r"\[dataloader.chat\] unknown key 'packng'; allowed keys: .*'packing'"):
        from_toml(tmp_path, '[model]\nflavor = "tiny"\n[dataloader.chat]\npackng = true\n')


@dataclasses.dataclass
class Inner:
    x: int = 1


@dataclasses.dataclass
class Outer:
    inner: Inner = dataclasses.field(default_factory=Inner)
    name: str = "a"


def test_build_config_works_on_any_dataclass_tree(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('name = "b"\n[inner]\nx = 2\n')
    assert build_config(Outer, read_config_file(path), path) == Outer(inner=Inner(x=2), name="b")


def test_a_value_where_a_table_belongs_is_refused(tmp_path):
    with pytest.raises(ConfigError, match=r"run.toml: \[optimizer\] must be a table, got 'adam'"):
        from_toml(tmp_path, 'optimizer = "adam"\n[model]\nflavor = "tiny"\n')


def test_param_group_entries_must_be_tables_with_their_required_keys(tmp_path):
    with pytest.raises(ConfigError, match=r"\[optimizer\] key 'param_groups' must be list\[ParamGroupConfig\]"):
        from_toml(tmp_path, '[model]\nflavor = "tiny"\n[optimizer]\nparam_groups = ["x"]\n')
    with pytest.raises(ConfigError, match=r"\[optimizer.param_groups\[0\]\] missing key 'optimizer_name'"):
        from_toml(tmp_path, '[model]\nflavor = "tiny"\n[[optimizer.param_groups]]\npattern = "x"\n')


def test_relative_files_are_relative_to_the_toml_that_names_them(tmp_path, monkeypatch):
    monkeypatch.chdir("/")
    cfg = from_toml(tmp_path, '[model]\nflavor = "tiny"\n[tokenizer]\npath = "tok/tokenizer.model"\n')
    assert cfg.tokenizer.path == str(tmp_path / "tok" / "tokenizer.model")
    (tmp_path / "mine.toml").write_text("name = 'mine'\n")
    cfg = from_toml(
        tmp_path,
        '[model]\nflavor = "tiny"\n[dataloader.mixture]\nmix = "mine.toml"\nphases = ["demo", "mine.toml@5"]\n',
    )
    assert cfg.dataloader.mixture.mix == str(tmp_path / "mine.toml")
    assert cfg.dataloader.mixture.phases == ["demo", f"{tmp_path / 'mine.toml'}@5"]


def test_validating_on_the_training_mix_is_refused(tmp_path, capsys):
    with pytest.raises(ConfigError, match=r"validator.dataloader.mixture.mix is 'demo', the training mix"):
        from_toml(
            tmp_path,
            '[model]\nflavor = "tiny"\n[dataloader.mixture]\nmix = "demo"\n'
            '[validator]\nenable = true\n[validator.dataloader.mixture]\nmix = "demo"\n',
        )
    with pytest.raises(SystemExit):  # the command line reports it through tyro
        parse("mlr1_tiny", "--validator.enable", "--validator.dataloader.mixture.mix", "demo")
    assert "the training mix" in " ".join(capsys.readouterr().err.split())
    assert parse("mlr1_tiny", "--validator.enable").validator.dataloader.mixture.mix == "pretrain_phase1"


def test_a_none_that_toml_cannot_hold_is_an_error_naming_the_key():
    cfg = parse("mlr1_tiny")
    cfg.parallelism.context_parallel_load_balancer = None
    with pytest.raises(ConfigError, match=r"config.parallelism.context_parallel_load_balancer is None"):
        to_table(cfg)


def test_config_names_never_clash_with_the_registry_module_names():
    from mlr1_titan import config_registry

    with pytest.raises(ConfigError, match="unknown config 'Path'"):
        config_registry.Path()


def test_warmup_ratio_is_resolved_into_warmup_steps_at_start_up():
    from mlr1_titan.schedule import resolve_schedule

    cfg = parse("mlr1_tiny", "--lr_scheduler.warmup_ratio", "0.1", "--training.steps", "95")
    resolve_schedule(cfg, 1)
    assert cfg.lr_scheduler.warmup_steps == 10


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (["--model.n_layers", "-1"], "model shape: n_layers = -1"),
        (["--model.n_heads", "3"], "n_heads 3 is not a multiple of n_kv_heads 2"),
        (["--training.seq_len", "5000"], "training.seq_len 5000 exceeds model.max_seq_len 4096"),
        (["--training.steps", "0"], "training.steps is 0: set it, or use dataloader.kind = chat"),
        (["--training.global_batch_size", "0"], "training.global_batch_size must be > 0, or -1"),
        (["--dataloader.mixture.mix", "nonexistent_mix"], "unknown mix 'nonexistent_mix'"),
        (["--dataloader.mixture.phases", "demo,nonexistent_mix@5"], "unknown mix 'nonexistent_mix'"),
        (["--optimizer.no_decay_pattern", "(["], "is not a regular expression"),
    ],
)
def test_settings_that_could_only_fail_at_start_up_fail_when_the_config_is_read(overrides, message, capsys):
    with pytest.raises(SystemExit):  # tyro prints the __post_init__ error of a CLI value and exits 2
        parse("mlr1_tiny", *overrides)
    assert message in " ".join(capsys.readouterr().err.replace("│", " ").split())


def test_param_groups_of_another_optimizer_are_used_as_written(tmp_path):
    from mlr1_titan.resources import model_configs_dir

    cfg = from_toml(
        tmp_path,
        f'extends = "{(model_configs_dir() / "mlr1_tiny.toml").as_posix()}"\n'
        "[[optimizer.param_groups]]\npattern = 'lm_head'\noptimizer_name = 'DistMuon'\n"
        "optimizer_kwargs = { lr = 0.02, momentum = 0.95 }\n",
    )
    assert cfg.optimizer.effective_param_groups()[0].optimizer_kwargs == {"lr": 0.02, "momentum": 0.95}
    with pytest.raises(ConfigError, match=r"param_groups\[0\].optimizer_kwargs.lr must be a number, got 'fast'"):
        from_toml(
            tmp_path,
            '[model]\nflavor = "tiny"\n[[optimizer.param_groups]]\npattern = "x"\n'
            'optimizer_name = "AdamW"\noptimizer_kwargs = { lr = "fast" }\n',
        )
