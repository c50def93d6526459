"""The app factory: :func:`create_app` builds the FastAPI application of one bundle.

The model is loaded once, in the app's ``lifespan``, into ``app.state.serving`` (a
:class:`~lstmkit.serve.routes.Serving`: the predictor, its micro-batcher and the request limits);
the routes read it through a dependency. This module builds apps and starts nothing: the server
that runs one (uvicorn, ``--workers``) is :mod:`lstmkit.serve.server`. Run an app with
``lstmkit serve BUNDLE_OR_RUN [--host 127.0.0.1] [--port 8000] [--token T]``, or ``uvicorn
--factory`` around a ``create_app`` call. OpenAPI docs at ``/docs``. No CORS headers: browsers on
other origins cannot call the API.
"""

from __future__ import annotations

import gc
import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import torch
from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from lstmkit.bundle import Predictor, load
from lstmkit.errors import ConfigError, UnsupportedModelError
from lstmkit.serve.batcher import MicroBatcher
from lstmkit.serve.bodylimit import BodyLimit
from lstmkit.serve.routes import V1_AUTH, Serving, router, v1
from lstmkit.serve.validation import invalid_request
from lstmkit.version import __version__


def max_body_bytes(max_texts: int, max_chars: int) -> int:
    """The largest request body the API reads: ``max_chars`` characters in ``max_texts`` texts,
    each character escaped in JSON (at most 6 bytes), plus the syntax around them."""
    return 6 * max_chars + 16 * max_texts + 4096


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

    The :class:`~lstmkit.bundle.Predictor` is loaded once, in the app's lifespan (pass
    ``predictor`` to reuse one already loaded), into ``app.state.serving``
    (:class:`~lstmkit.serve.routes.Serving`). With ``token``, every ``/v1`` route wants
    ``Authorization: Bearer <token>``. A request with more than ``max_texts`` texts or
    ``max_chars`` characters (all texts together) gets 413, and so does a body of more than
    :func:`max_body_bytes` bytes, counted as it arrives (chunked or not; the rest is never
    read). With ``micro_batch``, concurrent
    /v1/predict requests are batched into one model call (waiting at most ``max_wait_ms`` for
    company; :mod:`lstmkit.serve.batcher`). With ``torch_threads``, the lifespan sets torch's
    intra-op threads of the serving process (``torch.set_num_threads``: one setting per process,
    so it is for a process that only serves, as ``lstmkit serve`` starts). ``freeze_gc`` (also
    for such a process) moves every object alive once the model is loaded into the garbage
    collector's permanent generation (:func:`gc.freeze`): a full collection then no longer walks
    torch's and the model's objects, which took ~160 ms per collection -- a pause that every
    request waiting in that process paid (the latency tail under load).

    Raises :class:`~lstmkit.errors.ConfigError` for a bad setting here, and the bundle's
    errors (:class:`~lstmkit.errors.BundleError`, ...) when the lifespan starts.
    """
    if max_texts < 1 or max_chars < 1:
        raise ConfigError(f"max_texts and max_chars must be >= 1, got {max_texts}, {max_chars}")
    if torch_threads is not None and torch_threads < 1:
        raise ConfigError(
            f"torch_threads must be >= 1 (or None: torch's default), got {torch_threads}"
        )
    if token is not None and not token:
        raise ConfigError("token must not be empty (give None for no token)")

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        loaded = predictor if predictor is not None else load(bundle_path)
        if not loaded.accepts_text:
            raise UnsupportedModelError(
                f"{bundle_path}: the model reads real-valued sequences, not text; "
                "lstmkit serve serves text classifiers"
            )
        if freeze_gc:
            gc.collect()
            gc.freeze()
        batcher = None
        if micro_batch:
            batcher = MicroBatcher(loaded, max_batch=max_texts, max_wait_ms=max_wait_ms)
            batcher.start()
        app.state.serving = Serving(loaded, batcher, max_texts=max_texts, max_chars=max_chars)
        try:
            yield
        finally:
            app.state.serving = None
            if batcher is not None:
                await batcher.stop()
            if freeze_gc:
                gc.unfreeze()

    app = FastAPI(
        title="lstmkit",
        version=__version__,
        description="Text classification with an lstmkit model bundle.",
        lifespan=lifespan,
    )
    app.state.token = token  # read by require_token (the studio's app sets its own)
    app.state.serving = None  # until the lifespan has loaded the model
    # the token check only when there is a token: two dependencies solved per request otherwise
    # for nothing; the OpenAPI schema then lists no security
    app.include_router(v1, dependencies=V1_AUTH if token is not None else None)
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, invalid_request)
    # JSON escapes make at most 6 bytes of a character ("\u00e9"); the rest is syntax. Counted
    # as the body arrives, chunked or not (lstmkit.serve.bodylimit)
    app.add_middleware(BodyLimit, max_bytes=max_body_bytes(max_texts, max_chars))
    return app
