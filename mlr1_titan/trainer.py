"""``MLR1Trainer``: torchtitan's Trainer, and its ``Config``: the one schema of every MobileLLM-R1 run.

Every setting is a field of this nested dataclass tree: a TOML key ``[a] b = ...`` and the command-line
flag ``--a.b ...`` set the same field (``mlr1_titan.config`` reads TOMLs onto it, tyro parses the
command line onto it) and ``--help`` documents each with its docstring. torchtitan's own sections
and fields are unchanged; the sections below replace torchtitan's where MobileLLM-R1 adds settings.

Derived, never set by hand: ``model_spec`` is rebuilt from ``[model]`` whenever the config is
constructed (a ``model_spec`` assigned in Python does not survive ``config.build()``; change
``config.model`` instead), the loss's vocabulary and the HF export's context (from the model), and
the distillation loss (from ``[distill]``). At
start-up the trainer also checks the chat sources, sizes packed chat rows and derives
``training.steps`` from ``[dataloader.chat] epochs`` when steps <= 0 (``mlr1_titan.schedule``; every
rank must derive the same plan, and the plan travels in the loader's checkpoint state), derives
``lr_scheduler.warmup_steps`` from ``warmup_ratio``, and installs the CPU device layer on hosts
without an accelerator.

With ``[distill] teacher`` set, the trainer also checks the teacher's folder and tokenizer before
building anything, builds the frozen teacher on the student's mesh (``mlr1_titan.distill``), runs
it before each student forward, hands its hidden states to the chunked loss, records its path and
fingerprint in checkpoints, and logs ``distill/*`` metrics.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import spmd_types as spmd
import torch
from torchtitan.components.loss import ChunkedLossWrapper
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
from mlr1_titan.distill.settings import DistillSettings
from mlr1_titan.distill.teacher import Teacher
from mlr1_titan.distill.teacher_folder import TeacherFolder, check_fits_the_run, check_same_tokenizer
from mlr1_titan.hf.checkpoint import MLR1CheckpointManager
from mlr1_titan.model.settings import ModelSettings
from mlr1_titan.schedule import describe_batches, plan_values, resolve_schedule
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
        distill: DistillSettings = field(default_factory=DistillSettings)
        """Logit distillation from a frozen teacher (mid-training); off while teacher is empty."""

        def __post_init__(self) -> None:
            check_tensor_parallel_degree(self.model, self.parallelism.tensor_parallel_degree)
            if self.model.resolved_attn_backend() == "varlen":
                # Varlen metadata changes shape every batch, which a captured CUDA graph cannot follow.
                self.training.disable_cuda_graphs = True
            if self.dataloader.kind == "chat":
                self._check_chat_batching()
            self.model_spec = self.model.build_spec()
            self.loss.vocab_size = self.model_spec.model.vocab_size
            self._configure_distillation()
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

        def _check_chat_batching(self) -> None:
            chat, t = self.dataloader.chat, self.training
            if not chat.packing:
                # Micro-batches padded to their longest conversation change shape every batch.
                t.disable_cuda_graphs = True
                return
            if self.parallelism.pipeline_parallel_degree > 1:
                raise ValueError(
                    "dataloader.chat.packing with pipeline parallelism: packed rows are one per micro-batch; "
                    "use --dataloader.chat.no-packing or parallelism.pipeline_parallel_degree = 1"
                )
            if t.global_batch_size <= 0 and chat.row_tokens is None:
                raise ValueError(
                    f"training.global_batch_size is {t.global_batch_size}: packed chat SFT needs the conversations "
                    "per step (paper Table 2: 512 general SFT, 1,024 reasoning SFT)"
                )

        def _configure_distillation(self) -> None:
            self.loss.distillation = None
            if not self.distill.enabled:
                return
            p = self.parallelism
            if p.pipeline_parallel_degree > 1:
                raise ValueError(
                    f"distillation with pipeline_parallel_degree {p.pipeline_parallel_degree}: the teacher runs "
                    "whole on each rank's micro-batch; shard it with FSDP (and TP) instead, PP = 1"
                )
            if p.spmd_backend == "full_dtensor" or (p.tensor_parallel_degree > 1 and p.spmd_backend != "spmd_types"):
                raise ValueError(
                    f"distillation with spmd_backend {p.spmd_backend!r} and tensor_parallel_degree "
                    f"{p.tensor_parallel_degree}: the KL takes local logits; use parallelism.spmd_backend = "
                    "'spmd_types' (the default; vocab-parallel under TP)"
                )
            self.loss.distillation = self.distill.loss_config(self.loss.vocab_size)
            # The teacher forward and the metrics it feeds are not captured in a CUDA graph.
            self.training.disable_cuda_graphs = True

        def _check_run_length_and_data(self) -> None:
            t, context = self.training, self.model.shape().max_seq_len
            if t.seq_len > context:
                raise ValueError(
                    f"training.seq_len {t.seq_len} exceeds model.max_seq_len {context}, the context this stage "
                    f"records: raise model.max_seq_len (e.g. --model.max_seq_len {t.seq_len}) or shorten seq_len"
                )
            if self.checkpoint.initial_load_path and not self.checkpoint.enable:
                raise ValueError(
                    f"checkpoint.initial_load_path {self.checkpoint.initial_load_path} is set but checkpoint.enable "
                    "is false: torchtitan would ignore it and train from random weights; add --checkpoint.enable"
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
        teacher_folder = _check_teacher(config) if config.distill.enabled else None
        world_size = int(os.environ.get("WORLD_SIZE", "1"))
        plan = resolve_schedule(config, world_size)  # an impossible split fails here, naming the valid DP degrees
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
        if config.dataloader.kind == "chat":
            values = plan_values(config, plan)
            _check_same_on_every_rank(values)
            self.dataloader.dataset.plan = values  # kept in checkpoints; a resume compares (sft/plan_record.py)
        log_tensor_parallel_layout(self.model_parts, config.parallelism.tensor_parallel_degree)
        log_float8_layers(self.model_parts, config.model.float8)
        self.teacher: Teacher | None = None
        if teacher_folder is not None:
            self._build_teacher(teacher_folder)
        if hasattr(self.dataloader, "mix_metrics") or self.teacher is not None:
            self._log_extra_metrics_with_training_metrics()

    def _build_teacher(self, folder: TeacherFolder) -> None:
        config = self.config
        self.teacher = Teacher.build(
            folder,
            trainer_config=config,
            parallel_dims=self.parallel_dims,
            attn_backend=config.model.resolved_attn_backend(),
            device=self.device,
        )
        loss = self.loss_fn.loss_fn if isinstance(self.loss_fn, ChunkedLossWrapper) else self.loss_fn
        loss.set_teacher_lm_head(self.teacher.lm_head)
        self.distill_stats = loss.stats
        if self.checkpointer.enable:  # a disabled checkpointer has no states
            self.checkpointer.states["distill_teacher"] = self.teacher.record
        d = config.distill
        logger.info(
            f"distill: teacher {folder.path} ({folder.shape.describe()}; fingerprint {self.teacher.record.fingerprint}), "
            f"frozen, {config.training.mixed_precision_param}, on the student's FSDP/TP mesh; loss = "
            f"{d.describe_loss()}; CUDA graphs off"
        )

    _trained_to_the_end = False
    """Set when train() returns: only a finished run meets at the close() barrier."""

    def train(self) -> None:
        super().train()
        self._trained_to_the_end = True

    def close(self) -> None:
        """After a finished run, every rank meets at a barrier once its own teardown is done.

        torchtitan's rank 0 sleeps 2 s after the last step while the other ranks go on to destroy
        their process groups; with the barrier no rank closes its gloo/NCCL connections while a peer
        is still inside its last collectives or its teardown, as PyTorch's shutdown rule asks. A run
        that failed skips it (its peers may never arrive)."""
        super().close()
        if self._trained_to_the_end and torch.distributed.is_initialized():
            torch.distributed.barrier()

    def train_step(self, data_iterator):
        if self.teacher is not None:
            self.distill_stats.reset()
            # Logged steps only: time the teacher (two device syncs) and count top-1 agreement (two argmaxes).
            self._time_teacher = self.distill_stats.collect_agreement = self.metrics_processor.should_log(self.step)
        super().train_step(data_iterator)

    def _forward_backward_body(self, inputs, labels, global_valid_tokens, extra_kwargs):
        if self.teacher is None:
            return super()._forward_backward_body(inputs, labels, global_valid_tokens, extra_kwargs)
        with self.train_context():
            positions = extra_kwargs.get("positions")
            masks = extra_kwargs.get("attention_masks")
            if self._time_teacher:
                teacher_hidden, seconds = self.teacher.timed_hidden_states(inputs, positions, masks)
                self.distill_stats.add_teacher_time(inputs.numel(), seconds)
            else:
                teacher_hidden = self.teacher.hidden_states(inputs, positions, masks)
            pred = self.model_parts[0](inputs, **extra_kwargs)
            loss_kwargs = {"teacher_hidden": teacher_hidden}
            if positions is not None:
                loss_kwargs["positions"] = positions
            with self.teacher.loss_scope():
                loss, _ = self.loss_fn(pred, labels, global_valid_tokens, **loss_kwargs)
            del pred, teacher_hidden
            with spmd.no_typecheck():
                loss.backward()
        return loss

    def _log_extra_metrics_with_training_metrics(self) -> None:
        log = self.metrics_processor.log

        def log_with_extra_metrics(step, global_avg_loss, global_max_loss, grad_norm, extra_metrics=None):
            metrics = dict(extra_metrics or {})
            if hasattr(self.dataloader, "mix_metrics"):
                metrics.update(self.dataloader.mix_metrics())
                summary = getattr(self.dataloader, "mix_summary", None)
                if summary is not None:
                    logger.info(f"data step {step}: {summary()}")
            if self.teacher is not None:
                mesh = self.parallel_dims.get_optional_mesh("loss") if self.parallel_dims.dp_cp_enabled else None
                distill = self.distill_stats.reduce(mesh.get_group() if mesh is not None else None)
                metrics.update(distill)
                logger.info(
                    f"distill step {step}: kd_loss {distill['distill/kd_loss']:.4f}  ce {distill['distill/ce']:.4f}  "
                    f"top1 {distill.get('distill/top1_agreement', 0):.3f}  "
                    f"teacher {distill.get('distill/teacher_tokens_per_s', 0):,.0f} tok/s"
                )
            log(step, global_avg_loss, global_max_loss, grad_norm, extra_metrics=metrics)

        self.metrics_processor.log = log_with_extra_metrics


def _check_same_on_every_rank(values: dict) -> None:
    """Every rank derived its SFT plan from the data on its own: different numbers (e.g. a node that
    reads other files) would hang or desynchronise the collectives, so they are an error here."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return
    gathered: list[dict | None] = [None] * dist.get_world_size()
    dist.all_gather_object(gathered, values)
    differ = [k for k in values if any(g[k] != values[k] for g in gathered)]
    if differ:
        raise ValueError(
            "ranks derived different SFT plans from the data (do all nodes read the same files and settings?): "
            + "; ".join(f"{k}: " + ", ".join(f"rank {r} {g[k]}" for r, g in enumerate(gathered)) for k in differ)
        )


def _check_teacher(config: MLR1Trainer.Config) -> TeacherFolder:
    """The teacher's folder, checked for completeness and for the student's tokenizer, before any model exists."""
    if config.loss.distillation is None:  # e.g. distill.teacher assigned in Python after construction
        raise ValueError("distill.teacher is set but the loss is not the distillation loss: set it before build()")
    folder = TeacherFolder.open(config.distill.teacher_folder_path())
    check_fits_the_run(folder, config.training.seq_len, config.parallelism.tensor_parallel_degree)
    student_tokenizer = config.tokenizer.build(tokenizer_path=config.hf_assets_path)
    check_same_tokenizer(folder, student_tokenizer, config.model_spec.model.vocab_size)
    return folder
