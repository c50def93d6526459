"""The studio's routes: the JSON API under ``/api`` (bearer token when the studio has one), the
live stream ``/api/runs/<id>/events`` (server-sent events), ``/health`` and the page
(``/``, ``/static/...``).

=================================  ======================================================
``GET  /api/options``              recipes (with their values), datasets, field bounds
``GET  /api/runs``                 every run, oldest first
``POST /api/runs``                 queue a run (201); an invalid field -> 422 naming it
``GET  /api/runs/<id>``            the run, its progress and its metric rows
``GET  /api/runs/<id>/metrics``    metric rows after ``?after=SEQ``
``GET  /api/runs/<id>/log``        the end of ``train.log``
``GET  /api/runs/<id>/events``     SSE: ``metrics``, ``status``, ``log`` events, ``end``
``POST /api/runs/<id>/cancel``     cancel a queued or running run (409 otherwise)
``POST /api/runs/<id>/resume``     queue an interrupted / cancelled run again with --resume
``POST /api/runs/<id>/bundle``     "Use this model": export the bundle, answer its page URL
``GET  /api/compare?ids=a&ids=b``  runs with their parameters, final metrics and curves
``POST /api/uploads?filename=F``   the request body is the file (CSV, TSV or JSONL)
``GET  /api/uploads``              uploaded files
=================================  ======================================================
"""

from __future__ import annotations

import asyncio
import json
import secrets
import shutil
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Query, Request, status
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, JSONResponse
from fastapi.sse import EventSourceResponse, ServerSentEvent

from lstmkit.config import Recipe
from lstmkit.serve.routes import require_token
from lstmkit.studio.app import Studio
from lstmkit.studio.diagnose import diagnose
from lstmkit.studio.jobs import LOG_NAME, has_checkpoint, process_alive
from lstmkit.studio.params import (
    FIELD_KEYS,
    NOT_APPLICABLE,
    UPLOAD,
    FieldError,
    RunRequest,
    datasets,
    recipe_values,
    validate_request,
)
from lstmkit.studio.store import ACTIVE
from lstmkit.studio.uploads import UploadError, UploadTooLarge, save_upload, upload_path

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
    "vendor/uPlot.iife.min.js": "text/javascript; charset=utf-8",
    "vendor/uPlot.min.css": "text/css; charset=utf-8",
    "vendor/uPlot.LICENSE": "text/plain; charset=utf-8",
}
RUN_ID = r"^[0-9a-f]{8}$"
RunId = Annotated[str, PathParam(pattern=RUN_ID, description="the run id (8 hex digits)")]
TERMINAL = ("finished", "failed", "cancelled", "interrupted")
LOG_TAIL_BYTES = 20_000
EVENT_POLL_S = 0.3


def get_studio(request: Request) -> Studio:
    """The studio opened in the app's lifespan."""
    studio: Studio = request.app.state.studio
    return studio


StudioDep = Annotated[Studio, Depends(get_studio)]
api = APIRouter(
    prefix="/api",
    dependencies=[Depends(require_token)],
    responses={
        401: {"description": "missing or wrong bearer token (when the studio has one)"},
        403: {"description": "a cross-site request (its Origin is another site)"},
    },
)
pages = APIRouter()

_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token (when the studio has one)"},
    404: {"description": "no such run"},
}


# -- helpers ---------------------------------------------------------------------------------
def _run_or_404(studio: Studio, run_id: str) -> dict[str, Any]:
    run = studio.store.get_run(run_id)
    if run is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no run {run_id!r}")
    return run


def existing_run(run_id: RunId, request: Request) -> dict[str, Any]:
    """The run named in the path, or 404 (a dependency: it answers before a stream starts)."""
    return _run_or_404(get_studio(request), run_id)


