"""Model-config TOMLs -> torchtitan ``Trainer.Config``.

torchtitan 0.3.0 builds runs from Python config functions; our per-size / per-stage recipes are
TOML files in ``model_configs/`` that this module turns into such a config (``config_registry``
exposes each file as a config name). CLI overrides (``--training.steps`` ...) are applied by
torchtitan's tyro parser on top of the result, so precedence is CLI > TOML > defaults.

File layout::

    extends = "base/pretrain.toml"   # optional; tables merge key by key, this file wins
    description = "..."              # optional, free text
    hf_assets_path / dump_folder     # top-level Trainer.Config strings
    [model]                          # flavor = "950M" and/or any MLR1Flavor field; attn_backend
    [optimizer]                      # AdamW hyper-parameters (name, lr, betas, eps, weight_decay, ...)
    [tokenizer]                      # path (tiktoken file, or dir with tokenizer.model / tokenizer.json)
    [dataloader]                     # kind = "mixture" (data_mix/ mixes) | "chat" (SFT) | "text"
    [loss]                           # chunked, num_chunks
    [activation_checkpoint]          # mode = "selective" | "full" | "none", plus that mode's fields
    [training] [parallelism] [checkpoint] [metrics] [compile] [lr_scheduler] [debug] [comm]
    [profiler] [validator]           # any field of the torchtitan dataclass of that name

Unknown keys and wrong types fail before anything is built, naming the file, the key and the
allowed keys. Relative ``path`` values are resolved against the directory of the TOML that sets them.
"""

from __future__ import annotations

import dataclasses
import os
import tomllib
import types
import typing
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]


class ConfigError(ValueError):
    """A model-config TOML is malformed; the message names the file and the key."""


def config_dirs() -> list[Path]:
    """Where config names are looked up: $MLR1_CONFIG_DIR (os.pathsep-separated), then model_configs/."""
    dirs = [Path(p) for p in os.environ.get("MLR1_CONFIG_DIR", "").split(os.pathsep) if p]
    return dirs + [REPO_ROOT / "model_configs"]


def available_configs() -> dict[str, Path]:
    """Config name (file stem) -> TOML path, for every top-level TOML in the config dirs."""
    found: dict[str, Path] = {}
    for directory in config_dirs():
        if directory.is_dir():
            for path in sorted(directory.glob("*.toml")):
                found.setdefault(path.stem, path)
    return found


def resolve_config_path(name_or_path: str) -> Path:
    candidate = Path(name_or_path)
    if candidate.suffix == ".toml":
        if not candidate.is_file():
            raise ConfigError(f"config file not found: {candidate.resolve()}")
        return candidate.resolve()
    configs = available_configs()
    if name_or_path not in configs:
        raise ConfigError(
            f"unknown config {name_or_path!r}; available: {sorted(configs)} "
            f"(searched {[str(d) for d in config_dirs()]}); or pass a path to a .toml file"
        )
    return configs[name_or_path]


# ---------------------------------------------------------------------------------------------
# Reading: extends + merge, remembering which file set each relative path.


def _read_toml(path: Path) -> dict[str, Any]:
    try:
        with open(path, "rb") as f:
            return tomllib.load(f)
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: invalid TOML: {err}") from None


def _merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for key, value in override.items():
        # A table that switches `kind` (e.g. [dataloader] mixture -> chat) replaces the parent's.
        both_tables = isinstance(value, dict) and isinstance(out.get(key), dict)
        switches_kind = both_tables and "kind" in value and value["kind"] != out[key].get("kind")
        if both_tables and not switches_kind:
            out[key] = _merge(out[key], value)
        else:
            out[key] = value
    return out


def _anchor_paths(data: dict, path: Path) -> dict:
    """Make `path` values absolute relative to the file that wrote them, before merging."""
    for table in ("dataloader", "tokenizer"):
        section = data.get(table)
        if isinstance(section, dict) and isinstance(section.get("path"), str):
            value = section["path"]
            if value and not os.path.isabs(value):
                section["path"] = str((path.parent / value).resolve())
    return data


