"""Tokenizer specs as the command-line tools take them (`--tokenizer`): a string -> a torchtitan tokenizer."""

from __future__ import annotations

import importlib
import os

TOKENIZER_HELP = (
    "tokenizer: 'llama3' (default, the Llama-3 tiktoken file from llama_models), 'bytes' (one token per "
    "UTF-8 byte, for controlled experiments), a tokenizer file or "
    "directory (tiktoken tokenizer.model or HF tokenizer.json, read by Llama3Tokenizer), "
    "'hf:DIR' (torchtitan HuggingFaceTokenizer), or 'module:function' returning a tokenizer"
)


def build_tokenizer(spec: str = "llama3"):
    """Build a torchtitan tokenizer from a CLI spec (see TOKENIZER_HELP). Top-level: picklable."""
    # deferred: tokenizers pull in torch / torchtitan, which the parser must not wait for
    if spec == "llama3":
        from mlr1_titan.tokenizer import Llama3Tokenizer

        return Llama3Tokenizer.Config().build(tokenizer_path=None)
    if spec == "bytes":
        from mlr1_titan.byte_tokenizer import ByteTokenizer

        return ByteTokenizer()
    if spec.startswith("hf:"):
        from torchtitan.components.tokenizer import HuggingFaceTokenizer

        return HuggingFaceTokenizer(tokenizer_path=spec[3:])
    if os.path.exists(spec):
        from mlr1_titan.tokenizer import Llama3Tokenizer

        return Llama3Tokenizer.Config(path=spec).build(tokenizer_path=None)
    module, _, attr = spec.partition(":")
    if not attr:
        raise SystemExit(f"--tokenizer {spec!r}: not a path, 'llama3', 'bytes', 'hf:DIR' or 'module:function'")
    try:
        factory = getattr(importlib.import_module(module), attr)
    except (ImportError, AttributeError) as err:
        raise SystemExit(f"--tokenizer {spec!r}: cannot load {module}.{attr} ({err})") from None
    return factory()
