"""The server: :func:`serve` runs an app of :func:`lstmkit.serve.app.create_app` under uvicorn,
in this process or in ``--workers N`` processes on one port, each with its own listening socket
(``SO_REUSEPORT``). This module imports the app factory; the app knows nothing of it.

Why not uvicorn's own ``--workers``: its workers share ONE listening socket, and whichever
process wakes first accepts every connection waiting in the backlog. Keep-alive clients that
connect together (the 64 of ``benchmarks/serve_load.py``) then land mostly on one worker --
measured 51 / 13 and 64 / 0 of 64 connections on two workers -- and that worker's requests wait
three times longer than the other's (p99 latency follows the busiest worker). With a socket per
worker in a ``SO_REUSEPORT`` group the kernel spreads new connections over the workers by a hash
of their addresses: close to even (64 connections on two workers: 27-37 on either, measured).

Each worker is a ``spawn`` process that builds the app with
:func:`~lstmkit.serve.app.create_app` from a JSON config and runs ``uvicorn.Server`` on its own
socket; the app's startup (the bundle loaded, the GC frozen) ends by waiting for every other
worker's, so they all start listening together (a worker listening alone gets all the
connections opened meanwhile: measured 64 / 0). The parent only watches: Ctrl-C or SIGTERM stops
every worker (uvicorn's graceful shutdown); a worker that exits stops the others, and
:func:`run_workers` raises :class:`WorkerExit`; a worker whose parent is gone (killed outright)
stops itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import threading
import time
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from multiprocessing.connection import wait
from multiprocessing.synchronize import Barrier
from pathlib import Path
from typing import Any

from lstmkit.bundle import load
from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.serve.app import create_app

# how long a worker has to finish its requests and lifespan after the stop signal
STOP_TIMEOUT_S = 30.0
# how long the workers wait for each other to load their models
READY_TIMEOUT_S = 300.0
# how often a worker checks that the parent process is still there
PARENT_POLL_S = 0.5


class WorkerExit(LstmkitError, RuntimeError):
    """A worker process exited while the server was running (the message names it and its exit
    status)."""


def _listener(host: str, port: int) -> socket.socket:
    """A TCP socket bound to ``(host, port)`` in the port's ``SO_REUSEPORT`` group."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT, 1)
    try:
        sock.bind((host, port))
    except OSError:
        sock.close()
        raise
    return sock


def _stop_with_parent(parent: int) -> None:
    """Stop this worker (uvicorn's graceful SIGTERM) when ``parent`` is gone: a parent killed
    outright (SIGKILL) cannot stop its workers, which would keep serving the port."""

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_POLL_S)
        os.kill(os.getpid(), signal.SIGTERM)

    threading.Thread(target=watch, name="lstmkit-parent-watch", daemon=True).start()


def _worker_main(
    config_json: str, host: str, port: int, access_log: bool, ready: Barrier, parent: int
) -> None:
    """One worker process: the app from ``config_json``, uvicorn on its own socket. Every worker
    finishes its app's startup (model loaded, GC frozen) and then waits for the others
    (``ready``) before it listens: a worker that listened alone would get every connection
    opened meanwhile (the kernel spreads connections over the sockets listening at the time),
    for as long as the clients keep them."""
    import uvicorn

    _stop_with_parent(parent)  # its pid from the parent: it may be gone before this line
    kwargs = json.loads(config_json)
    app = create_app(kwargs.pop("bundle_path"), **kwargs)
    startup = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with startup(app) as state:
            # BrokenBarrierError when another worker failed: this one's startup fails too
            await asyncio.to_thread(ready.wait, READY_TIMEOUT_S)
            yield state

    app.router.lifespan_context = lifespan
    sock = _listener(host, port)
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log)
    uvicorn.Server(config).run(sockets=[sock])  # lifespan first, then it listens


def run_workers(
    config: dict[str, Any], *, host: str, port: int, workers: int, access_log: bool = True
) -> None:
    """Serve ``create_app(**config)`` (``config`` holds ``bundle_path`` and JSON values) from
    ``workers`` processes on ``host:port`` until Ctrl-C / SIGTERM. Raises ValueError when the
    port cannot be listened on (checked before any worker starts; a
    :class:`~lstmkit.errors.ConfigError`) and :class:`WorkerExit` when a worker dies."""
    if workers < 2:
        raise ConfigError(f"run_workers is for 2 or more workers, got {workers}")
    if not hasattr(socket, "SO_REUSEPORT"):
        raise ConfigError(
            "--workers needs SO_REUSEPORT (Linux, BSD, macOS); run one worker on this system"
        )
    if port == 0:
        raise ConfigError("--workers needs a fixed --port: with port 0 each worker gets its own")
    try:  # the same error a worker would meet, before any starts (e.g. the port is taken)
        _listener(host, port).close()
    except OSError as err:
        raise ConfigError(f"cannot listen on {host}:{port}: {err}") from None
    config_json = json.dumps(config)
    ctx = multiprocessing.get_context("spawn")  # no forked torch threads
    ready = ctx.Barrier(workers)
    procs = [
        ctx.Process(
            target=_worker_main,
            args=(config_json, host, port, access_log, ready, os.getpid()),
            name=f"lstmkit-serve-{i}",
        )
        for i in range(workers)
    ]
    stopping = False

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for proc in procs:
            proc.start()
        wait([p.sentinel for p in procs])  # returns when a worker exits
    except KeyboardInterrupt:
        stopping = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        ready.abort()  # a worker still waiting for the others gives up
        for proc in procs:  # one stop signal each: uvicorn's graceful shutdown
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        for proc in procs:
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if not stopping:
        dead = [f"{p.name} (exit status {p.exitcode})" for p in procs if p.exitcode]
        raise WorkerExit(
            f"worker {', '.join(dead) or procs[0].name} exited; the server was stopped"
        )


def serve(
    bundle_path: str | os.PathLike[str],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    workers: int = 1,
    access_log: bool = True,
    **kwargs: Any,
) -> None:
    """Load the model (errors come out before the server starts) and run uvicorn until Ctrl-C.

    With ``workers`` > 1, that many worker processes serve the port, each with its own copy of
    the model (loaded once, in its lifespan) and its own micro-batcher: the Python work of a
    request (HTTP, JSON, validation, tokenising) then runs on every core instead of one
    (:func:`run_workers`). Each process runs torch on one thread unless ``torch_threads`` says
    otherwise. ``kwargs`` go to :func:`~lstmkit.serve.app.create_app` (they must be JSON values
    with ``workers`` > 1). ``access_log=False`` drops uvicorn's line per request.
    """
    import uvicorn

    if workers < 1:
        raise ConfigError(f"workers must be >= 1, got {workers}")
    predictor = load(bundle_path)
    kwargs.setdefault("freeze_gc", True)  # the process only serves
    if kwargs.get("torch_threads") is None:
        # one torch thread per worker: a served model's matrices are small, extra intra-op
        # threads only fight the event loop for the cores (one worker on 2 cores, 64 clients:
        # 1.34 ms of CPU per request with torch's 2 threads, 0.62 ms with 1)
        kwargs["torch_threads"] = 1
    app = create_app(bundle_path, token=token, predictor=predictor, **kwargs)  # checks kwargs
    if workers == 1:
        uvicorn.run(app, host=host, port=port, access_log=access_log)
        return
    del app, predictor  # the workers load their own
    config = {"bundle_path": str(Path(bundle_path).resolve()), "token": token, **kwargs}
    run_workers(config, host=host, port=port, workers=workers, access_log=access_log)
