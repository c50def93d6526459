"""What the routes serve with: :class:`Serving`, loaded once by the app's lifespan into
``app.state.serving``, and :func:`get_serving`, the dependency that reads it. Nothing is kept in
this module."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from fastapi import HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool

from lstmkit.bundle import Predictor
from lstmkit.serve.batcher import MicroBatcher
from lstmkit.serve.metrics import ServeMetrics
from lstmkit.serve.models import Served

T = TypeVar("T")


@dataclass(frozen=True)
class Serving:
    """The served model (a :class:`~lstmkit.bundle.Predictor`, a forecaster or a language
    model, :mod:`lstmkit.serve.models`), the classifier's micro-batcher (None: every request
    runs the model on its own), the request limits, the generation slots (at most that many
    generations at once) and the one thread the forecaster and the language model run in
    (None: the event loop's thread pool). One thread, as the micro-batcher's: several Python
    threads each calling torch only slow each other down."""

    model: Served
    batcher: MicroBatcher | None
    max_texts: int
    max_chars: int
    max_rows: int = 10_000
    max_length: int = 2000
    max_streams: int = 4
    slots: asyncio.Semaphore | None = None
    executor: ThreadPoolExecutor | None = None
    metrics: ServeMetrics | None = None
    scratch: Path | None = None  # a forecaster's folder for the history it reads

    @property
    def predictor(self) -> Predictor:
        """The classifier (the text routes are mounted only for one)."""
        assert isinstance(self.model, Predictor)
        return self.model

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in the model's thread, the event loop serving others meanwhile."""
        if self.executor is None:
            return await run_in_threadpool(fn, *args)
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn, *args)


async def get_serving(request: Request) -> Serving:
    """The :class:`Serving` of the app's lifespan; 503 outside it (async: a plain def would cost
    a worker-thread hop per request)."""
    serving: Serving | None = request.app.state.serving
    if serving is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the model is not loaded (the app's lifespan has not started)",
        )
    return serving
