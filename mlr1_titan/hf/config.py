"""The JSON side of a MobileLLM-R1 Hugging Face folder, and the way back to an ``MLR1Flavor``.

``hf_config_dict(flavor)`` is the ``config.json`` of a dense ``Llama4ForCausalLM`` (``llama4_text``)
that computes what our model computes (paper_facts §1.2): QK-norm on, every layer
with RoPE (``no_rope_layers`` all 1), no MoE layers, tied embeddings, plain causal attention.
``flavor_from_hf_config`` reads such a file back and refuses, naming the field, any setting our
model cannot reproduce (NoPE layers, MoE, RoPE scaling, biases, ...).

Written by hand rather than through ``transformers.Llama4TextConfig`` so that the folder is readable
by transformers 4.5x and 5.x and by vLLM alike: both ``rope_theta`` (4.x, vLLM) and
``rope_parameters`` (5.x) are present, and ``interleave_moe_layer_step = 0`` keeps vLLM, which ignores
``moe_layers``, from building MoE layers.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

from mlr1_titan.llama3_vocab import BOS_ID, END_OF_TEXT_ID, EOM_ID, EOM_TOKEN, EOT_ID, PAD_ID
from mlr1_titan.model.flavors import MLR1_FLAVORS, MLR1Flavor

HF_ARCHITECTURE = "Llama4ForCausalLM"
HF_MODEL_TYPE = "llama4_text"

# Sampling defaults of the paper's reasoning evaluation (§4.1: temperature 0.6, top-p 0.95).
GENERATION_TEMPERATURE = 0.6
GENERATION_TOP_P = 0.95


SHAPE_FIELDS = ("n_layers", "dim", "n_heads", "n_kv_heads", "ffn_hidden_dim", "head_dim", "vocab_size")
"""The MLR1Flavor fields that decide tensor shapes (the others are numerics of the stage)."""


Log = Callable[[str], None]
"""Where export/import progress lines go (default: stdout, flushed)."""


def print_progress(message: str) -> None:
    print(message, flush=True)


class HFInteropError(ValueError):
    """A checkpoint, config or option that cannot be converted; the message names the input."""


@dataclasses.dataclass(frozen=True)
class SpecialTokenIds:
    bos: int = BOS_ID
    end_of_text: int = END_OF_TEXT_ID
    eom: int = EOM_ID
    eot: int = EOT_ID
    pad: int = PAD_ID

    @classmethod
    def of(cls, tokenizer) -> "SpecialTokenIds":
        """The ids of a ``Llama3Tokenizer`` (falls back to the Llama-3 defaults for missing names)."""
        special = getattr(tokenizer, "special_tokens", {}) or {}
        return cls(
            bos=getattr(tokenizer, "bos_id", BOS_ID),
            end_of_text=getattr(tokenizer, "eos_id", END_OF_TEXT_ID),
            eom=special.get(EOM_TOKEN, EOM_ID),
            eot=getattr(tokenizer, "eot_id", EOT_ID),
            pad=getattr(tokenizer, "pad_id", PAD_ID),
        )


def named_flavor(flavor: MLR1Flavor) -> str | None:
    """The paper size ("140M", "360M", "950M") or "tiny" with the same tensor shapes, if any."""
    for name, known in MLR1_FLAVORS.items():
        if all(getattr(known, f) == getattr(flavor, f) for f in SHAPE_FIELDS):
            return name
    return None


def describe_flavor(flavor: MLR1Flavor) -> str:
    name = named_flavor(flavor)
    shape = (
        f"{flavor.n_layers} layers, d {flavor.dim}, {flavor.n_heads}/{flavor.n_kv_heads} heads x "
        f"{flavor.head_dim}, FFN {flavor.ffn_hidden_dim}, vocab {flavor.vocab_size}"
    )
    stage = f"rope_theta {flavor.rope_theta:g}, context {flavor.max_seq_len}"
    return f"{name + ': ' if name else ''}{shape}; {stage} ({flavor.num_params():,} params)"


def hf_config_dict(
    flavor: MLR1Flavor,
    *,
    dtype: str = "float32",
    token_ids: SpecialTokenIds = SpecialTokenIds(),
) -> dict[str, Any]:
    """``config.json`` of the HF ``Llama4ForCausalLM`` equal to ``flavor``.

    ``max_position_embeddings`` is the stage's context (``flavor.max_seq_len``: 4096 for base
    models, 32768 for post-trained ones, whose ``rope_theta`` is 8x larger, paper_facts §1.3).
    """
    f = flavor
    return {
        "architectures": [HF_ARCHITECTURE],
        "model_type": HF_MODEL_TYPE,
        "vocab_size": f.vocab_size,
        "hidden_size": f.dim,
        # Llama-4 keeps a MoE width (intermediate_size) and a dense width (intermediate_size_mlp);
        # with no MoE layer only the latter is used. Both carry the dense width, as released.
        "intermediate_size": f.ffn_hidden_dim,
        "intermediate_size_mlp": f.ffn_hidden_dim,
        "num_hidden_layers": f.n_layers,
        "num_attention_heads": f.n_heads,
        "num_key_value_heads": f.n_kv_heads,
        "head_dim": f.head_dim,
        "hidden_act": "silu",
        "max_position_embeddings": f.max_seq_len,
        "initializer_range": f.init_std,
        "rms_norm_eps": f.norm_eps,
        "rope_theta": float(f.rope_theta),
        "rope_scaling": None,
        "rope_parameters": {"rope_type": "default", "rope_theta": float(f.rope_theta)},
        "attention_bias": False,
        "attention_dropout": 0.0,
        # The weight-free L2 norm of q and k after RoPE, on every RoPE layer.
        "use_qk_norm": True,
        # 1 = the layer uses RoPE. Every MobileLLM-R1 layer does: no NoPE layers, so Llama-4's
        # attention-temperature tuning (NoPE layers only) never applies.
        "no_rope_layers": [1] * f.n_layers,
        "attn_temperature_tuning": False,
        # None = plain causal attention over the whole context (what our model computes).
        "attention_chunk_size": None,
        # Dense: no MoE layer. transformers reads moe_layers, vLLM reads interleave_moe_layer_step.
        "moe_layers": [],
        "interleave_moe_layer_step": 0,
        "num_local_experts": 0,
        "tie_word_embeddings": True,
        "bos_token_id": token_ids.bos,
        "eos_token_id": [token_ids.end_of_text, token_ids.eom, token_ids.eot],
        "pad_token_id": token_ids.pad,
        "use_cache": True,
        "torch_dtype": dtype,
    }


def generation_config_dict(token_ids: SpecialTokenIds = SpecialTokenIds()) -> dict[str, Any]:
    """``generation_config.json``: the paper's sampling (T 0.6, top-p 0.95), stop on eot / end_of_text."""
    return {
        "bos_token_id": token_ids.bos,
        "eos_token_id": [token_ids.eot, token_ids.end_of_text],
        "pad_token_id": token_ids.pad,
        "do_sample": True,
        "temperature": GENERATION_TEMPERATURE,
        "top_p": GENERATION_TOP_P,
    }


