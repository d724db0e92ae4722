"""Chat SFT data for torchtitan: weighted chat sources -> packed, assistant-only-loss batches.

``ChatDataLoader`` is a torchtitan dataloader component (``[dataloader] kind = "chat"``). Each batch
row holds one or more whole conversations (packing) or exactly one (``packing = false``), with
per-conversation ``positions`` so attention never crosses conversations. Labels are the next token
where that token is an assistant token (``chat_format.render_ids``), else -100; shifting happens
inside each conversation, so no label ever points into the next one. torchtitan's trainer divides
the summed token loss by the number of labelled tokens in the whole global batch (all ranks, all
gradient-accumulation micro-batches), so every trained token weighs the same.

Sources mix by token weight with the pre-training sampler (``DeficitSampler``) and are read with the
pre-training readers (epochs, data-parallel striding, resume by skip count). The full state --
per-source (epoch, cursor), sampler counters, a conversation carried over to the next row, skip
counts -- is saved in torchtitan checkpoints, so resuming replays the same batches.
"""

from __future__ import annotations

import gzip
import math
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Annotated, Any, Literal

import torch
import tyro
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import IterableDataset
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.loss import IGNORE_INDEX
from torchtitan.tools.logging import logger

from mlr1_titan.data.mixture_sampler import DeficitSampler
from mlr1_titan.data.sources import DataSourceError, plan_text_source, resolve_hub_path, resolve_local_files

from .chat_format import ChatFormatError, render_ids
from .chat_sources import ChatMix, load_chat_mix, row_to_messages

OVERLENGTH_POLICIES = ("truncate", "drop")


