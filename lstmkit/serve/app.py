"""The app factory: :func:`create_app` builds the FastAPI application of one model, whatever
lstmkit trained: a text classifier (``/v1/predict``, ``/v1/inspect``), a forecaster
(``/v1/forecast``, :mod:`lstmkit.serve.forecast`) or a character language model
(``/v1/generate``, :mod:`lstmkit.serve.generate`); :func:`create_multi_app` serves several, each
at ``/models/<name>/v1/...``, with ``GET /v1/models`` listing them.

The model is loaded once, in the app's ``lifespan``, into ``app.state.serving`` (a
:class:`~lstmkit.serve.state.Serving`: the model, the classifier's micro-batcher, the request
limits); the routes read it through a dependency. The routes are chosen when the app is built,
from the task in the directory's ``config.json``. Every app has ``/health`` (alive), ``/ready``
(loaded and warmed) and ``/metrics`` (Prometheus, :mod:`lstmkit.serve.metrics`). This module
builds apps and starts nothing: the server that runs one (uvicorn, ``--workers``) is
:mod:`lstmkit.serve.server`. Run an app with ``lstmkit serve RUN_OR_BUNDLE... [--host 127.0.0.1]
[--port 8000] [--token-file F]``, or ``uvicorn --factory`` around a ``create_app`` call. OpenAPI
docs at ``/docs``. No CORS headers: browsers on other origins cannot call the API.
"""

from __future__ import annotations

import asyncio
import gc
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import torch
from fastapi import APIRouter, FastAPI, Request
from fastapi.exceptions import RequestValidationError

from lstmkit.bundle import Predictor
from lstmkit.errors import BundleError, ConfigError, UnsupportedModelError
from lstmkit.serve.batcher import MicroBatcher
from lstmkit.serve.bodylimit import BodyLimit
from lstmkit.serve.forecast import forecast_router
from lstmkit.serve.generate import generate_router
from lstmkit.serve.metrics import RequestMetrics, ServeMetrics
from lstmkit.serve.models import CharModel, ForecastModel, Served, load_served, served_task, task_of
from lstmkit.serve.routes import V1_AUTH, ops, router, v1
from lstmkit.serve.schemas import ModelList
from lstmkit.serve.state import Serving
from lstmkit.serve.validation import invalid_request
from lstmkit.version import __version__

DESCRIPTIONS = {
    "classify": "Text classification with an lstmkit model bundle.",
    "forecast": "Forecasts with their quantile band from an lstmkit forecasting run.",
    "language_model": "Text generation (streamed or not) with an lstmkit character language model.",
}


def max_body_bytes(max_texts: int, max_chars: int) -> int:
    """The largest request body the API reads: ``max_chars`` characters in ``max_texts`` texts,
    each character escaped in JSON (at most 6 bytes), plus the syntax around them."""
    return 6 * max_chars + 16 * max_texts + 4096


SHM = "/dev/shm"  # a memory file system (Linux)
ROW_BYTES = 256  # a history row in JSON or CSV: a few numbers, a time and an id, generously


def _warm(model: Served) -> None:
    """One call of the model, so that the first request pays no first-call costs."""
    if isinstance(model, Predictor):
        model.predict(["warm up"])
    elif isinstance(model, CharModel):
        with torch.no_grad():
            model.model(torch.zeros((1, 1), dtype=torch.int64))


def _inputs(model: Served) -> dict[str, Any]:
    """What a request to ``model`` holds (``GET /v1/models``)."""
    if isinstance(model, ForecastModel):
        m = model.metadata()
        keys = ("target", "features", "time_column", "id_column", "lookback", "horizon")
        return {"body": "rows (JSON) or CSV", **{k: m[k] for k in keys}}
    if isinstance(model, CharModel):
        return {"body": "prime, length, temperature, top_k, seed, stream"}
    return {"body": "texts", "labels": list(model.labels)}


def _entry(name: str, prefix: str, model: Served) -> dict[str, Any]:
    metrics = model.metrics if not isinstance(model, Predictor) else model.metadata["metrics"]
    return {
        "name": name,
        "task": task_of(model),
        "path": prefix + "/v1",
        "inputs": _inputs(model),
        "metrics": metrics,
    }


def _models_router(token: str | None) -> APIRouter:
    """``GET /v1/models``: the list that the lifespan put into ``app.state.models``."""
    models = APIRouter(prefix="/v1", dependencies=V1_AUTH if token is not None else None)

    @models.get(
        "/models",
        response_model=ModelList,
        responses={401: {"description": "missing or wrong bearer token (when the server has one)"}},
    )
    async def list_models(request: Request) -> ModelList:
        """Every model this server serves: name, task, where its API is, inputs, metrics."""
        return ModelList.model_validate({"models": request.app.state.models})

    return models


