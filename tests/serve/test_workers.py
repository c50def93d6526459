"""``lstmkit serve --workers N``: the arguments reach every worker process, and a real server
with two workers answers like the in-process predictor."""

from __future__ import annotations

import gc
import json
import os
import signal
import subprocess
import sys
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
from lstmkit.serve.app import WORKER_CONFIG_ENV, worker_app


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("workers"))


def test_cli_workers_hand_their_arguments_to_the_worker_app(
    bundle: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []

    def fake_run(app: Any, **kw: Any) -> None:  # what each worker process would build
        calls.append({"app": app, "env": os.environ.get(WORKER_CONFIG_ENV), **kw})

    monkeypatch.setattr(uvicorn, "run", fake_run)
    args = ["serve", str(bundle), "--workers", "2", "--threads", "1", "--no-access-log"]
    assert main([*args, "--token", "t", "--max-wait-ms", "5", "--port", "9002"]) == 0
    (call,) = calls
    assert call["app"] == "lstmkit.serve.app:worker_app" and call["factory"] is True
    assert call["workers"] == 2 and call["access_log"] is False
    assert call["host"] == "127.0.0.1" and call["port"] == 9002
    assert WORKER_CONFIG_ENV not in os.environ  # set only while uvicorn runs
    config = json.loads(call["env"])
    assert config == {
        "bundle_path": str(bundle.resolve()),
        "token": "t",
        "micro_batch": True,
        "max_wait_ms": 5.0,
        "torch_threads": 1,
        "freeze_gc": True,
    }

    threads: list[int] = []
    frozen: list[str] = []
    # not this test process's threads and garbage collector
    monkeypatch.setattr(torch, "set_num_threads", threads.append)
    monkeypatch.setattr(gc, "freeze", lambda: frozen.append("freeze"))
    monkeypatch.setattr(gc, "unfreeze", lambda: frozen.append("unfreeze"))
    monkeypatch.setenv(WORKER_CONFIG_ENV, call["env"])
    app = worker_app()
    assert app.state.token == "t"
    with TestClient(app) as c:
        assert threads == [1] and frozen == ["freeze"]
        assert app.state.batcher.max_wait_ms == 5.0
        ok = {"Authorization": "Bearer t"}
        r = c.post("/v1/predict", json={"texts": TEXTS}, headers=ok)
        assert r.status_code == 200
        assert [p["label"] for p in r.json()["predictions"]] == [
            p["label"] for p in load(bundle).predict(TEXTS)
        ]
    assert frozen == ["freeze", "unfreeze"]


def test_one_worker_runs_the_app_in_process(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    assert main(["serve", str(bundle)]) == 0
    assert not isinstance(calls[0]["app"], str) and "workers" not in calls[0]
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


def test_worker_app_needs_its_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(WORKER_CONFIG_ENV, raising=False)
    with pytest.raises(RuntimeError, match="is not set"):
        worker_app()
    monkeypatch.setenv(WORKER_CONFIG_ENV, '{"token": null}')
    with pytest.raises(RuntimeError, match="is not lstmkit serve's JSON"):
        worker_app()


def _children(pid: int) -> list[int]:
    """Processes whose parent is ``pid`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == pid:
                out.append(int(entry.name))
    return out


@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="counts workers through /proc")
def test_two_real_workers_answer(bundle: Path, tmp_path: Path) -> None:
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
        assert len(_children(proc.pid)) >= 2  # the two workers (and uvicorn's helpers)
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
