"""Hugging Face interop: export any DCP checkpoint as a standard ``Llama4ForCausalLM`` folder, import
the released MobileLLM-R1 checkpoints (and our exports) back into DCP, and complete torchtitan's own
``checkpoint.last_save_in_hf`` output. See docs/hf_interop.md.

    from mlr1_titan.hf import export_hf, import_hf
    export_hf("outputs/checkpoint/step-500000", "hf/mlr1-950m")
    import_hf("/models/MobileLLM-R1-950M-base", "/ckpt/r1-950m-base")

Submodules import lazily so that ``mlr1 --help`` stays fast.
"""

from __future__ import annotations

from typing import Any

__all__ = [
    "HFInteropError",
    "MLR1CheckpointManager",
    "export_hf",
    "flavor_from_hf_config",
    "generation_config_dict",
    "hf_config_dict",
    "import_hf",
]

_LAZY = {
    "HFInteropError": "config",
    "flavor_from_hf_config": "config",
    "generation_config_dict": "config",
    "hf_config_dict": "config",
    "export_hf": "export",
    "import_hf": "importer",
    "MLR1CheckpointManager": "checkpoint",
}


def __getattr__(name: str) -> Any:
    if name not in _LAZY:
        raise AttributeError(f"module 'mlr1_titan.hf' has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
