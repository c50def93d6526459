"""The job queue (concurrency limit, order, failure, cancel escalation, recovery after a crash)
with stand-in processes that sleep."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from studio_support import add_runs

from lstmkit.studio.jobs import JobQueue, process_alive
from lstmkit.studio.store import Store

# stands in for `lstmkit train`: notes when it ran, sleeps, writes metrics.json (or fails)
FAKE_TRAIN = """
import json, os, signal, sys, time
out = sys.argv[sys.argv.index("--out") + 1]
mode = os.environ.get("FAKE_MODE", "ok")
if mode == "stubborn":
    signal.signal(signal.SIGINT, signal.SIG_IGN)
start = time.time()
time.sleep(float(os.environ.get("FAKE_SLEEP", "0.4")))
with open(os.path.join(out, "times.json"), "w") as fh:
    json.dump([start, time.time()], fh)
with open(os.path.join(out, "threads.txt"), "w") as fh:
    fh.write(os.environ.get("OMP_NUM_THREADS", "unset"))
if mode == "fail":
    print("lstmkit train: error: data.num_words: must be >= 3 (got 1)", file=sys.stderr)
    sys.exit(2)
with open(os.path.join(out, "metrics.json"), "w") as fh:
    json.dump({"steps": 1}, fh)
"""


def fake_launcher(script: Path) -> Any:
    def launch(argv: list[str], log_path: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        assert argv[1:4] == ["-m", "lstmkit", "train"] and "--no-progress" in argv
        with open(log_path, "ab") as log:
            return subprocess.Popen(
                [sys.executable, str(script), *argv[4:]], stdout=log, stderr=log, env=env
            )

    return launch


def make_queue(tmp_path: Path, limit: int, **kwargs: Any) -> tuple[Store, JobQueue]:
    script = tmp_path / "fake_train.py"
    script.write_text(FAKE_TRAIN)
    store = Store(tmp_path / "studio.sqlite3")
    queue = JobQueue(
        store,
        tmp_path,
        lambda run: tmp_path / "recipe.toml",
        max_concurrent=limit,
        poll_s=0.02,
        launcher=fake_launcher(script),
        **kwargs,
    )
    return store, queue


def wait_all(store: Store, ids: list[str], statuses: tuple[str, ...], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if all(store.get_run(i)["status"] in statuses for i in ids):  # type: ignore[index]
            return
        time.sleep(0.02)
    raise AssertionError([store.get_run(i)["status"] for i in ids])  # type: ignore[index]


@pytest.mark.parametrize("limit", [1, 2])
def test_the_queue_honours_its_limit(
    tmp_path: Path, limit: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("OMP_NUM_THREADS", raising=False)
    store, queue = make_queue(tmp_path, limit, env={"FAKE_SLEEP": "0.3"})
    ids = add_runs(store, 5)
    queue.start()
    try:
        wait_all(store, ids, ("finished",))
    finally:
        queue.stop()
    spans = [json.loads((tmp_path / "runs" / i / "times.json").read_text()) for i in ids]
    # the most runs alive at any moment (a run's process lives a little beyond its span)
    most = max(sum(s <= t < e for s, e in spans) for t, _ in spans)
    assert most == limit
    assert queue.max_seen == limit
    starts = [store.get_run(i)["started"] for i in ids]  # type: ignore[index]
    assert starts == sorted(starts)  # first come, first served
    run = store.get_run(ids[0])
    assert run is not None and run["metrics"] == {"steps": 1} and run["exit_code"] == 0
    # the runs side by side share the cores
    threads = (tmp_path / "runs" / ids[0] / "threads.txt").read_text()
    assert threads == str(max(1, (os.cpu_count() or 1) // limit))
    log = (tmp_path / "runs" / ids[0] / "train.log").read_text()

    assert log.startswith(f"$ {sys.executable} -m lstmkit train ")
    assert f"--out {tmp_path / 'runs' / ids[0]}" in log


def test_a_failed_run_keeps_the_trainers_error(tmp_path: Path) -> None:
    store, queue = make_queue(tmp_path, 1, env={"FAKE_SLEEP": "0", "FAKE_MODE": "fail"})
    (run_id,) = add_runs(store, 1)
    queue.start()
    try:
        wait_all(store, [run_id], ("failed",))
    finally:
        queue.stop()
    run = store.get_run(run_id)
    assert run is not None and run["exit_code"] == 2
    assert run["error"] == "lstmkit train: error: data.num_words: must be >= 3 (got 1)"


def test_cancel_escalates_to_sigterm(tmp_path: Path) -> None:
    store, queue = make_queue(
        tmp_path, 1, grace_s=0.3, env={"FAKE_SLEEP": "30", "FAKE_MODE": "stubborn"}
    )
    (run_id,) = add_runs(store, 1)
    queue.start()
    try:
        wait_all(store, [run_id], ("running",))
        time.sleep(0.3)  # let the stand-in install its SIGINT handler
        assert queue.cancel(run_id) == "cancelling"
        wait_all(store, [run_id], ("cancelled",), timeout=10)
    finally:
        queue.stop()
    run = store.get_run(run_id)
    assert run is not None and run["error"] == "cancelled (SIGINT, SIGTERM)"
    with pytest.raises(ValueError, match="only queued or running"):
        queue.cancel(run_id)
    with pytest.raises(KeyError):
        queue.cancel("ffffffff")


def test_recover_after_a_crash(tmp_path: Path) -> None:
    """A studio that died left 'running' rows: they become interrupted; a trainer of theirs that
    still lives gets SIGINT; a process that merely reuses a pid is left alone."""
    store = Store(tmp_path / "studio.sqlite3")
    orphan_id, stranger_id, done_id = add_runs(store, 3)
    orphan_dir = tmp_path / "runs" / orphan_id
    (orphan_dir / "checkpoints").mkdir(parents=True)
    (orphan_dir / "checkpoints" / "latest").write_text("step-000002\n")
    orphan = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(60)", "--out", str(orphan_dir)]
    )
    stranger = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        time.sleep(0.2)
        assert process_alive(orphan.pid, orphan_dir)
        assert not process_alive(stranger.pid, tmp_path / "runs" / stranger_id)
        store.update_run(orphan_id, status="running", pid=orphan.pid, started=time.time())
        store.update_run(stranger_id, status="running", pid=stranger.pid, started=time.time())
        store.update_run(done_id, status="finished", metrics={"steps": 3})
        queue = JobQueue(store, tmp_path, lambda run: tmp_path / "x.toml")
        assert sorted(queue.recover()) == sorted([orphan_id, stranger_id])
        assert orphan.wait(timeout=10) == -signal.SIGINT
        assert stranger.poll() is None  # not ours: untouched
    finally:
        for proc in (orphan, stranger):
            if proc.poll() is None:
                proc.kill()
                proc.wait()
    runs = {r["id"]: r for r in store.list_runs()}
    assert runs[orphan_id]["status"] == "interrupted"
    assert runs[orphan_id]["error"].endswith("resume it from its last checkpoint")
    assert runs[stranger_id]["status"] == "interrupted"
    assert "resume" not in runs[stranger_id]["error"]  # no checkpoint
    assert runs[done_id]["status"] == "finished" and runs[done_id]["metrics"] == {"steps": 3}


def test_process_alive_needs_the_run_dir(tmp_path: Path) -> None:
    assert not process_alive(None, tmp_path)
    assert not process_alive(os.getpid(), tmp_path / "runs" / "0badc0de")
