"""torch.distributed for the Trainer: where this process sits in a torchrun job, joining and
leaving the process group (gloo on CPU, nccl on GPU). A single process (world size 1) joins
nothing."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class DistInfo:
    """Where this process sits in a torch.distributed job (world 1 = single process)."""

    rank: int = 0
    world_size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        """Rank 0 writes files and prints."""
        return self.rank == 0

    @classmethod
    def from_env(cls) -> DistInfo:
        """Read RANK / WORLD_SIZE / LOCAL_RANK as set by torchrun (defaults: single process)."""
        return cls(
            int(os.environ.get("RANK", "0")),
            int(os.environ.get("WORLD_SIZE", "1")),
            int(os.environ.get("LOCAL_RANK", "0")),
        )


def init_distributed(info: DistInfo) -> torch.device:
    """Join the process group when world_size > 1 (nccl on GPU, gloo on CPU); return the device."""
    device = (
        torch.device(f"cuda:{info.local_rank}")
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    if info.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        dist.init_process_group(backend=backend, rank=info.rank, world_size=info.world_size)
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return device


def shutdown_distributed(*, wait: bool = True) -> None:
    """Leave the process group this process joined (nothing when it joined none).

    ``wait``: first a barrier, so no rank closes its connections while a peer still reads from
    them. Without this a rank can exit with gloo's worker threads still alive and die with
    SIGABRT during interpreter shutdown. Pass ``wait=False`` on an error path, where the peers
    may never reach the barrier.
    """
    if dist.is_available() and dist.is_initialized():
        if wait:
            dist.barrier()
        dist.destroy_process_group()
