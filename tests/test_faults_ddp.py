"""A 2-process torch.distributed job (gloo, CPU) with one rank killed by SIGKILL: the other rank
stops by itself with one clear error (:func:`lstmkit.distributed.peer_lost`), and the job
started again with ``resume`` reaches the weights of an uninterrupted 2-process job."""

from __future__ import annotations

import multiprocessing
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from ddp_support import free_port, join_env
from test_train import keyword_data, make_trainer, small_model

from lstmkit.checkpoint import latest_checkpoint
from lstmkit.data.batching import collate_tokens
from lstmkit.distributed import DistInfo, PeerLostError, group_timeout, peer_lost
from lstmkit.errors import ConfigError

STEPS = 32  # of 8 epochs of 8 global batches (128 examples, 16 a batch)


def slow_collate(batch: list[Any]) -> Any:
    """The Trainer's collate, 10 ms slower: the job is still training when the test kills it."""
    time.sleep(0.01)
    return collate_tokens(batch)


def _job(rank: int, world: int, port: int, out: str, resume: bool) -> None:
    join_env(rank, world, port)
    os.environ["LSTMKIT_DIST_TIMEOUT_S"] = "30"  # a survivor waiting for a dead peer gives up
    train = keyword_data(128, 0)
    trainer = make_trainer(
        small_model(), Path(out) / "run", evaluate_every=4, epochs=8, max_steps=STEPS
    )
    trainer.collate = slow_collate
    try:
        trainer.fit(train, train.lengths, resume=resume)
    except RuntimeError as err:
        lost = peer_lost(err)
        (Path(out) / f"error{rank}.txt").write_text(repr(lost) if lost else f"other: {err!r}")
        os._exit(2)
    torch.save(trainer.model.state_dict(), Path(out) / f"weights{rank}.pt")
    torch.distributed.destroy_process_group()


def test_a_killed_rank_stops_the_other_and_the_job_resumes_exactly(tmp_path: Path) -> None:
    whole, cut = tmp_path / "whole", tmp_path / "cut"
    whole.mkdir()
    cut.mkdir()
    mp.spawn(_job, args=(2, free_port(), str(whole), False), nprocs=2, join=True)

    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    ranks = [ctx.Process(target=_job, args=(r, 2, port, str(cut), False)) for r in range(2)]
    for p in ranks:
        p.start()
    try:
        deadline = time.monotonic() + 120
        while latest_checkpoint(cut / "run") is None:  # training, a checkpoint written
            assert all(p.is_alive() for p in ranks) and time.monotonic() < deadline
            time.sleep(0.01)
        assert ranks[1].pid is not None
        os.kill(ranks[1].pid, signal.SIGKILL)
        ranks[0].join(timeout=90)  # the survivor stops by itself (no hang), exit 2
        assert ranks[0].exitcode == 2, ranks[0].exitcode
    finally:
        for p in ranks:
            if p.is_alive():
                p.kill()
            p.join()
    said = (cut / "error0.txt").read_text()
    assert said.startswith("PeerLostError('rank 0 of 2: another rank died"), said
    assert "--resume" in said
    assert not (cut / "weights0.pt").exists()
    step = latest_checkpoint(cut / "run")
    assert step is not None and int(step.name.split("-")[1]) < STEPS  # cut off mid-way

    mp.spawn(_job, args=(2, free_port(), str(cut), True), nprocs=2, join=True)
    a, b = torch.load(whole / "weights0.pt"), torch.load(cut / "weights0.pt")
    for name, value in a.items():
        assert float((value - b[name]).abs().max()) <= 1e-6, name
    assert all(torch.equal(b[k], v) for k, v in torch.load(cut / "weights1.pt").items())


def test_peer_lost_names_the_rank_and_only_takes_peer_failures() -> None:
    info = DistInfo(rank=1, world_size=2)
    gloo = RuntimeError(
        "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
        "[127.0.0.1]:23427. This is typically caused by a remote worker crashing."
    )
    lost = peer_lost(gloo, info)
    assert isinstance(lost, PeerLostError)
    assert str(lost).startswith(
        "rank 1 of 2: another rank died or stopped answering (Connection closed by peer "
        "[127.0.0.1]:23427); this rank stops too."
    )
    assert peer_lost(gloo, DistInfo()) is None  # a single process has no peer
    assert peer_lost(RuntimeError("mat1 and mat2 shapes cannot be multiplied"), info) is None
    assert peer_lost(ValueError("timed out"), info) is None


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "inf", "nan"])
def test_a_bad_group_timeout_is_one_clear_error(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTMKIT_DIST_TIMEOUT_S", raw)
    with pytest.raises(ConfigError, match="LSTMKIT_DIST_TIMEOUT_S must be a positive number"):
        group_timeout()
    monkeypatch.setenv("LSTMKIT_DIST_TIMEOUT_S", "2.5")
    assert group_timeout().total_seconds() == 2.5
    monkeypatch.delenv("LSTMKIT_DIST_TIMEOUT_S")
    assert group_timeout().total_seconds() == 600