def _progress(run: dict[str, Any], rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Step, total steps, tokens/s and ETA from the newest train row (the Trainer's own
    ``eta_s`` when it writes one, else elapsed time scaled by the steps left)."""
    train = [r for r in rows if r.get("split") == "train"]
    last = train[-1] if train else (rows[-1] if rows else {})
    step = last.get("step")
    total = last.get("total_steps")
    eta = last.get("eta_s")
    if eta is None and run["status"] == "running" and step and total and run.get("started"):
        eta = (time.time() - run["started"]) * max(0, total - step) / step
    return {
        "step": step,
        "total_steps": total,
        "tokens_per_s": last.get("tokens_per_s"),
        "eta_s": eta if run["status"] in ("running", "cancelling") else None,
    }


def _recent(rows: list[dict[str, Any]], keep: int = 50) -> list[dict[str, Any]]:
    """The newest ``keep`` rows of each split (a replaced row counts once), by step."""
    latest = {(r["step"], r["split"]): r for r in rows}
    out = []
    for split in {s for _, s in latest}:
        same = sorted((r for (_, s), r in latest.items() if s == split), key=lambda r: r["step"])
        out += same[-keep:]
    return sorted(out, key=lambda r: r["step"])


def _newest_train(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """[the train row with the highest step] (or [] without one)."""
    train = [r for r in rows if r.get("split") == "train"]
    return [max(train, key=lambda r: r["step"])] if train else []


def _public(
    studio: Studio, run: dict[str, Any], rows: list[dict[str, Any]] | None = None
) -> dict[str, Any]:
    """A run as the API shows it (no pids or paths)."""
    run_dir = studio.runs_dir / run["id"]
    out = {k: v for k, v in run.items() if k not in ("pid", "resume", "task_args")}
    out["resumable"] = run["status"] in ("interrupted", "cancelled") and has_checkpoint(run_dir)
    bundle = studio.bundles_dir / run["id"] / "bundle.json"
    out["model_url"] = f"/models/{run['id']}/" if bundle.is_file() else None
    if rows is not None:
        out["progress"] = _progress(run, rows)
    return out


def _log_tail(studio: Studio, run_id: str, max_bytes: int) -> str:
    path = studio.runs_dir / run_id / LOG_NAME
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


# -- options and runs ------------------------------------------------------------------------
@api.get("/options")
async def options(studio: StudioDep) -> dict[str, Any]:
    """What the new-run form offers: recipes (with the values of the form's fields), datasets,
    the bounds of every field, the upload limit, and whether uploads can be trained on."""
    catalog = await run_in_threadpool(studio.catalog)
    return {
        "recipes": [info.to_json() for info in catalog.values()],
        "datasets": [
            *datasets(catalog),
            {
                "id": UPLOAD,
                "label": "your own CSV / TSV / JSONL file",
                "recipes": [],
                "available": studio.uploads_ready,
            },
        ],
        "fields": list(FIELD_KEYS),
        "not_applicable": NOT_APPLICABLE,
        "schema": RunRequest.model_json_schema(),
        "max_upload_bytes": studio.max_upload_bytes,
        "max_concurrent": studio.queue.max_concurrent,
    }


@api.get("/runs")
async def list_runs(studio: StudioDep) -> list[dict[str, Any]]:
    """Every run, oldest first."""
    runs = await run_in_threadpool(studio.store.list_runs)
    return [_public(studio, r) for r in runs]


@api.post(
    "/runs",
    status_code=status.HTTP_201_CREATED,
    responses={400: {"description": "the body cannot be read as JSON (bytes that are not UTF-8)"}},
)
async def create_run(body: RunRequest, studio: StudioDep) -> Any:
    """Queue a run of ``recipe`` with the request's parameters. A value out of range or one the
    recipe refuses -> 422 with ``detail[i].loc = ["body", field]`` and the reason."""
    catalog = await run_in_threadpool(studio.catalog)
    upload = studio.store.get_upload(body.upload_id) if body.upload_id else None
    try:
        if body.upload_id is not None and upload is None:
            raise FieldError("upload_id", f"no upload {body.upload_id!r}; upload the file first")
        plan = await run_in_threadpool(
            validate_request,
            body,
            catalog,
            studio.uploads_ready,
            upload,
            upload_path(studio.uploads_dir, upload) if upload else None,
        )
    except FieldError as err:
        return JSONResponse(
            status_code=status.HTTP_422_UNPROCESSABLE_CONTENT,
            content={
                "detail": [{"loc": ["body", err.field], "msg": err.message, "type": "value_error"}]
            },
        )
    run_id = secrets.token_hex(4)
    while studio.store.get_run(run_id) or (studio.runs_dir / run_id).exists():
        run_id = secrets.token_hex(4)  # never reuse an id or a leftover run directory
    params = body.model_dump(exclude_none=True)
    run = await run_in_threadpool(
        lambda: studio.store.add_run(
            run_id,
            name=body.name or f"{plan.recipe.name} #{run_id[:4]}",
            recipe=plan.recipe.name,
            dataset=body.dataset,
            params=params,
            overrides=plan.overrides,
            upload_id=body.upload_id if body.dataset == UPLOAD else None,
            task_args=plan.task_args,
        )
    )
    studio.queue.wake()
    return _public(studio, run, [])


@api.get("/runs/{run_id}", responses=_ERRORS)
async def get_run(run_id: RunId, studio: StudioDep) -> dict[str, Any]:
    """The run, its progress (step, ETA, tokens/s), its metric rows, the values of the form's
    fields it trains with (from its config.json; None until the run wrote it) and hints on the
    learning rate, overfitting and gradients (:mod:`lstmkit.studio.diagnose`)."""
    run = _run_or_404(studio, run_id)
    rows = await run_in_threadpool(studio.store.metric_rows, run_id)
    values = await run_in_threadpool(_recipe_values, studio.runs_dir / run_id)
    return {
        **_public(studio, run, rows),
        "rows": rows,
        "values": values,
        "hints": diagnose(rows),
    }


@api.get("/runs/{run_id}/metrics", responses=_ERRORS)
async def get_metrics(
    run_id: RunId, studio: StudioDep, after: Annotated[int, Query(ge=0)] = 0
) -> list[dict[str, Any]]:
    """Metric rows (history.jsonl rows with a ``seq``) newer than ``after``."""
    _run_or_404(studio, run_id)
    return await run_in_threadpool(studio.store.metric_rows, run_id, after)


@api.get("/runs/{run_id}/log", responses=_ERRORS)
async def get_log(
    run_id: RunId,
    studio: StudioDep,
    tail_bytes: Annotated[int, Query(ge=1, le=1_000_000)] = LOG_TAIL_BYTES,
) -> dict[str, Any]:
    """The last ``tail_bytes`` of the run's ``train.log`` (the trainer's output)."""
    _run_or_404(studio, run_id)
    return {"log": await run_in_threadpool(_log_tail, studio, run_id, tail_bytes)}


@api.get("/runs/{run_id}/events", response_class=EventSourceResponse, responses=_ERRORS)
async def run_events(
    run_id: RunId,
    request: Request,
    studio: StudioDep,
    _exists: Annotated[dict[str, Any], Depends(existing_run)],
    after: Annotated[int, Query(ge=0)] = 0,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events while the run lives: ``metrics`` (new rows, ``id`` = the newest seq:
    reconnect with ``?after=`` or ``Last-Event-ID``), ``status`` (the run, with progress, on
    every change), ``log`` (new output of the trainer) and a last ``end`` once it stopped."""
    last_id = request.headers.get("last-event-id", "")
    seq = int(last_id) if last_id.isdigit() else after
    log_path = studio.runs_dir / run_id / LOG_NAME
    log_offset = max(0, log_path.stat().st_size - LOG_TAIL_BYTES) if log_path.exists() else 0
    last_state: Any = None
    values: dict[str, Any] | None = None
    # the newest rows give the progress and the hints; no need to keep every row here
    recent = _recent(await run_in_threadpool(studio.store.metric_rows, run_id))
    while True:
        run = await run_in_threadpool(studio.store.get_run, run_id)
        assert run is not None
        rows = await run_in_threadpool(studio.store.metric_rows, run_id, seq)
        if rows:
            seq = max(r["seq"] for r in rows)
            recent = _recent(recent + rows)
            yield ServerSentEvent(event="metrics", data={"rows": rows}, id=str(seq))
        if log_path.exists() and log_path.stat().st_size > log_offset:
            with open(log_path, "rb") as fh:
                fh.seek(log_offset)
                chunk = fh.read(1_000_000)
            log_offset += len(chunk)
            yield ServerSentEvent(event="log", data={"text": chunk.decode("utf-8", "replace")})
        public = _public(studio, run, _newest_train(recent))
        public["hints"] = diagnose(recent)
        if values is None:  # the run writes its config.json once its data is loaded
            values = await run_in_threadpool(_recipe_values, studio.runs_dir / run_id)
        public["values"] = values
        state = (
            run["status"],
            public["progress"]["step"],
            public["model_url"],
            run["error"],
            values is None,
            tuple(h["text"] for h in public["hints"]),
        )
        if state != last_state:
            last_state = state
            yield ServerSentEvent(event="status", data=public)
        if run["status"] in TERMINAL and not rows:
            yield ServerSentEvent(event="end", data={"status": run["status"]})
            return
        if await request.is_disconnected() or request.app.state.closing.is_set():
            return
        await asyncio.sleep(EVENT_POLL_S)


@api.post(
    "/runs/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_ERRORS, 409: {"description": "the run is not queued or running"}},
)
async def cancel_run(run_id: RunId, studio: StudioDep) -> dict[str, Any]:
    """Cancel: a queued run at once; a running one gets SIGINT (it checkpoints and stops),
    SIGTERM after the grace period."""
    _run_or_404(studio, run_id)
    try:
        await run_in_threadpool(studio.queue.cancel, run_id)
    except ValueError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(err)) from None
    studio.queue.wake()
    return _public(studio, _run_or_404(studio, run_id))


