"""``MLR1Trainer``: torchtitan's Trainer plus what MobileLLM-R1 runs need on top.

For now that is only the CPU device layer, installed before anything touches a device when the
host has no accelerator. Later stages (mixture metrics, SFT, distillation) extend this class.
"""

from __future__ import annotations

from dataclasses import dataclass

from torchtitan.trainer import Trainer

from .cpu_device import install_cpu_device_layer


class MLR1Trainer(Trainer):
    @dataclass(kw_only=True, slots=True)
    class Config(Trainer.Config):
        pass

    def __init__(self, config: Config):
        install_cpu_device_layer()
        super().__init__(config)
