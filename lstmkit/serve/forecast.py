"""``POST /v1/forecast``: a forecasting run served -- the recent history in, the horizon's
quantiles per step (and series id) out.

The history comes as JSON, ``{"rows": [{column: value, ...}, ...]}`` with the columns of the
run's training file (``GET /v1/model`` lists them: the target, the features, the time column and,
for a many-series model, the id column -- several ids in one request), or as a CSV body
(``Content-Type: text/csv``) with those columns. It is read by the same readers as the training
file (:func:`lstmkit.data.series.read_series`, :func:`lstmkit.data.panel.read_panel`, from a
temporary file: one reader, one set of rules and messages), and forecast by
:func:`lstmkit.forecasting.forecast_series` / :func:`~lstmkit.forecasting.forecast_panel`, the
functions behind ``lstmkit forecast``: the same history gives the same numbers. Every bad history
(a value that is not a finite number, a missing column, a duplicate time, too few rows, a gap or
another frequency, an id the model was not trained on) is one 422 whose ``detail`` names the row
(``rows[3]``, or the CSV line) and what would be valid.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StrictFloat,
    StrictInt,
    StrictStr,
    ValidationError,
)

from lstmkit.data.panel import read_panel
from lstmkit.data.series import read_series
from lstmkit.errors import DataError
from lstmkit.forecasting import forecast_panel, forecast_series
from lstmkit.serve.models import ForecastModel
from lstmkit.serve.state import Serving, get_serving
from lstmkit.version import __version__

Cell = StrictStr | StrictInt | StrictFloat | None


class ForecastRequest(BaseModel):
    """``POST /v1/forecast`` JSON body: the history, one object per row (per id and time for a
    many-series model), with the columns of the run's training file."""

    model_config = ConfigDict(extra="forbid")

    rows: list[dict[str, Cell]] = Field(
        min_length=1,
        description="the history in time order (sorted by the time column when it has one)",
        examples=[[{"month": "2024-01", "sales": 20.5}, {"month": "2024-02", "sales": 22.1}]],
    )


class ForecastStep(BaseModel):
    """One step ahead of one series."""

    id: str | None = Field(description="the series id (many-series models), else null")
    step: int = Field(description="1 .. horizon")
    time: str | None = Field(description="the step's time, when the history's times allow it")
    forecast: float = Field(description="the point forecast (the median of a many-series model)")
    quantiles: dict[str, float] = Field(description="quantile ('0.1') -> value")


class ForecastResponse(BaseModel):
    """``POST /v1/forecast`` answer: ``horizon`` steps per series, in the order of the ids."""

    target: str
    horizon: int
    quantiles: list[float]
    forecasts: list[ForecastStep]
    warnings: list[str] = Field(description="what the reader changed (rows it sorted)")


class ForecastModelInfo(BaseModel):
    """``GET /v1/model`` of a forecasting run: what the history must hold."""

    name: str | None
    task: str
    panel: bool = Field(description="a many-series model (long format, an id column)")
    target: str
    features: list[str]
    time_column: str | None
    id_column: str | None
    ids: list[str] | None = Field(description="the series it was trained on (panel models)")
    series_embedding: bool = Field(description="only the ids it was trained on are accepted")
    frequency: str | None
    lookback: int = Field(description="rows of history read per series (the last ones)")
    horizon: int
    quantiles: list[float]
    metrics: dict[str, Any] | None
    lstmkit_version: str
    max_rows: int = Field(description="most history rows per request")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token (when the server has one)"},
    413: {"description": "too many rows in one request"},
    415: {"description": "a body that is neither JSON nor CSV"},
    422: {"description": "a history the model cannot forecast from (the detail says why)"},
}

_BODY_SCHEMA = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {"schema": {"$ref": "#/components/schemas/ForecastRequest"}},
            "text/csv": {"schema": {"type": "string"}},
        },
    }
}

forecast_router = APIRouter(prefix="/v1")


def _where(message: str, file: Path, json_rows: bool) -> str:
    """The reader's message about the temporary ``file``, about the request instead: for JSON
    rows ``rows[i]`` (line ``i + 1`` of the JSONL file), for CSV "the CSV body"."""
    name = re.escape(str(file))
    if json_rows:

        def rows(m: re.Match[str]) -> str:
            first = f"rows[{int(m.group(1)) - 1}]"
            return first if m.group(2) is None else f"{first} and rows[{int(m.group(2)) - 1}]"

        message = re.sub(name + r": lines? (\d+)(?: and (\d+))?", rows, message)
        return message.replace(str(file), "rows")
    return message.replace(str(file), "the CSV body")


