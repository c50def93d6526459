"""Load test of ``lstmkit serve``: requests/s and latency under N concurrent clients.

Starts ``lstmkit serve`` (uvicorn, a subprocess) on 127.0.0.1 at a free port for a bundle or run
directory, waits for ``/health``, then drives ``POST /v1/predict`` from N concurrent clients
(asyncio; one keep-alive connection each, or ``--client httpx``) for a fixed time per case, with real IMDB test reviews read
straight from the aclImdb tarball (no extraction). The server is always terminated at the end. All
traffic stays on 127.0.0.1. One JSON object per line on stdout, the run header first::

    {"bench": "serve-run", "command": "...", "seconds": 23.1, "machine": "x86_64, 2 cpus", ...}
    {"bench": "serve", "case": "predict-1text-64clients", "ours": 812.0, "unit": "req/s",
     "p50_ms": 70.1, "p99_ms": 120.3, "errors": 0, "predictions_per_s": 812.0, ...}

Each ``--server`` option is one server configuration (``lstmkit serve`` arguments; default: micro-
batching on and off, one worker and two): every configuration is started in turn and driven with
every ``--texts-per-request`` value; the case name ends with the configuration
(``predict-1text-64clients-2workers``). Client and server share the machine: ``server_cpu`` (all
the server's processes) and ``client_cpu`` (CPU seconds per wall second) say which of them the
cores went to.

The goal (issue 7): >= 1500 predictions/s with p99 <= 50 ms and 0 errors, 64 clients, 2 cores.
Each client sends its next request when the last one is answered, so by Little's law the mean
latency is 64 / (requests/s): p99 <= 50 ms needs >= 64 / 0.05 = 1280 requests/s even if every
request took the same time. Texts sent together in one request do not help there (16 texts per
request at 1500 predictions/s is 94 requests/s, 680 ms each), so the goal is in effect
>= 1500 requests/s of one text each, with a tight latency spread (mean 43 ms, p99 <= 50 ms).

``--forecast RUN --history CSV`` adds a ``forecast-...`` case: the same clients POST the last
``lookback`` rows of CSV (the run's columns) as JSON to ``/v1/forecast`` (requests/s, p50, p99).
``--generate RUN`` adds a ``generate-...`` case: ``--generate-clients`` clients (default 4, the
server's generation slots) stream ``--generate-length`` characters each from ``/v1/generate``
one after another: characters/s over all of them, and the time to the first character (p50,
p99). Both run after the classifier's cases, in the same run, so their figures share its load;
their rows are ``"bench": "serve-forecast"`` and ``"serve-generate"`` (the classifier's stay
``"serve"``).

Usage::

    python benchmarks/serve_load.py [RUN_OR_BUNDLE] [--clients 64] [--seconds 20]
        [--texts-per-request 1 16] [--server "ARGS" ...] [--client raw|httpx] [--data DIR]
        [--forecast RUN --history CSV] [--generate RUN] [--out results/bench-serve.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import os
import platform
import re
import shlex
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from lstmkit.files import atomic_write_text

HOST = "127.0.0.1"
ARCHIVE = "aclImdb_v1_text.tar.gz"
REVIEW = re.compile(r"^aclImdb/test/(pos|neg)/[^/]+\.txt$")


# the server configurations measured by default (lstmkit serve arguments)
DEFAULT_SERVERS = [
    "",
    "--no-micro-batch",
    "--workers 2 --no-access-log",
    "--workers 2 --no-access-log --no-micro-batch",
]


def config_label(server_args: list[str]) -> str:
    """A case-name suffix for a server configuration: '1worker', '2workers-no-micro-batch', ..."""
    rest = list(server_args)
    workers = 1
    if "--workers" in rest:
        at = rest.index("--workers")
        workers = int(rest[at + 1])
        del rest[at : at + 2]
    parts = [f"{workers}worker{'s' if workers > 1 else ''}"]
    for a in rest:  # '--threads 1 --no-access-log' -> 'threads1-no-access-log'
        if a.startswith("--") or not parts:
            parts.append(a.lstrip("-"))
        else:
            parts[-1] += a
    return "-".join(parts)


def log(message: str) -> None:
    """Progress on stderr (stdout holds only the JSON records)."""
    print(message, file=sys.stderr, flush=True)


def find_archive(data_dir: Path | None) -> Path:
    """The aclImdb tarball in ``data_dir``, ``$LSTMKIT_DATA`` or lstmkit's cache (no download)."""
    from lstmkit.data.resolve import default_cache_dir

    dirs = [data_dir] if data_dir else []
    if os.environ.get("LSTMKIT_DATA"):
        dirs.append(Path(os.environ["LSTMKIT_DATA"]))
    dirs.append(default_cache_dir())
    for d in dirs:
        if (d / ARCHIVE).is_file():
            return d / ARCHIVE
    raise SystemExit(f"{ARCHIVE} not found in {', '.join(map(str, dirs))}; give --data DIR")


