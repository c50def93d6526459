"""lstmkit.serve.server (``lstmkit serve [--workers N]``): the arguments reach every worker
process, a real server with two workers answers like the in-process predictor, a worker killed
outright is started again while the other answers, and Ctrl-C stops them all."""

from __future__ import annotations

import gc
import os
import re
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import torch
from browser_support import free_port
from fastapi.testclient import TestClient
from test_api import TEXTS, make_bundle

from lstmkit.bundle import load
from lstmkit.cli import main
from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.serve import create_app
from lstmkit.serve.server import WorkerExit, run_workers


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("workers"))


def test_cli_workers_hand_their_arguments_to_the_workers(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lstmkit.serve.server as server

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(server, "run_workers", lambda config, **kw: calls.append({**kw, **config}))
    args = ["serve", str(bundle), "--workers", "2", "--threads", "1", "--no-access-log"]
    assert main([*args, "--token", "t", "--max-wait-ms", "5", "--port", "9002"]) == 0
    assert calls == [
        {
            "host": "127.0.0.1",
            "port": 9002,
            "workers": 2,
            "access_log": False,
            "bundle_path": str(bundle.resolve()),
            "token": "t",
            "micro_batch": True,
            "max_wait_ms": 5.0,
            "torch_threads": 1,
            "freeze_gc": True,
        }
    ]
    assert main(["serve", str(bundle), "--workers", "2"]) == 0
    assert calls[-1]["torch_threads"] == 1  # the default
    assert calls[-1]["access_log"] is True and calls[-1]["token"] is None


def test_worker_app_sets_threads_and_freezes_the_gc(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    threads: list[int] = []
    frozen: list[str] = []
    # not this test process's threads and garbage collector
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: frozen.append("unfreeze"))
    app = create_app(bundle, token="t", max_wait_ms=5.0, torch_threads=1, freeze_gc=True)
    with TestClient(app) as c:
        assert threads == [1] and frozen == ["freeze"]
        assert app.state.serving.batcher.max_wait_ms == 5.0
        r = c.post("/v1/predict", json={"texts": TEXTS}, headers={"Authorization": "Bearer t"})
        assert r.status_code == 200
        assert [p["label"] for p in r.json()["predictions"]] == [
            p["label"] for p in load(bundle).predict(TEXTS)
        ]
    assert frozen == ["freeze", "unfreeze"]
    with pytest.raises(ValueError, match="torch_threads must be >= 1"):
        create_app(bundle, torch_threads=0)


def test_one_worker_runs_the_app_in_process(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    assert main(["serve", str(bundle)]) == 0
    assert not isinstance(calls[0]["app"], str) and "workers" not in calls[0]  # in process
    assert calls[0]["access_log"] is True


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--workers", "0"], "--workers must be >= 1, got 0"),
        (["--threads", "0"], "--threads must be >= 1, got 0"),
    ],
)
def test_bad_worker_settings_are_refused(
    bundle: Path, extra: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["serve", str(bundle), *extra]) == 2
    assert message in capsys.readouterr().err


def test_run_workers_refuses_what_it_cannot_serve(bundle: Path) -> None:
    config = {"bundle_path": str(bundle)}
    with pytest.raises(ConfigError, match="run_workers is for 2 or more workers, got 1"):
        run_workers(config, host="127.0.0.1", port=9003, workers=1)
    with pytest.raises(ValueError, match="needs a fixed --port"):
        run_workers(config, host="127.0.0.1", port=0, workers=2)
    with socket.socket() as taken:  # a listener without SO_REUSEPORT holds the port
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(ValueError, match=f"cannot listen on 127.0.0.1:{port}"):
            run_workers(config, host="127.0.0.1", port=port, workers=2)


def test_worker_exit_is_an_lstmkit_error() -> None:
    """The CLI catches LstmkitError once: a dead worker's message reaches the user (exit 2)."""
    assert issubclass(WorkerExit, LstmkitError) and issubclass(WorkerExit, RuntimeError)


def test_the_app_factory_does_not_import_the_server() -> None:
    """server -> app, never back: building an app loads neither uvicorn nor the server module."""
    code = (
        "import sys, lstmkit.serve; "
        "print(sorted(m for m in ('uvicorn', 'lstmkit.serve.server') if m in sys.modules))"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True
    )
    assert out.stdout.strip() == "[]", out.stderr


def _workers(pid: int) -> list[int]:
    """The worker processes (multiprocessing 'spawn' children) of ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"spawn_main" in cmdline:
                out.append(int(entry.name))
    return out


def _start_time(pid: int) -> int:
    """When process ``pid`` started (clock ticks since boot, /proc/PID/stat field 22): tells the
    process apart from a later one given the same pid."""
    return int((Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split())[19])


def _running(pid: int, start: int) -> bool:
    """Process ``pid`` that started at ``start`` still exists and has not exited (a zombie, dead
    but not yet reaped, counts as exited)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return False
    return int(fields[19]) == start and fields[0] != "Z"