def write_json(path: Path, data: dict[str, Any]) -> Path:
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# Reading a config.json back.


def read_hf_config(hf_dir: Path) -> dict[str, Any]:
    path = Path(hf_dir) / "config.json"
    if not path.is_file():
        raise HFInteropError(
            f"{hf_dir}: no config.json; an HF model folder holds config.json next to its *.safetensors"
        )
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as err:
        raise HFInteropError(f"{path}: not valid JSON: {err}") from None
    if not isinstance(data, dict):
        raise HFInteropError(f"{path}: expected a JSON object, got {type(data).__name__}")
    return data


def _rope_settings(cfg: dict[str, Any], where: str) -> float:
    params = cfg.get("rope_parameters")
    scaling = cfg.get("rope_scaling")
    for name, block in (("rope_parameters", params), ("rope_scaling", scaling)):
        if block is None:
            continue
        if not isinstance(block, dict):
            raise HFInteropError(f"{where}: {name} must be an object or null, got {block!r}")
        rope_type = block.get("rope_type", block.get("type", "default"))
        if rope_type not in ("default", None):
            raise HFInteropError(
                f"{where}: {name}.rope_type = {rope_type!r}; MobileLLM-R1 uses plain RoPE "
                "(its 32k models raise rope_theta instead of scaling)"
            )
    theta = None
    if isinstance(params, dict) and params.get("rope_theta") is not None:
        theta = params["rope_theta"]
    if theta is None:
        theta = cfg.get("rope_theta", 500_000.0)  # transformers' Llama-4 default
    return float(theta)


def _effective_moe_layers(cfg: dict[str, Any], n_layers: int, where: str) -> list[int]:
    """The MoE layers transformers would build (vLLM decides by interleave_moe_layer_step alone)."""
    moe_layers = cfg.get("moe_layers")
    step = cfg.get("interleave_moe_layer_step", 1)
    if moe_layers is None:
        if not isinstance(step, int) or step <= 0:
            raise HFInteropError(
                f"{where}: moe_layers is missing and interleave_moe_layer_step = {step!r}; "
                "a dense MobileLLM-R1 config sets moe_layers = []"
            )
        return list(range(step - 1, n_layers, step))
    return list(moe_layers)


