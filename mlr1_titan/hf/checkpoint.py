"""``MLR1CheckpointManager``: torchtitan's DCP checkpointer, whose HF export is a complete folder.

Two changes to ``torchtitan.components.checkpointer.CheckpointManager``:

* ``checkpoint.last_save_in_hf``: torchtitan writes bare safetensors (no ``config.json``, no tokenizer)
  into ``checkpoint/step-N``, where a later resume takes them for a DCP checkpoint and crashes. Here
  the HF safetensors go to ``checkpoint/<hf_folder>/step-N`` instead (no ``step-N`` name at the
  level torchtitan scans, so resuming picks the last DCP checkpoint), the leftover ``sharded/``
  folder is removed, and rank 0 adds ``config.json``, ``generation_config.json``, ``tokenizer.json``
  and ``tokenizer_config.json`` (with the chat template) as ``mlr1 export-hf`` does.
* Every DCP ``step-N`` folder gets ``mlr1_model.toml``: the model shape and stage (rope_theta,
  context), which the tensors alone do not tell; ``mlr1 export-hf`` reads it. And
  ``mlr1_tokenizer.json``: the run's tokenizer fingerprint, which ``mlr1 mix score`` checks.

``MLR1Trainer.Config.checkpoint`` is this class's config, so every ``--checkpoint.*`` flag and
``[checkpoint]`` table key of torchtitan still applies, plus the ``hf_*`` fields below.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

import torch.distributed as dist
import tyro
from torchtitan.components.checkpointer import CheckpointManager
from torchtitan.tools import filesystem
from torchtitan.tools.logging import logger

from mlr1_titan.tokenizer import Llama3Tokenizer

from .config import describe_flavor
from .export import complete_hf_folder, load_tokenizer, resolve_chat_template
from .shapes import MODEL_TOML_NAME, flavor_from_model_config, model_toml_text
from .tokenizer_record import write_tokenizer_record


def _is_rank0() -> bool:
    return not (dist.is_available() and dist.is_initialized()) or dist.get_rank() == 0


class MLR1CheckpointManager(CheckpointManager):
    @dataclass(kw_only=True, slots=True)
    class Config(CheckpointManager.Config):
        hf_folder: str = "hf"
        """Where ``last_save_in_hf`` writes its HF folder, as ``<hf_folder>/step-N``; relative to
        ``checkpoint.folder`` (or absolute). Kept apart from the DCP ``step-N`` folders so that a
        resume never mistakes it for a DCP checkpoint."""

        hf_chat_template: str | None = None
        """Jinja chat template file for the HF export's tokenizer_config.json; None: the SFT template."""

        hf_max_position_embeddings: Annotated[int | None, tyro.conf.Suppress] = None
        """config.json max_position_embeddings (the stage's context): derived from the model settings
        by the trainer config; None: the RoPE length the model was built with."""

    def __init__(self, config: Config, **kwargs: Any) -> None:
        super().__init__(config, **kwargs)
        if not self.enable:
            return
        folder = config.hf_folder
        self.hf_folder = folder if os.path.isabs(folder) else filesystem.join(self.folder, folder)
        self.hf_chat_template = config.hf_chat_template
        # torchtitan's Trainer registers itself as the "train_state" stateful; its tokenizer is the
        # one the run trains with, so the export carries the same ids.
        trainer = self.states.get("train_state")
        self._tokenizer = getattr(trainer, "tokenizer", None)
        self._flavor = None
        model_config = getattr(self.sd_adapter, "model_config", None)
        try:
            flavor = flavor_from_model_config(model_config) if model_config is not None else None
        except (AttributeError, IndexError, TypeError) as err:  # converters that rebuild the tree
            logger.warning(f"HF interop: cannot read the model shape from the model config ({err!r})")
            flavor = None
        if flavor is not None:
            if config.hf_max_position_embeddings:
                flavor = flavor.replace(max_seq_len=config.hf_max_position_embeddings)
            else:
                logger.warning(
                    "checkpoint.hf_max_position_embeddings is unset: HF exports will record the training "
                    f"seq_len ({flavor.max_seq_len}) as the context length"
                )
            self._flavor = flavor

    # -- every DCP step folder: the model shape --------------------------------------------------

    def _save(self, curr_step: int, last_step: bool = False) -> bool:
        saved = super()._save(curr_step, last_step)
        if saved and not (last_step and self.last_save_in_hf):
            self._write_model_toml(self._create_checkpoint_id(curr_step))
        return saved

    def _write_model_toml(self, checkpoint_id: str) -> None:
        if self._flavor is None or not _is_rank0() or filesystem.is_remote(checkpoint_id):
            return
        try:
            os.makedirs(checkpoint_id, exist_ok=True)
            header = (
                "Model shape of the DCP checkpoint in this folder (written by MLR1CheckpointManager);\n"
                "`mlr1 export-hf` reads it for config.json."
            )
            Path(checkpoint_id, MODEL_TOML_NAME).write_text(model_toml_text(self._flavor, header=header))
            if self._tokenizer is not None:
                try:
                    write_tokenizer_record(checkpoint_id, self._tokenizer)
                except Exception as err:  # a tokenizer without the fingerprint's methods: the save goes on
                    logger.warning(f"could not record the tokenizer in {checkpoint_id}: {err!r}")
        except OSError as err:
            logger.warning(f"HF interop: could not write {MODEL_TOML_NAME} into {checkpoint_id}: {err}")

    # -- last_save_in_hf: own folder, completed ---------------------------------------------------

    def dcp_save(
        self,
        state_dict: dict[str, Any],
        checkpoint_id: str,
        async_mode,
        enable_garbage_collection: bool = False,
        to_hf: bool = False,
    ):
        if not to_hf:
            return super().dcp_save(
                state_dict, checkpoint_id, async_mode, enable_garbage_collection=enable_garbage_collection
            )
        hf_dir = filesystem.join(self.hf_folder, os.path.basename(os.path.normpath(checkpoint_id)))
        if _is_rank0():
            # Files of an earlier export at this step (another shard count) must not survive.
            shutil.rmtree(hf_dir, ignore_errors=True)
        if dist.is_available() and dist.is_initialized():
            dist.barrier()
        result = super().dcp_save(
            state_dict, hf_dir, async_mode, enable_garbage_collection=enable_garbage_collection, to_hf=True
        )
        if dist.is_available() and dist.is_initialized():
            dist.barrier()  # every rank is done consolidating before sharded/ goes
        if _is_rank0():
            self._complete_hf_folder(Path(hf_dir))
        return result

    def _complete_hf_folder(self, hf_dir: Path) -> None:
        shutil.rmtree(hf_dir / "sharded", ignore_errors=True)
        if self._flavor is None:
            logger.warning(f"HF export at {hf_dir}: model shape unknown, config.json and tokenizer not written")
            return
        tokenizer = load_tokenizer(self._tokenizer if isinstance(self._tokenizer, Llama3Tokenizer) else None)
        template, template_source = resolve_chat_template(self.hf_chat_template)
        complete_hf_folder(hf_dir, self._flavor, dtype=self.export_dtype, tokenizer=tokenizer, chat_template=template)
        logger.info(
            f"HF export: {hf_dir} is a complete transformers folder ({describe_flavor(self._flavor)}; "
            f"{str(self.export_dtype).removeprefix('torch.')}; chat template: {template_source})"
        )
