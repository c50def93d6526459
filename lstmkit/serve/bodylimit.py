"""Request bodies bounded however they arrive: :class:`BodyLimit`, a pure ASGI middleware.

A body with a ``Content-Length`` over the limit is refused (413) before a byte of it is read.
A body without one (``Transfer-Encoding: chunked``) is counted as it arrives: the ``receive``
the app gets adds up the ``http.request`` bytes, and the chunk that passes the limit sends the
413 at once and ends the app's reading with :class:`BodyTooLarge`; the rest of the body is never
read (the 413 says ``Connection: close``, so the server drops the connection instead of reading
it to its end). The app's own answer to the aborted read (FastAPI's 400 for a body it could not
parse) is dropped: the client sees only the 413. The answer is JSON, ``{"detail": "..."}``, as
every other error of the serving app and the studio.

Used by :func:`lstmkit.serve.create_app` (the limit follows from ``max_chars`` and
``max_texts``) and by the studio (its JSON API; the upload route streams into a file under its
own, larger limit and is exempt).
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Collection

from starlette.types import ASGIApp, Message, Receive, Scope, Send


class BodyTooLarge(Exception):
    """Raised from the wrapped ``receive`` once the body passes the limit (the 413 is sent)."""


async def send_too_large(send: Send, detail: str) -> None:
    """The 413 answer: JSON ``{"detail": ...}``, and the connection closed after it."""
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": 413,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Answer 413 to an HTTP request whose body is over ``max_bytes``, reading at most
    ``max_bytes`` plus one chunk of it. Paths in ``exempt`` (exact ``scope["path"]`` matches)
    pass untouched."""

    def __init__(self, app: ASGIApp, max_bytes: int, exempt: Collection[str] = ()) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be >= 1, got {max_bytes}")
        self.app = app
        self.max_bytes = max_bytes
        self.exempt = frozenset(exempt)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["path"] in self.exempt:
            await self.app(scope, receive, send)
            return
        length = dict(scope["headers"]).get(b"content-length")
        if length is not None and length.isdigit() and int(length) > self.max_bytes:
            await send_too_large(
                send, f"request body too large: {int(length)} bytes, at most {self.max_bytes}"
            )
            return
        received = 0
        refused = False  # the 413 went out: what the app sends after it is dropped
        started = False  # the app's response began before the body passed the limit

        async def counting_receive() -> Message:
            nonlocal received, refused
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    if not started and not refused:
                        refused = True
                        await send_too_large(
                            send,
                            f"request body too large: {received} bytes so far, at most "
                            f"{self.max_bytes}",
                        )
                    raise BodyTooLarge(f"request body over {self.max_bytes} bytes")
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started
            if refused:
                return
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        # BodyTooLarge: the 413 is sent (or the app's own answer had begun: it is cut short)
        with contextlib.suppress(BodyTooLarge):
            await self.app(scope, counting_receive, guarded_send)
