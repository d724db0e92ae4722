"""`MixtureDataset`: phases of mixes -> token-exact source sampling -> packed [B, L] batches.

Packing follows torchtitan's text datasets: each document is `BOS ... EOS`, inputs and labels are
shifted *inside* the document (a document's last input never predicts the next document's BOS), and
`positions` restart at 0 at every document start and at every window start, which is where
torchtitan's Flex/Varlen attention puts document boundaries. Windows are exactly `seq_len` long,
no padding; a document longer than the room left continues in the next window.

Shape legend: B = local batch size, L = seq_len, K = number of sources over all phases.
"""

from __future__ import annotations

import logging
import os
from typing import Any

import numpy as np
import torch
from torch.distributed.checkpoint.stateful import Stateful
from torch.utils.data import IterableDataset, get_worker_info

from mlr1_titan.data.mix_config import Phase, SourceSpec
from mlr1_titan.data.mix_metrics import MIX_PHASE_KEY, MIX_STATS_KEY
from mlr1_titan.data.mixture_sampler import DeficitSampler
from mlr1_titan.data.shards import ShardPlan, ShardReader, plan_shard_source, tokenizer_fingerprint
from mlr1_titan.data.sources import DataSourceError, TextPlan, TextReader, plan_text_source

logger = logging.getLogger(__name__)

STATE_VERSION = 1


class _FirstEpochDone(Exception):
    """A finite dataset (validation) has reached the end of some source's first epoch."""


