"""mlr1_titan: MobileLLM-R1 (arXiv 2509.24945) as a torchtitan 0.3.0 plugin.

Train:  torchrun --nproc_per_node=8 -m torchtitan.train --module mlr1_titan --config mlr1_950m
Model:  ``mlr1_titan.model_registry(flavor) -> ModelSpec`` (flavors 140M, 360M, 950M, tiny).

Heavy imports (torch, torchtitan) happen lazily so that the ``mlr1`` CLI starts fast.
"""

__version__ = "0.1.0"


def __getattr__(name):
    if name == "model_registry":
        from .model import model_registry

        return model_registry
    if name in ("MLR1Model", "MLR1_FLAVORS"):
        from . import model

        return getattr(model, name)
    raise AttributeError(f"module 'mlr1_titan' has no attribute {name!r}")
