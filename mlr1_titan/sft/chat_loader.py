"""Chat SFT data for torchtitan: weighted chat sources -> packed or padded batches of conversations.

``ChatDataLoader`` is a torchtitan dataloader component (``[dataloader] kind = "chat"``). Each batch
row holds whole conversations, with per-conversation ``positions`` so attention never crosses them:

* ``packing = true``: rows of ``row_tokens`` tokens filled by ``BestFitPacker``; the trainer sizes
  the rows so that a step holds ``training.global_batch_size`` conversations on average
  (``mlr1_titan.sft.step_plan``);
* ``packing = false``: one conversation per row, each micro-batch padded to its longest row
  (rounded up to ``pad_multiple``), never to ``seq_len`` -- the paper's TRL run.

Labels are the next token where that token is trained, else -100: assistant turns only
(``loss_on = "assistant"``, ``chat_format.render_ids``) or every token of the conversation
(``loss_on = "all"``); shifting happens inside each conversation, so no label ever points into the
next one, and padding is never a target. torchtitan's trainer divides the summed token loss by the
number of labelled tokens in the whole global batch (all ranks, all gradient-accumulation
micro-batches), so every trained token weighs the same.

Sources mix by token weight with the pre-training sampler (``DeficitSampler``) and are read with the
pre-training readers (epochs, data-parallel striding, resume by skip count). The full state --
per-source (epoch, cursor), sampler counters, the conversations waiting in the packer, skip
counts -- is saved in torchtitan checkpoints, so resuming replays the same batches.
"""

from __future__ import annotations

import gzip
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
from .packing import BestFitPacker, SourceExhausted, round_up
from .plan_record import check_resumed_plan

OVERLENGTH_POLICIES = ("truncate", "drop")
LOSS_SCOPES = ("assistant", "all")


@dataclass
class Sample:
    """One conversation, shifted: inputs[i] predicts labels[i]."""

    source: int
    inputs: list[int]
    labels: list[int]

    @property
    def num_trained(self) -> int:
        return sum(1 for t in self.labels if t != IGNORE_INDEX)


class UnusableRow(Exception):
    """A row that cannot become a training sample; ``reason`` is its skip-count key."""

    def __init__(self, reason: str, detail: str):
        super().__init__(f"{reason}: {detail}")
        self.reason, self.detail = reason, detail


def shift_conversation(ids: list[int], trained: list[bool]) -> tuple[list[int], list[int]]:
    inputs = ids[:-1]
    labels = [t if learn else IGNORE_INDEX for t, learn in zip(ids[1:], trained[1:])]
    return inputs, labels


