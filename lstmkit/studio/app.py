"""The training studio's FastAPI app: :func:`create_studio_app` (the factory; the lifespan opens
the :class:`~lstmkit.studio.deps.Studio` once into ``app.state.studio``). ``lstmkit studio`` runs
it with uvicorn (:mod:`lstmkit.studio.server`).

Home directory layout (``--home``, default ``studio-home``)::

    studio.sqlite3        runs, metric rows, uploads (lstmkit.studio.store; migrated on start)
    runs/<id>/            one ``lstmkit train --out`` run directory each, + train.log
    bundles/<id>/         "Use this model": the run exported as a bundle (lstmkit.bundle)
    uploads/<id>.<fmt>    uploaded CSV / TSV / JSONL files (lstmkit.studio.uploads)

The app serves the page at ``/`` (``static/``), the JSON API under ``/api`` (bearer token when
given; the routers of :mod:`lstmkit.studio.routes`) and each exported model's serving app under
``/models/<id>/`` (:mod:`lstmkit.studio.mounts`). No CORS headers: pages on other origins cannot
call it.
"""

from __future__ import annotations

import json
import os
import sys
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from urllib.parse import urlsplit

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from starlette.types import ASGIApp, Receive, Scope, Send

from lstmkit.errors import ConfigError
from lstmkit.recipes import folder as packaged_folder
from lstmkit.serve.bodylimit import BodyLimit
from lstmkit.serve.validation import invalid_request
from lstmkit.studio.deps import Studio
from lstmkit.studio.jobs import JobQueue, Launcher, default_launcher
from lstmkit.studio.mounts import ModelMounts
from lstmkit.studio.routes import api_router, pages
from lstmkit.studio.store import DB_NAME, Store
from lstmkit.version import __version__

_SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}
# the JSON API's bodies (a run's parameters) are small; counted as they arrive, chunked or not.
# The upload route streams its file into HOME/uploads under its own limit (max_upload_bytes)
MAX_JSON_BODY_BYTES = 1024 * 1024
UPLOAD_PATH = "/api/uploads"


def _host_name(netloc: str) -> str:
    """``host[:port]`` (``[v6]:port``) -> host."""
    if netloc.startswith("["):
        return netloc[1:].partition("]")[0]
    return netloc.rpartition(":")[0] if netloc.count(":") == 1 else netloc


class _SameSite:
    """Refuse requests a web page of another site makes through the user's browser.

    - A request whose ``Origin`` is not this server (``Origin`` host:port != ``Host``) may not
      change anything (403): a page elsewhere cannot start, cancel or upload. Browsers send
      ``Origin`` with every cross-origin POST; the studio's own page sends its own.
    - With ``allowed_hosts`` (the loopback names when the studio binds 127.0.0.1), a ``Host``
      header naming another host is refused (400): DNS rebinding cannot read the API.
    """

    def __init__(self, app: ASGIApp, allowed_hosts: tuple[str, ...] | None) -> None:
        self.app = app
        self.allowed_hosts = allowed_hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            headers = dict(scope["headers"])
            host = headers.get(b"host", b"").decode("latin-1")
            if self.allowed_hosts is not None and _host_name(host) not in self.allowed_hosts:
                await _refuse(
                    send,
                    400,
                    f"host {host!r} is not served here; use " + " or ".join(self.allowed_hosts),
                )
                return
            origin = headers.get(b"origin")
            cross = origin is not None and urlsplit(origin.decode("latin-1")).netloc != host
            if cross and scope["method"] not in _SAFE_METHODS:
                assert origin is not None
                await _refuse(
                    send,
                    403,
                    f"cross-site request refused: origin {origin.decode('latin-1')!r} is not "
                    "this studio",
                )
                return
        await self.app(scope, receive, send)


