"""Micro-batching: texts of requests that arrive together run as one model call.

Every ``/v1/predict`` request appends its texts to a pending list and awaits a future. One
collector task takes the pending requests in arrival order (whole requests, at most ``max_batch``
texts), waits at most ``max_wait_ms`` for more when it has fewer, and runs the whole batch in ONE
inference thread (:meth:`Predictor.predict` sorts by length, so the batch is length-bucketed).
While that thread runs, new requests pile up and form the next batch: under load the batches grow
by themselves and nobody waits for the timer. One thread, not a pool: torch's own threads already
use the cores, and several Python threads each calling torch multiply the threads and slow
everything down (measured in benchmarks/serve_load.py). The event loop never blocks on the model.

The pending list and two events are used instead of an ``asyncio.Queue`` with
``asyncio.wait_for`` per item: on Python 3.11 every ``wait_for`` starts a task, which cost more
than the rest of the batching together at ~1000 requests/s.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from lstmkit.bundle import Predictor


@dataclass
class _Item:
    texts: list[str]
    future: asyncio.Future[list[dict[str, Any]]]


@dataclass
class MicroBatcher:
    """Collects concurrent requests into batches of at most ``max_batch`` texts; ``on_batch``
    (when given) hears the size of every model call (the ``/metrics`` histogram)."""

    predictor: Predictor
    max_batch: int = 64
    max_wait_ms: float = 2.0
    on_batch: Callable[[int], None] | None = None
    _pending: deque[_Item] = field(default_factory=deque)
    _size: int = 0  # texts in _pending
    _arrived: asyncio.Event = field(default_factory=asyncio.Event)  # _pending is not empty
    _full: asyncio.Event = field(default_factory=asyncio.Event)  # _size >= max_batch
    _task: asyncio.Task[None] | None = None
    _executor: ThreadPoolExecutor | None = None
    _closed: bool = False

    def __post_init__(self) -> None:
        if self.max_batch < 1:
            raise ValueError(f"max_batch must be >= 1, got {self.max_batch}")
        if not 0 <= self.max_wait_ms <= 1000:
            raise ValueError(f"max_wait_ms must be in [0, 1000], got {self.max_wait_ms}")

    @property
    def pending(self) -> int:
        """Texts waiting for the model now."""
        return self._size

    def start(self) -> None:
        """Start the collector task and the inference thread (inside the running loop)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-infer")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop collecting; pending requests (and later ones) fail with RuntimeError."""
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while self._pending:
            item = self._pending.popleft()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        self._size = 0
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (in order), computed in a batch with other requests."""
        if self._closed:
            raise RuntimeError("the server is shutting down")
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        self._pending.append(_Item(list(texts), future))
        self._size += len(texts)
        self._arrived.set()
        if self._size >= self.max_batch:
            self._full.set()
        return await future

    def _take(self) -> list[_Item]:
        """The oldest pending requests, whole, with at most max_batch texts (at least one)."""
        items = [self._pending.popleft()]
        size = len(items[0].texts)
        while self._pending and size + len(self._pending[0].texts) <= self.max_batch:
            items.append(self._pending.popleft())
            size += len(items[-1].texts)
        self._size -= size
        if not self._pending:
            self._arrived.clear()
        if self._size < self.max_batch:
            self._full.clear()
        return items

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await self._arrived.wait()
            if self._size < self.max_batch and self.max_wait_ms > 0:
                with contextlib.suppress(TimeoutError):  # waited long enough for company
                    async with asyncio.timeout(self.max_wait_ms / 1000):
                        await self._full.wait()
            items = self._take()
            texts = [t for item in items for t in item.texts]
            if self.on_batch is not None:
                self.on_batch(len(texts))
            try:
                results = await loop.run_in_executor(self._executor, self.predictor.predict, texts)
            except Exception as err:  # noqa: BLE001 - handed to the waiting requests, not swallowed
                if len(items) == 1:
                    if not items[0].future.done():
                        items[0].future.set_exception(err)
                    continue
                # one bad request must not fail the others: run each on its own
                for item in items:
                    try:
                        res = await loop.run_in_executor(
                            self._executor, self.predictor.predict, item.texts
                        )
                    except Exception as one:  # noqa: BLE001
                        if not item.future.done():
                            item.future.set_exception(one)
                    else:
                        if not item.future.done():
                            item.future.set_result(res)
                continue
            start = 0
            for item in items:
                n = len(item.texts)
                if not item.future.done():  # a client that went away cancelled its future
                    item.future.set_result(results[start : start + n])
                start += n