class OnePassDone(Exception):
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
        finite dataset (``OnePassDone``).

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
                    raise OnePassDone(self.spec.name) from None
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
        row_tokens: int | None = None,
        lookahead: int = 64,
        row_quota: float | None = None,
        overlength: str = "truncate",
        loss_on: str = "assistant",
        seed: int = 0,
        dp_rank: int = 0,
        dp_world_size: int = 1,
        hub_mirror: str | None = None,
        infinite: bool = True,
    ):
        """``seq_len``: the longest conversation (longer ones are truncated or dropped); ``row_tokens``:
        the length of a packed row (default ``seq_len``; may be longer, positions restart per
        conversation). ``infinite = False``: one pass, ending when any source would start its second
        epoch (torchtitan's validator asks for this); the last rows are the partial ones."""
        if overlength not in OVERLENGTH_POLICIES:
            raise ValueError(f"overlength must be one of {OVERLENGTH_POLICIES}, got {overlength!r}")
        if loss_on not in LOSS_SCOPES:
            raise ValueError(f"loss_on must be one of {LOSS_SCOPES}, got {loss_on!r}")
        row_tokens = seq_len if row_tokens is None else row_tokens
        if row_tokens < seq_len:
            raise ValueError(
                f"row_tokens {row_tokens} is shorter than seq_len {seq_len}: a conversation must fit a row"
            )
        self.mix, self.tokenizer, self.seq_len = mix, tokenizer, seq_len
        self.packing, self.overlength, self.loss_on = packing, overlength, loss_on
        self.row_tokens = row_tokens
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
        self.packer: BestFitPacker[Sample] = BestFitPacker(row_tokens, lookahead, row_quota)
        self.rows = 0
        self.row_positions = 0  # tokens of all rows yielded (packed: rows x row_tokens)
        self.real_tokens = 0  # of which conversation tokens
        self.pulled_tokens = 0  # tokens of every conversation taken from the mix (placed or still waiting)
        self.exhausted = False
        self.plan: dict[str, Any] | None = None  # the run's derived plan (set by the trainer), kept in checkpoints

    # -- conversations ------------------------------------------------------------------------

    def _skip(self, source: int, reason: str, where: str, detail: str) -> None:
        key = f"{self.names[source]}/{reason}"
        self.skips[key] += 1
        if self.skips[key] == 1 or self.skips[key] % 1000 == 0:
            logger.warning(f"SFT data: skipped {self.skips[key]} row(s) of {key} (latest: {where}: {detail})")

    def sample_from_row(self, source: int, row: Any) -> Sample:
        """One raw row of ``source`` -> a training sample (raises UnusableRow with the skip reason)."""
        reader = self.readers[source]
        try:
            messages = row_to_messages(row, reader.mapping, self.names[source])
            rendered = render_ids(messages, self.tokenizer)
        except ChatFormatError as err:
            raise UnusableRow(err.reason, str(err)) from None
        trained = rendered.trained if self.loss_on == "assistant" else [True] * len(rendered.ids)
        inputs, labels = shift_conversation(rendered.ids, trained)
        if len(inputs) > self.seq_len:
            if self.overlength == "drop":
                raise UnusableRow("too_long", f"{len(inputs)} tokens > seq_len {self.seq_len}")
            inputs, labels = inputs[: self.seq_len], labels[: self.seq_len]
            if all(t == IGNORE_INDEX for t in labels):
                raise UnusableRow("prompt_too_long", f"no assistant token within seq_len {self.seq_len}")
            self.skips[f"{self.names[source]}/truncated"] += 1
        return Sample(source, inputs, labels)

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
                sample = self.sample_from_row(i, row)
            except UnusableRow as err:
                self._skip(i, err.reason, where, err.detail)
                continue
            reader.mark_used()
            self.sampler.add(i, len(sample.inputs) if self.mix.unit == "tokens" else 1)
            self.conversations[i] += 1
            self.trained_tokens[i] += sample.num_trained
            self.pulled_tokens += len(sample.inputs)
            return sample

    # -- rows -----------------------------------------------------------------------------------

    def _pull(self) -> Sample:
        try:
            return self.next_sample()
        except OnePassDone:
            raise SourceExhausted from None

    def next_row(self) -> tuple[list[int], list[int], list[int]]:
        """The next row's (inputs, labels, positions): packed and padded to ``row_tokens``, or one
        conversation unpadded (``packing = false``; the collate function pads the micro-batch)."""
        try:
            samples = self.packer.next_row(self._pull) if self.packing else [self._pull()]
        except SourceExhausted:
            self.exhausted = True
            raise OnePassDone("all sources") from None
        inputs: list[int] = []
        labels: list[int] = []
        positions: list[int] = []
        for sample in samples:
            inputs += sample.inputs
            labels += sample.labels
            positions += range(len(sample.inputs))
        self.rows += 1
        self.real_tokens += len(inputs)
        if self.packing:
            pad = self.row_tokens - len(inputs)
            inputs += [self.pad_id] * pad
            labels += [IGNORE_INDEX] * pad
            positions += padding_positions(pad)
        self.row_positions += len(inputs)
        return inputs, labels, positions

    def __iter__(self):
        while not self.exhausted:
            try:
                inputs, labels, positions = self.next_row()
            except OnePassDone:
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
            "waiting": [{"source": w.source, "inputs": w.inputs, "labels": w.labels} for w in self.packer.waiting],
            "skips": dict(self.skips),
            "conversations": list(self.conversations),
            "trained_tokens": list(self.trained_tokens),
            "rows": [self.rows, self.row_positions, self.real_tokens, self.pulled_tokens],
            "packer": [self.packer.rows, self.packer.taken, self.packer.row_quota],
            "plan": self.plan,
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
        waiting = state.get("waiting") or ([state["pending"]] if state.get("pending") else [])  # older checkpoints
        self.packer.waiting = [Sample(w["source"], w["inputs"], w["labels"]) for w in waiting]
        self.skips = Counter(state.get("skips", {}))
        self.conversations = list(state.get("conversations", self.conversations))
        self.trained_tokens = list(state.get("trained_tokens", self.trained_tokens))
        self.rows, self.row_positions, self.real_tokens, self.pulled_tokens = state.get("rows", [0, 0, 0, 0])
        rows, taken, quota = state.get("packer", [0, 0, None])
        if quota == self.packer.row_quota:  # another quota (another plan): its running count starts afresh
            self.packer.rows, self.packer.taken = rows, taken
        check_resumed_plan(state.get("plan"), self.plan)

    def metrics(self) -> dict[str, float]:
        total = sum(self.sampler.consumed) or 1
        out: dict[str, float] = {}
        for i, name in enumerate(self.names):
            out[f"sft_data/{name}/fraction"] = self.sampler.consumed[i] / total  # of tokens or samples (mix unit)
            out[f"sft_data/{name}/conversations"] = self.conversations[i]
            out[f"sft_data/{name}/epoch"] = self.readers[i].epoch
        for key, count in self.skips.items():
            out[f"sft_data/skipped/{key}"] = count
        if self.rows:
            # Conversation tokens per row / mean conversation length: counting placed conversations instead
            # would be biased early on (best fit places long ones first; short ones wait).
            per_row = self.real_tokens / self.rows / (self.pulled_tokens / sum(self.conversations))
            out["sft_data/conversations_per_row"] = per_row
            if self.packing and self.plan:  # this rank's rows so far x rows per step: what a step gets
                out["sft_data/conversations_per_step"] = per_row * self.plan["global_batch_size"]
        if self.packing and self.row_positions:
            out["sft_data/real_token_fraction"] = self.real_tokens / self.row_positions
        return out


