"""The FastAPI application: :func:`create_app` loads the model once, at startup.

Run it with ``lstmkit serve BUNDLE_OR_RUN [--host 127.0.0.1] [--port 8000] [--token T]``, or
``uvicorn --factory`` around a ``create_app`` call. OpenAPI docs at ``/docs``. No CORS headers:
browsers on other origins cannot call the API.
"""

from __future__ import annotations

import gc
import json
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import FastAPI
from starlette.types import ASGIApp, Receive, Scope, Send

from lstmkit import __version__
from lstmkit.bundle import Predictor, load
from lstmkit.serve.batcher import MicroBatcher
from lstmkit.serve.fast import FastPredict
from lstmkit.serve.routes import V1_AUTH, router, v1


class _BodyLimit:
    """Answer 413 before reading a body whose Content-Length is over ``max_bytes``."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            length = dict(scope["headers"]).get(b"content-length")
            if length is not None and length.isdigit() and int(length) > self.max_bytes:
                body = json.dumps(
                    {
                        "detail": f"request body too large: {int(length)} bytes, at most "
                        f"{self.max_bytes}"
                    }
                ).encode()
                await send(
                    {
                        "type": "http.response.start",
                        "status": 413,
                        "headers": [
                            (b"content-type", b"application/json"),
                            (b"content-length", str(len(body)).encode()),
                        ],
                    }
                )
                await send({"type": "http.response.body", "body": body})
                return
        await self.app(scope, receive, send)


def create_app(
    bundle_path: str | os.PathLike[str],
    *,
    token: str | None = None,
    max_texts: int = 64,
    max_chars: int = 20000,
    predictor: Predictor | None = None,
    micro_batch: bool = True,
    max_wait_ms: float = 2.0,
    torch_threads: int | None = None,
    freeze_gc: bool = False,
) -> FastAPI:
    """The API for the bundle (or run directory) at ``bundle_path``.

    The :class:`~lstmkit.bundle.Predictor` is loaded once, in the app's lifespan, into
    ``app.state.predictor`` (pass ``predictor`` to reuse one already loaded). With ``token``,
    every ``/v1`` route wants ``Authorization: Bearer <token>``. A request with more than
    ``max_texts`` texts or ``max_chars`` characters (all texts together) gets 413. With
    ``micro_batch``, concurrent /v1/predict requests are batched into one model call (waiting at
    most ``max_wait_ms`` for company; :mod:`lstmkit.serve.batcher`). With ``torch_threads``, the
    lifespan sets torch's intra-op threads of the serving process (``torch.set_num_threads``: one
    setting per process, so it is for a process that only serves, as ``lstmkit serve`` starts).
    ``freeze_gc`` (also for such a process) moves every object alive once the model is loaded
    into the garbage collector's permanent generation (:func:`gc.freeze`): a full collection then
    no longer walks torch's and the model's objects, which took ~160 ms per collection -- a pause
    that every request waiting in that process paid (the latency tail under load).
    """
    if max_texts < 1 or max_chars < 1:
        raise ValueError(f"max_texts and max_chars must be >= 1, got {max_texts}, {max_chars}")
    if torch_threads is not None and torch_threads < 1:
        raise ValueError(
            f"torch_threads must be >= 1 (or None: torch's default), got {torch_threads}"
        )
    if token is not None and not token:
        raise ValueError("token must not be empty (give None for no token)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        loaded = predictor if predictor is not None else load(bundle_path)
        if not loaded.accepts_text:
            raise ValueError(f"{bundle_path}: the model reads real-valued sequences, not text")
        app.state.predictor = loaded
        if freeze_gc:
            gc.collect()
            gc.freeze()
        if micro_batch:
            app.state.batcher = MicroBatcher(loaded, max_batch=max_texts, max_wait_ms=max_wait_ms)
            app.state.batcher.start()
        try:
            yield
        finally:
            if app.state.batcher is not None:
                await app.state.batcher.stop()
                app.state.batcher = None
            app.state.predictor = None
            if freeze_gc:
                gc.unfreeze()

    app = FastAPI(
        title="lstmkit",
        version=__version__,
        description="Text classification with an lstmkit model bundle.",
        lifespan=lifespan,
    )
    app.state.token = token
    app.state.max_texts = max_texts
    app.state.max_chars = max_chars
    app.state.predictor = None
    app.state.batcher = None
    # the token check only when there is a token: two dependencies solved per request otherwise
    # for nothing (~10% of a worker's CPU under load); the OpenAPI schema then lists no security
    app.include_router(v1, dependencies=V1_AUTH if token is not None else None)
    app.include_router(router)
    # the predict requests that succeed skip FastAPI's routing (lstmkit.serve.fast says why);
    # added first, so it runs inside _BodyLimit
    app.add_middleware(FastPredict, state=app.state)
    # JSON escapes make at most 6 bytes of a character ("\u00e9"); the rest is syntax
    app.add_middleware(_BodyLimit, max_bytes=6 * max_chars + 16 * max_texts + 4096)
    return app


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
    """Load the model (errors come out before the server starts) and run uvicorn.

    With ``workers`` > 1, that many worker processes serve the port, each with its own copy of
    the model (loaded once, in its lifespan) and its own micro-batcher: the Python work of a
    request (HTTP, JSON, validation, tokenising) then runs on every core instead of one
    (:mod:`lstmkit.serve.workers`). Each process runs torch on one thread unless
    ``torch_threads`` says otherwise. ``kwargs`` go to :func:`create_app` (they must be JSON
    values with ``workers`` > 1). ``access_log=False`` drops uvicorn's line per request.
    """
    import uvicorn

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
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
    from lstmkit.serve.workers import run_workers

    del app, predictor  # the workers load their own
    config = {"bundle_path": str(Path(bundle_path).resolve()), "token": token, **kwargs}
    run_workers(config, host=host, port=port, workers=workers, access_log=access_log)
