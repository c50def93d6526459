"""What the two-process DDP tests share: the environment torch.distributed reads."""

from __future__ import annotations

import os

import torch


def join_env(rank: int, world: int, port: int) -> None:
    """Set the variables ``torchrun`` would set for process ``rank`` of ``world`` (the group's
    address: 127.0.0.1:``port``), with one torch thread per process."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
    )
    torch.set_num_threads(1)