def read_reviews(archive: Path, per_class: int = 500) -> list[str]:
    """The first ``per_class`` reviews of test/pos and of test/neg, straight from the tarball."""
    found: dict[str, list[str]] = {"pos": [], "neg": []}
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            match = REVIEW.match(member.name)
            if not match or not member.isfile() or len(found[match[1]]) >= per_class:
                continue
            fh = tar.extractfile(member)
            assert fh is not None
            found[match[1]].append(fh.read().decode("utf-8"))
            if all(len(v) >= per_class for v in found.values()):
                break
    texts = [t for pair in zip(found["pos"], found["neg"], strict=False) for t in pair]
    if not texts:
        raise SystemExit(f"{archive}: no aclImdb/test/{{pos,neg}} reviews")
    return texts


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind((HOST, 0))
        port: int = s.getsockname()[1]
        return port


def _stat(pid: int) -> list[str] | None:
    """The fields of ``/proc/PID/stat`` after the command name (None: no such process)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds so far of process ``pid`` and all its descendants alive now (the
    workers of ``lstmkit serve --workers N``; Linux /proc; 0.0 elsewhere)."""
    parents: dict[int, int] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit() and (fields := _stat(int(entry.name))) is not None:
            parents[int(entry.name)] = int(fields[1])
    tree, frontier = {pid}, [pid]
    while frontier:
        parent = frontier.pop()
        children = [p for p, pp in parents.items() if pp == parent and p not in tree]
        tree.update(children)
        frontier += children
    total = 0
    for p in tree:
        if (fields := _stat(p)) is not None:
            total += int(fields[11]) + int(fields[12])
    return total / os.sysconf("SC_CLK_TCK")


class Server:
    """``lstmkit serve MODEL`` in a subprocess on 127.0.0.1; a context manager that always stops it."""

    def __init__(self, model: Path, port: int, log_path: Path, args: list[str]) -> None:
        self.model, self.port, self.log_path, self.args = model, port, log_path, args
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = f"http://{HOST}:{port}"

    def __enter__(self) -> Server:
        cmd = [sys.executable, "-m", "lstmkit", "serve", str(self.model)]
        cmd += ["--host", HOST, "--port", str(self.port), *self.args]
        with open(self.log_path, "wb") as out:
            self.proc = subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT)
        return self

    def wait_ready(self, timeout: float = 120.0) -> None:
        """Poll ``/health`` until it answers 200; fail early if the server exits."""
        assert self.proc is not None
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise SystemExit(f"server exited with {self.proc.returncode}:\n{self.log_tail()}")
            try:
                if httpx.get(f"{self.url}/health", timeout=1.0).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise SystemExit(f"server not healthy after {timeout:.0f} s:\n{self.log_tail()}")

    def log_tail(self, chars: int = 3000) -> str:
        """The end of the server's output."""
        return self.log_path.read_text(errors="replace")[-chars:]

    def __exit__(self, *exc: object) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        self.proc.send_signal(signal.SIGINT)  # uvicorn's graceful shutdown
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@dataclass
class Tally:
    """What the clients of one case saw."""

    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    first_error: str | None = None


Post = Callable[[bytes], Awaitable[tuple[int, bytes]]]