class MixtureDataset(IterableDataset, Stateful):
    def __init__(
        self,
        phases: list[Phase],
        *,
        tokenizer,
        seq_len: int,
        batch_size: int,
        dp_rank: int = 0,
        dp_world_size: int = 1,
        seed: int = 0,
        batches_per_step: int = 1,
        shards_root: str | None = None,
        hub_mirror: str | None = None,
        verify_checksums: bool = True,
        shuffle_block: int = 4096,
        hub_shuffle_buffer: int = 10_000,
        infinite: bool = True,
        split_over_workers: bool = True,
        plans: dict[str, TextPlan | ShardPlan] | None = None,
    ):
        """``split_over_workers = False``: this dataset is one whole stream even inside a dataloader
        worker (the caller gives each worker its own streams); ``plans``: the source plans of a sibling
        stream of the same phases, reused instead of resolving every source again."""
        if seq_len < 1 or batch_size < 1 or batches_per_step < 1:
            raise ValueError(
                f"seq_len, batch_size, batches_per_step must be >= 1 (got {seq_len}, {batch_size}, {batches_per_step})"
            )
        if not 0 <= dp_rank < dp_world_size:
            raise ValueError(f"dp_rank {dp_rank} not in [0, {dp_world_size})")
        self.phases = phases
        self.tokenizer = tokenizer
        self.seq_len, self.batch_size = seq_len, batch_size
        self.dp_rank, self.dp_world_size = dp_rank, dp_world_size
        self.seed, self.batches_per_step = seed, batches_per_step
        self.verify_checksums = verify_checksums
        self.infinite = infinite
        self.shuffle_block, self.hub_shuffle_buffer = shuffle_block, hub_shuffle_buffer

        # Every source of every phase, in first-appearance order: the K axis of the stats.
        self.specs: dict[str, SourceSpec] = {}
        for ph in phases:
            for s in ph.mix.sources:
                self.specs.setdefault(s.name, s)
        self.source_names = list(self.specs)
        self._index = {n: i for i, n in enumerate(self.source_names)}

        # Resolve and check every source that will ever be read, now, in the main process:
        # missing files, bad manifests and tokenizer mismatches fail at startup, not at step 400k.
        self.tokenizer_info = tokenizer_fingerprint(tokenizer)
        self.split_over_workers = split_over_workers
        needed = {s.name for ph in phases for s in ph.mix.active_sources()}
        self.plans: dict[str, TextPlan | ShardPlan] = {}
        for name in self.source_names:
            if name in needed:
                self.plans[name] = plans[name] if plans else self._plan(self.specs[name], shards_root, hub_mirror)

        self._readers: dict[str, ShardReader | TextReader] | None = None
        self._loaded_state: dict[str, Any] | None = None
        self._batch = 0
        self._phase = 0
        self._sampler = self._make_sampler(0)
        self._doc: np.ndarray | None = None  # the document being packed ...
        self._doc_src = -1
        self._doc_off = 0  # ... how many of its training positions are already emitted
        self._doc_before: tuple[int, int] | None = None  # its reader's (epoch, cursor) before it

    def _plan(self, spec: SourceSpec, shards_root: str | None, hub_mirror: str | None):
        if spec.kind == "shards":
            return plan_shard_source(spec, spec.path[0], self.tokenizer_info, expect_source_hash=False)
        if shards_root:
            directory = os.path.join(os.path.expanduser(shards_root), spec.name)
            return plan_shard_source(spec, directory, self.tokenizer_info, expect_source_hash=True)
        return plan_text_source(spec, hub_mirror)

    def _make_sampler(self, phase: int) -> DeficitSampler:
        active = self.phases[phase].mix.active_sources()
        return DeficitSampler([s.name for s in active], [s.weight for s in active])

    # -- reader set-up (inside the process that iterates: main or dataloader worker) -----------
    def _activate(self) -> None:
        if self._readers is not None:
            return
        info = get_worker_info() if self.split_over_workers else None
        self._num_workers = info.num_workers if info else 1
        self._worker_id = info.id if info else 0
        # Dataloader workers are extra readers: worker w of rank r reads as rank r*W + w.
        self._reader_rank = self.dp_rank * self._num_workers + self._worker_id
        self._reader_world = self.dp_world_size * self._num_workers
        self._readers = {}
        for name, plan in self.plans.items():
            if isinstance(plan, ShardPlan):
                self._readers[name] = ShardReader(
                    plan, seed=self.seed, rank=self._reader_rank, world=self._reader_world, verify=self.verify_checksums
                )
            else:
                self._readers[name] = TextReader(
                    plan,
                    self.tokenizer,
                    seed=self.seed,
                    rank=self._reader_rank,
                    world=self._reader_world,
                    block=self.shuffle_block,
                    shuffle_buffer=self.hub_shuffle_buffer,
                )
        if self._loaded_state is not None:
            state, self._loaded_state = self._loaded_state, None
            self._apply_state(state)

    def __iter__(self):
        self._activate()
        while True:
            try:
                batch = self._next_batch()
            except _FirstEpochDone:
                return  # finite mode: the partial batch is dropped
            yield batch

    # -- packing ------------------------------------------------------------------------------
    def _phase_of_next_batch(self) -> int:
        # Batch j of worker w is the (j*W + w)-th batch this rank serves.
        served = self._batch * self._num_workers + self._worker_id
        step = served // self.batches_per_step
        phase = self._phase
        while phase + 1 < len(self.phases) and step >= self.phases[phase + 1].start_step:
            phase += 1
        return phase

    def _start_doc(self, docs_started: list[int]) -> None:
        sampler = self._sampler
        while True:
            i = sampler.pick()
            name = sampler.names[i]
            reader = self._readers[name]
            before = reader.position()
            doc = reader.next_doc()
            if not self.infinite and reader.epoch > 0:
                raise _FirstEpochDone
            sampler.add(i, max(len(doc) - 1, 1))
            if len(doc) >= 2:
                break
        src = self._index[name]
        docs_started[src] += 1
        self._doc, self._doc_src, self._doc_off, self._doc_before = doc, src, 0, before

    def _next_batch(self) -> tuple[dict[str, torch.Tensor], torch.Tensor]:
        phase = self._phase_of_next_batch()
        if phase != self._phase:
            self._phase = phase
            self._sampler = self._make_sampler(phase)
            logger.info(f"data: switching to mix '{self.phases[phase].mix.name}' (phase {phase})")
        B, L, K = self.batch_size, self.seq_len, len(self.source_names)
        # Collect (document slice, source) segments; a segment never crosses a window edge, so its
        # positions are 0..k-1. One vectorised copy per batch does the rest.
        seg_inputs, seg_labels, seg_lens, seg_srcs = [], [], [], []
        docs_started = [0] * K
        fill, total = 0, B * L
        while fill < total:
            if self._doc is None:
                self._start_doc(docs_started)
            doc, off = self._doc, self._doc_off
            room = L - fill % L
            avail = len(doc) - 1 - off
            k = room if room < avail else avail
            seg_inputs.append(doc[off : off + k])
            seg_labels.append(doc[off + 1 : off + k + 1])
            seg_lens.append(k)
            seg_srcs.append(self._doc_src)
            fill += k
            if k == avail:
                self._doc = None
            else:
                self._doc_off = off + k
        self._batch += 1
        inputs_BL = np.concatenate(seg_inputs, dtype=np.int64).reshape(B, L)
        labels_BL = np.concatenate(seg_labels, dtype=np.int64).reshape(B, L)
        lens = np.asarray(seg_lens, dtype=np.int64)
        positions_BL = (np.arange(total, dtype=np.int64) - np.repeat(np.cumsum(lens) - lens, lens)).reshape(B, L)
        stats_3K = np.zeros((3, K), np.int64)
        stats_3K[0] = np.bincount(seg_srcs, weights=lens, minlength=K)
        stats_3K[1] = docs_started
        for name, reader in self._readers.items():
            stats_3K[2, self._index[name]] = reader.epoch
        return (
            {
                "input": torch.from_numpy(inputs_BL),
                "positions": torch.from_numpy(positions_BL),
                MIX_STATS_KEY: torch.from_numpy(stats_3K),
                MIX_PHASE_KEY: torch.tensor(self._phase, dtype=torch.int64),
            },
            torch.from_numpy(labels_BL),
        )

    # -- checkpointing ------------------------------------------------------------------------
    def state_dict(self) -> dict[str, Any]:
        if self._readers is None:  # never iterated here: report what was loaded (or the start)
            if self._loaded_state is not None:
                return self._loaded_state
            return {
                "version": STATE_VERSION,
                "seed": self.seed,
                "batch": 0,
                "phase": 0,
                "reader_world": None,
                "sampler": {},
                "readers": {},
                "pending": None,
                "mixes": [ph.mix.fingerprint() for ph in self.phases],
            }
        pending = None
        if self._doc is not None:
            epoch, cursor = self._doc_before
            pending = {
                "source": self.source_names[self._doc_src],
                "before": {"epoch": epoch, "cursor": cursor},
                "offset": self._doc_off,
            }
        return {
            "version": STATE_VERSION,
            "seed": self.seed,
            "batch": self._batch,
            "phase": self._phase,
            "reader_world": self._reader_world,
            "sampler": self._sampler.state(),
            "readers": {name: r.state() for name, r in self._readers.items()},
            "pending": pending,
            "mixes": [ph.mix.fingerprint() for ph in self.phases],
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if "streams" in state:
            raise ValueError(
                f"the data checkpoint holds {len(state['streams'])} streams per rank (gradient accumulation "
                "steps), this run reads 1: resume with the same global batch, local batch and DP degree"
            )
        if state.get("version") != STATE_VERSION:
            raise ValueError(f"data checkpoint has state version {state.get('version')}, expected {STATE_VERSION}")
        if state["seed"] != self.seed:
            raise ValueError(
                f"data checkpoint was written with seed {state['seed']}, this run has seed {self.seed}; "
                "the document order depends on the seed, so resume with the same --dataloader.mixture.seed"
            )
        self._loaded_state = state
        if self._readers is not None:
            self._loaded_state = None
            self._apply_state(state)

    def _apply_state(self, state: dict[str, Any]) -> None:
        if state["reader_world"] not in (None, self._reader_world):
            raise ValueError(
                f"data checkpoint was written by {state['reader_world']} readers (DP degree × dataloader "
                f"workers), this run has {self._reader_world} (DP {self.dp_world_size} × workers "
                f"{self._num_workers}); resume with the same DP degree and num_workers"
            )
        if state["phase"] >= len(self.phases):
            raise ValueError(f"data checkpoint is in phase {state['phase']}, the schedule has {len(self.phases)}")
        saved_mixes = state.get("mixes", [])
        current = [ph.mix.fingerprint() for ph in self.phases]
        if saved_mixes != current:
            logger.warning(
                "data: the mix schedule changed since this checkpoint; sources keep their "
                "read positions by name, weights apply from now on"
            )
        self._batch, self._phase = int(state["batch"]), int(state["phase"])
        self._sampler = self._make_sampler(self._phase)
        dropped = self._sampler.load_state(state["sampler"])
        for name, rstate in state["readers"].items():
            if name in self._readers:
                self._readers[name].load_state(rstate)
            else:
                dropped.append(name)
        if dropped:
            logger.warning(f"data: checkpointed sources {sorted(set(dropped))} are not in the current schedule")
        self._doc = None
        pending = state["pending"]
        if pending is not None and pending["source"] in self._readers:
            # Re-read the half-packed document from its reader's position before it, and check the
            # reader lands where the checkpoint says: a changed source cannot resume silently.
            reader = self._readers[pending["source"]]
            after = reader.state()
            reader.load_state(pending["before"])
            doc = reader.next_doc()
            if reader.state() != after:
                raise DataSourceError(
                    f"source '{pending['source']}' changed since the checkpoint: re-reading its current "
                    f"document ended at {reader.state()}, the checkpoint says {after}"
                )
            self._doc, self._doc_src = doc, self._index[pending["source"]]
            self._doc_off = int(pending["offset"])
            self._doc_before = (int(pending["before"]["epoch"]), int(pending["before"]["cursor"]))
