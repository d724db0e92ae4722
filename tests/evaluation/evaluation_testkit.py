"""Helpers of the evaluation tests: a scripted lm-eval model, fixture paths, a tiny HF checkpoint."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import lm_eval.models  # noqa: F401  built-in backends first: lm-eval skips its lazy import once a model is registered
from lm_eval.api.model import LM
from lm_eval.api.registry import register_model

from mlr1_titan.resources import eval_tasks_dir

REPO = Path(__file__).resolve().parents[2]
EVAL_TASKS = eval_tasks_dir()
FIXTURES = EVAL_TASKS / "fixtures"

# Llama-3 header-style chat template (what MobileLLM-R1's SFT uses, paper_facts §1.5).
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
    """A tiny MobileLLM-R1 (2 layers, real Llama-3 vocabulary, random weights) exported the way users
    get their models: our model -> DCP checkpoint -> ``mlr1 export-hf`` (config, weights, tokenizer,
    chat template, generation config)."""
    from mlr1_titan.hf.dcp_io import save_dcp
    from mlr1_titan.hf.export import export_hf
    from mlr1_titan.model import build_on_cpu
    from mlr1_titan.model.flavors import MLR1Flavor

    flavor = MLR1Flavor(n_layers=2, dim=64, n_heads=4, n_kv_heads=2, ffn_hidden_dim=128, head_dim=16)
    _, model = build_on_cpu(flavor, seed=0)
    dcp_dir = Path(out_dir).with_name(Path(out_dir).name + "_dcp")
    save_dcp(model.state_dict(), dcp_dir)
    template = dcp_dir / "chat_template.jinja"
    template.write_text(chat_template)
    export_hf(dcp_dir, out_dir, head_dim=flavor.head_dim, chat_template=template, log=lambda _: None)
    return Path(out_dir)
