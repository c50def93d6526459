"""Micro-batching: texts of requests that arrive together run as one model call.

Every ``/v1/predict`` request puts its texts on a queue and awaits a future. One collector task
takes what is queued, waits at most ``max_wait_ms`` for more (up to ``max_batch`` texts), and
runs the whole batch in ONE inference thread (:meth:`Predictor.predict` sorts by length, so the
batch is length-bucketed). One thread, not a pool: torch's own threads already use the cores,
and several Python threads each calling torch multiply the threads and slow everything down
(measured in benchmarks/serve_load.py). The event loop never blocks on the model.
"""

from __future__ import annotations

import asyncio
import contextlib
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
    """Collects concurrent requests into batches of at most ``max_batch`` texts."""

    predictor: Predictor
    max_batch: int = 64
    max_wait_ms: float = 2.0
    _queue: asyncio.Queue[_Item] = field(default_factory=asyncio.Queue)
    _task: asyncio.Task[None] | None = None
    _executor: ThreadPoolExecutor | None = None

    def start(self) -> None:
        """Start the collector task and the inference thread (inside the running loop)."""
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="lstmkit-infer")
        self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        """Stop collecting; pending requests fail with RuntimeError."""
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if not item.future.done():
                item.future.set_exception(RuntimeError("the server is shutting down"))
        if self._executor is not None:
            self._executor.shutdown(wait=True)

    async def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        """Predictions for ``texts`` (in order), computed in a batch with other requests."""
        future: asyncio.Future[list[dict[str, Any]]] = asyncio.get_running_loop().create_future()
        await self._queue.put(_Item(list(texts), future))
        return await future

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            items = [await self._queue.get()]
            size = len(items[0].texts)
            deadline = loop.time() + self.max_wait_ms / 1000
            while size < self.max_batch:
                timeout = deadline - loop.time()
                if timeout <= 0:
                    break
                try:
                    item = await asyncio.wait_for(self._queue.get(), timeout)
                except TimeoutError:
                    break
                items.append(item)
                size += len(item.texts)
            texts = [t for item in items for t in item.texts]
            try:
                results = await loop.run_in_executor(self._executor, self.predictor.predict, texts)
            except Exception as err:  # noqa: BLE001 - handed to the waiting requests, not swallowed
                if len(items) == 1:
                    items[0].future.set_exception(err)
                    continue
                # one bad request must not fail the others: run each on its own
                for item in items:
                    try:
                        res = await loop.run_in_executor(
                            self._executor, self.predictor.predict, item.texts
                        )
                    except Exception as one:  # noqa: BLE001
                        item.future.set_exception(one)
                    else:
                        item.future.set_result(res)
                continue
            start = 0
            for item in items:
                n = len(item.texts)
                if not item.future.done():
                    item.future.set_result(results[start : start + n])
                start += n