@api.post(
    "/runs/{run_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**_ERRORS, 409: {"description": "the run has no checkpoint or is not stopped"}},
)
async def resume_run(run_id: RunId, studio: StudioDep) -> dict[str, Any]:
    """Queue an interrupted or cancelled run again; it continues from its last checkpoint
    (``lstmkit train ... --resume``)."""
    run = _run_or_404(studio, run_id)
    run_dir = studio.runs_dir / run_id
    if run["status"] not in ("interrupted", "cancelled"):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} is {run['status']}; only interrupted or cancelled runs resume",
        )
    if not has_checkpoint(run_dir):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} stopped before its first checkpoint; start a new run instead",
        )
    if process_alive(run.get("pid"), run_dir):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id}'s previous trainer is still stopping; try again in a few seconds",
        )
    changed = studio.store.update_run(
        run_id,
        expect=("interrupted", "cancelled"),
        status="queued",
        resume=1,
        resumes=int(run.get("resumes") or 0) + 1,
        error=None,
    )
    if not changed:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=f"run {run_id} changed meanwhile")
    studio.queue.wake()
    return _public(studio, _run_or_404(studio, run_id))


@api.post(
    "/runs/{run_id}/bundle",
    responses={
        **_ERRORS,
        409: {"description": "the run is not finished, or its model does not read text"},
        500: {"description": "the finished run cannot be exported (a file is missing)"},
    },
)
async def make_bundle(run_id: RunId, studio: StudioDep) -> dict[str, Any]:
    """ "Use this model": export the finished run as a bundle (once) and answer the URL of its
    prediction and inspection page, ``/models/<id>/``."""
    from lstmkit.bundle import export_bundle

    run = _run_or_404(studio, run_id)
    if run["status"] != "finished":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} is {run['status']}; only a finished run becomes a model",
        )
    config = _run_config(studio.runs_dir / run_id)
    task = config.get("task", "classify")
    if task != "classify" or config.get("real_valued"):
        what = "reads real-valued rows, not text" if task == "classify" else f"is a {task} model"
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} {what}; the prediction page classifies texts (use lstmkit "
            "predict / sample / forecast on its run directory)",
        )
    out = studio.bundles_dir / run_id
    if not (out / "bundle.json").is_file():
        if out.exists():  # an earlier export that did not complete
            await run_in_threadpool(shutil.rmtree, out)
        try:
            await run_in_threadpool(export_bundle, studio.runs_dir / run_id, out)
        except (FileNotFoundError, ValueError) as err:
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR, detail=f"cannot export run {run_id}: {err}"
            ) from None
    return {"run_id": run_id, "url": f"/models/{run_id}/", "api": f"/models/{run_id}/v1/predict"}


