"""``MLR1Trainer``: torchtitan's Trainer plus what MobileLLM-R1 runs need on top.

* the CPU device layer, installed before anything touches a device when the host has no accelerator;
* epoch-based schedules: when the dataloader has ``epochs`` and ``training.steps <= 0``, the step count
  is derived from the data (size, batch, packing) and printed; ``warmup_ratio`` sets the warmup;
* data metrics: a dataloader with ``mix_metrics()`` (mixture / chat loaders) has them logged with
  the training metrics at every log step (console summary + tensorboard).
"""

from __future__ import annotations

import math
import os
from dataclasses import dataclass

from torchtitan.tools.logging import logger
from torchtitan.trainer import Trainer

from .cpu_device import install_cpu_device_layer


def _data_parallel_degree(config) -> int:
    p = config.parallelism
    world = int(os.environ.get("WORLD_SIZE", "1"))
    non_dp = p.tensor_parallel_degree * p.pipeline_parallel_degree * p.context_parallel_degree
    return max(1, world // non_dp)


def _global_batch_size(config) -> int:
    if config.training.global_batch_size > 0:
        return config.training.global_batch_size
    return config.training.local_batch_size * _data_parallel_degree(config)


def resolve_schedule(config) -> None:
    """Fill ``training.steps`` from epochs and ``lr_scheduler.warmup_steps`` from ``warmup_ratio``;
    tell a phase-scheduled loader how many batches make one optimizer step."""
    if hasattr(config.dataloader, "batches_per_step"):
        # Mix phases switch at optimizer steps; the loader counts batches (grad accumulation).
        accumulation = _global_batch_size(config) // (config.training.local_batch_size * _data_parallel_degree(config))
        config.dataloader.batches_per_step = max(1, accumulation)
    epochs = getattr(config.dataloader, "epochs", None)
    if config.training.steps <= 0:
        if epochs is None:
            raise ValueError(
                f"training.steps is {config.training.steps}: set it, or set dataloader.epochs so that "
                "the step count is derived from the data"
            )
        from .sft.chat_loader import derive_steps

        tokenizer = config.tokenizer.build(tokenizer_path=config.hf_assets_path)
        steps, report = derive_steps(
            config.dataloader, tokenizer, seq_len=config.training.seq_len,
            global_batch_size=_global_batch_size(config),
        )
        logger.info(report)
        config.training.steps = steps
    if config.warmup_ratio is not None:
        config.lr_scheduler.warmup_steps = max(1, math.ceil(config.warmup_ratio * config.training.steps))
        logger.info(
            f"warmup: {config.lr_scheduler.warmup_steps} steps "
            f"(warmup_ratio {config.warmup_ratio} x {config.training.steps} steps)"
        )


class MLR1Trainer(Trainer):
    @dataclass(kw_only=True, slots=True)
    class Config(Trainer.Config):
        warmup_ratio: float | None = None
        """If set, lr_scheduler.warmup_steps = ceil(warmup_ratio * training.steps) (paper Table 2 SFT)."""

    def __init__(self, config: Config):
        install_cpu_device_layer()
        resolve_schedule(config)
        super().__init__(config)
        if hasattr(self.dataloader, "mix_metrics"):
            self._log_data_metrics_with_training_metrics()

    def _log_data_metrics_with_training_metrics(self) -> None:
        log = self.metrics_processor.log

        def log_with_data_metrics(step, global_avg_loss, global_max_loss, grad_norm, extra_metrics=None):
            data_metrics = self.dataloader.mix_metrics()
            summary = getattr(self.dataloader, "mix_summary", None)
            if summary is not None:
                logger.info(f"data step {step}: {summary()}")
            log(step, global_avg_loss, global_max_loss, grad_norm,
                extra_metrics={**(extra_metrics or {}), **data_metrics})

        self.metrics_processor.log = log_with_data_metrics
