""" "Use this model": ``/models/<run id>/`` is the serving app (:func:`lstmkit.serve.create_app`)
of that run's bundle, mounted inside the studio.

Each bundle gets its own serving app (its page at ``/models/<id>/``, its API at
``/models/<id>/v1/predict`` etc., the studio's token), created on its first request; its lifespan
(the model loaded once, the micro-batcher) is entered then and left when the studio stops or when
more than ``max_models`` are loaded (least recently used first). The serving page uses relative
URLs, so it works under this prefix as at the root of ``lstmkit serve``.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import OrderedDict
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from starlette.types import Receive, Scope, Send

from lstmkit.bundle import load
from lstmkit.serve import create_app
from lstmkit.studio.store import RUN_ID_PATTERN

RUN_ID = re.compile(RUN_ID_PATTERN)


async def _json(
    send: Send, status: int, payload: dict[str, Any], headers: list[Any] | None = None
) -> None:
    body = json.dumps(payload).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                *(headers or []),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class ModelMounts:
    """ASGI app for ``/models``: dispatches ``/models/<id>/...`` to the serving app of
    ``bundles_dir/<id>``. Mount it with ``app.mount("/models", ModelMounts(...))``."""

    def __init__(self, bundles_dir: Path, token: str | None, max_models: int = 4) -> None:
        self.bundles_dir = bundles_dir
        self.token = token
        self.max_models = max_models
        self._apps: OrderedDict[str, tuple[FastAPI, AbstractAsyncContextManager[Any]]] = (
            OrderedDict()
        )
        self._lock = asyncio.Lock()

    async def _app(self, run_id: str) -> FastAPI:
        async with self._lock:
            if run_id in self._apps:
                self._apps.move_to_end(run_id)
                return self._apps[run_id][0]
            bundle = self.bundles_dir / run_id
            predictor = await run_in_threadpool(load, bundle)
            app = create_app(bundle, token=self.token, predictor=predictor)
            lifespan = app.router.lifespan_context(app)
            await lifespan.__aenter__()
            self._apps[run_id] = (app, lifespan)
            while len(self._apps) > self.max_models:
                _, (_, old) = self._apps.popitem(last=False)
                await old.__aexit__(None, None, None)
            return app

    async def close(self) -> None:
        """Leave every serving app's lifespan (the studio is stopping)."""
        async with self._lock:
            while self._apps:
                _, (_, lifespan) = self._apps.popitem(last=False)
                await lifespan.__aexit__(None, None, None)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            return
        root = scope.get("root_path", "")
        path = scope["path"]
        rest = path[len(root) :] if root and path.startswith(root) else path
        run_id, _, tail = rest.lstrip("/").partition("/")
        if not RUN_ID.match(run_id):
            await _json(send, 404, {"detail": f"no model {run_id!r}: run ids are 8 hex digits"})
            return
        if not (self.bundles_dir / run_id / "bundle.json").is_file():
            await _json(
                send,
                404,
                {
                    "detail": f"run {run_id} has no bundle yet: POST /api/runs/{run_id}/bundle "
                    "(the run page's 'Use this model') makes one from a finished run"
                },
            )
            return
        prefix = f"{root}/{run_id}"
        if path == prefix:  # the page's relative URLs need the trailing slash
            location = (prefix + "/").encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 307,
                    "headers": [(b"location", location), (b"content-length", b"0")],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        try:
            app = await self._app(run_id)
        except ValueError as err:  # BundleError and friends: the bundle cannot be loaded
            await _json(send, 500, {"detail": f"cannot load the bundle of run {run_id}: {err}"})
            return
        await app({**scope, "root_path": prefix}, receive, send)