def create_app(
    bundle_path: str | os.PathLike[str],
    *,
    token: str | None = None,
    max_texts: int = 64,
    max_chars: int = 20000,
    predictor: Predictor | None = None,
    model: Served | None = None,
    micro_batch: bool = True,
    max_wait_ms: float = 2.0,
    torch_threads: int | None = None,
    freeze_gc: bool = False,
    max_rows: int = 10_000,
    max_length: int = 2000,
    max_streams: int = 4,
    metrics: ServeMetrics | None = None,
    name: str | None = None,
) -> FastAPI:
    """The API for the bundle (or run directory) at ``bundle_path``.

    The model is loaded once, in the app's lifespan (pass ``predictor`` or ``model`` to reuse
    one already loaded; :func:`lstmkit.serve.models.load_served`), into ``app.state.serving``
    (:class:`~lstmkit.serve.state.Serving`), and called once (``/ready`` answers 200 after
    that). The routes follow the run's task: ``/v1/predict`` and ``/v1/inspect`` for a
    classifier, ``/v1/forecast`` for a forecaster, ``/v1/generate`` for a language model, and
    ``/v1/model`` and ``/v1/models`` for all. With ``token``, every ``/v1`` route wants
    ``Authorization: Bearer <token>``. A request with more than ``max_texts`` texts or
    ``max_chars`` characters (all texts together; a prime) gets 413, and so does a body of more
    than :func:`max_body_bytes` bytes (a forecaster's: ``max_rows`` rows of history), counted as
    it arrives (chunked or not; the rest is never read). A language model samples at most
    ``max_length`` characters per request, ``max_streams`` requests at once (503 with
    Retry-After when all are taken). With ``micro_batch``, concurrent
    /v1/predict requests are batched into one model call (waiting at most ``max_wait_ms`` for
    company; :mod:`lstmkit.serve.batcher`). With ``torch_threads``, the lifespan sets torch's
    intra-op threads of the serving process (``torch.set_num_threads``: one setting per process,
    so it is for a process that only serves, as ``lstmkit serve`` starts). ``freeze_gc`` (also
    for such a process) moves every object alive once the model is loaded into the garbage
    collector's permanent generation (:func:`gc.freeze`): a full collection then no longer walks
    torch's and the model's objects, which took ~160 ms per collection -- a pause that every
    request waiting in that process paid (the latency tail under load). ``metrics`` shares a
    registry with other apps (:func:`create_multi_app`: the requests are then counted there,
    not here); ``name`` names the model in ``/v1/models`` and the metrics.

    Raises :class:`~lstmkit.errors.ConfigError` for a bad setting here, and the bundle's
    errors (:class:`~lstmkit.errors.BundleError`, ...) when the lifespan starts.
    """
    for what, value in (
        ("max_texts", max_texts),
        ("max_chars", max_chars),
        ("max_rows", max_rows),
        ("max_length", max_length),
        ("max_streams", max_streams),
    ):
        if value < 1:
            raise ConfigError(f"{what} must be >= 1, got {value}")
    if torch_threads is not None and torch_threads < 1:
        raise ConfigError(
            f"torch_threads must be >= 1 (or None: torch's default), got {torch_threads}"
        )
    if token is not None and not token:
        raise ConfigError("token must not be empty (give None for no token)")
    if predictor is not None and model is not None:
        raise ConfigError("give predictor or model, not both")
    given: Served | None = predictor if predictor is not None else model
    # the task decides the routes; a directory whose config.json cannot be read gets the
    # classifier's, and its lifespan then fails with the loader's error naming the file
    task = task_of(given) if given is not None else (served_task(bundle_path) or "classify")
    if task not in DESCRIPTIONS:
        raise UnsupportedModelError(
            f"{bundle_path}: lstmkit serve serves classifiers, forecasters and language models, "
            f"not {task!r} runs"
        )
    model_name = name or Path(bundle_path).name
    own_metrics = metrics is None
    registry = metrics if metrics is not None else ServeMetrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if torch_threads is not None:
            torch.set_num_threads(torch_threads)
        start = time.perf_counter()
        loaded = given if given is not None else load_served(bundle_path)
        if task_of(loaded) != task:
            raise BundleError(
                f"{bundle_path}: config.json says a {task!r} run, but a "
                f"{task_of(loaded)!r} model was loaded"
            )
        if isinstance(loaded, Predictor) and not loaded.accepts_text:
            raise UnsupportedModelError(
                f"{bundle_path}: the model reads real-valued sequences, not text; "
                "lstmkit serve serves text classifiers, forecasters and language models"
            )
        _warm(loaded)
        registry.load_seconds.labels(model_name).set(time.perf_counter() - start)
        if freeze_gc:
            gc.collect()
            gc.freeze()
        batcher = None
        executor = None
        if isinstance(loaded, Predictor) and micro_batch:
            batcher = MicroBatcher(
                loaded,
                max_batch=max_texts,
                max_wait_ms=max_wait_ms,
                on_batch=registry.batch_size.labels(model_name).observe,
            )
            batcher.start()
            registry.queue_depth.labels(model_name).set_function(lambda: batcher.pending)
        if not isinstance(loaded, Predictor):
            executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-model")
        # the history a forecaster reads goes through a file (the training readers read files):
        # in memory where Linux has one (/dev/shm), as writing it to a disk cost ~3 ms a request
        scratch = (
            Path(
                tempfile.mkdtemp(
                    prefix="lstmkit-forecast-", dir=SHM if Path(SHM).is_dir() else None
                )
            )
            if isinstance(loaded, ForecastModel)
            else None
        )
        app.state.serving = Serving(
            loaded,
            batcher,
            max_texts=max_texts,
            max_chars=max_chars,
            max_rows=max_rows,
            max_length=max_length,
            max_streams=max_streams,
            slots=asyncio.Semaphore(max_streams) if isinstance(loaded, CharModel) else None,
            executor=executor,
            metrics=registry,
            scratch=scratch,
        )
        app.state.models = [_entry(model_name, "", loaded)]
        app.state.ready = True
        try:
            yield
        finally:
            app.state.ready = False
            app.state.serving = None
            if batcher is not None:
                await batcher.stop()
            if executor is not None:
                executor.shutdown(wait=True)
            if scratch is not None:
                shutil.rmtree(scratch, ignore_errors=True)
            if freeze_gc:
                gc.unfreeze()

    app = FastAPI(
        title="lstmkit",
        version=__version__,
        description=DESCRIPTIONS[task],
        lifespan=lifespan,
    )
    app.state.token = token  # read by require_token (the studio's app sets its own)
    app.state.task = task  # which page / serves
    app.state.serving = None  # until the lifespan has loaded the model
    app.state.ready = False
    app.state.models = []
    app.state.metrics = registry
    # the token check only when there is a token: two dependencies solved per request otherwise
    # for nothing; the OpenAPI schema then lists no security
    auth = V1_AUTH if token is not None else None
    api = {"classify": v1, "forecast": forecast_router, "language_model": generate_router}[task]
    app.include_router(api, dependencies=auth)
    app.include_router(_models_router(token))
    app.include_router(router)
    app.add_exception_handler(RequestValidationError, invalid_request)
    if task == "forecast":
        limit = ROW_BYTES * max_rows + 4096
    else:  # JSON escapes make at most 6 bytes of a character ("\u00e9"); the rest is syntax
        limit = max_body_bytes(max_texts, max_chars)
    # counted as the body arrives, chunked or not (lstmkit.serve.bodylimit)
    app.add_middleware(BodyLimit, max_bytes=limit)
    if own_metrics:
        app.add_middleware(RequestMetrics, metrics=registry)
    return app


