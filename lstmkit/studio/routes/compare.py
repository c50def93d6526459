"""Compare and repeated runs.

=================================  ======================================================
``GET /api/compare?ids=a&ids=b``   runs side by side (parameters, final metrics, curves);
                                   the seeds of one repeated run with their spread
``GET /api/repeats``               every repeated run under HOME/runs: seeds and spread
=================================  ======================================================
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool

from lstmkit.studio.deps import RUN_ERRORS, StudioDep, run_or_404
from lstmkit.studio.params import FIELD_KEYS
from lstmkit.studio.schemas import Comparison, RepeatGroup, RunWithRows
from lstmkit.studio.views import (
    compare_spread,
    public_run,
    repeat_groups,
    run_dir,
    run_values,
    sync_found,
)

router = APIRouter(tags=["runs"])


@router.get("/compare", responses=RUN_ERRORS)
async def compare(
    studio: StudioDep,
    ids: Annotated[list[str], Query(min_length=1, max_length=12)],
) -> Comparison:
    """The chosen runs (each once, in the order asked): parameters, final metrics and metric
    rows, for overlaid curves and a table; the trials of a study and the seeds of a repeated
    run compare like any run. Two or more seeds of one repeated run (and nothing else) also
    give ``spread``: each seed's figure, mean, sample std, min and max
    (:func:`lstmkit.repeat.spread`), and per step the same of their validation curves."""
    if any(studio.store.get_run(run_id) is None for run_id in ids):
        await run_in_threadpool(sync_found, studio)  # a trial or seed the list has not shown
    out = []
    stored = []
    rows_by_run = []
    for run_id in dict.fromkeys(ids):
        run = run_or_404(studio, run_id)
        rows = await run_in_threadpool(studio.store.metric_rows, run_id)
        values = await run_in_threadpool(run_values, run_dir(studio, run))
        out.append(
            RunWithRows(**public_run(studio, run, rows).model_dump(), rows=rows, values=values)
        )
        stored.append(run)
        rows_by_run.append(rows)
    return Comparison(runs=out, fields=list(FIELD_KEYS), spread=compare_spread(stored, rows_by_run))


@router.get("/repeats")
async def list_repeats(studio: StudioDep) -> list[RepeatGroup]:
    """Every repeated run under ``HOME/runs`` (``lstmkit train RECIPE --seeds N --out
    HOME/runs/NAME``), by name: its finished seeds (their run ids and figures) and the spread of
    the figures (None with fewer than two). Compare its seeds' ids to see their curves."""
    await run_in_threadpool(sync_found, studio)
    return await run_in_threadpool(repeat_groups, studio)
