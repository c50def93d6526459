"""Operating lstmkit serve: the token from a file or LSTMKIT_TOKEN (--token warns), /health
apart from /ready, /metrics counting a test's requests, several models in one server
(/models/<name>/v1/..., GET /v1/models), and SIGTERM draining the generations in flight."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import free_port
from fastapi.testclient import TestClient
from served_runs import forecast_run, language_model_run
from test_api import make_bundle

from lstmkit.errors import ConfigError
from lstmkit.serve import create_app
from lstmkit.serve.app import create_multi_app, model_names
from lstmkit.serve.auth import TOKEN_ENV, resolve_token
from lstmkit.tasks.language_model import sample_text


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("ops")
    return {
        "classifier": make_bundle(root),
        "sales": forecast_run(root),
        "lm": language_model_run(root),
    }


def test_the_token_comes_from_one_place(tmp_path: Path) -> None:
    file = tmp_path / "token"
    file.write_text("s3cret\nignored\n", encoding="utf-8")
    assert resolve_token(None, file, {}) == "s3cret"
    assert resolve_token(None, None, {TOKEN_ENV: " t0k "}) == "t0k"
    assert resolve_token(None, None, {}) is None
    with pytest.warns(UserWarning, match="visible to every user of this machine"):
        assert resolve_token("flag", None, {}) == "flag"
    for flag, path, env, message in [
        ("a", file, {}, "give the token one way, not --token and --token-file"),
        (None, file, {TOKEN_ENV: "x"}, "not --token-file and LSTMKIT_TOKEN"),
        (None, tmp_path / "missing", {}, "cannot be read"),
        (None, None, {TOKEN_ENV: "  "}, "LSTMKIT_TOKEN is set but empty"),
    ]:
        with pytest.raises(ConfigError, match=message):
            resolve_token(flag, path, env)
    (tmp_path / "empty").write_text("\n", encoding="utf-8")
    with pytest.raises(ConfigError, match="its first line is empty"):
        resolve_token(None, tmp_path / "empty", {})


def test_health_ready_and_metrics(runs: dict[str, Path]) -> None:
    app = create_app(runs["classifier"])
    c = TestClient(app)  # not entered: alive, not ready
    assert c.get("/health").json() == {"status": "ok"}
    assert c.get("/ready").status_code == 503
    with TestClient(app) as c:
        assert c.get("/ready").json() == {"status": "ready"}
        for _ in range(3):
            assert c.post("/v1/predict", json={"texts": ["good film"]}).status_code == 200
        assert c.post("/v1/predict", json={"texts": []}).status_code == 422
        text = c.get("/metrics").text
    assert 'lstmkit_requests_total{method="POST",route="/v1/predict",status="200"} 3.0' in text
    assert 'lstmkit_requests_total{method="POST",route="/v1/predict",status="422"} 1.0' in text
    assert 'lstmkit_request_seconds_count{route="/v1/predict"} 4.0' in text
    assert 'lstmkit_batch_size_count{model="bundle"} 3.0' in text
    assert 'lstmkit_queue_depth{model="bundle"} 0.0' in text
    assert 'lstmkit_model_load_seconds{model="bundle"}' in text


def test_several_models_in_one_server(runs: dict[str, Path]) -> None:
    names = model_names([runs["classifier"], runs["sales"], runs["lm"]])
    assert list(names) == ["bundle", "sales-run", "lm-run"]
    with pytest.raises(ConfigError, match="two models named 'bundle'"):
        model_names([runs["classifier"], runs["classifier"]])
    with TestClient(create_multi_app(names, token="t")) as c:
        auth = {"Authorization": "Bearer t"}
        assert c.get("/v1/models").status_code == 401
        listed = c.get("/v1/models", headers=auth).json()["models"]
        assert [(m["name"], m["task"], m["path"]) for m in listed] == [
            ("bundle", "classify", "/models/bundle/v1"),
            ("sales-run", "forecast", "/models/sales-run/v1"),
            ("lm-run", "language_model", "/models/lm-run/v1"),
        ]
        assert listed[1]["inputs"]["lookback"] == 24 and listed[1]["metrics"]["test"]
        r = c.post("/models/bundle/v1/predict", json={"texts": ["good"]}, headers=auth)
        assert r.status_code == 200
        r = c.post("/models/lm-run/v1/generate", json={"prime": "t", "seed": 1}, headers=auth)
        assert r.json()["text"] == sample_text(runs["lm"], "t", 200, seed=1)
        assert c.post("/models/lm-run/v1/predict", json={"texts": ["a"]}).status_code == 404
        assert c.get("/ready").status_code == 200
        assert c.get("/models/sales-run/").status_code == 200  # each model's page
        text = c.get("/metrics").text
    assert (
        'lstmkit_requests_total{method="POST",route="/models/bundle/v1/predict",status="200"} 1.0'
        in text
    )


def test_sigterm_drains_the_generations_in_flight(runs: dict[str, Path]) -> None:
    """Four streams open, SIGTERM: every one ends whole (equal to lstmkit sample), the server
    then exits, and a new connection after it is refused."""
    port = free_port()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "lstmkit", "serve", str(runs["lm"]), "--port", str(port)]
    proc = subprocess.Popen([*cmd, "--no-access-log"], env=env, stderr=subprocess.PIPE)
    url = f"http://127.0.0.1:{port}"
    try:
        for _ in range(600):
            try:
                if httpx.get(f"{url}/ready").status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.1)
        started = threading.Barrier(5)
        results: dict[int, Any] = {}

        def stream(seed: int) -> None:
            body = {"prime": "the ", "length": 2000, "seed": seed, "stream": True}
            with httpx.stream("POST", f"{url}/v1/generate", json=body, timeout=120) as r:
                events = r.iter_text()
                first = next(events)
                started.wait()
                results[seed] = (r.status_code, first + "".join(events))

        threads = [threading.Thread(target=stream, args=(s,)) for s in range(4)]
        for t in threads:
            t.start()
        started.wait()
        proc.send_signal(signal.SIGTERM)
        for t in threads:
            t.join(120)
        # uvicorn's graceful shutdown, then the signal raised again: the status says SIGTERM
        assert proc.wait(60) in (0, -signal.SIGTERM)
        assert proc.stderr is not None
        log = proc.stderr.read().decode()
        assert "Waiting for connections to close" in log or "Finished server process" in log, log
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    for seed in range(4):
        code, text = results[seed]
        assert code == 200 and text.endswith("data: [DONE]\n\n")
        events = [e.removeprefix("data: ") for e in text.split("\n\n") if e][:-1]
        pieces = [json.loads(e) for e in events]
        assert pieces[-1] == {"done": True, "seed": seed, "length": 2000}
        got = "the " + "".join(p["text"] for p in pieces[:-1])
        assert got == sample_text(runs["lm"], "the ", 2000, seed=seed)
    with pytest.raises(httpx.ConnectError):
        httpx.get(f"{url}/health")
