"""``MLR1Trainer``: torchtitan's Trainer, and its ``Config``: the one schema of every MobileLLM-R1 run.

Every setting is a field of this nested dataclass tree: a TOML key ``[a] b = ...`` and the command-line
flag ``--a.b ...`` set the same field (``mlr1_titan.config`` reads TOMLs onto it, tyro parses the
command line onto it) and ``--help`` documents each with its docstring. torchtitan's own sections
and fields are unchanged; the sections below replace torchtitan's where MobileLLM-R1 adds settings.

Derived, never set by hand: ``model_spec`` is rebuilt from ``[model]`` whenever the config is
constructed (a ``model_spec`` assigned in Python does not survive ``config.build()``; change
``config.model`` instead), the loss's vocabulary and the HF export's context (from the model). At
start-up the trainer also derives ``training.steps`` from ``[dataloader.chat] epochs`` when
steps <= 0 and ``lr_scheduler.warmup_steps`` from ``warmup_ratio``, and installs the CPU device layer
on hosts without an accelerator.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import torch
from torchtitan.components.validate import Validator
from torchtitan.tools.logging import logger
from torchtitan.trainer import Trainer

from mlr1_titan.cluster import (
    apply_float8,
    check_attention_memory,
    check_tensor_parallel_degree,
    log_float8_layers,
    log_tensor_parallel_layout,
)
from mlr1_titan.components.activation_checkpoint import MLR1ActivationCheckpoint
from mlr1_titan.components.dataloader import MLR1DataLoader
from mlr1_titan.components.loss import MLR1Loss
from mlr1_titan.components.lr_scheduler import MLR1LRSchedulers
from mlr1_titan.components.optimizer import MLR1Optimizers
from mlr1_titan.cpu_device import install_cpu_device_layer
from mlr1_titan.data.mix_config import resolve_mix_path
from mlr1_titan.hf.checkpoint import MLR1CheckpointManager
from mlr1_titan.model.settings import ModelSettings
from mlr1_titan.schedule import describe_batches, plan_batches, resolve_schedule
from mlr1_titan.tokenizer import Llama3Tokenizer, default_tokenizer_file


def _default_validator() -> Validator.Config:
    return Validator.Config(dataloader=MLR1DataLoader.Config())


class MLR1Trainer(Trainer):
    @dataclass(kw_only=True, slots=True)
    class Config(Trainer.Config):
        model: ModelSettings
        """The decoder: a named size (paper Table 1) and/or shape fields, plus the stage's RoPE numerics."""
        description: str = ""
        """Free text: what this config is for."""
        hf_assets_path: str = field(default_factory=lambda: str(default_tokenizer_file().parent))
        """Folder of HF assets (tokenizer files, HF weights for initial_load_in_hf); default: the Llama-3 tokenizer's."""
        tokenizer: Llama3Tokenizer.Config = field(default_factory=Llama3Tokenizer.Config)
        """The Llama-3 tokenizer (tiktoken file or HF tokenizer.json)."""
        optimizer: MLR1Optimizers.Config = field(default_factory=MLR1Optimizers.Config)
        """AdamW hyper-parameters; torchtitan's param_groups still apply on top."""
        lr_scheduler: MLR1LRSchedulers.Config = field(default_factory=MLR1LRSchedulers.Config)
        """Warmup-stable-decay schedule; warmup as steps or as a ratio of the run."""
        dataloader: MLR1DataLoader.Config = field(default_factory=MLR1DataLoader.Config)
        """The data engine of the stage (kind) and its settings."""
        loss: MLR1Loss.Config = field(default_factory=MLR1Loss.Config)
        """Training loss."""
        activation_checkpoint: MLR1ActivationCheckpoint.Config = field(default_factory=MLR1ActivationCheckpoint.Config)
        """Activation checkpointing policy (mode) and its settings."""
        checkpoint: MLR1CheckpointManager.Config = field(default_factory=MLR1CheckpointManager.Config)
        """DCP checkpoints; last_save_in_hf writes a complete HF folder."""
        validator: Validator.Config = field(default_factory=_default_validator)
        """Held-out evaluation during training; its dataloader takes the same settings as [dataloader]."""

        def __post_init__(self) -> None:
            check_tensor_parallel_degree(self.model, self.parallelism.tensor_parallel_degree)
            if self.model.resolved_attn_backend() == "varlen":
                # Varlen metadata changes shape every batch, which a captured CUDA graph cannot follow.
                self.training.disable_cuda_graphs = True
            self.model_spec = self.model.build_spec()
            self.loss.vocab_size = self.model_spec.model.vocab_size
            self.checkpoint.hf_max_position_embeddings = self.model.shape().max_seq_len
            self._check_run_length_and_data()
            self._check_validation_data()
            # torchtitan's checks read the activation-checkpointing policy from its config type.
            ac = self.activation_checkpoint
            self.activation_checkpoint = ac.policy()
            try:
                Trainer.Config.__post_init__(self)
            finally:
                self.activation_checkpoint = ac

        def _check_run_length_and_data(self) -> None:
            t, context = self.training, self.model.shape().max_seq_len
            if t.seq_len > context:
                raise ValueError(
                    f"training.seq_len {t.seq_len} exceeds model.max_seq_len {context}, the context this stage "
                    f"records: raise model.max_seq_len (e.g. --model.max_seq_len {t.seq_len}) or shorten seq_len"
                )
            if t.global_batch_size == 0:
                raise ValueError(
                    "training.global_batch_size must be > 0, or -1 for local_batch_size x data-parallel degree"
                )
            data = self.dataloader.selected()
            if t.steps <= 0 and getattr(data, "epochs", None) is None:
                raise ValueError(
                    f"training.steps is {t.steps}: set it, or use dataloader.kind = chat with dataloader.chat.epochs "
                    "so that the step count is derived from the data"
                )
            for name in [data.mix, *(p.rpartition("@")[0] or p for p in getattr(data, "phases", []))]:
                resolve_mix_path(name)  # raises MixError (a ValueError) listing where it looked

        def _check_validation_data(self) -> None:
            if not self.validator.enable or not isinstance(self.validator.dataloader, MLR1DataLoader.Config):
                return
            held_out, train = self.validator.dataloader, self.dataloader
            if held_out.kind == train.kind and held_out.selected().mix == train.selected().mix:
                raise ValueError(
                    f"validator.dataloader.{held_out.kind}.mix is {held_out.selected().mix!r}, the training mix: "
                    f"point it at held-out data (a mix of other files) or disable the validator"
                )

    def __init__(self, config: Config):
        install_cpu_device_layer()
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        plan = plan_batches(config, world_size)  # an impossible split fails here, naming the valid DP degrees
        resolve_schedule(config, plan)
        check_attention_memory(config, on_cuda=torch.cuda.is_available())
        apply_float8(config)
        if config.model.resolved_attn_backend() == "varlen":
            logger.info("attention varlen: CUDA graphs off (varlen metadata changes shape every batch)")
        logger.info(describe_batches(config, plan))
        super().__init__(config)
        if self.gradient_accumulation_steps != plan.accumulation:  # e.g. a fake-backend dry run's NGPU
            raise ValueError(
                f"torchtitan runs {self.gradient_accumulation_steps} accumulation steps, the data plan assumed "
                f"{plan.accumulation} (WORLD_SIZE {world_size}); the data streams would not match the steps"
            )
        log_tensor_parallel_layout(self.model_parts, config.parallelism.tensor_parallel_degree)
        log_float8_layers(self.model_parts, config.model.float8)
        if hasattr(self.dataloader, "mix_metrics"):
            self._log_data_metrics_with_training_metrics()

    def _log_data_metrics_with_training_metrics(self) -> None:
        log = self.metrics_processor.log

        def log_with_data_metrics(step, global_avg_loss, global_max_loss, grad_norm, extra_metrics=None):
            data_metrics = self.dataloader.mix_metrics()
            summary = getattr(self.dataloader, "mix_summary", None)
            if summary is not None:
                logger.info(f"data step {step}: {summary()}")
            log(
                step,
                global_avg_loss,
                global_max_loss,
                grad_norm,
                extra_metrics={**(extra_metrics or {}), **data_metrics},
            )

        self.metrics_processor.log = log_with_data_metrics
