"""``GET /api/compare?ids=a&ids=b``: runs side by side (parameters, final metrics, curves)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from lstmkit.studio.deps import RUN_ERRORS, StudioDep, run_or_404
from lstmkit.studio.params import FIELD_KEYS
from lstmkit.studio.schemas import Comparison, RunWithRows
from lstmkit.studio.views import public_run, run_dir, run_values, sync_studies

router = APIRouter(tags=["runs"])


@router.get("/compare", responses=RUN_ERRORS)
async def compare(
    studio: StudioDep,
    ids: Annotated[list[str], Query(min_length=1, max_length=12)],
) -> Comparison:
    """The chosen runs (each once, in the order asked): parameters, final metrics and metric
    rows, for overlaid curves and a table; the trials of a study compare like any run."""
    if any(studio.store.get_run(run_id) is None for run_id in ids):
        await run_in_threadpool(sync_studies, studio)  # a study's trial the list has not shown
    out = []
    for run_id in dict.fromkeys(ids):
        run = run_or_404(studio, run_id)
        rows = await run_in_threadpool(studio.store.metric_rows, run_id)
        values = await run_in_threadpool(run_values, run_dir(studio, run))
        out.append(
            RunWithRows(**public_run(studio, run, rows).model_dump(), rows=rows, values=values)
        )
    return Comparison(runs=out, fields=list(FIELD_KEYS))
