"""``lstmkit studio`` on the command line: arguments, errors, and Ctrl-C while a run trains and a
browser follows it live (the stream ends, the run checkpoints and is marked interrupted)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
from studio_support import SLOW_RECIPE

from lstmkit.cli import main


def test_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["studio", "--help"]) == 0
    out = capsys.readouterr().out
    for option in ("--host", "--port", "--home", "--recipes", "--token", "--max-concurrent"):
        assert option in out
    assert "127.0.0.1" in out


def test_bad_arguments(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["studio", "--home", str(tmp_path), "--recipes", str(tmp_path / "none")])
    assert code == 2
    assert "lstmkit studio: error: recipe folder" in capsys.readouterr().err
    assert main(["studio", "--max-concurrent", "0"]) == 2
    assert "expected a positive integer, got 0" in capsys.readouterr().err


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow  # ~10 s: a real studio process and a real run
def test_ctrl_c_interrupts_the_running_run(
    tmp_path: Path, run_env: dict[str, str], recipes: Path
) -> None:
    (recipes / "slow.toml").write_text(SLOW_RECIPE)
    port = _free_port()
    studio = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "lstmkit",
            "studio",
            "--home",
            str(tmp_path / "home"),
            "--recipes",
            str(recipes),
            "--port",
            str(port),
        ],
        env={**os.environ, **run_env},
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                httpx.get(base + "/health").raise_for_status()
                break
            except httpx.TransportError:
                if time.monotonic() > deadline:
                    raise
                time.sleep(0.1)
        body = {"recipe": "slow", "dataset": "reuters", "max_steps": 100_000}
        run_id = httpx.post(base + "/api/runs", json=body).json()["id"]
        while not httpx.get(f"{base}/api/runs/{run_id}").json()["rows"]:
            assert time.monotonic() < deadline + 30
            time.sleep(0.1)
        events: list[str] = []

        def follow() -> None:  # a browser watching the run live
            with httpx.stream("GET", f"{base}/api/runs/{run_id}/events", timeout=60) as r:
                events.extend(r.iter_lines())

        watcher = threading.Thread(target=follow, daemon=True)
        watcher.start()
        time.sleep(1.0)
        t0 = time.monotonic()
        studio.send_signal(signal.SIGINT)
        # uvicorn shuts down, then re-raises the SIGINT it caught (the shell sees Ctrl-C)
        assert studio.wait(timeout=30) in (0, -signal.SIGINT)
        stopped_in = time.monotonic() - t0
        watcher.join(timeout=5)
        assert not watcher.is_alive()  # the live stream ended with the server
    finally:
        if studio.poll() is None:
            studio.kill()
            studio.wait()
    log = studio.stdout.read().decode() if studio.stdout else ""
    assert stopped_in < 15, log
    assert "timeout graceful shutdown exceeded" not in log
    assert any(line.startswith("event: metrics") for line in events)
    import sqlite3

    con = sqlite3.connect(tmp_path / "home" / "studio.sqlite3")
    status, error = con.execute("SELECT status, error FROM runs WHERE id = ?", (run_id,)).fetchone()
    con.close()
    assert status == "interrupted", error
    assert (tmp_path / "home" / "runs" / run_id / "checkpoints" / "latest").is_file()
    history = (tmp_path / "home" / "runs" / run_id / "history.jsonl").read_text().splitlines()
    assert json.loads(history[0])["step"] == 2
