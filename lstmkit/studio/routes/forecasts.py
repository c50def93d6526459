"""A forecast run's results for the run page: ``GET /api/runs/<id>/forecasts?series=ID`` (one
series' test rows of its ``forecasts.csv``: truth, quantiles, baselines;
:mod:`lstmkit.studio.forecasts`) and ``GET /api/runs/<id>/forecast.png`` (the plot the run
drew). Only runs of this studio's store are read, from ``HOME/runs/<id>``; the series id selects
rows and never names a file."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse

from lstmkit.studio.deps import RUN_ERRORS, ExistingRun, RunId, StudioDep
from lstmkit.studio.forecasts import ForecastsError, read_series_forecast
from lstmkit.studio.schemas import SeriesForecastOut
from lstmkit.studio.views import run_dir

router = APIRouter(tags=["forecasts"])
PLOT_FILE = "forecast.png"


@router.get(
    "/runs/{run_id}/forecasts",
    responses={
        **RUN_ERRORS,
        404: {"description": "no such run, no forecasts.csv, or no such series in it"},
        413: {"description": "forecasts.csv is over the studio's limit"},
        422: {"description": "forecasts.csv is not in the expected layout"},
    },
)
async def get_forecasts(
    run_id: RunId,
    run: ExistingRun,
    studio: StudioDep,
    series: Annotated[
        str | None,
        Query(
            min_length=1,
            max_length=200,
            pattern=r"^[^\x00-\x1f\x7f]+$",
            description="the series id (default: the first of the file)",
        ),
    ] = None,
) -> SeriesForecastOut:
    """The test rows of one series of a finished forecast run of many series, with every id
    of the run (for a picker)."""
    try:
        got = await run_in_threadpool(read_series_forecast, run_dir(studio, run), series)
    except ForecastsError as err:
        raise HTTPException(err.status, detail=err.message) from None
    return SeriesForecastOut(run_id=run_id, **asdict(got))


@router.get(
    "/runs/{run_id}/forecast.png",
    response_class=FileResponse,
    responses={**RUN_ERRORS, 200: {"content": {"image/png": {}}}},
)
async def get_forecast_plot(run_id: RunId, run: ExistingRun, studio: StudioDep) -> FileResponse:
    """The forecast plot a finished forecast run wrote (404 before it has one)."""
    path = run_dir(studio, run) / PLOT_FILE
    if not path.is_file():
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail=f"run {run_id} has no {PLOT_FILE} (yet)"
        )
    return FileResponse(path, media_type="image/png")
