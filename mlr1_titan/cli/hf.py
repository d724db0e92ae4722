"""Sub-commands ``mlr1 export-hf`` and ``mlr1 import-hf`` (registered by ``mlr1_titan.cli``)."""

from __future__ import annotations

import argparse
import sys

EXPORT_EPILOG = """\
examples:
  mlr1 export-hf outputs/checkpoint/step-500000 hf/mlr1-950m
  mlr1 export-hf outputs/checkpoint hf/mlr1-950m --dtype bfloat16      # latest step-N
  mlr1 export-hf ckpt/step-9000 hf/r1-950m --config mlr1_950m_sft_reasoning  # stage: rope_theta, 32k context

The model shape comes from --config, else from the checkpoint's mlr1_model.toml, else from the
tensor shapes (head_dim 64 assumed; base-model rope_theta 1e6 and 4096 context).
"""

IMPORT_EPILOG = """\
examples:
  mlr1 import-hf /models/MobileLLM-R1-950M-base /ckpt/r1-950m-base
  torchrun --nproc_per_node=8 -m torchtitan.train --module mlr1_titan \\
      --config /ckpt/r1-950m-base/mlr1_model.toml --checkpoint.enable \\
      --checkpoint.initial_load_path /ckpt/r1-950m-base --checkpoint.initial_load_model_only
"""


def register(subparsers) -> None:
    export = subparsers.add_parser(
        "export-hf",
        help="DCP checkpoint -> Hugging Face Llama4ForCausalLM folder (weights, config, tokenizer)",
        description="Convert a torchtitan DCP checkpoint (any step, any number of ranks) into a folder that "
        "transformers and vLLM load without trust_remote_code. Runs on CPU in one process.",
        epilog=EXPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    export.add_argument("checkpoint", help="checkpoint/step-N folder (or a checkpoint/ folder: its latest step)")
    export.add_argument("out", help="output folder (created; must be empty unless --force)")
    export.add_argument(
        "--config", default=None, help="model config name or TOML (shape, rope_theta, context, tokenizer path)"
    )
    export.add_argument(
        "--dtype",
        default="float32",
        choices=["float32", "bfloat16", "float16"],
        help="weights dtype (default float32, like torchtitan's checkpoint.export_dtype)",
    )
    export.add_argument(
        "--tokenizer",
        default=None,
        help="tiktoken file or folder with tokenizer.model / tokenizer.json "
        "(default: the config's [tokenizer] path, else Llama-3's)",
    )
    template = export.add_mutually_exclusive_group()
    template.add_argument(
        "--chat-template",
        default=None,
        metavar="PATH",
        help="Jinja chat template (default: the SFT template, `mlr1 paths chat_template`)",
    )
    template.add_argument("--no-chat-template", action="store_true", help="write no chat template")
    export.add_argument("--max-shard-size", default="5GB", help="largest safetensors file (default 5GB)")
    export.add_argument(
        "--head-dim", type=int, default=None, help="head width when the shape is detected from tensors (default 64)"
    )
    export.add_argument("--rope-theta", type=float, default=None, help="override config.json rope_theta")
    export.add_argument(
        "--max-position-embeddings",
        type=int,
        default=None,
        help="override config.json max_position_embeddings (the stage's context)",
    )
    export.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    export.set_defaults(func=_cmd_export)

    imp = subparsers.add_parser(
        "import-hf",
        help="Hugging Face MobileLLM-R1 folder -> DCP checkpoint for --checkpoint.initial_load_path",
        description="Convert an HF Llama4ForCausalLM folder (the released MobileLLM-R1 checkpoints or an "
        "export-hf folder) into a torchtitan DCP checkpoint, with the detected shape in mlr1_model.toml.",
        epilog=IMPORT_EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    imp.add_argument("hf_dir", help="HF model folder (config.json + *.safetensors)")
    imp.add_argument("out", help="output DCP folder (must be empty unless --force)")
    imp.add_argument(
        "--config", default=None, help="model config name or TOML the checkpoint must match (checked, optional)"
    )
    imp.add_argument(
        "--dtype",
        default="auto",
        choices=["auto", "float32", "bfloat16", "float16"],
        help="dtype of the DCP tensors (default auto: as stored; the trainer casts on load)",
    )
    imp.add_argument("--force", action="store_true", help="overwrite a non-empty output folder")
    imp.set_defaults(func=_cmd_import)


def _fail(err: Exception) -> int:
    print(f"error: {err}", file=sys.stderr)
    return 1


def _model_config(name_or_path: str | None):
    """(flavor, where it comes from, tokenizer path) of a model config given as --config, or Nones."""
    if not name_or_path:
        return None, None, None
    from mlr1_titan.config import resolve_config_path  # deferred: loads torchtitan
    from mlr1_titan.config_registry import load_trainer_config

    config = load_trainer_config(name_or_path)
    where = f"--config {name_or_path} ({resolve_config_path(name_or_path)})"
    return config.model.shape(), where, config.tokenizer.path


def _cmd_export(args) -> int:
    # deferred: torch / torchtitan load in seconds, `mlr1 --help` must not wait for them
    from mlr1_titan.config import ConfigError
    from mlr1_titan.hf import HFInteropError, export_hf

    try:
        flavor, source, tokenizer_path = _model_config(args.config)
        export_hf(
            args.checkpoint,
            args.out,
            flavor=flavor,
            flavor_source=source or "the given model shape",
            dtype=args.dtype,
            tokenizer=args.tokenizer or tokenizer_path,
            chat_template=False if args.no_chat_template else args.chat_template,
            max_shard_size=args.max_shard_size,
            head_dim=args.head_dim,
            rope_theta=args.rope_theta,
            max_position_embeddings=args.max_position_embeddings,
            overwrite=args.force,
        )
    except (HFInteropError, ConfigError) as err:
        return _fail(err)
    return 0


def _cmd_import(args) -> int:
    from mlr1_titan.config import ConfigError
    from mlr1_titan.hf import HFInteropError, import_hf

    try:
        flavor, source, _ = _model_config(args.config)
        expected = (flavor, source) if flavor is not None else None
        import_hf(args.hf_dir, args.out, expected=expected, dtype=args.dtype, overwrite=args.force)
    except (HFInteropError, ConfigError) as err:
        return _fail(err)
    return 0