def forecast_history(
    served: ForecastModel, data: bytes, json_rows: bool, scratch: Path
) -> dict[str, Any]:
    """Read the history ``data`` (JSONL of the rows, or CSV bytes) as the training reader reads a
    file -- written to a file in the folder ``scratch``, overwritten by the next request: call
    this from one thread at a time (the app's model thread) -- and forecast it. Raises DataError
    (its message about the request) for a bad history. One folder for all requests, not one
    each: creating and removing a folder cost ~4 ms a request on the test machine's disk (the app
    puts it in /dev/shm where there is one)."""
    c = served.config
    columns = served.columns
    file = scratch / ("rows.jsonl" if json_rows else "body.csv")
    file.write_bytes(data)
    where = "rows" if json_rows else "the CSV body"
    try:
        if served.panel:
            panel = read_panel(file, columns[0], c["id_column"], columns[1:], c.get("time_column"))
            warnings = panel.warnings
            rows, _ = forecast_panel(
                served.model,  # type: ignore[arg-type]
                c,
                panel,
                where=where,
                skip_short=False,
            )
        else:
            series = read_series(file, columns[0], columns[1:], c.get("time_column"))
            warnings = series.warnings
            rows = forecast_series(served.model, c, series, where=where)  # type: ignore[arg-type]
    except DataError as err:
        raise DataError(_where(str(err), file, json_rows)) from None
    warnings = [_where(w, file, json_rows) for w in warnings]
    return {"rows": rows, "warnings": warnings}


def response_rows(served: ForecastModel, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The rows of :func:`~lstmkit.forecasting.forecast_series` / ``forecast_panel`` as
    :class:`ForecastStep` objects."""
    c = served.config
    tcol, idc = c.get("time_column"), c.get("id_column")
    qs = served.quantiles
    point = f"{served.columns[0]}_forecast"
    out = []
    for row in rows:
        quantiles = {f"{q:g}": row[f"q{q:g}"] for q in qs}
        out.append(
            {
                "id": row[str(idc)] if served.panel else None,
                "step": row["step"],
                "time": row.get(tcol) if tcol else None,
                "forecast": quantiles["0.5"] if served.panel else row[point],
                "quantiles": quantiles,
            }
        )
    return out


async def get_forecaster(serving: Annotated[Serving, Depends(get_serving)]) -> Serving:
    """The :class:`Serving` of a forecasting run (its ``model`` a :class:`ForecastModel`)."""
    if not isinstance(serving.model, ForecastModel):
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail="this server serves no forecaster")
    return serving


@forecast_router.post(
    "/forecast", response_model=ForecastResponse, responses=_ERRORS, openapi_extra=_BODY_SCHEMA
)
async def forecast(
    request: Request, serving: Annotated[Serving, Depends(get_forecaster)]
) -> ForecastResponse:
    """Forecast the ``horizon`` steps after the end of the history (JSON rows or a CSV body;
    several series ids at once for a many-series model): quantiles per step and id."""
    served = serving.model
    assert isinstance(served, ForecastModel)
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    raw = await request.body()
    if kind == "text/csv":
        data, json_rows = raw, False
        count = max(raw.count(b"\n") - 1, 0)
    elif kind == "application/json":
        try:
            body = ForecastRequest.model_validate_json(raw)
        except ValidationError as err:
            raise RequestValidationError(err.errors()) from None
        count = len(body.rows)
        if count <= serving.max_rows:
            data = "".join(json.dumps(r) + "\n" for r in body.rows).encode()
        json_rows = True
    else:
        raise HTTPException(
            status.HTTP_415_UNSUPPORTED_MEDIA_TYPE,
            detail=f"send the history as application/json ({{'rows': [...]}}) or text/csv, "
            f"not {kind or 'a body without a content type'}",
        )
    if count > serving.max_rows:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"too many rows: {count} in one request, at most {serving.max_rows}",
        )
    try:
        assert serving.scratch is not None
        result = await serving.run(forecast_history, served, data, json_rows, serving.scratch)
    except DataError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    return ForecastResponse.model_validate(
        {
            "target": served.columns[0],
            "horizon": int(served.config["horizon"]),
            "quantiles": served.quantiles,
            "forecasts": response_rows(served, result["rows"]),
            "warnings": result["warnings"],
        }
    )


@forecast_router.get("/model", response_model=ForecastModelInfo, responses={401: _ERRORS[401]})
async def forecast_model_info(
    serving: Annotated[Serving, Depends(get_forecaster)],
) -> ForecastModelInfo:
    """The served forecaster: the history's columns, lookback, horizon, quantiles, metrics."""
    served = serving.model
    assert isinstance(served, ForecastModel)
    return ForecastModelInfo.model_validate(
        {**served.metadata(), "lstmkit_version": __version__, "max_rows": serving.max_rows}
    )
