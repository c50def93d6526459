"""lstmkit.serve.batcher: concurrent requests share model calls; results stay with their request."""

from __future__ import annotations

import asyncio
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
        batcher = MicroBatcher(fake)  # type: ignore[arg-type]
        batcher.start()
        await batcher.stop()
        with pytest.raises(asyncio.TimeoutError):
            await asyncio.wait_for(batcher.predict(["late"]), 0.05)

    run(main())
