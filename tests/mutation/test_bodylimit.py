"""lstmkit.serve.bodylimit at the ASGI level, where its decisions are: the byte that tips a body
over the limit, counted over every chunk; the 413's exact headers; one answer only, whatever the
app does after the refusal; an app that began answering is cut short, not answered twice.
(Written against the survivors of ``python benchmarks/mutation.py --only bodylimit``.)"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from lstmkit.serve.bodylimit import BodyLimit, BodyTooLarge

Message = dict[str, Any]
LIMIT = 10


def _scope(length: int | None = None) -> dict[str, Any]:
    headers = [] if length is None else [(b"content-length", str(length).encode())]
    return {"type": "http", "path": "/x", "method": "POST", "headers": headers}


def _run(
    app: Callable[[Any, Any, Any], Awaitable[None]],
    chunks: list[bytes],
    length: int | None = None,
    limit: int = LIMIT,
) -> tuple[list[Message], int]:
    """Drive BodyLimit(app) with ``chunks`` as the request body; (messages sent, chunks read)."""
    sent: list[Message] = []
    read = {"n": 0}

    async def receive() -> Message:
        i = read["n"]
        read["n"] += 1
        return {"type": "http.request", "body": chunks[i], "more_body": i + 1 < len(chunks)}

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(BodyLimit(app, max_bytes=limit)(_scope(length), receive, send))
    return sent, read["n"]


async def _reading_app(receive: Any, send: Any) -> int:
    """Read the whole body, then answer 200 with its size."""
    size, more = 0, True
    while more:
        message = await receive()
        size += len(message["body"])
        more = message["more_body"]
    return size


def _echo(record: list[Any]) -> Callable[[Any, Any, Any], Awaitable[None]]:
    async def app(scope: Any, receive: Any, send: Any) -> None:
        size = await _reading_app(receive, send)
        record.append(size)
        await send({"type": "http.response.start", "status": 200, "headers": []})
        await send({"type": "http.response.body", "body": str(size).encode()})

    return app


def _starts(sent: list[Message]) -> list[int]:
    return [m["status"] for m in sent if m["type"] == "http.response.start"]


def test_the_413_names_its_json_length_and_closes_the_connection() -> None:
    sent, read = _run(_echo([]), [b"x" * 11], length=11)
    assert read == 0  # refused on the Content-Length, nothing read
    body = json.dumps({"detail": "request body too large: 11 bytes, at most 10"}).encode()
    assert sent == [
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        },
        {"type": "http.response.body", "body": body},
    ]


@pytest.mark.parametrize("length", [None, 10])
def test_a_body_of_exactly_the_limit_is_answered(length: int | None) -> None:
    """10 bytes under a 10-byte limit, with a Content-Length or in chunks of 4 + 4 + 2."""
    seen: list[int] = []
    chunks = [b"x" * 10] if length else [b"abcd", b"efgh", b"ij"]
    sent, _ = _run(_echo(seen), chunks, length=length)
    assert seen == [10] and _starts(sent) == [200]


def test_chunks_each_under_the_limit_add_up_past_it() -> None:
    """Four chunks of 3 bytes: the fourth takes the body to 12 > 10; the 413 counts it."""
    seen: list[int] = []
    sent, read = _run(_echo(seen), [b"abc"] * 5)
    assert read == 4 and seen == []  # the fifth chunk is never read
    assert _starts(sent) == [413]
    assert json.loads(sent[1]["body"]) == {
        "detail": "request body too large: 12 bytes so far, at most 10"
    }


def test_an_app_that_reads_on_after_the_refusal_gets_no_second_answer() -> None:
    errors: list[str] = []

    async def stubborn(scope: Any, receive: Any, send: Any) -> None:
        for _ in range(2):
            try:
                await _reading_app(receive, send)
            except BodyTooLarge as err:
                errors.append(str(err))
        await send({"type": "http.response.start", "status": 400, "headers": []})
        await send({"type": "http.response.body", "body": b"bad body"})

    sent, _ = _run(stubborn, [b"x" * 11, b"y" * 11])
    assert errors == ["request body over 10 bytes"] * 2
    assert _starts(sent) == [413]  # the app's 400 is dropped, the 413 sent once
    assert [m for m in sent if m["type"] == "http.response.body"][-1]["body"] != b"bad body"


def test_an_app_that_began_its_answer_is_cut_short_not_answered_twice() -> None:
    """A streaming answer already started when the body passes the limit: no 413 after it (the
    client has its status line), the app's read ends with BodyTooLarge, nothing else is sent."""
    errors: list[str] = []

    async def early(scope: Any, receive: Any, send: Any) -> None:
        await send({"type": "http.response.start", "status": 200, "headers": []})
        try:
            await _reading_app(receive, send)
        except BodyTooLarge as err:
            errors.append(str(err))
            raise

    sent, _ = _run(early, [b"x" * 6, b"y" * 6])
    assert errors == ["request body over 10 bytes"]
    assert sent == [{"type": "http.response.start", "status": 200, "headers": []}]


def test_a_one_byte_limit_is_allowed() -> None:
    seen: list[int] = []
    sent, _ = _run(_echo(seen), [b"x"], limit=1)
    assert seen == [1] and _starts(sent) == [200]
    sent, _ = _run(_echo(seen), [b"xy"], limit=1)
    assert _starts(sent) == [413]
