"""Request bodies bounded however they arrive (lstmkit.serve.bodylimit): a real ``lstmkit serve``
process answers a 200 MB chunked body with 413 as soon as the limit is passed, without reading it
(its memory does not grow); a chunked body under the limit is answered; a Content-Length over the
limit gets 413 before a byte is sent. Plus the middleware alone, in process."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from browser_support import free_port
from fastapi import FastAPI, Request
from fastapi.testclient import TestClient
from http_support import (
    HUGE,
    huge_predict_body,
    read_response,
    rss_kib,
    running_process,
    send_chunked,
)
from test_api import make_bundle

from lstmkit.serve.app import max_body_bytes
from lstmkit.serve.bodylimit import BodyLimit

LIMIT = max_body_bytes(64, 20000)  # lstmkit serve's defaults: 125,120 bytes


@pytest.fixture(scope="module")
def server(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[int, subprocess.Popen[bytes]]]:
    """``lstmkit serve`` (one process: the worker is the server) on 127.0.0.1."""
    root = tmp_path_factory.mktemp("bodylimit")
    bundle = make_bundle(root)
    port = free_port()
    command = [sys.executable, "-m", "lstmkit", "serve", str(bundle), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    with running_process(command, env, port, root / "server.log") as proc:
        yield port, proc


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="reads VmRSS from /proc")
def test_a_200_mb_chunked_body_is_refused_as_it_arrives(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, proc = server
    ok = {"texts": ["a good film"]}
    assert httpx.post(f"http://127.0.0.1:{port}/v1/predict", json=ok).status_code == 200
    before = rss_kib(proc.pid)
    got = send_chunked("127.0.0.1", port, "/v1/predict", huge_predict_body())
    grown_mib = (rss_kib(proc.pid) - before) / 1024
    print(
        f"200 MB chunked: {got['status']} after {got['seconds']:.3f} s, "
        f"{got['sent']} bytes sent, server RSS grew {grown_mib:.1f} MiB"
    )
    assert got["status"] == 413, got
    assert got["json"]["detail"].startswith("request body too large"), got
    assert f"at most {LIMIT}" in got["json"]["detail"]
    assert got["headers"]["connection"] == "close"
    assert got["sent"] < 20 * 1024 * 1024, got  # the client stopped long before 200 MB
    assert got["seconds"] < 10, got
    assert grown_mib < 50, grown_mib
    # the server goes on answering
    assert httpx.post(f"http://127.0.0.1:{port}/v1/predict", json=ok).status_code == 200


def test_a_chunked_body_under_the_limit_is_answered(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = server
    body = json.dumps({"texts": ["a good film", "bad plot " * 100]}).encode()
    chunks = iter([body[i : i + 7] for i in range(0, len(body), 7)])  # many small chunks
    got = send_chunked("127.0.0.1", port, "/v1/predict", chunks)
    assert got["status"] == 200, got
    assert len(got["json"]["predictions"]) == 2
    # just under the byte limit, but over max_chars: the route's own 413 on the characters
    texts = ["x" * 9000] * 3
    body = json.dumps({"texts": texts}).encode()
    assert len(body) < LIMIT
    got = send_chunked("127.0.0.1", port, "/v1/predict", iter([body[:5000], body[5000:]]))
    assert got["status"] == 413 and "too many characters" in got["json"]["detail"], got


def test_a_content_length_over_the_limit_is_refused_before_reading(
    server: tuple[int, subprocess.Popen[bytes]],
) -> None:
    port, _ = server
    with socket.create_connection(("127.0.0.1", port), timeout=30) as sock:
        sock.sendall(  # the headers only: the 413 comes without a byte of the body
            f"POST /v1/predict HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {HUGE}\r\n\r\n".encode()
        )
        status, headers, body = read_response(sock, timeout=10)
    assert status == 413
    assert json.loads(body)["detail"] == (f"request body too large: {HUGE} bytes, at most {LIMIT}")
    assert headers["connection"] == "close"


def _echo_app(limit: int, exempt: tuple[str, ...] = ()) -> FastAPI:
    app = FastAPI()

    @app.post("/json")
    async def echo(body: dict[str, Any]) -> dict[str, Any]:
        return {"keys": sorted(body)}

    @app.post("/raw")
    async def raw(request: Request) -> dict[str, int]:
        return {"bytes": len(await request.body())}

    @app.post("/stream")
    async def stream(request: Request) -> dict[str, int]:
        n = 0
        async for chunk in request.stream():
            n += len(chunk)
        return {"bytes": n}

    app.add_middleware(BodyLimit, max_bytes=limit, exempt=exempt)
    return app


def _chunks(n: int, size: int) -> Iterator[bytes]:
    for _ in range(n):
        yield b"y" * size


@pytest.mark.parametrize("path", ["/json", "/raw", "/stream"])
def test_the_middleware_counts_every_kind_of_read(path: str) -> None:
    """However the route reads (FastAPI's JSON body, request.body(), request.stream()): a
    chunked body over the limit is a 413 with the JSON detail, under it the route answers."""
    with TestClient(_echo_app(1000)) as client:
        r = client.post(path, content=_chunks(50, 100))  # a generator: chunked, no length
        assert r.status_code == 413, r.text
        # (the test client hands the generator's body over in one message)
        assert r.json() == {"detail": "request body too large: 5000 bytes so far, at most 1000"}
        r = client.post(
            path, content=iter([b'{"a": ', b"1}"]), headers={"content-type": "application/json"}
        )
        assert r.status_code == 200, r.text
        r = client.post(path, content=b"z" * 1001)  # with a Content-Length
        assert r.status_code == 413
        assert r.json() == {"detail": "request body too large: 1001 bytes, at most 1000"}


def test_exempt_paths_pass_untouched() -> None:
    with TestClient(_echo_app(1000, exempt=("/stream",))) as client:
        assert client.post("/stream", content=_chunks(50, 100)).json() == {"bytes": 5000}
        assert client.post("/raw", content=_chunks(50, 100)).status_code == 413


def test_a_limit_below_one_byte_is_refused() -> None:
    with pytest.raises(ValueError, match="max_bytes must be >= 1, got 0"):
        BodyLimit(FastAPI(), max_bytes=0)
