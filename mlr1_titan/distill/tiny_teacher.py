"""A small Llama-3-shaped teacher for CPU runs: a transformers ``LlamaForCausalLM`` trained on local text.

It has the students' vocabulary (by default the real 128,256-token Llama-3 one, so it can teach any
MobileLLM-R1 student; the demo passes its small BPE vocabulary) and an untied ``lm_head`` like Llama-3.1-8B-Instruct, and is saved as a complete HF folder (safetensors,
config.json, the student's tokenizer.json), so the trainer loads it through exactly the path the
8B teacher takes. Built with transformers on purpose: the teacher's side of the interop is then
tested against an independent implementation, not our own.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch

from mlr1_titan.tokenizer import Llama3Tokenizer, save_hf_tokenizer


@dataclass(frozen=True)
class TinyTeacherRecipe:
    hidden_size: int = 128
    """Residual width."""
    num_hidden_layers: int = 2
    """Decoder blocks."""
    num_attention_heads: int = 4
    """Query heads (head dim = hidden_size / heads)."""
    num_key_value_heads: int = 2
    """Key/value heads."""
    intermediate_size: int = 384
    """SwiGLU width."""
    steps: int = 300
    """AdamW steps."""
    batch_size: int = 8
    """Sequences per step."""
    seq_len: int = 64
    """Tokens per sequence (documents packed, each BOS ... EOS)."""
    lr: float = 3e-3
    """Peak learning rate (cosine decay to 10%)."""
    seed: int = 0
    """Initialisation and batch-order seed."""


def _packed_rows(texts: list[str], tokenizer: Llama3Tokenizer, seq_len: int) -> torch.Tensor:
    ids: list[int] = []
    for text in texts:
        ids += tokenizer.encode(text, add_bos=True, add_eos=True)
    n = len(ids) // (seq_len + 1)
    return torch.tensor(ids[: n * (seq_len + 1)]).view(n, seq_len + 1)


def train_tiny_teacher(
    out_dir: str | Path,
    texts: list[str],
    recipe: TinyTeacherRecipe = TinyTeacherRecipe(),
    log: Callable[[str], None] = print,
    tokenizer: Llama3Tokenizer | None = None,
) -> Path:
    """Train a ``LlamaForCausalLM`` of ``recipe`` on ``texts`` and save it as an HF folder in ``out_dir``.
    ``tokenizer``: the students' (default Llama-3's); the teacher's vocabulary is its size."""
    from transformers import LlamaConfig, LlamaForCausalLM

    tokenizer = tokenizer or Llama3Tokenizer()
    rows = _packed_rows(texts, tokenizer, recipe.seq_len)
    if len(rows) < recipe.batch_size:
        raise ValueError(f"{len(texts)} texts give {len(rows)} rows of {recipe.seq_len + 1} tokens; need more text")
    torch.manual_seed(recipe.seed)
    config = LlamaConfig(
        vocab_size=tokenizer.get_vocab_size(),
        hidden_size=recipe.hidden_size,
        intermediate_size=recipe.intermediate_size,
        num_hidden_layers=recipe.num_hidden_layers,
        num_attention_heads=recipe.num_attention_heads,
        num_key_value_heads=recipe.num_key_value_heads,
        max_position_embeddings=4096,
        rope_theta=500000.0,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        bos_token_id=tokenizer.bos_id,
        eos_token_id=tokenizer.eos_id,
        torch_dtype="float32",
    )
    model = LlamaForCausalLM(config)
    optimizer = torch.optim.AdamW(model.parameters(), lr=recipe.lr, betas=(0.9, 0.95), weight_decay=0.0)
    gen = torch.Generator().manual_seed(recipe.seed)
    start = time.perf_counter()
    model.train()
    for step in range(1, recipe.steps + 1):
        lr = recipe.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * (step - 1) / recipe.steps)))
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = rows[torch.randint(len(rows), (recipe.batch_size,), generator=gen)]
        loss = model(input_ids=batch[:, :-1], labels=batch[:, :-1].clone(), use_cache=False).loss
        # transformers shifts labels itself: the (L-1)-th input predicts the last label position; the
        # row's final token (batch[:, -1]) is simply not used.
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        if step == 1 or step % 50 == 0 or step == recipe.steps:
            elapsed = time.perf_counter() - start
            eta = elapsed / step * (recipe.steps - step)
            log(f"tiny teacher step {step}/{recipe.steps}: loss {loss.item():.3f} ({elapsed:.0f}s, ETA {eta:.0f}s)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out, safe_serialization=True)
    save_hf_tokenizer(tokenizer, out, chat_template="", model_max_length=config.max_position_embeddings)
    (out / "mlr1_tiny_teacher.json").write_text(json.dumps({"recipe": recipe.__dict__, "final_loss": loss.item()}))
    log(f"tiny teacher saved to {out}")
    return out
