"""A 2-process torch.distributed job (gloo, CPU) with one rank killed by SIGKILL: the other rank
stops by itself with one clear error (:func:`lstmkit.distributed.peer_lost`), and the job
started again with ``resume`` reaches the weights of an uninterrupted 2-process job."""

from __future__ import annotations

import multiprocessing
import os
import signal
import socket
import threading
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
import torch
import torch.multiprocessing as mp
from ddp_support import free_port, join_env
from test_train import keyword_data, make_trainer, small_model

from lstmkit.checkpoint import latest_checkpoint
from lstmkit.data.batching import collate_tokens
from lstmkit.distributed import (
    DistInfo,
    PeerLostError,
    group_timeout,
    init_distributed,
    peer_lost,
    shutdown_distributed,
    wait_for_master,
)
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


GLOO_CLOSED = (
    "[/pytorch/third_party/gloo/gloo/transport/tcp/pair.cc:553] Connection closed by peer "
    "[127.0.0.1]:4752. This is typically caused by a remote worker crashing."
)


def _leaves_before_the_barrier(rank: int, world: int, port: int, out: str) -> None:
    """Rank 1 joins the group and exits at once (as a rank killed after its last step); rank 0
    then leaves the group the way ``lstmkit train`` does after a finished run."""
    join_env(rank, world, port)
    os.environ["LSTMKIT_DIST_TIMEOUT_S"] = "20"
    torch.distributed.init_process_group("gloo", rank=rank, world_size=world)
    torch.distributed.barrier()  # both joined
    if rank == 1:
        os._exit(0)
    time.sleep(0.5)  # rank 1 is gone: its sockets are closed
    t0 = time.monotonic()
    try:
        shutdown_distributed(wait=True)
        said = "no error"
    except PeerLostError as err:
        said = repr(err)
    except BaseException as err:  # what the fix must not let through
        said = f"other: {err!r}"
    waited = time.monotonic() - t0
    left = not torch.distributed.is_initialized()
    (Path(out) / "shutdown0.txt").write_text(f"{said}\n{waited:.3f}\n{left}")


def test_a_peer_gone_before_the_final_barrier_is_a_peer_lost_error(tmp_path: Path) -> None:
    """The survivor of a rank killed after its last step fails in shutdown's barrier
    (``work.wait()``: gloo's "Connection closed by peer"): PeerLostError, group left."""
    ctx = multiprocessing.get_context("spawn")
    port = free_port()
    ranks = [
        ctx.Process(target=_leaves_before_the_barrier, args=(r, 2, port, str(tmp_path)))
        for r in range(2)
    ]
    for p in ranks:
        p.start()
    for p in ranks:
        p.join(timeout=120)
        if p.is_alive():
            p.kill()
            p.join()
    assert [p.exitcode for p in ranks] == [0, 0]
    said, waited, left = (tmp_path / "shutdown0.txt").read_text().splitlines()
    assert said.startswith(
        "PeerLostError('rank 0 of 2: another rank died or stopped answering ("
    ), said
    assert "--resume" in said
    assert float(waited) < 15  # the closed connection is seen at once, not at the group timeout
    assert left == "True"  # the group was left all the same


class _FakeWork:
    """What ``dist.barrier`` waits on: its ``wait()`` fails as gloo's does when a peer died."""

    def __init__(self, error: RuntimeError) -> None:
        self.error = error

    def wait(self) -> bool:
        raise self.error


def _fake_group(monkeypatch: pytest.MonkeyPatch, error: RuntimeError) -> list[str]:
    calls: list[str] = []
    dist = torch.distributed

    def barrier(*args: Any, **kwargs: Any) -> None:
        calls.append("barrier")
        _FakeWork(error).wait()

    monkeypatch.setattr(dist, "is_available", lambda: True)
    monkeypatch.setattr(dist, "is_initialized", lambda: "destroy" not in calls)
    monkeypatch.setattr(dist, "barrier", barrier)
    monkeypatch.setattr(dist, "destroy_process_group", lambda *a, **k: calls.append("destroy"))
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.setenv("RANK", "1")
    return calls


