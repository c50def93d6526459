"""A lean path for the hottest request, ``POST /v1/predict``, in front of FastAPI.

Under load most of a worker's CPU went to FastAPI's machinery around the route (middleware
layers, route matching, dependency solving, request and response models: about half of the
time the worker held the GIL, measured with py-spy under benchmarks/serve_load.py), not to the
model. :class:`FastPredict` answers the predict requests that will succeed itself: it reads the
body, validates it with the same :class:`~lstmkit.serve.schemas.PredictRequest` (pydantic's JSON
mode), applies the same limits, runs the texts through the same micro-batcher and writes the
JSON FastAPI would write (``json.dumps`` with FastAPI's separators).

Every other request -- other paths, no micro-batcher, a body that is not ``application/json``,
a token header that is not exactly ``Bearer <token>``, a body that fails validation or a limit,
a text the model refuses -- goes on to the FastAPI app unchanged (with the body it read), so every
error response, status and message is FastAPI's own (tests/serve/test_fast.py sends the same
requests both ways).
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from pydantic import ValidationError
from starlette.datastructures import State
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from lstmkit.serve.schemas import PredictRequest

PATH = "/v1/predict"


class FastPredict:
    """ASGI middleware: successful ``POST /v1/predict`` requests without FastAPI's routing."""

    def __init__(self, app: ASGIApp, state: State) -> None:
        self.app = app
        self.state = state  # the FastAPI app's state: batcher, token and limits, read per request

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        batcher = self.state.batcher
        if (
            scope["type"] != "http"
            or scope["path"] != PATH
            or scope["method"] != "POST"
            or batcher is None
            or not self._headers_ok(scope)
        ):
            await self.app(scope, receive, send)
            return
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":  # the client went away
                return
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        texts = self._texts(body)
        results: list[dict[str, Any]] | None = None
        if texts is not None:
            try:
                results = await batcher.predict(texts)
            except ValueError:  # the route turns it into its 422
                results = None
        if results is None:
            await self.app(scope, _replay(body, receive), send)
            return
        # what FastAPI's JSONResponse writes for the route's PredictResponse
        payload = json.dumps(
            {"predictions": results}, ensure_ascii=False, allow_nan=False, separators=(",", ":")
        ).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-length", str(len(payload)).encode()),
                    (b"content-type", b"application/json"),
                ],
            }
        )
        await send({"type": "http.response.body", "body": payload})

    def _headers_ok(self, scope: Scope) -> bool:
        """JSON content, and the token when the app has one (else FastAPI decides)."""
        content_type = b""
        authorization = None
        for name, value in scope["headers"]:
            if name == b"content-type":
                content_type = value
            elif name == b"authorization":
                authorization = value
        if content_type.split(b";", 1)[0].strip().lower() != b"application/json":
            return False
        token: str | None = self.state.token
        if token is None:
            return True
        return authorization is not None and secrets.compare_digest(
            authorization, b"Bearer " + token.encode()
        )

    def _texts(self, body: bytes) -> list[str] | None:
        """The texts of a valid request within the limits, else None."""
        try:
            request = PredictRequest.model_validate_json(body)
        except ValidationError:
            return None
        texts = request.texts
        if len(texts) > self.state.max_texts or sum(map(len, texts)) > self.state.max_chars:
            return None
        return texts


def _replay(body: bytes, receive: Receive) -> Receive:
    """A receive that hands the app the body already read, then the client's next messages."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
