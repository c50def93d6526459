"""torch.distributed for the Trainer: where this process sits in a torchrun job, joining and
leaving the process group (gloo on CPU, nccl on GPU). A single process (world size 1) joins
nothing.

A rank that dies (``kill -9``, the OOM killer) must not leave the others waiting for ever. Its
sockets close with it, so a peer inside a collective fails at once (gloo: "Connection closed by
peer"); a peer waiting for a rank that never joined or never answers fails when the group's
timeout runs out: ``LSTMKIT_DIST_TIMEOUT_S`` seconds (default 600, not torch's 30 minutes; long
enough for rank 0's checkpoint writes between two collectives). :func:`peer_lost` turns either
error into :class:`PeerLostError`, one line that says what to do: the checkpoints written before
are complete (rank 0 writes them, verified on resume), so the job started again with ``--resume``
reaches the weights of an uninterrupted run. Every collective of the job maps so: those of
training, checkpoints and resume through ``lstmkit train`` (its error path), joining the group
(:func:`init_distributed`, with rank 0's address waited for once: :func:`wait_for_master`) and the
last barrier after a finished run (:func:`shutdown_distributed`) here.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta

import torch
import torch.distributed as dist

from lstmkit.errors import ConfigError, LstmkitError

TIMEOUT_ENV = "LSTMKIT_DIST_TIMEOUT_S"
DEFAULT_TIMEOUT_S = 600.0
# what gloo, nccl and the rendezvous store say when a peer is gone or silent
PEER_GONE = (
    "connection closed by peer",
    "connection reset by peer",
    "broken pipe",
    "timed out",
    "timeout",
    "connection refused",
)


class PeerLostError(LstmkitError, RuntimeError):
    """Another rank of the torch.distributed job died or stopped answering (the message names
    this rank, what the backend said, and to start the job again with ``--resume``)."""


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


def group_timeout() -> timedelta:
    """How long a collective (and the rendezvous) waits for the other ranks:
    ``$LSTMKIT_DIST_TIMEOUT_S`` seconds, default 600. Raises ConfigError for a value that is not
    a positive number."""
    raw = os.environ.get(TIMEOUT_ENV)
    if raw is None:
        return timedelta(seconds=DEFAULT_TIMEOUT_S)
    try:
        seconds = float(raw)
    except ValueError:
        seconds = float("nan")
    if not seconds > 0 or seconds == float("inf"):
        raise ConfigError(f"{TIMEOUT_ENV} must be a positive number of seconds, got {raw!r}")
    return timedelta(seconds=seconds)


def init_distributed(info: DistInfo) -> torch.device:
    """Join the process group when world_size > 1 (nccl on GPU, gloo on CPU), waiting at most
    :func:`group_timeout` for the other ranks at every collective; return the device. A rank
    other than 0 first waits (:func:`wait_for_master`) at most that long for rank 0's
    rendezvous address to answer: :class:`PeerLostError` when it never does."""
    device = (
        torch.device(f"cuda:{info.local_rank}")
        if torch.cuda.is_available()
        else torch.device("cpu")
    )
    if info.world_size > 1 and not dist.is_initialized():
        backend = "nccl" if device.type == "cuda" else "gloo"
        timeout = group_timeout()
        wait_for_master(info, timeout)
        with peer_loss_raised(info):
            dist.init_process_group(
                backend=backend, rank=info.rank, world_size=info.world_size, timeout=timeout
            )
        if device.type == "cuda":
            torch.cuda.set_device(device)
    return device


def wait_for_master(info: DistInfo, timeout: timedelta) -> None:
    """On a rank other than 0 of an ``env://`` rendezvous (``MASTER_ADDR`` / ``MASTER_PORT``):
    wait until rank 0's store accepts a connection, at most ``timeout``; raise
    :class:`PeerLostError` when it never does (rank 0 died before the group formed, or was
    never started). Without this torch's store client waits twice as long: it tries for the
    whole timeout, pauses, and tries for the whole timeout again. Once the address answers,
    torch connects at once. Nothing to do on rank 0, in a single process, or without the
    two variables (another init method: torch's own wait)."""
    addr, port = os.environ.get("MASTER_ADDR"), os.environ.get("MASTER_PORT", "")
    if info.rank == 0 or info.world_size < 2 or not addr or not port.isdigit():
        return
    seconds = timeout.total_seconds()
    deadline = time.monotonic() + seconds
    while True:
        left = deadline - time.monotonic()
        try:
            with socket.create_connection((addr, int(port)), timeout=max(0.05, min(1.0, left))):
                return
        except OSError as err:
            if left <= 0:
                raise PeerLostError(
                    _lost(
                        info,
                        f"nothing answered at {addr}:{port}, rank 0's rendezvous, for "
                        f"{seconds:g} s: {err.strerror or err}",
                    )
                ) from None
        time.sleep(min(0.1, max(0.0, deadline - time.monotonic())))


def shutdown_distributed(*, wait: bool = True, info: DistInfo | None = None) -> None:
    """Leave the process group this process joined (nothing when it joined none).

    ``wait``: first a barrier, so no rank closes its connections while a peer still reads from
    them. Without this a rank can exit with gloo's worker threads still alive and die with
    SIGABRT during interpreter shutdown. Pass ``wait=False`` on an error path, where the peers
    may never reach the barrier.

    A peer that died before or inside that barrier (``kill -9`` after its last step) makes the
    barrier's ``work.wait()`` fail: that is raised as :class:`PeerLostError` (see
    :func:`peer_lost`), the group left all the same. Any other error of the barrier propagates
    as it is, after the group is left.
    """
    if not (dist.is_available() and dist.is_initialized()):
        return
    try:
        if wait:
            with peer_loss_raised(info):
                dist.barrier()
    finally:
        with peer_loss_raised(info):
            dist.destroy_process_group()


@contextmanager
def peer_loss_raised(info: DistInfo | None = None) -> Iterator[None]:
    """Run a collective (or anything that waits on one: ``work.wait()``, a barrier, an
    all-reduce, a broadcast), turning the backend's word that a peer died or timed out into
    :class:`PeerLostError` (one line, no traceback at the CLI); other errors pass unchanged."""
    try:
        yield
    except RuntimeError as err:
        lost = peer_lost(err, info)
        if lost is None:
            raise
        raise lost from None


def peer_lost(err: BaseException, info: DistInfo | None = None) -> PeerLostError | None:
    """``err`` as a :class:`PeerLostError` when it is the backend's or the store's word that a
    peer of a distributed job (world size > 1) died or timed out; None for any other error."""
    info = info or DistInfo.from_env()
    if info.world_size < 2 or not isinstance(err, RuntimeError) or isinstance(err, LstmkitError):
        return None
    text = str(err)
    if not isinstance(err, dist.DistError) and not any(p in text.lower() for p in PEER_GONE):
        return None
    # gloo prefixes its source position ("[.../pair.cc:553] Connection closed by peer ...")
    what = text.split("] ", 1)[-1].split(". ", 1)[0].strip() or type(err).__name__
    return PeerLostError(_lost(info, what))


def _lost(info: DistInfo, what: str) -> str:
    return (
        f"rank {info.rank} of {info.world_size}: another rank died or stopped answering "
        f"({what}); this rank stops too. Start every rank again with --resume: it goes on from "
        "the last complete checkpoint"
    )
