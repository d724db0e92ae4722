"""Helpers of the HF interop tests: tiny models with random weights, DCP round trips, logits."""

from __future__ import annotations

import warnings
from pathlib import Path

import torch
import torch.distributed.checkpoint as dcp

from mlr1_titan.model import build_on_cpu
from mlr1_titan.model.flavors import MLR1Flavor

TEMPLATE = (
    "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


def build_model(flavor: str | MLR1Flavor, seed: int = 0):
    """Our model on CPU with random weights; norm scales perturbed so that a mix-up would show."""
    spec, model = build_on_cpu(flavor, seed=seed)
    with torch.no_grad():
        for name, param in model.named_parameters():
            if name.endswith("norm.weight"):
                param.normal_(1.0, 0.2)
    return model.eval()


def save_model_dcp(model, out_dir: Path) -> Path:
    """What a seed / model-only checkpoint holds: the model state dict, top-level keys."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.save(dict(model.state_dict()), checkpoint_id=str(out_dir), no_dist=True)
    return out_dir


def load_model_from_dcp(flavor: str | MLR1Flavor, ckpt_dir: Path):
    """Our model with the weights of a DCP checkpoint, loaded by plain torch.distributed.checkpoint."""
    # init also fills the RoPE cache, a buffer the checkpoint does not hold
    spec, model = build_on_cpu(flavor)
    state = model.state_dict()
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="torch.distributed is disabled")
        dcp.load(state, checkpoint_id=str(ckpt_dir), no_dist=True)
    model.load_state_dict(state)
    return model.eval()


def tokens(n: int = 2, length: int = 40, vocab: int = 128_256, seed: int = 1) -> torch.Tensor:
    return torch.randint(0, vocab, (n, length), generator=torch.Generator().manual_seed(seed))


def max_logit_diff(ours, hf_dir: Path, ids: torch.Tensor) -> float:
    from transformers import AutoModelForCausalLM

    reference = AutoModelForCausalLM.from_pretrained(str(hf_dir), dtype=torch.float32).eval()
    with torch.no_grad():
        ref = reference(input_ids=ids).logits
        mine = ours(ids)
    return (mine - ref).abs().max().item()


def files_of(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir()) if p.is_file()}
