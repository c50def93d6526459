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
connections opened meanwhile: measured 64 / 0). The parent supervises: Ctrl-C or SIGTERM stops
every worker (uvicorn's graceful shutdown). A worker that dies after it has served (killed
outright, say) is started again in its slot, with one line on stderr naming it, while the others
keep answering (the kernel sends new connections to the sockets still listening; the dead
worker's own connections are lost, and a client that retries lands on a live worker). A worker
that fails its startup, or one that dies more than ``MAX_RESTARTS`` times within
``RESTART_WINDOW_S``, stops the others, and :func:`run_workers` raises :class:`WorkerExit`. A
worker whose parent is gone (killed outright) stops itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import multiprocessing
import os
import signal
import socket
import sys
import threading
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from multiprocessing.connection import wait
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Barrier, Event
from pathlib import Path
from typing import Any

from lstmkit.errors import ConfigError, LstmkitError
from lstmkit.serve.app import create_app, create_multi_app, model_names
from lstmkit.serve.models import load_served

# how long a worker has to finish its requests and lifespan after the stop signal
STOP_TIMEOUT_S = 30.0
# how long the workers wait for each other to load their models
READY_TIMEOUT_S = 300.0
# how often a worker checks that the parent process is still there
PARENT_POLL_S = 0.5
# a worker that dies after serving is started again, unless it died this often this recently
MAX_RESTARTS = 5
RESTART_WINDOW_S = 60.0


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
    config_json: str,
    host: str,
    port: int,
    access_log: bool,
    ready: Barrier | None,
    served: Event,
    parent: int,
) -> None:
    """One worker process: the app from ``config_json``, uvicorn on its own socket. Every worker
    of the first start finishes its app's startup (model loaded, GC frozen) and then waits for
    the others (``ready``) before it listens: a worker that listened alone would get every
    connection opened meanwhile (the kernel spreads connections over the sockets listening at
    the time), for as long as the clients keep them. A worker started again after one died
    (``ready`` None) listens as soon as its model is loaded. ``served`` is set when it listens:
    the supervisor tells a failed startup from a worker that died serving."""
    import uvicorn

    _stop_with_parent(parent)  # its pid from the parent: it may be gone before this line
    kwargs = json.loads(config_json)
    app = create_app(kwargs.pop("bundle_path"), **kwargs)
    startup = app.router.lifespan_context

    @asynccontextmanager
    async def lifespan(app: Any) -> AsyncIterator[Any]:
        async with startup(app) as state:
            if ready is not None:
                # BrokenBarrierError when another worker failed: this one's startup fails too
                await asyncio.to_thread(ready.wait, READY_TIMEOUT_S)
            served.set()
            yield state

    app.router.lifespan_context = lifespan
    sock = _listener(host, port)
    config = uvicorn.Config(app, host=host, port=port, access_log=access_log)
    uvicorn.Server(config).run(sockets=[sock])  # lifespan first, then it listens


def _exit_note(proc: BaseProcess) -> str:
    """How a worker ended: 'exit status 1' or 'killed by SIGKILL'."""
    code = proc.exitcode
    if code is not None and code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exit status {code}"