async def _refuse(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _recipe_file(recipe_dirs: tuple[Path, ...], name: str) -> Path:
    """The file of recipe ``name``: the last folder's that has one (as the catalogue lists it)."""
    for folder in reversed(recipe_dirs):
        if (folder / f"{name}.toml").is_file():
            return folder / f"{name}.toml"
    # removed since it was queued: the run's train.log names the missing file
    return (recipe_dirs[-1] if recipe_dirs else Path.cwd()) / f"{name}.toml"


def create_studio_app(
    home: str | os.PathLike[str],
    *,
    recipes_dir: str | os.PathLike[str] | None = None,
    packaged_recipes: bool | None = None,
    token: str | None = None,
    max_concurrent: int = 1,
    max_upload_bytes: int = 50 * 1024 * 1024,
    grace_s: float = 30.0,
    poll_s: float = 0.25,
    python: str = sys.executable,
    env: dict[str, str] | None = None,
    launcher: Launcher = default_launcher,
    allowed_hosts: tuple[str, ...] | None = None,
) -> FastAPI:
    """The studio for ``home`` (created if missing).

    Args:
        recipes_dir: a folder of ``*.toml`` recipes of one's own (read at every listing: a
            recipe added while the studio runs shows up).
        packaged_recipes: also offer lstmkit's packaged recipes (:mod:`lstmkit.recipes`); by
            default only when no ``recipes_dir`` is given (``lstmkit studio`` offers both). A
            recipe of ``recipes_dir`` with a packaged recipe's name takes its place.
        token: when given, every ``/api`` and ``/models/<id>/v1`` route wants
            ``Authorization: Bearer <token>``.
        max_concurrent: most runs training at once; the others wait in the queue.
        max_upload_bytes: larger uploads are refused (413). Every other request body is
            bounded by ``MAX_JSON_BODY_BYTES`` (413 as soon as it is passed, chunked or not).
        grace_s: seconds a cancelled or interrupted run gets to checkpoint after SIGINT.
        poll_s, python, env, launcher: see :class:`lstmkit.studio.jobs.JobQueue`.
        allowed_hosts: refuse requests whose ``Host`` is not one of these (None: any host).
            Requests from pages of other origins may never change anything.

    Raises :class:`~lstmkit.errors.ConfigError` (a ``ValueError``) for a bad argument. The store
    is opened (created, migrated) and runs left ``running`` by a previous studio are marked
    ``interrupted`` when the app starts (its lifespan); stopping it interrupts the running runs
    (they checkpoint) and marks them ``interrupted``. ``app.state.closing`` is set when the
    server stops: the live streams end.
    """
    home_path = Path(home).expanduser().resolve()
    folders: list[Path] = []
    if packaged_recipes or (packaged_recipes is None and recipes_dir is None):
        folders.append(packaged_folder())
    if recipes_dir is not None:
        own = Path(recipes_dir).expanduser().resolve()
        if not own.is_dir():
            raise ConfigError(
                f"recipe folder {own} does not exist; pass --recipes DIR (a folder of *.toml "
                "recipes of your own) or leave it out for the packaged recipes"
            )
        folders.append(own)
    recipe_dirs = tuple(folders)
    if token is not None and not token:
        raise ConfigError("token must not be empty (give None for no token)")
    if max_upload_bytes < 1:
        raise ConfigError(f"max_upload_bytes must be >= 1, got {max_upload_bytes}")
    if max_concurrent < 1:
        raise ConfigError(f"max_concurrent must be >= 1, got {max_concurrent}")
    closing = threading.Event()
    mounts = ModelMounts(home_path / "bundles", token)

    def open_studio() -> Studio:
        for sub in ("runs", "bundles", "uploads"):
            (home_path / sub).mkdir(parents=True, exist_ok=True)
        for part in (home_path / "uploads").glob(".*.part"):  # uploads cut off by a crash
            part.unlink()
        store = Store(home_path / DB_NAME)
        queue = JobQueue(
            store,
            home_path,
            lambda run: _recipe_file(recipe_dirs, run["recipe"]),
            max_concurrent=max_concurrent,
            grace_s=grace_s,
            poll_s=poll_s,
            python=python,
            env=env,
            launcher=launcher,
        )
        return Studio(
            home=home_path,
            recipe_dirs=recipe_dirs,
            store=store,
            queue=queue,
            mounts=mounts,
            token=token,
            max_upload_bytes=max_upload_bytes,
            closing=closing,
            recovered=queue.recover(),
        )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        studio = await run_in_threadpool(open_studio)
        studio.queue.start()
        app.state.studio = studio
        try:
            yield
        finally:
            await run_in_threadpool(studio.queue.stop)
            await mounts.close()
            app.state.studio = None

    app = FastAPI(
        title="lstmkit studio",
        version=__version__,
        description="Set a recipe's parameters, train it in the background, watch it live, "
        "compare runs, and use the model.",
        lifespan=lifespan,
    )
    app.state.studio = None  # until the lifespan opens it
    app.state.closing = closing
    app.include_router(api_router())
    app.include_router(pages.router)
    app.add_exception_handler(RequestValidationError, invalid_request)  # 422 for any body
    app.mount("/models", mounts)  # each serving app bounds its bodies itself, more tightly
    app.add_middleware(BodyLimit, max_bytes=MAX_JSON_BODY_BYTES, exempt=(UPLOAD_PATH,))
    app.add_middleware(_SameSite, allowed_hosts=allowed_hosts)
    return app