@api.get("/compare", responses=_ERRORS)
async def compare(
    studio: StudioDep,
    ids: Annotated[list[str], Query(min_length=1, max_length=12)],
) -> dict[str, Any]:
    """The chosen runs: parameters, final metrics and metric rows, for overlaid curves and a
    table."""
    out = []
    for run_id in dict.fromkeys(ids):
        run = _run_or_404(studio, run_id)
        rows = await run_in_threadpool(studio.store.metric_rows, run_id)
        values = await run_in_threadpool(_recipe_values, studio.runs_dir / run_id)
        out.append({**_public(studio, run, rows), "rows": rows, "values": values})
    return {"runs": out, "fields": list(FIELD_KEYS)}


def _run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json ({} before the run wrote it, or when it cannot be read)."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return config if isinstance(config, dict) else {}


def _recipe_values(run_dir: Path) -> dict[str, Any] | None:
    """The form fields' values of the recipe the run trained (its config.json), or None before
    the run wrote one."""
    try:
        recipe = Recipe.model_validate(_run_config(run_dir)["recipe"])
    except (ValueError, KeyError):
        return None
    return recipe_values(recipe)


# -- uploads ---------------------------------------------------------------------------------
@api.post(
    "/uploads",
    status_code=status.HTTP_201_CREATED,
    responses={
        401: _ERRORS[401],
        413: {"description": "the file is over the upload limit"},
        422: {"description": "not a valid CSV/TSV/JSONL file"},
    },
)
async def upload(
    request: Request,
    studio: StudioDep,
    filename: Annotated[str, Query(min_length=1, max_length=200)],
) -> dict[str, Any]:
    """Upload a data file: the request body is the file, ``filename`` (its name on the
    client, ending in .csv, .tsv or .jsonl) only labels it. Stored as ``HOME/uploads/<id>.<fmt>``
    after its columns and rows are checked."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > studio.max_upload_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{filename!r} is {int(length)} bytes; the upload limit is {studio.max_upload_bytes}",
        )
    try:
        meta = await save_upload(
            request.stream(), filename, studio.uploads_dir, studio.max_upload_bytes
        )
    except UploadTooLarge as err:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(err)) from None
    except UploadError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    await run_in_threadpool(studio.store.add_upload, meta)
    return meta


@api.get("/uploads", responses={401: _ERRORS[401]})
async def list_uploads(studio: StudioDep) -> list[dict[str, Any]]:
    """Uploaded files, newest first."""
    return await run_in_threadpool(studio.store.list_uploads)


# -- page ------------------------------------------------------------------------------------
@pages.get("/health")
async def health(studio: StudioDep) -> dict[str, Any]:
    """Liveness (no token): the queue's size and limit."""
    active = studio.store.list_runs(ACTIVE)
    return {
        "status": "ok",
        "running": sum(r["status"] != "queued" for r in active),
        "queued": sum(r["status"] == "queued" for r in active),
        "max_concurrent": studio.queue.max_concurrent,
    }


def _static(name: str) -> FileResponse:
    return FileResponse(
        STATIC_DIR / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
    )


@pages.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The studio page (no token needed; it asks for one when the API wants it)."""
    return _static("index.html")


@pages.get("/static/{name:path}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    """The page's script, stylesheet and the vendored chart library (nothing else)."""
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no static file {name!r}")
    return _static(name)