def run_workers(
    config: dict[str, Any], *, host: str, port: int, workers: int, access_log: bool = True
) -> None:
    """Serve ``create_app(**config)`` (``config`` holds ``bundle_path`` and JSON values) from
    ``workers`` processes on ``host:port`` until Ctrl-C / SIGTERM, starting again a worker that
    dies after it has served (one line on stderr each time). Raises ValueError when the port
    cannot be listened on (checked before any worker starts; a
    :class:`~lstmkit.errors.ConfigError`) and :class:`WorkerExit` when a worker fails its
    startup or dies more than ``MAX_RESTARTS`` times within ``RESTART_WINDOW_S`` seconds."""
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

    def worker(slot: int, barrier: Barrier | None) -> tuple[BaseProcess, Event]:
        served = ctx.Event()
        proc = ctx.Process(
            target=_worker_main,
            args=(config_json, host, port, access_log, barrier, served, os.getpid()),
            name=f"lstmkit-serve-{slot}",
        )
        return proc, served

    slots = [worker(i, ready) for i in range(workers)]
    restarts: list[float] = []  # when each restart happened (monotonic)
    stopping = False
    failure: str | None = None

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop)
    try:
        for proc, _ in slots:
            proc.start()
        while failure is None:
            wait([p.sentinel for p, _ in slots])  # returns when a worker exits
            for i, (proc, served) in enumerate(slots):
                if proc.is_alive():
                    continue
                note = f"worker {proc.name} (pid {proc.pid}) {_exit_note(proc)}"
                now = time.monotonic()
                restarts[:] = [t for t in restarts if now - t < RESTART_WINDOW_S]
                if not served.is_set():
                    failure = f"{note} before it could serve"
                    break
                if len(restarts) >= MAX_RESTARTS:
                    failure = f"{note}, its {len(restarts) + 1}th exit in {RESTART_WINDOW_S:.0f} s"
                    break
                restarts.append(now)
                slots[i] = worker(i, None)  # in the slot before the old one is closed: a
                proc.close()  # Ctrl-C in between leaves the finally below no closed process
                slots[i][0].start()
                print(
                    f"lstmkit serve: {note}; started it again (pid {slots[i][0].pid}); "
                    f"the other workers answer meanwhile",
                    file=sys.stderr,
                    flush=True,
                )
    except KeyboardInterrupt:
        stopping = True
    finally:
        signal.signal(signal.SIGTERM, previous)
        ready.abort()  # a worker still waiting for the others gives up
        for proc, _ in slots:  # one stop signal each: uvicorn's graceful shutdown
            if proc.is_alive() and proc.pid is not None:
                with contextlib.suppress(ProcessLookupError):
                    os.kill(proc.pid, signal.SIGTERM)
        for proc, _ in slots:
            if proc.pid is None:  # never started (Ctrl-C while it was being replaced)
                continue
            proc.join(STOP_TIMEOUT_S)
            if proc.is_alive():
                proc.kill()
                proc.join()
    if not stopping:
        raise WorkerExit(f"{failure}; the server was stopped")


def serve(
    bundle_path: str | os.PathLike[str] | Sequence[str | os.PathLike[str]],
    *,
    host: str = "127.0.0.1",
    port: int = 8000,
    token: str | None = None,
    workers: int = 1,
    access_log: bool = True,
    **kwargs: Any,
) -> None:
    """Load the model (errors come out before the server starts) and run uvicorn until Ctrl-C.
    Several paths: each model at ``/models/<its directory's name>/`` in one process
    (:func:`~lstmkit.serve.app.create_multi_app`; one worker).

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
    paths = [bundle_path] if isinstance(bundle_path, str | os.PathLike) else list(bundle_path)
    if len(paths) > 1:  # several models, each at /models/<name>/ (lstmkit.serve.app)
        if workers > 1:
            raise ConfigError("--workers serves one model; serve several models with one worker")
        names = model_names(paths)
        loaded = {name: load_served(path) for name, path in names.items()}
        kwargs.setdefault("freeze_gc", True)
        kwargs["torch_threads"] = kwargs.get("torch_threads") or 1
        multi = create_multi_app(names, token=token, models=loaded, **kwargs)
        uvicorn.run(multi, host=host, port=port, access_log=access_log)
        return
    bundle_path = paths[0]
    predictor = load_served(bundle_path)
    kwargs.setdefault("freeze_gc", True)  # the process only serves
    if kwargs.get("torch_threads") is None:
        # one torch thread per worker: a served model's matrices are small, extra intra-op
        # threads only fight the event loop for the cores (one worker on 2 cores, 64 clients:
        # 1.34 ms of CPU per request with torch's 2 threads, 0.62 ms with 1)
        kwargs["torch_threads"] = 1
    app = create_app(bundle_path, token=token, model=predictor, **kwargs)  # checks kwargs
    if workers == 1:
        uvicorn.run(app, host=host, port=port, access_log=access_log)
        return
    del app, predictor  # the workers load their own
    config = {"bundle_path": str(Path(bundle_path).resolve()), "token": token, **kwargs}
    run_workers(config, host=host, port=port, workers=workers, access_log=access_log)
