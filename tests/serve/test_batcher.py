"""lstmkit.serve.batcher: concurrent requests share model calls; results stay with their request."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest

from lstmkit.serve.batcher import MicroBatcher


class FakePredictor:
    """Records each call; 'bad' texts raise like Predictor does for an unreadable text."""

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        self.calls.append(list(texts))
        if "bad" in texts:
            raise ValueError(f"text {texts.index('bad')} is bad")
        return [{"label": t.upper(), "scores": {}} for t in texts]


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_concurrent_requests_are_batched_and_answered_in_order() -> None:
    fake = FakePredictor()

    async def main() -> list[list[dict[str, Any]]]:
        batcher = MicroBatcher(fake, max_batch=64, max_wait_ms=20)  # type: ignore[arg-type]
        batcher.start()
        try:
            reqs = [[f"a{i}", f"b{i}"] for i in range(10)]
            return await asyncio.gather(*(batcher.predict(r) for r in reqs))
        finally:
            await batcher.stop()

    results = run(main())
    assert [[p["label"] for p in r] for r in results] == [[f"A{i}", f"B{i}"] for i in range(10)]
    assert len(fake.calls) < 10  # shared model calls
    assert sum(len(c) for c in fake.calls) == 20


def test_batches_stop_at_max_batch() -> None:
    fake = FakePredictor()

    async def main() -> None:
        batcher = MicroBatcher(fake, max_batch=4, max_wait_ms=20)  # type: ignore[arg-type]
        batcher.start()
        try:
            await asyncio.gather(*(batcher.predict([f"t{i}"]) for i in range(12)))
        finally:
            await batcher.stop()

    run(main())
    assert max(len(c) for c in fake.calls) <= 4 and sum(len(c) for c in fake.calls) == 12


def test_one_bad_request_does_not_fail_the_others() -> None:
    fake = FakePredictor()

    async def main() -> list[Any]:
        batcher = MicroBatcher(fake, max_batch=64, max_wait_ms=20)  # type: ignore[arg-type]
        batcher.start()
        try:
            return await asyncio.gather(
                batcher.predict(["x"]),
                batcher.predict(["bad"]),
                batcher.predict(["y"]),
                return_exceptions=True,
            )
        finally:
            await batcher.stop()

    ok1, bad, ok2 = run(main())
    assert ok1[0]["label"] == "X" and ok2[0]["label"] == "Y"
    assert isinstance(bad, ValueError) and "text 0 is bad" in str(bad)


def test_stop_fails_pending_requests_cleanly() -> None:
    fake = FakePredictor()

    async def main() -> None:
        batcher = MicroBatcher(fake, max_wait_ms=1000)  # type: ignore[arg-type]
        batcher.start()
        waiting = asyncio.ensure_future(batcher.predict(["queued"]))
        await asyncio.sleep(0.01)  # queued, the collector waiting for company
        await batcher.stop()
        with pytest.raises(RuntimeError, match="shutting down"):
            await waiting
        # a request after stop fails at once (it used to hang)
        with pytest.raises(RuntimeError, match="shutting down"):
            await asyncio.wait_for(batcher.predict(["late"]), 1.0)

    run(main())
    assert fake.calls == []


class SlowPredictor(FakePredictor):
    """Takes 30 ms per call, like a model on a batch: requests pile up meanwhile."""

    def predict(self, texts: list[str]) -> list[dict[str, Any]]:
        time.sleep(0.03)
        return super().predict(texts)


def test_requests_arriving_during_inference_form_the_next_batch() -> None:
    fake = SlowPredictor()

    async def main() -> list[list[dict[str, Any]]]:
        batcher = MicroBatcher(fake, max_batch=64, max_wait_ms=0)  # type: ignore[arg-type]
        batcher.start()
        try:
            first = asyncio.ensure_future(batcher.predict(["first"]))
            await asyncio.sleep(0.01)  # the first call is running now
            rest = [asyncio.ensure_future(batcher.predict([f"t{i}"])) for i in range(20)]
            return [await first, *[await r for r in rest]]
        finally:
            await batcher.stop()

    results = run(main())
    assert [r[0]["label"] for r in results] == ["FIRST", *[f"T{i}" for i in range(20)]]
    # no timer to wait for (max_wait_ms=0): the 20 that came during the first call are one batch
    assert fake.calls == [["first"], [f"t{i}" for i in range(20)]]


def test_batches_keep_requests_whole_and_in_arrival_order() -> None:
    fake = FakePredictor()

    async def main() -> None:
        batcher = MicroBatcher(fake, max_batch=5, max_wait_ms=50)  # type: ignore[arg-type]
        batcher.start()
        try:
            sizes = [3, 2, 4, 1, 5, 2]
            reqs = [[f"r{k}-{j}" for j in range(n)] for k, n in enumerate(sizes)]
            got = await asyncio.gather(*(batcher.predict(r) for r in reqs))
            assert [[p["label"] for p in g] for g in got] == [[t.upper() for t in r] for r in reqs]
        finally:
            await batcher.stop()

    run(main())
    # whole requests, oldest first, at most 5 texts: [3+2], [4+1], [5], [2]
    assert [len(c) for c in fake.calls] == [5, 5, 5, 2]
    assert [t for c in fake.calls for t in c][:5] == ["r0-0", "r0-1", "r0-2", "r1-0", "r1-1"]


def test_full_batch_does_not_wait_for_the_timer() -> None:
    fake = FakePredictor()

    async def main() -> float:
        batcher = MicroBatcher(fake, max_batch=4, max_wait_ms=1000)  # type: ignore[arg-type]
        batcher.start()
        try:
            start = time.perf_counter()
            await asyncio.gather(*(batcher.predict([f"t{i}"]) for i in range(4)))
            return time.perf_counter() - start
        finally:
            await batcher.stop()

    assert run(main()) < 0.5  # max_wait_ms is 1 s: a full batch went at once
    assert fake.calls == [["t0", "t1", "t2", "t3"]]


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"max_batch": 0}, "max_batch must be >= 1, got 0"), ({"max_wait_ms": -1}, "max_wait_ms")],
)
def test_bad_settings_are_refused(kwargs: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        MicroBatcher(FakePredictor(), **kwargs)  # type: ignore[arg-type]
