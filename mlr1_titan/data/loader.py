"""`MixtureDataLoader`: the torchtitan dataloader component for mixture pre-training.

Drop it into `Trainer.Config(dataloader=MixtureDataLoader.Config(mix="pretrain_phase1"))`; torchtitan
builds it with `dp_world_size, dp_rank, tokenizer, seq_len, local_batch_size, snapshot_every_n_steps`.

With gradient accumulation (`batches_per_step` k > 1), a step's global batch is the same data whatever
its split into data-parallel ranks and accumulation micro-batches: the global batch has
`G = DP x k` row blocks of `local_batch_size` rows, block `g` is read by its own stream (reader `g`
of `G`), and rank `r` serves blocks `r*k .. r*k+k-1` in turn (with W dataloader workers, worker `w`
serves every W-th of them; W must divide k). So 8 GPUs with 16 accumulation steps and 64 GPUs with 2
train on the same documents in the same steps, for the same local batch and without pipeline
parallelism. Without accumulation (k = 1) the rank's one stream is split over its workers, as
before; large jobs should read `mlr1 tokenize` shards (every stream opens its own hub streams).
Batches are `({"input": [B, L] int64, "positions": [B, L] int64}, labels [B, L] int64)`.
Call `mix_metrics()` / `mix_summary()` at log steps for the realized mix. The `dataset` and
`dataset_path` fields inherited from torchtitan's `BaseDataLoader.Config` have no use here and are
hidden from the command line and from TOML files.
"""

from __future__ import annotations

import pickle
from dataclasses import dataclass, field
from typing import Annotated, Any

import tyro
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import IterableDataset, get_worker_info
from torchtitan.components.dataloader import ParallelAwareDataloader
from torchtitan.components.tokenizer import BaseTokenizer

from mlr1_titan.data.mix_config import MixError, parse_phases
from mlr1_titan.data.mix_metrics import MIX_PHASE_KEY, MIX_STATS_KEY, MixMeter
from mlr1_titan.data.mixture_dataset import MixtureDataset


