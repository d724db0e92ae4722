"""``[optimizer]``: AdamW hyper-parameters as plain keys, on top of torchtitan's parameter groups.

torchtitan 0.3 describes optimizers only as ``param_groups`` (regex -> optimizer name + kwargs). The
paper's recipe is one AdamW with weight decay off for norm scales, so the convenience keys below
generate those groups. Precedence, most specific first:

1. a group in ``param_groups`` (torchtitan's field) matches before the generated ones, and its own
   ``optimizer_kwargs`` win key by key over the convenience keys, which fill the rest (for Adam /
   AdamW groups; a group of another optimizer is used exactly as written);
2. ``no_decay_pattern`` parameters: the convenience keys with ``weight_decay = 0``;
3. every other parameter: the convenience keys.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any, Literal

from torchtitan.components.optimizer import OptimizersContainer
from torchtitan.components.optimizer.optimizer import ParamGroupConfig

_ADAM = ("Adam", "AdamW")  # the optimizers the convenience keys (lr, betas, eps, weight_decay) describe


class MLR1Optimizers(OptimizersContainer):
    @dataclass(kw_only=True, slots=True)
    class Config(OptimizersContainer.Config):
        name: Literal["AdamW", "Adam"] = "AdamW"
        """Optimizer of the generated groups (AdamW: decoupled weight decay)."""
        lr: float = 1.0e-3
        """Peak learning rate (the LR schedule scales it)."""
        betas: tuple[float, float] = (0.9, 0.999)
        """Adam (beta1, beta2)."""
        eps: float = 1.0e-8
        """Adam epsilon."""
        weight_decay: float = 0.01
        """Weight decay of every parameter not matched by no_decay_pattern."""
        no_decay_pattern: str | None = None
        """Regex of parameter names trained without weight decay (e.g. norm scales); None: none."""

        def __post_init__(self) -> None:
            if self.lr <= 0:
                raise ValueError(f"optimizer.lr must be > 0, got {self.lr}")
            if not all(0.0 <= b < 1.0 for b in self.betas):
                raise ValueError(f"optimizer.betas must lie in [0, 1), got {list(self.betas)}")
            patterns = [("no_decay_pattern", self.no_decay_pattern)] if self.no_decay_pattern else []
            patterns += [(f"param_groups[{i}].pattern", g.pattern) for i, g in enumerate(self.param_groups)]
            for where, pattern in patterns:
                try:
                    re.compile(pattern)
                except re.error as err:
                    raise ValueError(f"optimizer.{where} {pattern!r} is not a regular expression: {err}") from None
            for i, group in enumerate(self.param_groups):
                for key in ("lr", "eps", "weight_decay"):
                    value = group.optimizer_kwargs.get(key)
                    if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                        raise ValueError(
                            f"optimizer.param_groups[{i}].optimizer_kwargs.{key} must be a number, got {value!r}"
                        )

        def base_kwargs(self) -> dict[str, Any]:
            return {
                "lr": self.lr,
                "betas": tuple(self.betas),
                "eps": self.eps,
                "weight_decay": self.weight_decay,
            }

        def effective_param_groups(self) -> list[ParamGroupConfig]:
            """The groups the optimizer is built with (see the module docstring for precedence)."""
            base = self.base_kwargs()
            groups = [
                ParamGroupConfig(
                    pattern=g.pattern,
                    optimizer_name=g.optimizer_name,
                    optimizer_kwargs={**base, **g.optimizer_kwargs}
                    if g.optimizer_name in _ADAM
                    else dict(g.optimizer_kwargs),
                )
                for g in self.param_groups
            ]
            if self.no_decay_pattern:
                groups.append(
                    ParamGroupConfig(
                        pattern=self.no_decay_pattern,
                        optimizer_name=self.name,
                        optimizer_kwargs={**base, "weight_decay": 0.0},
                    )
                )
            groups.append(ParamGroupConfig(pattern=r".*", optimizer_name=self.name, optimizer_kwargs=base))
            return groups

    def __init__(self, config: Config, **kwargs: Any) -> None:
        resolved = OptimizersContainer.Config(
            param_groups=config.effective_param_groups(),
            implementation=config.implementation,
            optimizer_factory_kwargs_by_name=config.optimizer_factory_kwargs_by_name,
        )
        super().__init__(resolved, **kwargs)
