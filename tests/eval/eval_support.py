"""Helpers of the evaluation tests: a scripted lm-eval model, fixture paths, a tiny HF checkpoint."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import lm_eval.models  # noqa: F401  built-in backends first: lm-eval skips its lazy import once a model is registered
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

REPO = Path(__file__).resolve().parents[2]
EVAL_TASKS = REPO / "eval_tasks"
FIXTURES = EVAL_TASKS / "fixtures"

# Llama-3 header-style chat template (what MobileLLM-R1's SFT uses, reference §1.5).
LLAMA3_HEADER_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}"
    "<|start_header_id|>{{ message['role'] }}<|end_header_id|>\n\n{{ message['content'] }}<|eot_id|>"
    "{% endfor %}{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)


@register_model("mlr1-scripted")
class ScriptedLM(LM):
    """Returns known completions. ``script`` maps a substring of the prompt to the completions of
    that problem's samples, in order; every request is recorded (prompt and generation kwargs)."""

    def __init__(self, script: dict[str, list[str]] | None = None):
        super().__init__()
        self.script = script or {}
        self.served: dict[str, int] = defaultdict(int)
        self.requests: list[tuple[str, dict]] = []

    def generate_until(self, requests, disable_tqdm: bool = False) -> list[str]:
        out = []
        for request in requests:
            context, gen_kwargs = request.args
            self.requests.append((context, dict(gen_kwargs)))
            keys = [k for k in self.script if k in context]
            if len(keys) != 1:
                raise AssertionError(f"prompt matches {len(keys)} script keys: {context[:200]!r}")
            i = self.served[keys[0]]
            self.served[keys[0]] += 1
            out.append(self.script[keys[0]][i])
        return out

    def loglikelihood(self, requests):
        raise NotImplementedError("generative tasks only")

    def loglikelihood_rolling(self, requests):
        raise NotImplementedError("generative tasks only")

    def apply_chat_template(self, chat_history, add_generation_prompt: bool = True) -> str:
        text = "<|begin_of_text|>"
        for message in chat_history:
            text += f"<|start_header_id|>{message['role']}<|end_header_id|>\n\n{message['content']}<|eot_id|>"
        if add_generation_prompt:
            text += "<|start_header_id|>assistant<|end_header_id|>\n\n"
        return text

    @property
    def tokenizer_name(self) -> str:
        return "scripted-llama3-header"


def build_tiny_hf_checkpoint(out_dir: Path, chat_template: str = LLAMA3_HEADER_TEMPLATE) -> Path:
    """A 2-layer MobileLLM-R1-shaped ``Llama4ForCausalLM`` (dense, QK-norm, RoPE in every layer, tied
    embeddings, Llama-3 vocabulary) with a transformers-loadable Llama-3 tokenizer and chat template."""
    import torch
    from transformers import GenerationConfig, Llama4ForCausalLM, Llama4TextConfig

    from mlr1_titan.tokenizer import default_tokenizer_file, save_hf_tokenizer

    config = Llama4TextConfig(
        vocab_size=128_256,
        hidden_size=64,
        intermediate_size=128,
        intermediate_size_mlp=128,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        use_qk_norm=True,
        no_rope_layers=[1, 1],  # 1 = this layer uses RoPE
        moe_layers=[],  # every layer dense
        tie_word_embeddings=True,
        max_position_embeddings=4096,
        bos_token_id=128_000,
        eos_token_id=[128_001, 128_008, 128_009],
        pad_token_id=128_004,
    )
    torch.manual_seed(0)
    model = Llama4ForCausalLM(config)
    model.save_pretrained(out_dir)
    GenerationConfig(
        bos_token_id=128_000, eos_token_id=[128_001, 128_008, 128_009], pad_token_id=128_004
    ).save_pretrained(out_dir)
    save_hf_tokenizer(default_tokenizer_file(), out_dir, chat_template=chat_template)
    return Path(out_dir)
