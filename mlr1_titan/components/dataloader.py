"""``[dataloader]``: which data engine feeds the stage (``kind``), each engine's settings beside it.

* ``kind = "mixture"``: documents from a ``data_mix/`` mixture, token-exact and resumable
  (``mlr1_titan.data``, settings in ``[dataloader.mixture]``) -- pre- and mid-training;
* ``kind = "chat"``: conversations for SFT with assistant-only loss (``mlr1_titan.sft``, settings in
  ``[dataloader.chat]``).

``build()`` (called by torchtitan's trainer and validator) returns the chosen engine's loader.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Annotated, Literal

import tyro
from torchtitan.components.dataloader import BaseDataLoader
from torchtitan.config import Configurable

from mlr1_titan.data.loader import MixtureDataLoader
from mlr1_titan.sft.chat_loader import ChatDataLoader

DataKind = Literal["mixture", "chat"]


class MLR1DataLoader(Configurable):
    @dataclass(kw_only=True, slots=True)
    class Config(BaseDataLoader.Config):
        dataset: Annotated[str, tyro.conf.Suppress] = ""
        """Unused (torchtitan's HF text loaders)."""
        dataset_path: Annotated[str | None, tyro.conf.Suppress] = None
        """Unused (torchtitan's HF text loaders)."""
        kind: DataKind = "mixture"
        """mixture: documents from a data mix (pre-/mid-training); chat: conversations (SFT)."""
        mixture: MixtureDataLoader.Config = field(default_factory=MixtureDataLoader.Config)
        """Settings of kind = mixture."""
        chat: ChatDataLoader.Config = field(default_factory=ChatDataLoader.Config)
        """Settings of kind = chat."""
        infinite: Annotated[bool, tyro.conf.Suppress] = True
        """Set to False by torchtitan's validator for a single pass; passed on to the chosen engine."""

        def selected(self) -> MixtureDataLoader.Config | ChatDataLoader.Config:
            """The settings of the engine ``kind`` names."""
            return getattr(self, self.kind)

        def build(self, **kwargs):
            chosen = self.selected()
            if not self.infinite:
                chosen = replace(chosen, infinite=False)
            return chosen.build(**kwargs)