@dataclass
class Sample:
    """One conversation, shifted: inputs[i] predicts labels[i]."""

    source: int
    inputs: list[int]
    labels: list[int]

    @property
    def num_trained(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


def shift_conversation(ids: list[int], trained: list[bool]) -> tuple[list[int], list[int]]:
    inputs = ids[:-1]
    labels = [t if learn else IGNORE_INDEX for t, learn in zip(ids[1:], trained[1:])]
    return inputs, labels


class _OnePassDone(Exception):
    """A finite (single-pass) dataset reached the end of a source's first epoch."""


class _ChatReader:
    """One source's rows -> conversations, with (epoch, cursor) position and skip accounting."""

    def __init__(
        self,
        mix: ChatMix,
        index: int,
        tokenizer,
        *,
        seed: int,
        rank: int,
        world: int,
        hub_mirror: str | None,
        infinite: bool = True,
    ):
        self.spec = mix.mix.active_sources()[index]
        self.mapping = mix.mappings[self.spec.name]
        self.plan = plan_text_source(self.spec, hub_mirror)
        self.tokenizer = tokenizer
        self.seed, self.rank, self.world = seed, rank, world
        self.epoch, self.cursor = 0, 0
        self.infinite = infinite
        self._rows: Iterator | None = None
        self._whole_epoch, self._used_this_epoch = True, False

    def state(self) -> dict[str, int]:
        return {"epoch": self.epoch, "cursor": self.cursor}

    def load_state(self, state: dict[str, int]) -> None:
        self.epoch, self.cursor = int(state["epoch"]), int(state["cursor"])
        self._rows = None

    def next_row(self) -> tuple[Any, str]:
        """The next raw row; starts a new epoch (new order) when the source runs out, or ends a
        finite dataset (``_OnePassDone``).

        An epoch read from its start that produced no usable conversation (``mark_used`` never
        called) means the source cannot feed training: that is an error naming it, never a silent drop.
        """
        while True:
            if self._rows is None:
                self._whole_epoch = self.cursor == 0
                self._used_this_epoch = False
                self._rows = self.plan.records(
                    epoch=self.epoch,
                    seed=self.seed,
                    rank=self.rank,
                    world=self.world,
                    skip=self.cursor,
                    block=4096,
                    shuffle_buffer=10_000,
                )
            try:
                row = next(self._rows)
                self.cursor += 1
                return row
            except StopIteration:
                if self._whole_epoch and not self._used_this_epoch:
                    raise DataSourceError(
                        f"source '{self.spec.name}' ({self.spec.mix_file}) yielded no usable conversation "
                        f"in a whole epoch for data reader {self.rank} of {self.world} "
                        f"({self.cursor} rows read; see the skip counts logged above)"
                    ) from None
                if not self.infinite:
                    raise _OnePassDone(self.spec.name) from None
                self.epoch, self.cursor, self._rows = self.epoch + 1, 0, None

    def mark_used(self) -> None:
        self._used_this_epoch = True


class ChatDataset(IterableDataset, Stateful):
    def __init__(
        self,
        mix: ChatMix,
        tokenizer,
        *,
        seq_len: int,
        packing: bool = True,
        overlength: str = "truncate",
        seed: int = 0,
        dp_rank: int = 0,
        dp_world_size: int = 1,
        hub_mirror: str | None = None,
        infinite: bool = True,
    ):
        """``infinite = False``: one pass, ending when any source would start its second epoch
        (torchtitan's validator asks for this); the last row is the partial one, padded."""
        if overlength not in OVERLENGTH_POLICIES:
            raise ValueError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {overlength!r}")
        self.mix, self.tokenizer, self.seq_len = mix, tokenizer, seq_len
        self.packing, self.overlength = packing, overlength
        sources = mix.mix.active_sources()
        self.names = [s.name for s in sources]
        self.readers = [
            _ChatReader(
                mix,
                i,
                tokenizer,
                seed=seed,
                rank=dp_rank,
                world=dp_world_size,
                hub_mirror=hub_mirror,
                infinite=infinite,
            )
            for i in range(len(sources))
        ]
        self.sampler = DeficitSampler(self.names, [s.weight for s in sources])
        self.pad_id = getattr(tokenizer, "pad_id", None) or tokenizer.eos_id
        self.skips: Counter[str] = Counter()  # "source/reason" -> count
        self.conversations = [0] * len(sources)
        self.trained_tokens = [0] * len(sources)
        self.pending: Sample | None = None
        self.exhausted = False

    # -- conversations ------------------------------------------------------------------------

    def _skip(self, source: int, reason: str, where: str, detail: str) -> None:
        key = f"{self.names[source]}/{reason}"
        self.skips[key] += 1
        if self.skips[key] == 1 or self.skips[key] % 1000 == 0:
            logger.warning(f"SFT data: skipped {self.skips[key]} row(s) of {key} (latest: {where}: {detail})")

    def next_sample(self) -> Sample:
        """The next trainable conversation of the mix, truncated or dropped if over-length.

        The sampler picks a source; rows of that source that cannot be used are skipped (counted per
        reason, logged) until one can, so skips never shift the mix towards other sources.
        """
        i = self.sampler.pick()
        reader = self.readers[i]
        while True:
            row, where = reader.next_row()
            try:
                messages = row_to_messages(row, reader.mapping, self.names[i])
                rendered = render_ids(messages, self.tokenizer)
            except ChatFormatError as err:
                self._skip(i, err.reason, where, str(err))
                continue
            inputs, labels = shift_conversation(rendered.ids, rendered.trained)
            if len(inputs) > self.seq_len:
                if self.overlength == "drop":
                    self._skip(i, "too_long", where, f"{len(inputs)} tokens > seq_len {self.seq_len}")
                    continue
                inputs, labels = inputs[: self.seq_len], labels[: self.seq_len]
                if all(t == IGNORE_INDEX for t in labels):
                    self._skip(i, "prompt_too_long", where, f"no assistant token within seq_len {self.seq_len}")
                    continue
                self.skips[f"{self.names[i]}/truncated"] += 1
            reader.mark_used()
            sample = Sample(i, inputs, labels)
            self.sampler.add(i, len(inputs) if self.mix.unit == "tokens" else 1)
            self.conversations[i] += 1
            self.trained_tokens[i] += sample.num_trained
            return sample

    # -- rows -----------------------------------------------------------------------------------

    def next_row(self) -> tuple[list[int], list[int], list[int]]:
        inputs: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        while True:
            try:
                sample = self.pending or self.next_sample()
            except _OnePassDone:
                self.exhausted = True
                if not inputs:
                    raise
                break
            self.pending = None
            if inputs and len(inputs) + len(sample.inputs) > self.seq_len:
                self.pending = sample  # starts the next row
                break
            inputs += sample.inputs
            labels += sample.labels
            positions += range(len(sample.inputs))
            if not self.packing:
                break
        pad = self.seq_len - len(inputs)
        # Padding is its own "document" (positions restart at 0) and is never a target.
        return inputs + [self.pad_id] * pad, labels + [IGNORE_INDEX] * pad, positions + list(range(pad))

    def __iter__(self):
        while not self.exhausted:
            try:
                inputs, labels, positions = self.next_row()
            except _OnePassDone:
                return
            yield (
                {
                    "input": torch.tensor(inputs, dtype=torch.long),
                    "positions": torch.tensor(positions, dtype=torch.long),
                },
                torch.tensor(labels, dtype=torch.long),
            )

    # -- state ----------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        return {
            "mix": self.mix.name,
            "readers": {n: r.state() for n, r in zip(self.names, self.readers)},
            "sampler": self.sampler.state(),
            "pending": None
            if self.pending is None
            else {"source": self.pending.source, "inputs": self.pending.inputs, "labels": self.pending.labels},
            "skips": dict(self.skips),
            "conversations": list(self.conversations),
            "trained_tokens": list(self.trained_tokens),
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        unknown = set(state["readers"]) - set(self.names)
        if unknown:
            raise ValueError(
                f"checkpoint's SFT data state has sources {sorted(unknown)} that mix '{self.mix.name}' does not have"
            )
        for name, reader in zip(self.names, self.readers):
            if name in state["readers"]:
                reader.load_state(state["readers"][name])
        self.sampler.load_state(state["sampler"])
        pending = state.get("pending")
        self.pending = None if pending is None else Sample(pending["source"], pending["inputs"], pending["labels"])
        self.skips = Counter(state.get("skips", {}))
        self.conversations = list(state.get("conversations", self.conversations))
        self.trained_tokens = list(state.get("trained_tokens", self.trained_tokens))

    def metrics(self) -> dict[str, float]:
        total = sum(self.sampler.consumed) or 1
        out: dict[str, float] = {}
        for i, name in enumerate(self.names):
            out[f"sft_data/{name}/fraction"] = self.sampler.consumed[i] / total  # of tokens or samples (mix unit)
            out[f"sft_data/{name}/conversations"] = self.conversations[i]
            out[f"sft_data/{name}/epoch"] = self.readers[i].epoch
        for key, count in self.skips.items():
            out[f"sft_data/skipped/{key}"] = count
        return out


class ChatDataLoader(ParallelAwareDataloader):
    """torchtitan dataloader for chat SFT (``[dataloader] kind = "chat"`` in a model-config TOML)."""

    @dataclass(kw_only=True, slots=True)
    class Config(ParallelAwareDataloader.Config):
        dataset: Annotated[str, tyro.conf.Suppress] = ""
        """Unused (torchtitan's HF text loaders)."""
        dataset_path: Annotated[str | None, tyro.conf.Suppress] = None
        """Unused (torchtitan's HF text loaders)."""
        num_workers: Annotated[int, tyro.conf.Suppress] = 0
        """Unused: the loader's state lives in the trainer process (the work is tokenizing, not I/O)."""
        persistent_workers: Annotated[bool, tyro.conf.Suppress] = False
        """Unused (no worker processes)."""
        pin_memory: Annotated[bool, tyro.conf.Suppress] = False
        """Unused (no worker processes)."""
        prefetch_factor: Annotated[int | None, tyro.conf.Suppress] = None
        """Unused (no worker processes)."""
        mix: str = "sft_general"
        """Chat mix: a name in data_mix/ (file stem) or a path to a chat-mix TOML."""
        packing: bool = True
        """Pack several conversations per row (per-conversation positions); False pads one per row."""
        overlength: Literal["truncate", "drop"] = "truncate"
        """Conversation longer than seq_len: 'truncate' (keep the prompt, cut the answer) or 'drop'."""
        epochs: float | None = None
        """Passes over the mix; when set and training.steps <= 0 the trainer derives the step count."""
        seed: int = 0
        """Order of rows within each epoch (per source)."""
        hub_mirror: str | None = None
        """Folder with local snapshots '<hub_mirror>/<dataset id>' used instead of the hub."""
        infinite: bool = True
        """False: one pass over the mix, ending when any source would start a second epoch (validation)."""

        def __post_init__(self) -> None:
            if self.overlength not in OVERLENGTH_POLICIES:
                raise ValueError(
                    f"dataloader.chat.overlength must be one of {OVERLENGTH_POLICIES}, got {self.overlength!r}"
                )
            if self.epochs is not None and self.epochs <= 0:
                raise ValueError(f"dataloader.chat.epochs must be > 0, got {self.epochs}")

    def __init__(
        self,
        config: Config,
        *,
        dp_world_size: int,
        dp_rank: int,
        tokenizer,
        seq_len: int,
        local_batch_size: int,
        snapshot_every_n_steps: int | None = 1,
        **kwargs,
    ):
        self.dataset = ChatDataset(
            load_chat_mix(config.mix),
            tokenizer,
            seq_len=seq_len,
            packing=config.packing,
            overlength=config.overlength,
            seed=config.seed,
            dp_rank=dp_rank,
            dp_world_size=dp_world_size,
            hub_mirror=config.hub_mirror,
            infinite=config.infinite,
        )
        super().__init__(
            self.dataset,
            dp_rank=dp_rank,
            dp_world_size=dp_world_size,
            batch_size=local_batch_size,
            num_workers=0,
            snapshot_every_n_steps=snapshot_every_n_steps,
        )

    def mix_metrics(self) -> dict[str, float]:
        return self.dataset.metrics()


# -- epoch-based schedules ----------------------------------------------------------------------


def derive_steps(
    config: ChatDataLoader.Config, tokenizer, *, seq_len: int, global_batch_size: int, sample_size: int = 2000
) -> tuple[int, str]:
    """Optimizer steps for ``config.epochs`` passes over the mix, and a report of how they were found.

    Rows per source come from the data (line / row counts, or the hub's split metadata); the mean
    conversation length and the packing efficiency are measured on the first ``sample_size``
    conversations exactly as the loader builds them (exact when the mix is that small).
    """
    mix = load_chat_mix(config.mix)
    rows = {s.name: count_rows(s, config.hub_mirror) for s in mix.mix.active_sources()}
    probe = ChatDataset(
        mix,
        tokenizer,
        seq_len=seq_len,
        packing=config.packing,
        overlength=config.overlength,
        seed=config.seed,
        hub_mirror=config.hub_mirror,
    )
    total_rows = sum(rows.values())
    n = min(sample_size, total_rows)
    samples = [probe.next_sample() for _ in range(n)]
    kept = n / max(1, n + sum(v for k, v in probe.skips.items() if not k.endswith("/truncated")))
    conversations = total_rows * kept * config.epochs
    if config.packing:
        filled, rows_used = 0, 1
        for s in samples:
            if filled + len(s.inputs) > seq_len:
                rows_used, filled = rows_used + 1, 0
            filled += len(s.inputs)
        per_row = n / rows_used
    else:
        per_row = 1.0
    steps = max(1, math.ceil(conversations / per_row / global_batch_size))
    report = (
        f"SFT schedule for mix '{mix.name}': {total_rows:,} rows ({', '.join(f'{k} {v:,}' for k, v in rows.items())}), "
        f"{kept:.1%} usable, x {config.epochs:g} epochs = {conversations:,.0f} conversations; "
        f"{per_row:.2f} conversations per {seq_len}-token row ({'packed' if config.packing else 'padded'}, "
        f"measured on {n:,}); global batch {global_batch_size} rows -> {steps:,} steps"
    )
    return steps, report


def count_rows(spec, hub_mirror: str | None = None) -> int:
    """Rows of a chat source: jsonl lines / parquet metadata locally, split metadata on the hub."""
    if spec.kind == "local":
        total = 0
        for path in resolve_local_files(spec):
            if path.endswith(".parquet"):
                import pyarrow.parquet as pq  # deferred: only parquet sources need pyarrow

                total += pq.ParquetFile(path).metadata.num_rows
            else:
                opener = gzip.open if path.endswith(".gz") else open
                with opener(path, "rb") as f:
                    total += sum(1 for line in f if line.strip())
        return total
    from datasets import load_dataset_builder  # deferred: importing datasets takes seconds

    path = resolve_hub_path(spec, hub_mirror)  # a local snapshot when one is configured
    kwargs = {
        "revision": spec.revision,
        "data_dir": spec.data_dir,
        "data_files": list(spec.data_files) if spec.data_files else None,
    }
    builder = load_dataset_builder(path, spec.config, **{k: v for k, v in kwargs.items() if v is not None})
    split = (builder.info.splits or {}).get(spec.split)
    if split is None or not split.num_examples:
        raise DataSourceError(
            f"source '{spec.name}' ({spec.mix_file}): '{path}' does not report the size of split "
            f"'{spec.split}'; set training.steps explicitly instead of dataloader.chat.epochs"
        )
    return int(split.num_examples)
