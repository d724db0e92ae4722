"""Which process this is: one rank of `torchrun` (a process group over nccl or gloo) or the only one."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from mlr1_titan.mix.errors import InfluenceError

BARRIER_TIMEOUT = timedelta(hours=6)


@dataclass(frozen=True)
class Ranks:
    rank: int
    world: int
    device: torch.device

    @property
    def is_first(self) -> bool:
        return self.rank == 0

    def barrier(self) -> None:
        if self.world > 1:
            dist.barrier()

    def close(self) -> None:
        if self.world > 1 and dist.is_initialized():
            dist.destroy_process_group()


def init_ranks(device: str = "auto") -> Ranks:
    """Under torchrun (WORLD_SIZE > 1), join the process group; `device` = auto | cpu | cuda."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device not in ("auto", "cpu", "cuda"):
        raise InfluenceError(f"--device {device!r}: expected auto, cpu or cuda")
    use_cuda = torch.cuda.is_available() if device == "auto" else device == "cuda"
    if use_cuda and not torch.cuda.is_available():
        raise InfluenceError("--device cuda: no CUDA device is visible")
    dev = torch.device("cuda", local % torch.cuda.device_count()) if use_cuda else torch.device("cpu")
    if use_cuda:
        torch.cuda.set_device(dev)
        # TF32 matmuls: influence dot products do not need full float32 mantissas, and it is ~7x the
        # float32 throughput of an H100.
        torch.set_float32_matmul_precision("high")
    if world > 1 and not dist.is_initialized():
        # Ranks wait at barriers while others compute probe gradients: far longer than NCCL's default.
        dist.init_process_group("nccl" if use_cuda else "gloo", rank=rank, world_size=world, timeout=BARRIER_TIMEOUT)
    return Ranks(rank, world, dev)