def _sockets(pid: int) -> int:
    """Open sockets of process ``pid`` (Linux /proc)."""
    fds = Path(f"/proc/{pid}/fd")
    return sum(1 for fd in fds.iterdir() if os.readlink(fd).startswith("socket:"))


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts workers through /proc")
def test_two_real_workers_answer_survive_a_kill_and_stop_together(
    bundle: Path, tmp_path: Path
) -> None:
    port = free_port()
    cmd = [sys.executable, "-m", "lstmkit", "serve", str(bundle), "--port", str(port)]
    log = tmp_path / "server.log"
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            [*cmd, "--workers", "2", "--threads", "1"], stdout=out, stderr=subprocess.STDOUT
        )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        expected = load(bundle).predict(TEXTS)
        for _ in range(4):  # new connections: whichever worker accepts, the answer is the same
            with httpx.Client(base_url=url, timeout=10) as client:
                got = client.post("/v1/predict", json={"texts": TEXTS}).json()["predictions"]
            assert [p["label"] for p in got] == [p["label"] for p in expected]
            for g, e in zip(got, expected, strict=True):
                assert g["scores"] == pytest.approx(e["scores"], abs=1e-6)
        workers = _workers(proc.pid)
        assert len(workers) == 2
        # both listen from the first answer on (they wait for each other to load): 16 new
        # connections, spread by the kernel, reach both (all on one: p = 2 / 2**16)
        before = {w: _sockets(w) for w in workers}
        clients = [httpx.Client(base_url=url, timeout=10) for _ in range(16)]
        try:
            for client in clients:
                assert client.post("/v1/predict", json={"texts": TEXTS[:1]}).status_code == 200
            assert all(_sockets(w) > before[w] for w in workers), (before, workers)
        finally:
            for client in clients:
                client.close()
        # a worker killed outright is started again while the other keeps answering: a client
        # loop runs through the kill; a request whose connection died with the worker is sent
        # again on a new connection (counted), and every request is answered 200 in the end
        killed, other = workers
        other_start = _start_time(other)
        tally: dict[str, Any] = {"ok": 0, "retried": 0, "failed": []}
        stop = threading.Event()

        def drive() -> None:
            client = httpx.Client(base_url=url, timeout=10)
            try:
                while not stop.is_set():
                    for _ in range(3):
                        try:
                            r = client.post("/v1/predict", json={"texts": TEXTS[:1]})
                        except httpx.TransportError:
                            tally["retried"] += 1
                            client.close()
                            client = httpx.Client(base_url=url, timeout=10)
                            continue
                        if r.status_code == 200:
                            tally["ok"] += 1
                        else:
                            tally["failed"].append(r.status_code)
                        break
                    else:
                        tally["failed"].append("3 tries")
            finally:
                client.close()

        loaders = [threading.Thread(target=drive) for _ in range(4)]
        for t in loaders:
            t.start()
        try:
            while tally["ok"] < 20:
                assert time.monotonic() < deadline + 60, tally
                time.sleep(0.05)
            os.kill(killed, signal.SIGKILL)
            deadline = time.monotonic() + 60
            while True:  # a new worker in the dead one's place, listening (its model loaded)
                now = [w for w in _workers(proc.pid) if w not in (killed, other)]
                if now and _sockets(now[0]) > 0 and "started it again" in log.read_text():
                    break
                assert proc.poll() is None, log.read_text()
                assert time.monotonic() < deadline, (now, log.read_text())
                time.sleep(0.1)
            after = tally["ok"]
            while tally["ok"] < after + 20:  # answered after the restart too
                assert time.monotonic() < deadline, tally
                time.sleep(0.05)
        finally:
            stop.set()
            for t in loaders:
                t.join(30)
        assert tally["failed"] == [] and tally["ok"] >= 40, tally
        assert _running(other, other_start)  # the other worker went on, never restarted
        line = rf"worker lstmkit-serve-\d \(pid {killed}\) killed by SIGKILL; started it again"
        assert re.search(line, log.read_text()), log.read_text()
        # the new worker listens once its model is loaded: new connections reach it then
        new = next(w for w in _workers(proc.pid) if w != other)
        base = _sockets(new)
        while True:
            clients = [httpx.Client(base_url=url, timeout=10) for _ in range(16)]
            try:
                for client in clients:
                    assert client.post("/v1/predict", json={"texts": TEXTS[:1]}).status_code == 200
                if _sockets(new) > base:
                    break
            finally:
                for client in clients:
                    client.close()
            assert time.monotonic() < deadline, "the restarted worker gets no connection"
            time.sleep(0.2)
        # Ctrl-C stops the server and both workers with it (joined before it exits)
        current = [(w, _start_time(w)) for w in (new, other)]
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 0, log.read_text()
        assert not any(_running(*w) for w in current), "a worker outlived the server"
    finally:
        if proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


ORPHAN = """
import multiprocessing, os, sys, time
from lstmkit.serve.server import _stop_with_parent

def child(parent):
    _stop_with_parent(parent)
    time.sleep(120)

if __name__ == "__main__":
    proc = multiprocessing.get_context("spawn").Process(target=child, args=(os.getpid(),))
    proc.start()
    print(proc.pid, flush=True)
    time.sleep(1)
    os._exit(0)  # gone without stopping its child, as after SIGKILL
"""


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="watches /proc")
def test_a_worker_stops_when_its_parent_is_killed(tmp_path: Path) -> None:
    script = tmp_path / "orphan.py"
    script.write_text(ORPHAN)
    out = tmp_path / "out.txt"
    with open(out, "w") as fh:  # a file, not a pipe: the child holds it open while it lives
        subprocess.run([sys.executable, str(script)], stdout=fh, timeout=60, check=True)
    child = int(out.read_text().split()[0])
    deadline = time.monotonic() + 15
    while Path(f"/proc/{child}").exists():
        stat = Path(f"/proc/{child}/stat").read_text() if Path(f"/proc/{child}").exists() else ""
        if stat and stat.rsplit(")", 1)[1].split()[0] == "Z":  # exited, not yet reaped
            break
        assert time.monotonic() < deadline, "the orphaned worker is still running"
        time.sleep(0.1)