def test_shutdown_maps_a_failed_barrier_wait_and_still_leaves_the_group(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    calls = _fake_group(monkeypatch, RuntimeError(GLOO_CLOSED))
    with pytest.raises(PeerLostError) as caught:
        shutdown_distributed(wait=True)
    assert str(caught.value).startswith(
        "rank 1 of 2: another rank died or stopped answering (Connection closed by peer "
        "[127.0.0.1]:4752); this rank stops too."
    )
    assert caught.value.__cause__ is None and caught.value.__suppress_context__
    assert calls == ["barrier", "destroy"]
    shutdown_distributed(wait=True)  # left: a second call does nothing
    assert calls == ["barrier", "destroy"]


def test_shutdown_lets_other_barrier_errors_through_unchanged(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bug = RuntimeError("Tensors must be CPU and dense")
    calls = _fake_group(monkeypatch, bug)
    with pytest.raises(RuntimeError) as caught:
        shutdown_distributed(wait=True)
    assert caught.value is bug and not isinstance(caught.value, PeerLostError)
    assert calls == ["barrier", "destroy"]
    calls.clear()
    calls.append("barrier-free")  # the error path: no barrier, the group left
    monkeypatch.setattr(torch.distributed, "is_initialized", lambda: True)
    shutdown_distributed(wait=False)
    assert calls == ["barrier-free", "destroy"]


def test_train_after_a_finished_run_says_one_line_when_the_final_barrier_fails(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lstmkit train``: the run finished, a peer died before the last barrier: exit 2, one
    ``error:`` line naming the lost peer and --resume, no traceback."""
    import lstmkit.experiment
    from lstmkit.cli import main

    calls = _fake_group(monkeypatch, RuntimeError(GLOO_CLOSED))
    finished: list[Path] = []

    def run_recipe(recipe: Any, raw: Any, out: Path, **kwargs: Any) -> dict[str, Any]:
        finished.append(out)
        return {"steps": 2}

    monkeypatch.setattr(lstmkit.experiment, "run_recipe", run_recipe)
    code = main(["train", "imdb-seed000", "--out", str(tmp_path / "run"), "--no-progress"])
    err = capsys.readouterr().err
    assert finished == [tmp_path / "run"]  # the run itself was done
    assert code == 2, err
    assert "Traceback" not in err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert lines == [
        "lstmkit train: error: rank 1 of 2: another rank died or stopped answering (Connection "
        "closed by peer [127.0.0.1]:4752); this rank stops too. Start every rank again with "
        "--resume: it goes on from the last complete checkpoint"
    ], err
    assert calls == ["barrier", "destroy"]


def _rendezvous_env(monkeypatch: pytest.MonkeyPatch, port: int) -> None:
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", str(port))


def test_a_rank_waits_for_rank_0_s_address_once_for_the_group_timeout(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Rank 0 died before the group formed: rank 1 stops after the timeout, not after torch's
    two tries of it (measured: 60 s, a ~30 s pause, 60 s again)."""
    port = free_port()  # nothing listens there
    _rendezvous_env(monkeypatch, port)
    info = DistInfo(rank=1, world_size=2)
    t0 = time.monotonic()
    with pytest.raises(PeerLostError) as caught:
        wait_for_master(info, timedelta(seconds=1.5))
    waited = time.monotonic() - t0
    assert 1.5 <= waited < 4.0, waited
    assert str(caught.value) == (
        f"rank 1 of 2: another rank died or stopped answering (nothing answered at "
        f"127.0.0.1:{port}, rank 0's rendezvous, for 1.5 s: Connection refused); this rank "
        "stops too. Start every rank again with --resume: it goes on from the last complete "
        "checkpoint"
    )
    # rank 0 itself, a single process, another init method: nothing to wait for
    t0 = time.monotonic()
    wait_for_master(DistInfo(rank=0, world_size=2), timedelta(seconds=5))
    wait_for_master(DistInfo(rank=1, world_size=1), timedelta(seconds=5))
    monkeypatch.delenv("MASTER_ADDR")
    wait_for_master(info, timedelta(seconds=5))
    assert time.monotonic() - t0 < 1.0


def test_a_rank_goes_on_as_soon_as_rank_0_listens(monkeypatch: pytest.MonkeyPatch) -> None:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        port = server.getsockname()[1]
        _rendezvous_env(monkeypatch, port)
        threading.Timer(0.6, server.listen).start()  # rank 0 comes up a little later
        t0 = time.monotonic()
        wait_for_master(DistInfo(rank=1, world_size=2), timedelta(seconds=20))
        waited = time.monotonic() - t0
    assert 0.6 <= waited < 5.0, waited


def test_joining_a_group_whose_rank_0_is_gone_is_one_peer_lost_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    port = free_port()
    _rendezvous_env(monkeypatch, port)
    monkeypatch.setenv("LSTMKIT_DIST_TIMEOUT_S", "2")
    t0 = time.monotonic()
    with pytest.raises(PeerLostError, match=f"nothing answered at 127.0.0.1:{port}"):
        init_distributed(DistInfo(rank=1, world_size=2))
    assert time.monotonic() - t0 < 5.0  # torch's store client alone: 2 s, a pause, 2 s again
    assert not torch.distributed.is_initialized()


@pytest.mark.parametrize("raw", ["0", "-3", "soon", "inf", "nan"])
def test_a_bad_group_timeout_is_one_clear_error(raw: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LSTMKIT_DIST_TIMEOUT_S", raw)
    with pytest.raises(ConfigError, match="LSTMKIT_DIST_TIMEOUT_S must be a positive number"):
        group_timeout()
    monkeypatch.setenv("LSTMKIT_DIST_TIMEOUT_S", "2.5")
    assert group_timeout().total_seconds() == 2.5
    monkeypatch.delenv("LSTMKIT_DIST_TIMEOUT_S")
    assert group_timeout().total_seconds() == 600
