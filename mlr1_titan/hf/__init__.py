"""Hugging Face interop: export any DCP checkpoint as a standard ``Llama4ForCausalLM`` folder, import
the released MobileLLM-R1 checkpoints (and our exports) back into DCP, and complete torchtitan's own
``checkpoint.last_save_in_hf`` output. See docs/hf_interop.md.

    from mlr1_titan.hf import export_hf, import_hf
    export_hf("outputs/checkpoint/step-500000", "hf/mlr1-950m")
    import_hf("/models/MobileLLM-R1-950M-base", "/ckpt/r1-950m-base")
"""

from .checkpoint import MLR1CheckpointManager
from .config import HFInteropError, flavor_from_hf_config, generation_config_dict, hf_config_dict
from .export import export_hf
from .importer import import_hf

__all__ = [
    "HFInteropError",
    "MLR1CheckpointManager",
    "export_hf",
    "flavor_from_hf_config",
    "generation_config_dict",
    "hf_config_dict",
    "import_hf",
]
