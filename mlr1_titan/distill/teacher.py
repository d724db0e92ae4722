"""The frozen teacher: torchtitan's own Llama-3 model, sharded like the student, loaded from HF weights.

``Teacher.build`` turns a checked ``TeacherFolder`` into a torchtitan ``Llama3Model`` (its config
tree from the HF config.json), parallelised by torchtitan's ``parallelize_llama`` on the student's
FSDP mesh, stored in ``training.mixed_precision_param`` (the dtype the student computes in), and
filled through torchtitan's ``Llama3StateDictAdapter`` + DCP's ``HuggingFaceStorageReader``, so
each rank reads only its shards. It has no optimizer, ``requires_grad`` is off, it runs in eval
mode under ``no_grad`` and returns final-norm hidden states: its ``lm_head`` runs per chunk inside
the loss. Checkpoints never hold its weights, only ``TeacherRecord`` (path and fingerprint).

Shape legend: B batch, L sequence, D teacher model dim.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from functools import partial
from typing import Any

import torch
import torch.distributed.checkpoint as dcp
import torch.nn as nn
from torch.distributed.checkpoint.stateful import Stateful
from torch.distributed.fsdp import FSDPModule
from torchtitan.config import TORCH_DTYPE_MAP
from torchtitan.models.common import ComplexRoPE, Embedding, Linear, RMSNorm
from torchtitan.models.common.config_utils import make_ffn_config, make_gqa_config
from torchtitan.models.llama3 import Llama3Model, parallelize_llama
from torchtitan.models.llama3.model import Llama3TransformerBlock
from torchtitan.models.llama3.state_dict_adapter import Llama3StateDictAdapter
from torchtitan.tools import utils

from mlr1_titan.distill.teacher_folder import TeacherError, TeacherFolder, TeacherShape
from mlr1_titan.model import DocumentCausalSDPA, document_causal_mask, inner_attention_config


def teacher_model_config(shape: TeacherShape, attn_backend: str, max_seq_len: int = 131072) -> Llama3Model.Config:
    """torchtitan's Llama-3 config tree for ``shape`` (initialisers matter only for random teachers)."""
    normal = {"weight": partial(nn.init.normal_, std=0.02)}
    ones = {"weight": nn.init.ones_}
    scaling = shape.rope_scaling or {}
    rope = ComplexRoPE.Config(
        dim=shape.head_dim,
        max_seq_len=max_seq_len,
        theta=shape.rope_theta,
        scaling="llama" if scaling else "none",
        scaling_factor=float(scaling.get("factor", 8.0)),
        low_freq_factor=float(scaling.get("low_freq_factor", 1.0)),
        high_freq_factor=float(scaling.get("high_freq_factor", 4.0)),
        original_max_position_embeddings=int(scaling.get("original_max_position_embeddings", 8192)),
    )

    def rmsnorm() -> RMSNorm.Config:
        return RMSNorm.Config(normalized_shape=shape.dim, eps=shape.norm_eps, param_init=ones)

    layers = [
        Llama3TransformerBlock.Config(
            attention_norm=rmsnorm(),
            ffn_norm=rmsnorm(),
            attention=make_gqa_config(
                dim=shape.dim,
                n_heads=shape.n_heads,
                n_kv_heads=shape.n_kv_heads,
                head_dim=shape.head_dim,
                wqkv_param_init=normal,
                wo_param_init=normal,
                inner_attention=inner_attention_config(attn_backend),
                fuse_qkv=True,
                rope=rope,
            ),
            feed_forward=make_ffn_config(
                dim=shape.dim, hidden_dim=shape.ffn_hidden_dim, w1_param_init=normal, w2w3_param_init=normal
            ),
        )
        for _ in range(shape.n_layers)
    ]
    return Llama3Model.Config(
        dim=shape.dim,
        vocab_size=shape.vocab_size,
        enable_weight_tying=shape.tie_word_embeddings,
        tok_embeddings=Embedding.Config(num_embeddings=shape.vocab_size, embedding_dim=shape.dim, param_init=normal),
        norm=rmsnorm(),
        lm_head=Linear.Config(in_features=shape.dim, out_features=shape.vocab_size, param_init=normal),
        layers=layers,
    )


class TeacherRecord(Stateful):
    """What a checkpoint keeps of the teacher: its path and weights fingerprint (never its weights).

    Resuming with other teacher weights is refused: the student would silently change target mid-run.
    """

    def __init__(self, path: str, fingerprint: str):
        self.path, self.fingerprint = path, fingerprint

    def state_dict(self) -> dict[str, Any]:
        return {"path": self.path, "fingerprint": self.fingerprint}

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if state_dict["fingerprint"] != self.fingerprint:
            raise TeacherError(
                f"the checkpoint was distilled from teacher {state_dict['path']} (weights fingerprint "
                f"{state_dict['fingerprint']}), this run's teacher {self.path} has fingerprint {self.fingerprint}: "
                "resume with the same teacher, or start a new run (--checkpoint.initial_load_path, model only)"
            )