def model_names(paths: list[str | os.PathLike[str]]) -> dict[str, Path]:
    """``{name: path}``: each directory's name; two of the same name are one ConfigError."""
    out: dict[str, Path] = {}
    for p in paths:
        path = Path(p)
        name = path.resolve().name
        if name in out:
            raise ConfigError(
                f"two models named {name!r} ({out[name]} and {path}): each is served at "
                "/models/<its directory's name>/; rename one directory"
            )
        out[name] = path
    return out


def create_multi_app(
    paths: Mapping[str, str | os.PathLike[str]],
    *,
    token: str | None = None,
    models: Mapping[str, Served] | None = None,
    **kwargs: Any,
) -> FastAPI:
    """One server for several models: the app of each (:func:`create_app`, ``kwargs`` for all)
    mounted at ``/models/<name>/``, its API at ``/models/<name>/v1/...`` and its page at
    ``/models/<name>/``; ``GET /v1/models`` lists them, and ``/health``, ``/ready`` (every model
    loaded) and ``/metrics`` (all of them, one registry) are the server's. ``models`` passes
    models already loaded, by name."""
    if not paths:
        raise ConfigError("give at least one model to serve")
    registry = ServeMetrics()
    apps = {
        name: create_app(
            path,
            token=token,
            model=(models or {}).get(name),
            metrics=registry,
            name=name,
            **kwargs,
        )
        for name, path in paths.items()
    }

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        async with AsyncExitStack() as stack:
            entries = []
            for name, sub in apps.items():
                await stack.enter_async_context(sub.router.lifespan_context(sub))
                serving = sub.state.serving
                entries.append(_entry(name, f"/models/{name}", serving.model))
            app.state.models = entries
            app.state.serving = next(iter(apps.values())).state.serving  # /ready's check
            app.state.ready = True
            try:
                yield
            finally:
                app.state.ready = False
                app.state.serving = None

    app = FastAPI(
        title="lstmkit",
        version=__version__,
        description="Several lstmkit models, each at /models/<name>/v1/ (GET /v1/models).",
        lifespan=lifespan,
    )
    app.state.token = token
    app.state.serving = None
    app.state.ready = False
    app.state.models = []
    app.state.metrics = registry
    app.include_router(_models_router(token))
    app.include_router(ops)  # each model's page is at /models/<name>/
    for name, sub in apps.items():
        app.mount(f"/models/{name}", sub)
    app.add_middleware(RequestMetrics, metrics=registry)
    return app
