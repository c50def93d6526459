"""What the two-process DDP tests share: the environment torch.distributed reads, a free port."""

from __future__ import annotations

import os
import socket
from pathlib import Path

import torch
from torch import nn


def free_port() -> int:
    """A TCP port free on 127.0.0.1 just now (for the group's rendezvous)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


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


def assert_ranks_match(out: Path, single: nn.Module) -> None:
    """Rank 0's weights (``out/weights0.pt``) are within 1e-5 of ``single``'s (one process, the
    same global batches) and rank 1's equal rank 0's."""
    w0 = torch.load(out / "weights0.pt")
    w1 = torch.load(out / "weights1.pt")
    for name, value in single.state_dict().items():
        assert float((w0[name] - value).abs().max()) <= 1e-5, name
        assert torch.equal(w0[name], w1[name])
