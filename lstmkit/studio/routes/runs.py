"""Runs: list, queue (from the new-run form's fields), read, cancel, resume.

=================================  ======================================================
``GET  /api/runs``                 every run, oldest first
``POST /api/runs``                 queue a run (201); an invalid field -> 422 naming it
``GET  /api/runs/<id>``            the run, its progress, its metric rows, hints
``GET  /api/runs/<id>/metrics``    metric rows after ``?after=SEQ``
``GET  /api/runs/<id>/log``        the end of ``train.log``
``POST /api/runs/<id>/cancel``     cancel a queued or running run (409 otherwise)
``POST /api/runs/<id>/resume``     queue an interrupted / cancelled run again with --resume
=================================  ======================================================
"""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError

from lstmkit.runs import has_checkpoint
from lstmkit.studio.deps import RUN_ERRORS, ExistingRun, RunId, StudioDep, run_or_404
from lstmkit.studio.diagnose import diagnose
from lstmkit.studio.jobs import process_alive
from lstmkit.studio.params import UPLOAD, FieldError, RunRequest, validate_request
from lstmkit.studio.schemas import Hint, LogTail, MetricRow, RunDetail, RunOut
from lstmkit.studio.uploads import upload_path
from lstmkit.studio.views import (
    LOG_TAIL_BYTES,
    log_tail,
    public_run,
    run_dir,
    run_values,
    sync_found,
)

router = APIRouter(tags=["runs"])


@router.get("/runs")
async def list_runs(studio: StudioDep) -> list[RunOut]:
    """Every run, oldest first: the studio's own, the ended trials of each ``lstmkit tune``
    study under ``HOME/runs`` (named "STUDY trial N"; ``params`` holds ``study``, ``trial``,
    the study's ``value`` and the sampled keys) and the finished seeds of each repeated run
    there (``lstmkit train --seeds N``: named "GROUP seed S"; ``params`` holds ``repeat``,
    ``seed``, ``metric`` and the seed's figure, ``value``)."""
    await run_in_threadpool(sync_found, studio)
    runs = await run_in_threadpool(studio.store.list_runs)
    return [public_run(studio, r) for r in runs]


@router.post(
    "/runs",
    status_code=status.HTTP_201_CREATED,
    responses={400: {"description": "the body cannot be read as JSON (bytes that are not UTF-8)"}},
)
async def create_run(body: RunRequest, studio: StudioDep) -> RunOut:
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
            upload,
            upload_path(studio.uploads_dir, upload) if upload else None,
        )
    except FieldError as err:
        # answered as FastAPI answers a field its model refuses: the form shows both alike
        raise RequestValidationError(
            [{"loc": ("body", err.field), "msg": err.message, "type": "value_error"}]
        ) from None
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
    return public_run(studio, run, [])


@router.get("/runs/{run_id}", responses=RUN_ERRORS)
async def get_run(run_id: RunId, run: ExistingRun, studio: StudioDep) -> RunDetail:
    """The run, its progress (step, ETA, tokens/s), its metric rows, the values of the form's
    fields it trains with (from its config.json; None until the run wrote it) and hints on the
    learning rate, overfitting and gradients (:mod:`lstmkit.studio.diagnose`)."""
    rows = await run_in_threadpool(studio.store.metric_rows, run_id)
    values = await run_in_threadpool(run_values, run_dir(studio, run))
    return RunDetail(
        **public_run(studio, run, rows).model_dump(),
        rows=rows,
        values=values,
        hints=[Hint.model_validate(h) for h in diagnose(rows)],
    )


@router.get("/runs/{run_id}/metrics", responses=RUN_ERRORS)
async def get_metrics(
    run_id: RunId, _run: ExistingRun, studio: StudioDep, after: Annotated[int, Query(ge=0)] = 0
) -> list[MetricRow]:
    """Metric rows (history.jsonl rows with a ``seq``) newer than ``after``."""
    return await run_in_threadpool(studio.store.metric_rows, run_id, after)


@router.get("/runs/{run_id}/log", responses=RUN_ERRORS)
async def get_log(
    run_id: RunId,
    run: ExistingRun,
    studio: StudioDep,
    tail_bytes: Annotated[int, Query(ge=1, le=1_000_000)] = LOG_TAIL_BYTES,
) -> LogTail:
    """The last ``tail_bytes`` of the run's ``train.log`` (the trainer's output)."""
    return LogTail(log=await run_in_threadpool(log_tail, studio, run, tail_bytes))


@router.post(
    "/runs/{run_id}/cancel",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**RUN_ERRORS, 409: {"description": "the run is not queued or running"}},
)
async def cancel_run(run_id: RunId, _run: ExistingRun, studio: StudioDep) -> RunOut:
    """Cancel: a queued run at once; a running one gets SIGINT (it checkpoints and stops),
    SIGTERM after the grace period."""
    try:
        await run_in_threadpool(studio.queue.cancel, run_id)
    except ValueError as err:
        raise HTTPException(status.HTTP_409_CONFLICT, detail=str(err)) from None
    studio.queue.wake()
    return public_run(studio, run_or_404(studio, run_id))


@router.post(
    "/runs/{run_id}/resume",
    status_code=status.HTTP_202_ACCEPTED,
    responses={**RUN_ERRORS, 409: {"description": "the run has no checkpoint or is not stopped"}},
)
async def resume_run(run_id: RunId, run: ExistingRun, studio: StudioDep) -> RunOut:
    """Queue an interrupted or cancelled run again; it continues from its last checkpoint
    (``lstmkit train ... --resume``)."""
    if run.get("repeat") is not None:
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} is seed {run['seed']} of the repeated run {run['repeat']!r}; "
            "lstmkit train --seeds runs a repeated run's seeds",
        )
    if run.get("path"):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} is trial {run['trial']} of the study {run['study']!r}; "
            "lstmkit tune runs a study's trials (run it again to go on with the study)",
        )
    folder = run_dir(studio, run)
    if run["status"] not in ("interrupted", "cancelled"):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} is {run['status']}; only interrupted or cancelled runs resume",
        )
    if not has_checkpoint(folder):
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} stopped before its first checkpoint; start a new run instead",
        )
    if process_alive(run.get("pid"), folder):
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
    return public_run(studio, run_or_404(studio, run_id))