def read_config_file(path: Path, _chain: tuple[Path, ...] = ()) -> dict[str, Any]:
    path = path.resolve()
    if path in _chain:
        raise ConfigError(f"{path}: circular 'extends' chain: {' -> '.join(map(str, _chain + (path,)))}")
    data = _anchor_paths(_read_toml(path), path)
    parent = data.pop("extends", None)
    if parent is None:
        return data
    if not isinstance(parent, str):
        raise ConfigError(f"{path}: 'extends' must be a string path, got {type(parent).__name__}")
    parent_path = (path.parent / parent).resolve()
    if not parent_path.is_file():
        raise ConfigError(f"{path}: extends {parent!r}, which does not exist ({parent_path})")
    return _merge(read_config_file(parent_path, _chain + (path,)), data)


# ---------------------------------------------------------------------------------------------
# Type-checked assignment onto torchtitan's config dataclasses.


def _type_name(annotation) -> str:
    return getattr(annotation, "__name__", None) or str(annotation).replace("typing.", "")


def _conforms(value: Any, annotation) -> bool:
    origin = typing.get_origin(annotation)
    if annotation is Any or annotation is object:
        return True
    if origin is typing.Annotated:
        return _conforms(value, typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        return any(_conforms(value, arg) for arg in typing.get_args(annotation))
    if annotation is type(None):
        return value is None
    if origin is typing.Literal:
        return value in typing.get_args(annotation)
    if annotation is bool:
        return isinstance(value, bool)
    if annotation is int:
        return isinstance(value, int) and not isinstance(value, bool)
    if annotation is float:
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    if annotation is str:
        return isinstance(value, str)
    if origin in (list, tuple, typing.Sequence) or annotation in (list, tuple):
        if not isinstance(value, list):
            return False
        args = [a for a in typing.get_args(annotation) if a is not Ellipsis]
        return len(args) != 1 or all(_conforms(v, args[0]) for v in value)
    if origin is dict or annotation is dict:
        return isinstance(value, dict)
    return True  # exotic annotations (callables, configs): leave to torchtitan


def _coerce(value: Any, annotation) -> Any:
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _coerce(value, typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        for arg in typing.get_args(annotation):
            if arg is not type(None) and _conforms(value, arg):
                return _coerce(value, arg)
        return value
    if annotation is float and isinstance(value, int):
        return float(value)
    if (origin is tuple or annotation is tuple) and isinstance(value, list):
        return tuple(value)
    return value


def apply_table(obj: Any, table: dict[str, Any], where: str, file: Path) -> None:
    """Set ``table``'s keys on dataclass ``obj`` (recursing into nested config dataclasses)."""
    if not isinstance(table, dict):
        raise ConfigError(f"{file}: [{where}] must be a table, got {type(table).__name__}")
    hints = typing.get_type_hints(type(obj), include_extras=True)
    settable = {f.name: f for f in dataclasses.fields(obj) if f.init and not f.name.startswith("_")}
    for key, value in table.items():
        if key not in settable:
            raise ConfigError(
                f"{file}: [{where}] unknown key {key!r}; allowed keys: {sorted(settable)}"
            )
        current = getattr(obj, key)
        if isinstance(value, dict) and dataclasses.is_dataclass(current):
            apply_table(current, value, f"{where}.{key}", file)
            continue
        annotation = hints.get(key, Any)
        if not _conforms(value, annotation):
            raise ConfigError(
                f"{file}: [{where}] key {key!r} must be {_type_name(annotation)}, "
                f"got {value!r} ({type(value).__name__})"
            )
        setattr(obj, key, _coerce(value, annotation))


def _take(table: dict, allowed: dict[str, type], where: str, file: Path) -> dict[str, Any]:
    """Validate a table of our own schema (name -> python type)."""
    out = {}
    for key, value in table.items():
        if key not in allowed:
            raise ConfigError(f"{file}: [{where}] unknown key {key!r}; allowed keys: {sorted(allowed)}")
        if not _conforms(value, allowed[key]):
            raise ConfigError(
                f"{file}: [{where}] key {key!r} must be {_type_name(allowed[key])}, "
                f"got {value!r} ({type(value).__name__})"
            )
        out[key] = _coerce(value, allowed[key])
    return out


# ---------------------------------------------------------------------------------------------
# Our own sections.


def build_model_spec(table: dict, file: Path):
    from .model import model_registry
    from .model.flavors import MLR1Flavor, get_flavor

    flavor_hints = typing.get_type_hints(MLR1Flavor)
    allowed = {"flavor": str, "attn_backend": str, "name": str, "rope_theta_multiplier": float, **flavor_hints}
    spec = _take(table, allowed, "model", file)
    flavor_name = spec.pop("flavor", None)
    attn_backend = spec.pop("attn_backend", "auto")
    name = spec.pop("name", None)
    # Context extension (reference §1.3): the reasoning-SFT stage multiplies the base theta by 8.
    multiplier = spec.pop("rope_theta_multiplier", 1.0)
    if flavor_name is not None:
        try:
            shape = get_flavor(flavor_name)
        except ValueError as err:
            raise ConfigError(f"{file}: [model] flavor: {err}") from None
        shape = shape.replace(**spec) if spec else shape
        label = name or (flavor_name if not spec else f"{flavor_name}-custom")
    else:
        required = [f.name for f in dataclasses.fields(MLR1Flavor) if f.default is dataclasses.MISSING]
        missing = [k for k in required if k not in spec]
        if missing:
            raise ConfigError(
                f"{file}: [model] needs either flavor = one of the named sizes, or every shape "
                f"field; missing {missing}"
            )
        shape = MLR1Flavor(**spec)
        label = name or file.stem
    if multiplier != 1.0:
        shape = shape.replace(rope_theta=shape.rope_theta * multiplier)
    backend = None if attn_backend == "auto" else attn_backend
    try:
        return model_registry(shape, attn_backend=backend, name=label)
    except ValueError as err:
        raise ConfigError(f"{file}: [model] {err}") from None


_OPTIMIZER_KEYS = {
    "name": str,
    "lr": float,
    "betas": list[float],
    "eps": float,
    "weight_decay": float,
    "no_decay_pattern": str,
    "implementation": str,
}


def build_optimizer(table: dict, file: Path):
    from torchtitan.components.optimizer import OptimizersContainer
    from torchtitan.components.optimizer.optimizer import ParamGroupConfig

    spec = _take(table, _OPTIMIZER_KEYS, "optimizer", file)
    name = spec.pop("name", "AdamW")
    no_decay = spec.pop("no_decay_pattern", None)
    implementation = spec.pop("implementation", "fused")
    if "lr" not in spec:
        raise ConfigError(f"{file}: [optimizer] needs 'lr'")
    kwargs = {"lr": spec["lr"]}
    if "betas" in spec:
        if len(spec["betas"]) != 2:
            raise ConfigError(f"{file}: [optimizer] 'betas' needs two numbers, got {spec['betas']}")
        kwargs["betas"] = tuple(float(b) for b in spec["betas"])
    for key in ("eps", "weight_decay"):
        if key in spec:
            kwargs[key] = spec[key]
    groups = []
    if no_decay:
        groups.append(
            ParamGroupConfig(pattern=no_decay, optimizer_name=name, optimizer_kwargs={**kwargs, "weight_decay": 0.0})
        )
    groups.append(ParamGroupConfig(pattern=r".*", optimizer_name=name, optimizer_kwargs=kwargs))
    return OptimizersContainer.Config(param_groups=groups, implementation=implementation)


def build_tokenizer(table: dict, file: Path):
    from .tokenizer import Llama3Tokenizer

    config = Llama3Tokenizer.Config()
    apply_table(config, table, "tokenizer", file)
    return config


LOCAL_TEXT_DATASET = "mlr1_local_text"


def build_dataloader(table: dict, file: Path):
    """``[dataloader] kind = ...``: "mixture" (the pre-training data engine, mlr1_titan/data),
    "chat" (SFT), "text" (local files through torchtitan's own text loader)."""
    table = dict(table)
    kind = table.pop("kind", "mixture")
    if kind == "text":
        from torchtitan.hf_datasets.text_datasets import HuggingFaceTextDataLoader

        from .local_text import register_local_text_dataset

        register_local_text_dataset()
        path = table.pop("path", None)
        config = HuggingFaceTextDataLoader.Config(dataset=LOCAL_TEXT_DATASET, dataset_path=path)
    elif kind == "mixture":
        from .data.loader import MixtureDataLoader

        config = MixtureDataLoader.Config()
    elif kind == "chat":
        from .sft.chat_loader import ChatDataLoader

        config = ChatDataLoader.Config()
    else:
        raise ConfigError(f"{file}: [dataloader] unknown kind {kind!r}; known kinds: {DATALOADER_KINDS}")
    apply_table(config, table, "dataloader", file)
    return config


DATALOADER_KINDS = ["mixture", "chat", "text"]


def build_loss(table: dict, vocab_size: int, file: Path):
    from torchtitan.components.loss import ChunkedLossWrapper, CrossEntropyLoss

    spec = _take(table, {"chunked": bool, "num_chunks": int}, "loss", file)
    ce = CrossEntropyLoss.Config(global_vocab_size=vocab_size)
    if not spec.get("chunked", True):
        return ce
    return ChunkedLossWrapper.Config(num_chunks=spec.get("num_chunks", 8), loss_fn=ce)


def build_activation_checkpoint(table: dict, file: Path):
    from torchtitan.distributed.activation_checkpoint import FullAC, SelectiveAC

    table = dict(table)
    mode = table.pop("mode", "selective")
    classes = {"selective": SelectiveAC, "full": FullAC}
    if mode == "none":
        if table:
            raise ConfigError(f"{file}: [activation_checkpoint] mode 'none' takes no other keys, got {sorted(table)}")
        return None
    if mode not in classes:
        raise ConfigError(
            f"{file}: [activation_checkpoint] mode must be one of {sorted(classes) + ['none']}, got {mode!r}"
        )
    config = classes[mode].Config()
    apply_table(config, table, "activation_checkpoint", file)
    return config


# Tables mapped field by field onto the Trainer.Config attribute of the same name.
_GENERIC_TABLES = (
    "training",
    "parallelism",
    "checkpoint",
    "metrics",
    "compile",
    "lr_scheduler",
    "debug",
    "comm",
    "profiler",
    "validator",
)
_OWN_TABLES = ("model", "optimizer", "tokenizer", "dataloader", "loss", "activation_checkpoint")
_SCALARS = {"description": str, "hf_assets_path": str, "dump_folder": str}


def load_trainer_config(name_or_path: str):
    """Build the ``MLR1Trainer.Config`` described by a config name or a TOML path."""
    from .trainer import MLR1Trainer
    from .hf.checkpoint import MLR1CheckpointManager  # complete HF folders for last_save_in_hf

    path = resolve_config_path(name_or_path)
    data = read_config_file(path)
    allowed = set(_GENERIC_TABLES) | set(_OWN_TABLES) | set(_SCALARS)
    for key in data:
        if key not in allowed:
            raise ConfigError(f"{path}: unknown top-level key {key!r}; allowed keys: {sorted(allowed)}")
    scalars = _take({k: data[k] for k in _SCALARS if k in data}, _SCALARS, "top level", path)
    if "model" not in data:
        raise ConfigError(f"{path}: missing [model] table (flavor = one of 140M / 360M / 950M / tiny)")

    model_spec = build_model_spec(data["model"], path)
    config = MLR1Trainer.Config(
        model_spec=model_spec,
        optimizer=build_optimizer(data.get("optimizer", {"lr": 4e-3}), path),
        tokenizer=build_tokenizer(data.get("tokenizer", {}), path),
        loss=build_loss(data.get("loss", {}), model_spec.model.vocab_size, path),
        activation_checkpoint=build_activation_checkpoint(data.get("activation_checkpoint", {}), path),
        checkpoint=MLR1CheckpointManager.Config(hf_max_position_embeddings=model_spec.model.max_seq_len),
    )
    # Default: the folder of the Llama-3 tokenizer file shipped by llama-models (torchtitan
    # builds the tokenizer from hf_assets_path; HF exports take their shard index from it).
    from .tokenizer import default_tokenizer_file

    config.hf_assets_path = scalars.get("hf_assets_path", str(default_tokenizer_file().parent))
    if "dump_folder" in scalars:
        config.dump_folder = scalars["dump_folder"]
    if "dataloader" in data:
        config.dataloader = build_dataloader(data["dataloader"], path)
    if "warmup_ratio" in data.get("lr_scheduler", {}):
        data["lr_scheduler"] = dict(data["lr_scheduler"])
        ratio = data["lr_scheduler"].pop("warmup_ratio")
        if not _conforms(ratio, float) or not 0 <= ratio < 1:
            raise ConfigError(f"{path}: [lr_scheduler] warmup_ratio must be a number in [0, 1), got {ratio!r}")
        config.warmup_ratio = float(ratio)
    if isinstance(data.get("validator", {}).get("dataloader"), dict):
        data["validator"] = dict(data["validator"])
        config.validator.dataloader = build_dataloader(data["validator"].pop("dataloader"), path)
    for table in _GENERIC_TABLES:
        if table in data:
            apply_table(getattr(config, table), data[table], table, path)
    return config