class Teacher:
    def __init__(
        self, model: Llama3Model, folder: TeacherFolder | None, fingerprint: str, lm_head_reshards: bool = False
    ):
        self.model = model
        self.folder = folder
        self._lm_head_reshards = lm_head_reshards  # torchtitan's choice for the [norm, lm_head] FSDP group
        self.record = TeacherRecord(str(folder.path) if folder else "(random weights)", fingerprint)
        self._dense_mask = isinstance(model.config.first_attention.inner_attention, DocumentCausalSDPA.Config)

    @classmethod
    def build(
        cls,
        folder: TeacherFolder | None,
        *,
        shape: TeacherShape | None = None,
        trainer_config,
        parallel_dims,
        attn_backend: str,
        device: torch.device,
    ) -> Teacher:
        """Build, shard and load the teacher of ``folder`` (``folder=None`` + ``shape``: random weights, benchmarks)."""
        shape = folder.shape if folder is not None else shape
        training = trainer_config.training
        model_config = teacher_model_config(shape, attn_backend)
        model_config.update_from_config(config=trainer_config)  # RoPE cache at seq_len, sharding plans
        with torch.device("meta"), utils.set_default_dtype(TORCH_DTYPE_MAP[training.mixed_precision_param]):
            model = model_config.build()
        model = parallelize_llama(
            model,
            parallel_dims=parallel_dims,
            training=training,
            parallelism=trainer_config.parallelism,
            compile_config=trainer_config.compile,
            ac_config=None,  # no backward through the teacher: nothing to recompute
            dump_folder=trainer_config.dump_folder,
        )
        model.to_empty(device="cpu" if training.enable_cpu_offload else device)
        # A private RNG stream: HF weights overwrite the init, and the training RNG must not move.
        with torch.random.fork_rng(devices=[] if device.type == "cpu" else [device]), torch.no_grad():
            torch.manual_seed(0)
            model.init_weights(buffer_device=device if training.enable_cpu_offload else None)
        if folder is not None:
            _load_hf_weights(model, model_config, folder)
        model.requires_grad_(False)
        model.eval()
        model._skip_lm_head = True  # final-norm hidden states; the loss applies lm_head per chunk
        return cls(
            model,
            folder,
            folder.fingerprint() if folder is not None else "random",
            lm_head_reshards=trainer_config.parallelism.fsdp_reshard_after_forward == "always",
        )

    @property
    def lm_head(self) -> nn.Module:
        return self.model.lm_head

    def hidden_states(
        self, inputs_BL: torch.Tensor, positions_BL: torch.Tensor | None, attention_masks: Any
    ) -> torch.Tensor:
        """Final-norm hidden states [B, L, D] of the teacher on the student's tokens and document masks."""
        if self._dense_mask and positions_BL is not None:
            attention_masks = document_causal_mask(positions_BL)
        with torch.no_grad():
            return self.model(inputs_BL, positions=positions_BL, attention_masks=attention_masks)

    def timed_hidden_states(self, inputs_BL, positions_BL, attention_masks) -> tuple[torch.Tensor, float]:
        """``hidden_states`` and its wall time, between two device synchronisations (logging steps only)."""
        utils.device_module.synchronize()
        start = time.perf_counter()
        hidden = self.hidden_states(inputs_BL, positions_BL, attention_masks)
        utils.device_module.synchronize()
        return hidden, time.perf_counter() - start

    @contextmanager
    def loss_scope(self):
        """The loss of one micro-batch: the FSDP-sharded teacher lm_head stays gathered across the chunks.

        On exit it is resharded and FSDP's per-iteration bookkeeping is cleared: FSDP records every
        forward for the backward that follows, and the teacher has none, so the records would pile up.
        """
        lm_head = self.lm_head
        if not isinstance(lm_head, FSDPModule):
            yield
            return
        lm_head.unshard()
        lm_head.set_reshard_after_forward(False)
        try:
            yield
        finally:
            lm_head.set_reshard_after_forward(self._lm_head_reshards)
            lm_head.reshard()
            if isinstance(self.model, FSDPModule):
                self.model.reset_iter_state()


def _load_hf_weights(model: nn.Module, model_config: Llama3Model.Config, folder: TeacherFolder) -> None:
    """torchtitan's HF load path (as ``--checkpoint.initial_load_in_hf``), for a model outside the checkpointer."""
    adapter = Llama3StateDictAdapter(model_config, str(folder.path))
    # model.state_dict(), as torchtitan's ModelWrapper: the fused-QKV hooks split wqkv into wq/wk/wv
    # on the way out and merge them back on load, so the HF names line up.
    hf_state_dict = adapter.to_hf(model.state_dict())
    dcp.load(hf_state_dict, storage_reader=adapter.get_hf_storage_reader(str(folder.path)))
    model.load_state_dict(adapter.from_hf(hf_state_dict), strict=True)
