"""``[activation_checkpoint]``: the policy as a ``mode`` key, each mode's own settings beside it.

torchtitan 0.3 selects the policy by the type of its config (a tyro subcommand on its command line);
here ``mode = "full"`` in a TOML and ``--activation_checkpoint.mode full`` on the command line say the
same, and the per-mode settings are torchtitan's own configs (``[activation_checkpoint.selective]``
...). ``build()`` returns the chosen torchtitan policy, or None for ``mode = "none"``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from torchtitan.config import Configurable
from torchtitan.distributed.activation_checkpoint import FullAC, MemoryBudgetAC, SelectiveAC

ACMode = Literal["selective", "full", "memory_budget", "none"]


class MLR1ActivationCheckpoint(Configurable):
    @dataclass(kw_only=True, slots=True)
    class Config(Configurable.Config):
        mode: ACMode = "selective"
        """selective (per-op SAC), full (recompute whole blocks), memory_budget (needs compile) or none."""
        selective: SelectiveAC.Config = field(default_factory=SelectiveAC.Config)
        """Settings of mode = selective."""
        full: FullAC.Config = field(default_factory=FullAC.Config)
        """Settings of mode = full."""
        memory_budget: MemoryBudgetAC.Config = field(default_factory=MemoryBudgetAC.Config)
        """Settings of mode = memory_budget."""

        def policy(self) -> SelectiveAC.Config | FullAC.Config | MemoryBudgetAC.Config | None:
            """torchtitan's config of the chosen policy (None: no activation checkpointing)."""
            return None if self.mode == "none" else getattr(self, self.mode)

        def build(self, **kwargs):
            policy = self.policy()
            return None if policy is None else policy.build(**kwargs)