class RawConnection:
    """One keep-alive HTTP/1.1 connection that POSTs JSON bodies: a far cheaper client than httpx
    (whose per-request CPU, on a 2-core machine, would otherwise cap what the server is sent)."""

    def __init__(self, port: int, path: str) -> None:
        self.port, self.path = port, path
        self.reader: asyncio.StreamReader | None = None
        self.writer: asyncio.StreamWriter | None = None

    async def post(self, body: bytes) -> tuple[int, bytes]:
        """Status and body of ``POST path`` with ``body``; reconnects after a closed connection."""
        if self.writer is None or self.reader is None:
            self.reader, self.writer = await asyncio.open_connection(HOST, self.port)
        head = (
            f"POST {self.path} HTTP/1.1\r\nHost: {HOST}:{self.port}\r\n"
            f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n"
        )
        self.writer.write(head.encode() + body)
        try:
            lines = (await self.reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
            headers = dict(line.lower().split(": ", 1) for line in lines[1:] if ": " in line)
            answer = await self.reader.readexactly(int(headers["content-length"]))
        except (OSError, asyncio.IncompleteReadError, KeyError, ValueError):
            await self.close()
            raise
        if headers.get("connection") == "close":
            await self.close()
        return int(lines[0].split()[1]), answer

    async def close(self) -> None:
        """Close the connection (the next post opens a new one)."""
        if self.writer is not None:
            self.writer.close()
            with contextlib.suppress(OSError):
                await self.writer.wait_closed()
        self.reader = self.writer = None


async def forecast_loop(
    post: Post, body: bytes, horizon: int, stop_at: float, tally: Tally
) -> None:
    """POST the same history to /v1/forecast until ``stop_at``, recording each latency."""
    while time.perf_counter() < stop_at:
        start = time.perf_counter()
        try:
            code, answer = await post(body)
            latency = time.perf_counter() - start
            ok = code == 200 and len(json.loads(answer)["forecasts"]) >= horizon
            if not ok and tally.first_error is None:
                tally.first_error = f"{code}: {answer[:300].decode(errors='replace')}"
        except (OSError, asyncio.IncompleteReadError, ValueError) as err:
            ok = False
            if tally.first_error is None:
                tally.first_error = repr(err)
        if ok:
            tally.latencies.append(latency)
        else:
            tally.errors += 1


def forecast_case(
    server: Server, history: Path, clients: int, seconds: float, label: str
) -> dict[str, Any]:
    """The forecast case: ``clients`` raw keep-alive clients POSTing the last ``lookback`` rows of
    ``history`` as JSON rows to /v1/forecast for ``seconds`` (after a 1 s warm-up)."""
    assert server.proc is not None
    info = httpx.get(f"{server.url}/v1/model", timeout=10.0).json()
    with history.open(encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))[-info["lookback"] :]
    text_columns = {info["time_column"], info["id_column"]} - {None}
    rows_json = [{k: (v if k in text_columns else float(v)) for k, v in r.items()} for r in rows]
    body = json.dumps({"rows": rows_json}).encode()
    name = f"forecast-{clients}clients-{label}"
    log(f"{name}: {seconds:.0f} s ...")

    async def run() -> tuple[Tally, float]:
        conns = [RawConnection(server.port, "/v1/forecast") for _ in range(clients)]
        try:
            warm = Tally()
            stop = time.perf_counter() + 1.0
            await asyncio.gather(
                *(forecast_loop(c.post, body, info["horizon"], stop, warm) for c in conns)
            )
            tally, start = Tally(), time.perf_counter()
            await asyncio.gather(
                *(
                    forecast_loop(c.post, body, info["horizon"], start + seconds, tally)
                    for c in conns
                )
            )
            return tally, time.perf_counter() - start
        finally:
            await asyncio.gather(*(c.close() for c in conns))

    load_before = os.getloadavg()[0]
    cpu_server = cpu_seconds(server.proc.pid)
    tally, wall = asyncio.run(run())
    cpu_server = cpu_seconds(server.proc.pid) - cpu_server
    done = len(tally.latencies)
    record: dict[str, Any] = {
        "bench": "serve-forecast",
        "case": name,
        "ours": round(done / wall, 1),
        "unit": "req/s",
        "p50_ms": round(1000 * statistics.median(tally.latencies), 1) if done else None,
        "p99_ms": round(1000 * percentile(tally.latencies, 99), 1) if done else None,
        "errors": tally.errors,
        "requests": done,
        "clients": clients,
        "history_rows": len(rows),
        "horizon": info["horizon"],
        "seconds": round(wall, 2),
        "server_cpu": round(cpu_server / wall, 2),
        "server_args": " ".join(server.args),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if tally.first_error:
        record["first_error"] = tally.first_error
    return record


async def stream_loop(
    http: httpx.AsyncClient, url: str, length: int, stop_at: float, out: dict[str, Any]
) -> None:
    """Stream generations of ``length`` characters one after another until ``stop_at``."""
    seed = 0
    while time.perf_counter() < stop_at:
        body = {"prime": out["prime"], "length": length, "seed": seed, "stream": True}
        seed += 1
        start = time.perf_counter()
        first, chars = None, 0
        try:
            async with http.stream("POST", url, json=body) as r:
                if r.status_code != 200:
                    out["errors"] += 1
                    out.setdefault("first_error", f"{r.status_code}: {(await r.aread())[:300]!r}")
                    continue
                buffer = ""
                async for piece in r.aiter_text():
                    buffer += piece
                    *events, buffer = buffer.split("\n\n")
                    for e in events:
                        data = e.removeprefix("data: ")
                        if data.startswith('{"text"'):
                            if first is None:
                                first = time.perf_counter() - start
                            chars += len(json.loads(data)["text"])
        except httpx.HTTPError as err:
            out["errors"] += 1
            out.setdefault("first_error", repr(err))
            continue
        if chars == length and first is not None:
            out["first"].append(first)
            out["chars"] += chars
            out["streams"] += 1
        else:
            out["errors"] += 1


def generate_case(
    server: Server, clients: int, length: int, seconds: float, label: str
) -> dict[str, Any]:
    """The generation case: ``clients`` clients streaming ``length`` characters each, one
    generation after another, for ``seconds``: characters/s and the time to the first one."""
    assert server.proc is not None
    info = httpx.get(f"{server.url}/v1/model", timeout=10.0).json()
    chars = info["chars"]
    prime = next((c for c in "T\n " if c in chars), chars[0])
    name = f"generate-{length}chars-{clients}clients-{label}"
    log(f"{name}: {seconds:.0f} s ...")

    async def run() -> tuple[dict[str, Any], float]:
        limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
        url = f"{server.url}/v1/generate"
        async with httpx.AsyncClient(limits=limits, timeout=120.0) as http:
            warm = {"prime": prime, "first": [], "chars": 0, "streams": 0, "errors": 0}
            await stream_loop(http, url, 20, time.perf_counter() + 0.5, warm)
            out = {"prime": prime, "first": [], "chars": 0, "streams": 0, "errors": 0}
            start = time.perf_counter()
            await asyncio.gather(
                *(stream_loop(http, url, length, start + seconds, out) for _ in range(clients))
            )
            return out, time.perf_counter() - start

    load_before = os.getloadavg()[0]
    cpu_server = cpu_seconds(server.proc.pid)
    out, wall = asyncio.run(run())
    cpu_server = cpu_seconds(server.proc.pid) - cpu_server
    first = out["first"]
    record: dict[str, Any] = {
        "bench": "serve-generate",
        "case": name,
        "ours": round(out["chars"] / wall, 1),
        "unit": "chars/s",
        "first_char_p50_ms": round(1000 * statistics.median(first), 1) if first else None,
        "first_char_p99_ms": round(1000 * percentile(first, 99), 1) if first else None,
        "streams": out["streams"],
        "errors": out["errors"],
        "clients": clients,
        "length": length,
        "model": {k: info["model"].get(k) for k in ("cell", "hidden_size", "num_layers")},
        "seconds": round(wall, 2),
        "server_cpu": round(cpu_server / wall, 2),
        "server_args": " ".join(server.args),
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if "first_error" in out:
        record["first_error"] = out["first_error"]
    return record


async def client_loop(
    post: Post, texts: list[str], per_request: int, offset: int, stop_at: float, tally: Tally
) -> None:
    """Send requests one after another until ``stop_at``, recording each latency."""
    i = offset
    while time.perf_counter() < stop_at:
        batch = [texts[(i + k) % len(texts)] for k in range(per_request)]
        i += per_request * 7919  # a prime stride: clients walk different texts
        body = json.dumps({"texts": batch}).encode()
        start = time.perf_counter()
        try:
            code, answer = await post(body)
            latency = time.perf_counter() - start
            ok = code == 200 and len(json.loads(answer)["predictions"]) == len(batch)
            if not ok and tally.first_error is None:
                tally.first_error = f"{code}: {answer[:300].decode(errors='replace')}"
        except (httpx.HTTPError, OSError, asyncio.IncompleteReadError, ValueError) as err:
            ok = False
            if tally.first_error is None:
                tally.first_error = repr(err)
        if ok:
            tally.latencies.append(latency)
        else:
            tally.errors += 1


async def drive(
    port: int, texts: list[str], per_request: int, clients: int, seconds: float, client: str
) -> tuple[Tally, float]:
    """``clients`` concurrent loops for ``seconds`` (after a 1 s warm-up); tally and wall time."""
    path = "/v1/predict"
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(limits=limits, timeout=60.0) as http:
        if client == "httpx":

            async def post(body: bytes) -> tuple[int, bytes]:
                headers = {"content-type": "application/json"}
                r = await http.post(f"http://{HOST}:{port}{path}", content=body, headers=headers)
                return r.status_code, r.content

            posts: list[Post] = [post] * clients
        else:
            conns = [RawConnection(port, path) for _ in range(clients)]
            posts = [c.post for c in conns]
        try:
            warm = Tally()
            stop = time.perf_counter() + 1.0
            await asyncio.gather(
                *(client_loop(p, texts, per_request, c, stop, warm) for c, p in enumerate(posts))
            )
            tally = Tally()
            start = time.perf_counter()
            await asyncio.gather(
                *(
                    client_loop(p, texts, per_request, 13 * c, start + seconds, tally)
                    for c, p in enumerate(posts)
                )
            )
            return tally, time.perf_counter() - start
        finally:
            if client == "raw":
                await asyncio.gather(*(c.close() for c in conns))


def percentile(values: list[float], q: float) -> float:
    """The ``q``-th percentile (0..100) of ``values``, nearest rank."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, round(q / 100 * len(ordered)) - 1))]


def run_case(
    server: Server,
    texts: list[str],
    per_request: int,
    clients: int,
    seconds: float,
    client: str = "raw",
    label: str = "",
) -> dict[str, Any]:
    """One case: its JSON record, with server and client CPU use over the timed window.
    ``label`` (the server configuration) ends the case name."""
    assert server.proc is not None
    name = f"predict-{per_request}text{'s' if per_request > 1 else ''}-{clients}clients"
    name += f"-{label}" if label else ""
    log(f"{name}: {seconds:.0f} s ...")
    load_before = os.getloadavg()[0]
    cpu_server, cpu_client = cpu_seconds(server.proc.pid), time.process_time()
    tally, wall = asyncio.run(drive(server.port, texts, per_request, clients, seconds, client))
    cpu_server = cpu_seconds(server.proc.pid) - cpu_server
    cpu_client = time.process_time() - cpu_client
    done = len(tally.latencies)
    record: dict[str, Any] = {
        "bench": "serve",
        "case": name,
        "ours": round(done / wall, 1),
        "unit": "req/s",
        "p50_ms": round(1000 * statistics.median(tally.latencies), 1) if done else None,
        "p99_ms": round(1000 * percentile(tally.latencies, 99), 1) if done else None,
        "errors": tally.errors,
        "predictions_per_s": round(done * per_request / wall, 1),
        "requests": done,
        "clients": clients,
        "texts_per_request": per_request,
        "texts_pool": len(texts),
        "mean_chars": round(statistics.fmean(len(t) for t in texts)),
        "seconds": round(wall, 2),
        # CPU seconds per wall second (2.0 = two cores busy); the warm-up second is not in it
        "server_cpu": round(cpu_server / wall, 2),
        "client_cpu": round(cpu_client / wall, 2),
        "client": client,
        "server_args": " ".join(server.args),
        # the 1-minute load average before and after the case: other work on the shared machine
        # takes cores from server and client alike (the case itself adds about 1-2)
        "load_avg_1min": [round(load_before, 2), round(os.getloadavg()[0], 2)],
    }
    if tally.first_error:
        record["first_error"] = tally.first_error
    return record


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "model",
        nargs="?",
        type=Path,
        default=Path("runs/imdb-seed003"),
        help="bundle or run directory (default: %(default)s)",
    )
    parser.add_argument("--clients", type=int, default=64, help="concurrent clients (default: 64)")
    parser.add_argument("--seconds", type=float, default=20.0, help="timed seconds per case")
    parser.add_argument(
        "--texts-per-request",
        type=int,
        nargs="+",
        default=[1, 16],
        help="one case per value (default: 1 16)",
    )
    parser.add_argument(
        "--client",
        choices=["raw", "httpx"],
        default="raw",
        help="raw: minimal keep-alive HTTP/1.1 over asyncio streams (cheap; default); httpx: "
        "httpx.AsyncClient (several ms of client CPU per request)",
    )
    parser.add_argument(
        "--server",
        dest="servers",
        action="append",
        metavar="ARGS",
        help="lstmkit serve arguments of one server configuration, e.g. "
        f"'--workers 2 --threads 1'; repeat for several (default: {' | '.join(DEFAULT_SERVERS)})",
    )
    parser.add_argument("--data", type=Path, help=f"directory holding {ARCHIVE}")
    parser.add_argument("--forecast", type=Path, metavar="RUN", help="a forecasting run too")
    parser.add_argument("--history", type=Path, help="--forecast's history (CSV, its columns)")
    parser.add_argument("--generate", type=Path, metavar="RUN", help="a language-model run too")
    parser.add_argument(
        "--generate-clients", type=int, default=4, help="streaming clients (default: 4)"
    )
    parser.add_argument(
        "--generate-length", type=int, default=500, help="characters per stream (default: 500)"
    )
    parser.add_argument(
        "--out", type=Path, help="also write the JSON lines here (header record first), atomically"
    )
    args = parser.parse_args(argv)
    if args.clients < 1 or args.seconds <= 0 or min(args.texts_per_request) < 1:
        parser.error("--clients, --seconds and --texts-per-request must be positive")

    if (args.forecast is None) != (args.history is None):
        parser.error("--forecast RUN needs --history CSV (and --history needs --forecast)")
    servers = [shlex.split(a) for a in (args.servers or DEFAULT_SERVERS)]

    start, load_start = time.perf_counter(), os.getloadavg()
    texts = read_reviews(find_archive(args.data))
    log(f"{len(texts)} reviews read")
    sink: list[dict[str, Any]] = []
    for server_args in servers:
        label = config_label(server_args)
        with (
            tempfile.TemporaryDirectory(prefix="serve_load-") as tmp,
            Server(args.model, free_port(), Path(tmp) / "server.log", server_args) as server,
        ):
            server.wait_ready()
            limits = httpx.get(f"{server.url}/v1/model", timeout=10.0).json()
            for per_request in args.texts_per_request:
                if per_request > limits["max_texts"]:
                    parser.error(
                        f"{per_request} texts per request: the server takes at most "
                        f"{limits['max_texts']}"
                    )
                # the reviews that fit the server's character limit (all texts of a request)
                fit = [t for t in texts if len(t) <= limits["max_chars"] // per_request]
                record = run_case(
                    server, fit, per_request, args.clients, args.seconds, args.client, label
                )
                sink.append(record)
                print(json.dumps(record), flush=True)
    for run, make in (
        (
            args.forecast,
            lambda srv, lab: forecast_case(srv, args.history, args.clients, args.seconds, lab),
        ),
        (
            args.generate,
            lambda srv, lab: generate_case(
                srv, args.generate_clients, args.generate_length, args.seconds, lab
            ),
        ),
    ):
        if run is None:
            continue
        server_args = servers[-1]  # the last configuration (e.g. --workers 2 --no-access-log)
        with (
            tempfile.TemporaryDirectory(prefix="serve_load-") as tmp,
            Server(run, free_port(), Path(tmp) / "server.log", server_args) as server,
        ):
            server.wait_ready()
            record = make(server, config_label(server_args))
            sink.append(record)
            print(json.dumps(record), flush=True)
    header = {
        "bench": "serve-run",
        "command": " ".join(
            ["python", "benchmarks/serve_load.py", *(argv if argv is not None else sys.argv[1:])]
        ),
        "seconds": round(time.perf_counter() - start, 1),
        "model": str(args.model),
        "machine": f"{platform.machine()} {platform.processor() or ''}".strip()
        + f", {os.cpu_count()} cpus",
        # other work on the machine takes cores from both server and client: the 1-minute load
        # average before and after the run (the benchmark itself adds about 1-2)
        "load_avg_1min": [round(load_start[0], 2), round(os.getloadavg()[0], 2)],
    }
    print(json.dumps(header), flush=True)
    if args.out:
        atomic_write_text(args.out, "".join(json.dumps(r) + "\n" for r in [header, *sink]))
        log(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
