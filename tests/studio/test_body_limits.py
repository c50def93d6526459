"""The studio's request bodies are bounded however they arrive: a real ``lstmkit studio`` process
answers a 200 MB chunked body on its JSON API (POST /api/runs) and on a mounted model route
(/models/<id>/v1/predict) with 413 as soon as the limit is passed, without reading it (its memory
does not grow); chunked bodies under the limits are answered; the upload route keeps its own,
larger limit."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from browser_support import free_port
from http_support import (
    HUGE,
    huge_predict_body,
    read_response,
    rss_kib,
    running_process,
    send_chunked,
)
from studio_support import make_client
from test_api import make_bundle
from test_routes_uploads import topic_csv

from lstmkit.serve.app import max_body_bytes
from lstmkit.studio.app import MAX_JSON_BODY_BYTES

send_chunked = send_chunked

MODEL = "0123abcd"  # a run id whose bundle sits in HOME/bundles (no run in the store needed)


@pytest.fixture(scope="module")
def studio(
    tmp_path_factory: pytest.TempPathFactory, recipes: Path, run_env: dict[str, str]
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    root = tmp_path_factory.mktemp("studio-bodylimit")
    home = root / "home"
    shutil.copytree(make_bundle(root), home / "bundles" / MODEL)
    port = free_port()
    cmd = [sys.executable, "-m", "lstmkit", "studio", "--home", str(home)]
    command = [*cmd, "--recipes", str(recipes), "--port", str(port)]
    with running_process(command, {**os.environ, **run_env}, port, root / "studio.log") as proc:
        yield port, proc


def _huge_run_body() -> Iterator[bytes]:
    yield b'{"recipe": "tiny", "name": "'
    yield from huge_predict_body()


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
@pytest.mark.parametrize(
    ("path", "body", "limit"),
    [
        ("/api/runs", _huge_run_body, MAX_JSON_BODY_BYTES),
        (f"/models/{MODEL}/v1/predict", huge_predict_body, max_body_bytes(64, 20000)),
    ],
)
def test_a_200_mb_chunked_body_is_refused_as_it_arrives(
    studio: tuple[int, subprocess.Popen[bytes]], path: str, body: object, limit: int
) -> None:
    port, proc = studio
    ok = {"texts": ["a good film"]}  # loads the mounted model (its memory is not the body's)
    predict = f"http://127.0.0.1:{port}/models/{MODEL}/v1/predict"
    assert httpx.post(predict, json=ok, timeout=60).status_code == 200
    before = rss_kib(proc.pid)
    assert callable(body)
    got = send_chunked("127.0.0.1", port, path, body())
    grown_mib = (rss_kib(proc.pid) - before) / 1024
    print(
        f"studio {path}, {HUGE // 2**20} MiB chunked: {got['status']} after "
        f"{got['seconds']:.3f} s, {got['sent']} bytes sent, RSS grew {grown_mib:.1f} MiB"
    )
    assert got["status"] == 413, got
    assert got["json"]["detail"].startswith("request body too large"), got
    assert f"at most {limit}" in got["json"]["detail"]
    assert got["sent"] < 20 * 1024 * 1024, got
    assert got["seconds"] < 10, got
    assert grown_mib < 50, grown_mib
    assert httpx.post(predict, json=ok).status_code == 200  # still answering


def test_chunked_bodies_under_the_limits_are_answered(
    studio: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = studio
    body = json.dumps({"recipe": "no-such-recipe"}).encode()
    got = send_chunked("127.0.0.1", port, "/api/runs", iter([body[:5], body[5:]]))
    assert got["status"] == 422, got  # read and validated: the recipe does not exist
    assert "no-such-recipe" in json.dumps(got["json"])
    body = json.dumps({"texts": ["a good film", "bad plot"]}).encode()
    got = send_chunked("127.0.0.1", port, f"/models/{MODEL}/v1/predict", iter([body[:9], body[9:]]))
    assert got["status"] == 200, got
    assert len(got["json"]["predictions"]) == 2


def test_a_content_length_over_the_limit_is_refused_before_reading(
    studio: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = studio
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(
            f"POST /api/runs HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {HUGE}\r\n\r\n".encode()
        )
        status, _, body = read_response(sock, timeout=10)  # the head and body may come apart
    assert status == 413, body
    detail = json.loads(body)["detail"]
    assert detail == f"request body too large: {HUGE} bytes, at most {MAX_JSON_BODY_BYTES}"


def test_uploads_keep_their_own_limit(
    tmp_path: Path, recipes: Path, run_env: dict[str, str]
) -> None:
    """A chunked upload over the JSON limit is stored (the upload route streams it into a file
    under max_upload_bytes); over max_upload_bytes it is still 413."""
    data = topic_csv(n=20_000)
    assert MAX_JSON_BODY_BYTES < len(data) < 3 * MAX_JSON_BODY_BYTES

    def chunks(blob: bytes) -> Iterator[bytes]:
        for i in range(0, len(blob), 65536):
            yield blob[i : i + 65536]

    with make_client(tmp_path / "home", recipes, run_env, max_upload_bytes=4 * 2**20) as client:
        r = client.post("/api/uploads?filename=big.csv", content=chunks(data))
        assert r.status_code == 201, r.text
        r = client.post("/api/uploads?filename=huge.csv", content=chunks(data * 3))
        assert r.status_code == 413
        assert "upload limit" in r.json()["detail"]
