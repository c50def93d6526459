"""A run's live stream, ``GET /api/runs/<id>/events`` (server-sent events): ``metrics`` (new rows),
``status`` (the run with its progress, on every change), ``log`` (new trainer output) and a last
``end`` once the run stopped."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.sse import EventSourceResponse, ServerSentEvent

from lstmkit.studio.deps import RUN_ERRORS, ExistingRun, RunId, StudioDep
from lstmkit.studio.diagnose import diagnose
from lstmkit.studio.jobs import LOG_NAME
from lstmkit.studio.views import (
    LOG_TAIL_BYTES,
    newest_train,
    public_run,
    recent_rows,
    run_dir,
    run_values,
)

TERMINAL = ("finished", "failed", "cancelled", "interrupted")
EVENT_POLL_S = 0.3

router = APIRouter(tags=["runs"])


@router.get("/runs/{run_id}/events", response_class=EventSourceResponse, responses=RUN_ERRORS)
async def run_events(
    run_id: RunId,
    request: Request,
    studio: StudioDep,
    first: ExistingRun,
    after: Annotated[int, Query(ge=0)] = 0,
) -> AsyncIterator[ServerSentEvent]:
    """Server-sent events while the run lives: ``metrics`` (new rows, ``id`` = the newest seq:
    reconnect with ``?after=`` or ``Last-Event-ID``), ``status`` (the run, with progress, on
    every change), ``log`` (new output of the trainer) and a last ``end`` once it stopped."""
    last_id = request.headers.get("last-event-id", "")
    seq = int(last_id) if last_id.isdigit() else after
    folder = run_dir(studio, first)
    log_path = folder / LOG_NAME
    log_offset = max(0, log_path.stat().st_size - LOG_TAIL_BYTES) if log_path.exists() else 0
    last_state: Any = None
    values: dict[str, Any] | None = None
    # the newest rows give the progress and the hints; no need to keep every row here
    recent = recent_rows(await run_in_threadpool(studio.store.metric_rows, run_id))
    while True:
        run = await run_in_threadpool(studio.store.get_run, run_id)
        assert run is not None  # runs are never deleted
        rows = await run_in_threadpool(studio.store.metric_rows, run_id, seq)
        if rows:
            seq = max(r["seq"] for r in rows)
            recent = recent_rows(recent + rows)
            yield ServerSentEvent(event="metrics", data={"rows": rows}, id=str(seq))
        if log_path.exists() and log_path.stat().st_size > log_offset:
            with open(log_path, "rb") as fh:
                fh.seek(log_offset)
                chunk = fh.read(1_000_000)
            log_offset += len(chunk)
            yield ServerSentEvent(event="log", data={"text": chunk.decode("utf-8", "replace")})
        public = public_run(studio, run, newest_train(recent)).model_dump()
        public["hints"] = diagnose(recent)
        if values is None:  # the run writes its config.json once its data is loaded
            values = await run_in_threadpool(run_values, folder)
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
        if await request.is_disconnected() or studio.closing.is_set():
            return
        await asyncio.sleep(EVENT_POLL_S)
