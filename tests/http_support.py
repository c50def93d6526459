"""A raw HTTP/1.1 client for the body-limit tests of serve and the studio: chunked bodies made
lazily (never held whole), sent until the server answers; the server's resident memory."""

from __future__ import annotations

import json
import select
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx

HUGE = 200 * 1024 * 1024  # the chunked body sent "far over the limit"
CHUNK = 64 * 1024


def rss_kib(pid: int) -> int:
    """Resident memory of process ``pid`` in KiB (Linux /proc)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS in /proc/{pid}/status")


def read_response(sock: socket.socket, timeout: float = 30.0) -> tuple[int, dict[str, str], bytes]:
    """Read one HTTP/1.1 response with a Content-Length off ``sock``."""
    sock.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        if not piece:
            break
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    status = int(lines[0].split()[1])
    headers = {k.strip().lower(): v.strip() for k, _, v in (x.partition(":") for x in lines[1:])}
    length = int(headers.get("content-length", "0"))
    while len(body) < length:
        piece = sock.recv(65536)
        if not piece:
            break
        body += piece
    return status, headers, body


def send_chunked(
    host: str, port: int, path: str, chunks: Iterator[bytes], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """POST ``chunks`` with ``Transfer-Encoding: chunked`` over a raw socket, made lazily, and
    stop sending as soon as the server answers. Returns the status, the JSON body, how many body
    bytes were sent and the seconds from the first byte to the answer."""
    extra = "".join(f"{k}: {v}\r\n" for k, v in (headers or {}).items())
    with socket.create_connection((host, port), timeout=30) as sock:
        sock.sendall(
            f"POST {path} HTTP/1.1\r\nHost: {host}:{port}\r\n"
            f"Content-Type: application/json\r\nTransfer-Encoding: chunked\r\n{extra}\r\n".encode()
        )
        sent = 0
        t0 = time.monotonic()
        finished = True
        for chunk in chunks:
            if select.select([sock], [], [], 0)[0]:  # the server has answered
                finished = False
                break
            try:
                sock.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            except (BrokenPipeError, ConnectionResetError):
                finished = False
                break
            sent += len(chunk)
        if finished:
            sock.sendall(b"0\r\n\r\n")
        status, head, body = read_response(sock)
        return {
            "status": status,
            "headers": head,
            "json": json.loads(body),
            "sent": sent,
            "seconds": time.monotonic() - t0,
        }


def huge_predict_body(total: int = HUGE) -> Iterator[bytes]:
    """``{"texts": ["xxxx...`` of ``total`` bytes, made chunk by chunk (never held whole)."""
    yield b'{"texts": ["'
    filler = b"x" * CHUNK
    for _ in range(total // CHUNK):
        yield filler


@contextmanager
def running_process(
    command: list[str], env: dict[str, str], port: int, log: Path
) -> Iterator[subprocess.Popen[bytes]]:
    """Start a server process (output to ``log``), wait up to 60 s for its ``/health`` on
    127.0.0.1:``port``, yield it; stop it afterwards and check its log holds no traceback."""
    with open(log, "wb") as out:
        proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                time.sleep(0.2)
        yield proc
    finally:
        proc.terminate()
        proc.wait(timeout=30)
    assert "Traceback" not in log.read_text(), log.read_text()
