"""What the studio's routes share, as the FastAPI full-stack template's ``deps.py``: the
:class:`Studio` (opened once in the app's lifespan, kept in ``app.state.studio``) and the
dependencies that read it from the request: :func:`get_studio`, :func:`require_token` (the bearer
token of ``lstmkit studio --token``) and :func:`existing_run` (the run of the path, or 404).

The routers (:mod:`lstmkit.studio.routes`) import this module, never the app.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi import Path as PathParam
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lstmkit.serve.auth import check_bearer
from lstmkit.studio.jobs import JobQueue
from lstmkit.studio.mounts import ModelMounts
from lstmkit.studio.params import RecipeInfo, recipe_catalog
from lstmkit.studio.store import RUN_ID_PATTERN, Store

RunId = Annotated[str, PathParam(pattern=RUN_ID_PATTERN, description="the run id (8 hex digits)")]
# OpenAPI notes of the routes that name a run
RUN_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token (when the studio has one)"},
    404: {"description": "no such run"},
}


@dataclass
class Studio:
    """The studio's state: its home, the store, the queue, the model mounts, the limits.

    ``closing`` is set when the server stops (the live streams end); ``recovered`` holds the runs
    a previous studio left running, marked ``interrupted`` at this start.
    """

    home: Path
    recipe_dirs: tuple[Path, ...]
    store: Store
    queue: JobQueue
    mounts: ModelMounts
    token: str | None
    max_upload_bytes: int
    closing: threading.Event
    recovered: list[str] = field(default_factory=list)

    @property
    def runs_dir(self) -> Path:
        """``HOME/runs``."""
        return self.home / "runs"

    @property
    def bundles_dir(self) -> Path:
        """``HOME/bundles``."""
        return self.home / "bundles"

    @property
    def uploads_dir(self) -> Path:
        """``HOME/uploads``."""
        return self.home / "uploads"

    def catalog(self) -> dict[str, RecipeInfo]:
        """The recipes of every folder, read now (a recipe added while the studio runs shows
        up; a later folder's recipe takes the place of an earlier one of the same name)."""
        return recipe_catalog(*self.recipe_dirs)


# async dependencies: a plain def would cost a worker-thread hop per request
async def get_studio(request: Request) -> Studio:
    """The studio opened in the app's lifespan (503 outside it)."""
    studio: Studio | None = request.app.state.studio
    if studio is None:
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="the studio is not started (its lifespan did not run, or it is stopping)",
        )
    return studio


StudioDep = Annotated[Studio, Depends(get_studio)]
_bearer = HTTPBearer(auto_error=False, description="the token given to `lstmkit studio --token`")


async def require_token(
    studio: StudioDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the studio has no token or the request carries ``Authorization: Bearer
    TOKEN`` (compared in constant time)."""
    check_bearer(credentials, studio.token)


def run_or_404(studio: Studio, run_id: str) -> dict[str, Any]:
    """The stored run, or 404 naming it."""
    run = studio.store.get_run(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no run {run_id!r}")
    return run


async def existing_run(run_id: RunId, studio: StudioDep) -> dict[str, Any]:
    """The run named in the path, or 404 (a dependency: it answers before a stream starts)."""
    return run_or_404(studio, run_id)


ExistingRun = Annotated[dict[str, Any], Depends(existing_run)]