class StepBlocks(IterableDataset, Stateful):
    """The k row blocks one rank contributes to every step, each from its own stream, in turn."""

    def __init__(self, streams: list[MixtureDataset]):
        self.streams = streams
        self._next = 0  # the stream that serves the next batch

    def __iter__(self):
        info = get_worker_info()
        # Worker w of W serves streams w, w+W, ...: the loader's round robin over workers then
        # yields the blocks of a step in order (W divides the number of streams).
        mine = self.streams[info.id :: info.num_workers] if info else self.streams
        iterators = [iter(stream) for stream in mine]
        while True:
            try:
                batch = next(iterators[self._next])
            except StopIteration:
                return  # finite mode: one stream's pass is over
            self._next = (self._next + 1) % len(mine)
            yield batch

    def state_dict(self) -> dict[str, Any]:
        return {"next": self._next, "streams": [stream.state_dict() for stream in self.streams]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "streams" not in state:
            raise ValueError(
                f"the data checkpoint holds 1 stream per rank (no gradient accumulation), this run reads "
                f"{len(self.streams)}: resume with the same global batch, local batch and DP degree"
            )
        if len(state["streams"]) != len(self.streams):
            raise ValueError(
                f"the data checkpoint holds {len(state['streams'])} streams per rank (batches per step), "
                f"this run has {len(self.streams)}; resume with the same global and local batch sizes"
            )
        self._next = state["next"]
        for stream, stream_state in zip(self.streams, state["streams"]):
            stream.load_state_dict(stream_state)


class MixtureDataLoader(ParallelAwareDataloader):
    @dataclass(kw_only=True, slots=True)
    class Config(ParallelAwareDataloader.Config):
        dataset: Annotated[str, tyro.conf.Suppress] = ""
        """Unused (torchtitan's HF text loaders)."""

        dataset_path: Annotated[str | None, tyro.conf.Suppress] = None
        """Unused (torchtitan's HF text loaders)."""

        mix: str = "pretrain_phase1"
        """Mix to train on: a data_mix/ name (file stem) or a path to a mix TOML. Ignored when `phases` is set."""

        phases: list[str] = field(default_factory=list)
        """Mix schedule, e.g. ["pretrain_phase1", "pretrain_phase2@500000"] (CLI: comma-separated): MIX@N is used once N optimizer steps are done."""

        batches_per_step: Annotated[int, tyro.conf.Suppress] = 1
        """Derived by the trainer: batches per optimizer step (gradient accumulation); one data stream each."""

        seed: int = 0
        """Seed of every document order (per source and epoch). Must stay the same across a resume."""

        shards_root: str | None = None
        """Read each source from `<shards_root>/<source name>/`, as written by `mlr1 tokenize --out`."""

        hub_mirror: str | None = None
        """Directory holding local snapshots of hub datasets as `<hub_mirror>/<org>/<name>`; used when present."""

        verify_checksums: bool = True
        """Check each shard's checksum when first opened (each shard by one DP reader only)."""

        shuffle_block: int = 4096
        """Local jsonl/parquet sources: documents are shuffled within blocks of this many records."""

        hub_shuffle_buffer: int = 10_000
        """Hub sources: `datasets` shuffle buffer size (<= 1 disables shuffling)."""

        metrics_prefix: str = "data"
        """Prefix of the keys returned by `mix_metrics()`."""

        infinite: bool = True
        """False: stop when any source would start a second epoch (one deterministic pass, e.g. validation)."""

        def __post_init__(self) -> None:
            if self.batches_per_step < 1:
                raise MixError(f"dataloader.mixture.batches_per_step must be >= 1, got {self.batches_per_step}")
            for item in self.phases:
                _, _, at = item.rpartition("@")
                if "@" in item and not at.replace("_", "").isdigit():
                    raise MixError(f"dataloader.mixture.phases entry {item!r}: expected MIX or MIX@STEP")

    def __init__(
        self,
        config: Config,
        *,
        dp_world_size: int,
        dp_rank: int,
        tokenizer: BaseTokenizer,
        seq_len: int,
        local_batch_size: int,
        snapshot_every_n_steps: int | None = 1,
        **kwargs,
    ):
        phases = parse_phases(config.mix, config.phases)
        k = config.batches_per_step
        if k > 1 and config.num_workers > 1 and k % config.num_workers:
            raise MixError(
                f"dataloader.mixture.num_workers {config.num_workers} must divide the {k} batches per step "
                "(gradient accumulation steps): each worker serves whole streams"
            )
        streams: list[MixtureDataset] = []
        for j in range(k):
            streams.append(
                MixtureDataset(
                    phases,
                    tokenizer=tokenizer,
                    seq_len=seq_len,
                    batch_size=local_batch_size,
                    dp_rank=dp_rank * k + j,
                    dp_world_size=dp_world_size * k,
                    seed=config.seed,
                    batches_per_step=1 if k > 1 else config.batches_per_step,
                    shards_root=config.shards_root,
                    hub_mirror=config.hub_mirror,
                    verify_checksums=config.verify_checksums,
                    shuffle_block=config.shuffle_block,
                    hub_shuffle_buffer=config.hub_shuffle_buffer,
                    infinite=config.infinite,
                    split_over_workers=k == 1,
                    plans=streams[0].plans if streams else None,
                )
            )
        dataset = streams[0] if k == 1 else StepBlocks(streams)
        self.phases = phases
        self.meter = MixMeter(streams[0].source_names, [(p.mix.name, p.mix.targets()) for p in phases])
        self._metrics_prefix = config.metrics_prefix
        super().__init__(
            dataset,
            dp_rank=dp_rank,
            dp_world_size=dp_world_size,
            num_workers=config.num_workers,
            persistent_workers=config.persistent_workers,
            pin_memory=config.pin_memory,
            prefetch_factor=config.prefetch_factor,
            snapshot_every_n_steps=snapshot_every_n_steps,
            batch_size=None,  # the dataset packs whole [B, L] batches
        )

    def __iter__(self):
        for input_dict, labels in super().__iter__():
            # The stats ride along with the batch (they are computed where the batch is packed, which
            # may be a worker process) and are removed before the trainer sees it.
            stats = input_dict.pop(MIX_STATS_KEY)
            phase = input_dict.pop(MIX_PHASE_KEY)
            self.meter.update(stats.numpy(), int(phase))
            yield input_dict, labels

    # -- realized-mix metrics -----------------------------------------------------------------
    def mix_metrics(self) -> dict[str, float]:
        """Per source of this DP rank: `<prefix>/<source>/{fraction,target,tokens,epoch}` + `<prefix>/phase`.

        `fraction` is the realized token fraction within the current phase, `tokens` the tokens this
        rank has trained on from the source since the start of the run (x DP degree for the job).
        """
        return self.meter.metrics(self._metrics_prefix)

    def mix_summary(self) -> str:
        """One human-readable console line with realized/target fractions and epochs."""
        return self.meter.summary()

    # -- checkpointing ------------------------------------------------------------------------
    @property
    def _meter_key(self) -> str:
        return f"mix_metrics_dp_rank_{self.dp_rank}"

    def state_dict(self) -> dict[str, Any]:
        state = super().state_dict()
        state[self._meter_key] = pickle.dumps(self.meter.state_dict())
        return state

    def load_state_dict(self, state_dict: dict[str, Any]) -> None:
        if not state_dict:
            return
        saved_world = state_dict.get("world_size")
        if saved_world is not None and saved_world != self.dp_world_size:
            raise ValueError(
                f"the dataloader checkpoint was written with data-parallel degree {saved_world}, this run "
                f"has {self.dp_world_size}. Each DP rank owns a disjoint document stream (per-source "
                "cursors strided by rank), which cannot be re-split. Resume with the same DP degree, or "
                "start a fresh data stream with --checkpoint.exclude_from_loading dataloader "
                "(documents may then repeat)."
            )
        super().load_state_dict(state_dict)
        if self._meter_key in state_dict:
            self.meter.load_state_dict(pickle.loads(state_dict[self._meter_key]))