def padding_positions(pad: int) -> list[int]:
    """Positions of ``pad`` padding tokens: all 0, so each is a one-token document -- attending to
    nothing but itself (no attention cost in any backend) and within any RoPE range."""
    return [0] * pad


class PadToLongest:
    """Collate for ``packing = false``: pad the micro-batch's rows to its longest, rounded up to ``multiple``."""

    def __init__(self, pad_id: int, multiple: int):
        self.pad_id, self.multiple = pad_id, multiple

    def __call__(self, rows):
        width = round_up(max(len(labels) for _, labels in rows), self.multiple)
        inputs, positions, labels = [], [], []
        for row, row_labels in rows:
            pad = width - len(row_labels)
            tail = torch.tensor(padding_positions(pad), dtype=torch.long)
            inputs.append(torch.cat([row["input"], torch.full((pad,), self.pad_id, dtype=torch.long)]))
            positions.append(torch.cat([row["positions"], tail]))
            labels.append(torch.cat([row_labels, torch.full((pad,), IGNORE_INDEX, dtype=torch.long)]))
        return {"input": torch.stack(inputs), "positions": torch.stack(positions)}, torch.stack(labels)


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
        """Pack conversations into rows sized so a step holds global_batch_size of them on average; False: one per row."""
        row_tokens: Annotated[int | None, tyro.conf.Suppress] = None
        """Derived at start-up when packing: tokens per packed row (None: seq_len)."""
        row_quota: Annotated[float | None, tyro.conf.Suppress] = None
        """Derived at start-up when packing: conversations per row on average (None: as many as fit)."""
        lookahead: int = 64
        """Packing: conversations waiting to fill the end of a row (best fit; rows start with the oldest)."""
        pad_multiple: int = 64
        """packing = false: pad each micro-batch to its longest conversation rounded up to this multiple."""
        measure_samples: int = 10_000
        """Conversations measured at start-up for the packed row size and the derived step count."""
        loss_on: Literal["assistant", "all"] = "assistant"
        """Tokens the loss covers: 'assistant' turns (ours) or 'all' but padding (the released TRL scripts)."""
        check_rows: int = 200
        """Rows of every source read before training; too many unusable ones stop the run (0: no check)."""
        max_unusable: float = 0.1
        """Largest fraction of a source's checked rows that may be unusable (skipped) before the run stops."""
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
            for name in ("lookahead", "pad_multiple", "measure_samples"):
                if getattr(self, name) < 1:
                    raise ValueError(f"dataloader.chat.{name} must be >= 1, got {getattr(self, name)}")
            if self.check_rows < 0:
                raise ValueError(f"dataloader.chat.check_rows must be >= 0 (0: no check), got {self.check_rows}")
            if not 0.0 <= self.max_unusable <= 1.0:
                raise ValueError(f"dataloader.chat.max_unusable must be in [0, 1], got {self.max_unusable}")

        def build_dataset(
            self, tokenizer, *, seq_len: int, dp_rank: int = 0, dp_world_size: int = 1, infinite: bool | None = None
        ) -> ChatDataset:
            """The conversations these settings give (data-parallel rank ``dp_rank``; ``infinite``
            defaults to the setting): the loader's, and the start-up check's and measurement's probes."""
            return ChatDataset(
                load_chat_mix(self.mix),
                tokenizer,
                seq_len=seq_len,
                packing=self.packing,
                row_tokens=self.row_tokens,
                lookahead=self.lookahead,
                row_quota=self.row_quota,
                overlength=self.overlength,
                loss_on=self.loss_on,
                seed=self.seed,
                dp_rank=dp_rank,
                dp_world_size=dp_world_size,
                hub_mirror=self.hub_mirror,
                infinite=self.infinite if infinite is None else infinite,
            )

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
        self.dataset = config.build_dataset(tokenizer, seq_len=seq_len, dp_rank=dp_rank, dp_world_size=dp_world_size)
        collate = {} if config.packing else {"collate_fn": PadToLongest(self.dataset.pad_id, config.pad_multiple)}
        super().__init__(
            self.dataset,
            dp_rank=dp_rank,
            dp_world_size=dp_world_size,
            batch_size=local_batch_size,
            num_workers=0,
            snapshot_every_n_steps=snapshot_every_n_steps,
            **collate,
        )

    def mix_metrics(self) -> dict[str, float]:
        return self.dataset.metrics()


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
