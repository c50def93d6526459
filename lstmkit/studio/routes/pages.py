"""The page and liveness, no token needed: ``/`` (the studio page, which asks for a token when the
API wants one), ``/static/...`` (its script, stylesheet, the vendored chart library and the tick
labels it shares with the serving pages, ``lstmkit/serve/static/ticks.js``; nothing else) and ``/health``."""

from __future__ import annotations

from pathlib import Path

from fastapi import APIRouter, HTTPException, status
from fastapi.responses import FileResponse

from lstmkit.serve.routes import STATIC_DIR as SERVE_STATIC_DIR
from lstmkit.studio.deps import StudioDep
from lstmkit.studio.schemas import Health
from lstmkit.studio.store import ACTIVE

STATIC_DIR = Path(__file__).resolve().parents[1] / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uPlot.LICENSE": "text/plain; charset=utf-8",
    "ticks.js": "text/javascript; charset=utf-8",
}
# files the serving pages and the studio share, kept once in lstmkit/serve/static
SHARED_FILES = frozenset({"ticks.js"})

router = APIRouter(tags=["page"])


@router.get("/health")
async def health(studio: StudioDep) -> Health:
    """Liveness (no token): the queue's size and limit."""
    active = studio.store.list_runs(ACTIVE)
    return Health(
        running=sum(r["status"] != "queued" for r in active),
        queued=sum(r["status"] == "queued" for r in active),
        max_concurrent=studio.queue.max_concurrent,
    )


def _static(name: str) -> FileResponse:
    folder = SERVE_STATIC_DIR if name in SHARED_FILES else STATIC_DIR
    return FileResponse(
        folder / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
    )


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The studio page (no token needed; it asks for one when the API wants it)."""
    return _static("index.html")


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The page's icon (an SVG; browsers that ask for /favicon.ico get it rather than a 404)."""
    return _static("favicon.svg")


@router.get("/static/{name:path}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    """The page's script, stylesheet and the vendored chart library (nothing else)."""
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no static file {name!r}")
    return _static(name)
