"""Helpers for the distillation tests: small HF Llama teachers made locally, a one-process group."""

from __future__ import annotations

import json
import os
from contextlib import contextmanager
from pathlib import Path

import torch
import torch.distributed as dist

from mlr1_titan.llama3_vocab import VOCAB_SIZE
from mlr1_titan.tokenizer import Llama3Tokenizer, save_hf_tokenizer

LLAMA31_ROPE_SCALING = {
    "rope_type": "llama3",
    "factor": 8.0,
    "low_freq_factor": 1.0,
    "high_freq_factor": 4.0,
    "original_max_position_embeddings": 32,  # 8192 in Llama-3.1; small so that 64 positions feel the scaling
}


def make_hf_teacher(
    out: Path, *, vocab_size: int = VOCAB_SIZE, seed: int = 0, max_shard_size: str | None = None, **shape
) -> Path:
    """A randomly initialised transformers LlamaForCausalLM (Llama-3.1 layout) with the Llama-3 tokenizer."""
    from transformers import LlamaConfig, LlamaForCausalLM

    fields = dict(
        hidden_size=64,
        intermediate_size=160,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        head_dim=16,
        rope_theta=500000.0,
        rope_scaling=LLAMA31_ROPE_SCALING,
        rms_norm_eps=1e-5,
        tie_word_embeddings=False,
        max_position_embeddings=4096,
    )
    fields.update(shape)
    torch.manual_seed(seed)
    model = LlamaForCausalLM(LlamaConfig(vocab_size=vocab_size, **fields))
    with torch.no_grad():  # larger weights than HF's init, so logits differ visibly between tokens
        for p in model.parameters():
            if p.dim() == 2:
                p.normal_(0, 0.1)
    out.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(
        out, safe_serialization=True, **({"max_shard_size": max_shard_size} if max_shard_size else {})
    )
    save_hf_tokenizer(Llama3Tokenizer(), out, chat_template="")
    return out


def swap_two_token_ids(folder: Path, text: str) -> tuple[str, str]:
    """Corrupt the teacher's tokenizer.json: the first two distinct ordinary tokens of ``text`` exchange
    ids (same vocabulary size, another tokenizer). Returns the two tokens."""
    path = folder / "tokenizer.json"
    data = json.loads(path.read_text())
    vocab = data["model"]["vocab"]
    by_id = {i: tok for tok, i in vocab.items()}
    ids = [i for i in Llama3Tokenizer().encode(text) if i in by_id]
    a, b = by_id[ids[0]], by_id[next(i for i in ids if i != ids[0])]
    vocab[a], vocab[b] = vocab[b], vocab[a]
    path.write_text(json.dumps(data))
    return a, b


@contextmanager
def one_process_group(tmp_path: Path):
    """A gloo world of one process (with the CPU device layer), for torchtitan meshes outside torchrun."""
    from mlr1_titan.cpu_device import install_cpu_device_layer

    install_cpu_device_layer()
    os.environ.setdefault("MASTER_ADDR", "localhost")
    store = dist.FileStore(str(tmp_path / "pg_store"), 1)
    dist.init_process_group("gloo", store=store, rank=0, world_size=1)
    try:
        yield
    finally:
        dist.destroy_process_group()
