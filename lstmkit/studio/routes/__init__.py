"""The studio's routers, one per resource (as the FastAPI full-stack template's ``api/routes``):

======================  ==========================================================
:mod:`.options`         ``GET /api/options``: what the new-run form offers
:mod:`.runs`            ``/api/runs``: list, queue, read, metrics, log, cancel, resume
:mod:`.events`          ``GET /api/runs/<id>/events``: a run's live stream (SSE)
:mod:`.forecasts`       ``GET /api/runs/<id>/forecasts``, ``.../forecast.png``: forecast results
:mod:`.bundles`         ``POST /api/runs/<id>/bundle``: "Use this model"
:mod:`.compare`         ``GET /api/compare``: runs side by side
:mod:`.uploads`         ``/api/uploads``: data files for the own-data path
:mod:`.pages`           ``/``, ``/static/...``, ``/health`` (no token)
======================  ==========================================================

Each reads the studio through :mod:`lstmkit.studio.deps`; :func:`api_router` gathers the
``/api`` routers behind the bearer token, and the app
(:func:`lstmkit.studio.app.create_studio_app`) includes it and :data:`pages.router`.
"""

from __future__ import annotations

from fastapi import APIRouter, Depends

from lstmkit.studio.deps import require_token
from lstmkit.studio.routes import (
    bundles,
    compare,
    events,
    forecasts,
    options,
    pages,
    runs,
    uploads,
)

__all__ = ["api_router", "pages"]


def api_router() -> APIRouter:
    """The ``/api`` routes, each behind :func:`~lstmkit.studio.deps.require_token` (a new
    router per app: nothing module-level is changed)."""
    api = APIRouter(
        prefix="/api",
        dependencies=[Depends(require_token)],
        responses={
            401: {"description": "missing or wrong bearer token (when the studio has one)"},
            403: {"description": "a cross-site request (its Origin is another site)"},
        },
    )
    for module in (options, runs, events, forecasts, bundles, compare, uploads):
        api.include_router(module.router)
    return api