def flavor_from_hf_config(cfg: dict[str, Any], where: str = "config.json") -> tuple[MLR1Flavor, list[str]]:
    """The MLR1Flavor a ``llama4_text`` config describes, plus warnings; raises on what we cannot run."""
    warnings: list[str] = []
    if "text_config" in cfg and cfg.get("model_type") != HF_MODEL_TYPE:
        raise HFInteropError(
            f"{where}: a multimodal Llama-4 config (model_type {cfg.get('model_type')!r}); MobileLLM-R1 "
            f"checkpoints are {HF_ARCHITECTURE} with model_type {HF_MODEL_TYPE!r}"
        )
    model_type = cfg.get("model_type")
    if model_type != HF_MODEL_TYPE:
        raise HFInteropError(
            f"{where}: model_type is {model_type!r} (architectures {cfg.get('architectures')}); "
            f"expected {HF_MODEL_TYPE!r} ({HF_ARCHITECTURE}), the layout of the MobileLLM-R1 releases"
        )
    required = ("hidden_size", "num_hidden_layers", "num_attention_heads", "vocab_size")
    missing = [key for key in required if key not in cfg]
    if missing:
        raise HFInteropError(f"{where}: missing {missing}")
    n_layers = int(cfg["num_hidden_layers"])
    dim = int(cfg["hidden_size"])
    n_heads = int(cfg["num_attention_heads"])
    n_kv_heads = int(cfg.get("num_key_value_heads") or n_heads)
    head_dim = int(cfg.get("head_dim") or dim // n_heads)

    def refuse(key: str, value: Any, expected: str) -> None:
        raise HFInteropError(f"{where}: {key} = {value!r}, but MobileLLM-R1 needs {expected}")

    if cfg.get("hidden_act", "silu") != "silu":
        refuse("hidden_act", cfg["hidden_act"], "'silu' (SwiGLU)")
    if cfg.get("use_qk_norm", True) is not True:
        refuse("use_qk_norm", cfg.get("use_qk_norm"), "true (weight-free QK L2-norm after RoPE)")
    if cfg.get("attention_bias", False):
        refuse("attention_bias", cfg["attention_bias"], "false")
    no_rope = cfg.get("no_rope_layers")
    if no_rope is None:
        raise HFInteropError(
            f"{where}: no_rope_layers is missing, so transformers would make every "
            f"{cfg.get('no_rope_layer_interval', 4)}th layer a NoPE layer; MobileLLM-R1 lists 1 for every layer"
        )
    if len(no_rope) < n_layers or any(int(v) != 1 for v in no_rope[:n_layers]):
        nope = [i for i, v in enumerate(no_rope[:n_layers]) if int(v) != 1]
        refuse("no_rope_layers", no_rope, f"1 for each of the {n_layers} layers (NoPE layers {nope})")
    moe = _effective_moe_layers(cfg, n_layers, where)
    if moe:
        refuse("moe_layers", moe, "no MoE layer (moe_layers = [])")
    if cfg.get("interleave_moe_layer_step", 0) not in (0, None) and cfg.get("num_local_experts", 0):
        warnings.append(
            f"{where}: interleave_moe_layer_step = {cfg['interleave_moe_layer_step']} makes vLLM build MoE "
            "layers; exports of this model write 0"
        )
    rope_theta = _rope_settings(cfg, where)
    max_pos = int(cfg.get("max_position_embeddings", 4096))
    chunk = cfg.get("attention_chunk_size")
    if chunk is not None and int(chunk) < max_pos:
        warnings.append(
            f"{where}: attention_chunk_size = {chunk} < max_position_embeddings = {max_pos}: transformers "
            f"attends within {chunk}-token chunks, our model over the whole context (same logits up to {chunk} tokens)"
        )
    if "intermediate_size_mlp" in cfg:
        ffn = int(cfg["intermediate_size_mlp"])
    elif "intermediate_size" in cfg:
        ffn = int(cfg["intermediate_size"])
        warnings.append(f"{where}: no intermediate_size_mlp; using intermediate_size = {ffn} as the FFN width")
    else:
        raise HFInteropError(f"{where}: missing intermediate_size_mlp (the dense FFN width)")
    flavor = MLR1Flavor(
        n_layers=n_layers,
        dim=dim,
        n_heads=n_heads,
        n_kv_heads=n_kv_heads,
        ffn_hidden_dim=ffn,
        head_dim=head_dim,
        vocab_size=int(cfg["vocab_size"]),
        rope_theta=rope_theta,
        max_seq_len=max_pos,
        norm_eps=float(cfg.get("rms_norm_eps", 1e-5)),
        init_std=float(cfg.get("initializer_range", 0.02)),
    )
    return flavor, warnings
