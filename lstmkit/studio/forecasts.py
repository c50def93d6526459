"""The test forecasts of a finished forecast run of many series, as the run page draws them: one
series' rows of the run's ``forecasts.csv`` (written by :mod:`lstmkit.tasks.panel`).

``forecasts.csv`` has one row per series x test origin x step and the columns ``<id column>,
origin, <time column or row>, y, q<level>..., <baseline>...`` (the quantiles ascending, then the
baselines: auto_ets, auto_theta, seasonal_naive, naive). The file is read with the csv module,
streamed (the rows of one series are kept, the ids of all), and bounded: a file over
:data:`MAX_FILE_BYTES`, more than :data:`MAX_IDS` series or :data:`MAX_ROWS` rows of one series is
refused or cut, and the answer says so. The id only ever selects rows; it never names a file.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

FORECASTS_FILE = "forecasts.csv"
MAX_FILE_BYTES = 200 * 1024 * 1024
MAX_IDS = 20_000  # ids listed for the picker
MAX_ROWS = 10_000  # rows of one series returned
_QUANTILE = re.compile(r"^q(0?\.\d+)$")
_FIXED = 4  # id, origin, time, y


class ForecastsError(Exception):
    """The run has no readable forecasts.csv, or not the series asked for; ``status`` is the
    HTTP status the API answers (404: missing, 422: not the expected layout, 413: too large)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message


@dataclass
class SeriesForecast:
    """One series' test rows of ``forecasts.csv``.

    Attributes:
        id_column, time_column: the file's first and third column names (``row`` when the run
            had no time column).
        series: the id whose rows these are. ids: every id of the file, in file order (at most
            :data:`MAX_IDS`; ``ids_truncated`` when there were more).
        quantiles: the quantile columns (``q0.1``, ``q0.5``, ...), ascending.
        baselines: the other forecast columns (``auto_ets``, ...).
        rows: ``{"origin", "time", "y", <quantile>..., <baseline>...}`` per step (numbers; None
            where a cell is empty or not finite); ``rows_truncated`` when cut at :data:`MAX_ROWS`.
    """

    id_column: str
    time_column: str
    series: str
    quantiles: list[str]
    baselines: list[str]
    ids: list[str] = field(default_factory=list)
    ids_truncated: bool = False
    rows: list[dict[str, Any]] = field(default_factory=list)
    rows_truncated: bool = False


def _number(text: str) -> float | None:
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


def _layout(header: list[str], path: Path) -> tuple[list[str], list[str]]:
    """The quantile and baseline columns after ``id, origin, time, y``."""
    if len(header) < _FIXED + 1 or header[1] != "origin" or header[3] != "y":
        raise ForecastsError(
            422,
            f"{path.name}: expected the columns <id>, origin, <time>, y, q..., got "
            + ", ".join(header[:8]),
        )
    rest = header[_FIXED:]
    quantiles = [c for c in rest if _QUANTILE.match(c)]
    baselines = [c for c in rest if c not in quantiles]
    return quantiles, baselines


def read_series_forecast(run_dir: Path, series: str | None) -> SeriesForecast:
    """The rows of ``series`` (None: the first id of the file) in ``run_dir/forecasts.csv``;
    raises :class:`ForecastsError` (404 with the known ids' count when ``series`` is not one of
    them)."""
    path = run_dir / FORECASTS_FILE
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ForecastsError(
            404,
            f"run {run_dir.name} has no {FORECASTS_FILE} (a finished forecast of many series "
            "writes one)",
        ) from None
    if size > MAX_FILE_BYTES:
        raise ForecastsError(
            413, f"{FORECASTS_FILE} of run {run_dir.name} is {size} bytes; at most {MAX_FILE_BYTES}"
        )
    seen: set[str] = set()
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader, None)
        if not header:
            raise ForecastsError(422, f"{FORECASTS_FILE} of run {run_dir.name} is empty")
        quantiles, baselines = _layout(header, path)
        out = SeriesForecast(header[0], header[2], series or "", quantiles, baselines)
        for values in reader:
            if len(values) != len(header):
                continue  # a cut-off last line of a file being written
            sid = values[0]
            if sid not in seen:
                if len(out.ids) < MAX_IDS:
                    out.ids.append(sid)
                else:
                    out.ids_truncated = True
                seen.add(sid)
                if not out.series:
                    out.series = sid
            if sid != out.series:
                continue
            if len(out.rows) >= MAX_ROWS:
                out.rows_truncated = True
                continue
            origin = values[1].strip()
            row: dict[str, Any] = {
                "origin": int(origin) if origin.isdigit() else _number(origin),
                "time": values[2],
            }
            for name, text in zip(header[3:], values[3:], strict=True):
                row[name] = _number(text)
            out.rows.append(row)
    if not seen:
        raise ForecastsError(422, f"{FORECASTS_FILE} of run {run_dir.name} holds no rows")
    if out.series not in seen:
        some = ", ".join(repr(i) for i in out.ids[:5]) + (", ..." if len(seen) > 5 else "")
        raise ForecastsError(
            404,
            f"run {run_dir.name} has no series {out.series!r}; its {len(seen)} series are {some}",
        )
    return out
