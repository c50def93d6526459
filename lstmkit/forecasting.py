"""A finished forecasting run as a model to call: load it, forecast from a history already read.

Two kinds of run (:mod:`lstmkit.tasks.forecast` trains both): one series
(:class:`lstmkit.models.Forecaster`, ``config.json["forecaster_format"]``) and many series in the
long format (:class:`lstmkit.models.PanelForecaster`, ``config.json["panel_format"]``).
:func:`load_forecast_run` / :func:`load_panel_run` load one; :func:`forecast_series` and
:func:`forecast_panel` turn a history (a :class:`~lstmkit.data.series.Series` or
:class:`~lstmkit.data.panel.Panel`, as the file readers make them) into the rows of the horizon's
forecasts and quantiles. ``lstmkit forecast RUN --data F --out OUT`` (the tasks' file writers)
and ``POST /v1/forecast`` (:mod:`lstmkit.serve`) both call them, so a forecast is the same
whichever way it is asked for.

The history is checked as the training reader checks its file, and for what only a forecast
needs: at least ``lookback`` rows, positive values for a model that works in logs, every id
known to a model with a series embedding, and the last ``lookback`` times one step apart at the
model's frequency (a gap, or data of another frequency, would feed the network a window it never
saw). Each failure is one :class:`~lstmkit.data.text.DataFileError` naming ``where`` (the file,
or the request) and what would be valid.

Serving imports this module and never the tasks (import-linter), which is why it lives here and
not in :mod:`lstmkit.tasks.forecast`.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.data.panel import Panel, calendar_columns
from lstmkit.data.series import Scaler, Series, future_times, infer_frequency, parse_time
from lstmkit.data.text import DataFileError
from lstmkit.errors import RunDirError
from lstmkit.models import Forecaster, ForecasterConfig, PanelForecaster, PanelForecasterConfig
from lstmkit.runs import load_weights, read_run_config

FORMAT = 2  # config.json["forecaster_format"]: raw windows in, each normalised by the model
PANEL_FORMAT = 1  # config.json["panel_format"]
_HOW = " (train one with lstmkit train --task forecast)"

# months per step of the calendar frequencies of lstmkit.data.series.infer_frequency
_MONTH_STEPS = {"monthly": 1, "quarterly": 3, "half-yearly": 6, "yearly": 12}
_SECOND_STEPS = {
    "weekly": 7 * 86400,
    "daily": 86400,
    "minutely": 60,
    "5-minutely": 300,
    "10-minutely": 600,
    "quarter-hourly": 900,
    "half-hourly": 1800,
    "hourly": 3600,
    "2-hourly": 7200,
    "3-hourly": 10800,
    "6-hourly": 21600,
    "12-hourly": 43200,
}


# -- the models on windows ----------------------------------------------------------------------
@torch.no_grad()
def batched_forecaster(
    model: Forecaster,
    x: np.ndarray,
    run: Callable[[Forecaster, torch.Tensor, slice], torch.Tensor],
    batch_size: int = 512,
) -> np.ndarray:
    """``run(model, batch, rows)`` over the raw windows ``x`` (n, lookback, F) in batches
    (``rows``: the batch's slice of ``x``), on the model's device, in eval mode; the outputs
    concatenated as float64."""
    was = model.training
    model.eval()
    device = next(model.parameters()).device
    out = [
        run(model, torch.from_numpy(x[i : i + batch_size]).to(device), slice(i, i + batch_size))
        .double()
        .cpu()
        .numpy()
        for i in range(0, len(x), batch_size)
    ]
    model.train(was)
    return np.concatenate(out)


def predict_windows(model: Forecaster, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Forecasts (n, horizon) in the series' units for raw input windows (n, lookback, F)."""
    return batched_forecaster(model, x, lambda m, b, _: m.predict(b), batch_size)


def predict_quantile_windows(model: Forecaster, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Quantile forecasts (n, horizon, Q) in the series' units for raw windows (n, lookback, F)."""
    return batched_forecaster(model, x, lambda m, b, _: m.predict_quantiles(b), batch_size)


@torch.no_grad()
def batched_panel(
    model: PanelForecaster,
    x: np.ndarray,
    run: Callable[[PanelForecaster, torch.Tensor], torch.Tensor],
    dtype: Any,
    batch_size: int = 2048,
) -> np.ndarray:
    """``run(model, batch)`` over the panel windows ``x`` in batches, in eval mode: (n, H, Q)."""
    was = model.training
    model.eval()
    out = [
        run(model, torch.from_numpy(x[i : i + batch_size])).numpy().astype(dtype)
        for i in range(0, len(x), batch_size)
    ]
    model.train(was)
    shape = (0, model.config.horizon, len(model.config.quantiles))
    return np.concatenate(out) if out else np.zeros(shape, dtype=dtype)


def predict_panel_quantiles(model: PanelForecaster, x: np.ndarray) -> np.ndarray:
    """Quantile forecasts (n, H, Q) of a panel model in the series' units."""
    return batched_panel(model, x, lambda m, b: m.predict(b), np.float64)


# -- finished runs ------------------------------------------------------------------------------
def is_panel_config(config: dict[str, Any]) -> bool:
    """Whether a forecasting run's ``config.json`` is a panel model's."""
    return "panel_format" in config


def load_forecast_run(run_dir: Path) -> tuple[Forecaster, dict[str, Any], Scaler]:
    """Model (eval mode), config and scaler of a finished single-series forecasting run."""
    config = read_run_config(run_dir, "forecast", _HOW)
    if config.get("forecaster_format") != FORMAT:
        raise RunDirError(
            f"{run_dir}: a forecasting run of an older lstmkit (scaled windows, no baseline); "
            "train it again with lstmkit train --task forecast"
        )
    model = Forecaster(ForecasterConfig.model_validate(config["model"]))
    load_weights(model, run_dir)
    model.eval()
    return model, config, Scaler.from_dict(config["scaler"])


def load_panel_run(run_dir: Path) -> tuple[PanelForecaster, dict[str, Any]]:
    """Model (eval mode) and config of a finished panel run."""
    config = read_run_config(run_dir, "forecast", _HOW)
    if config.get("panel_format") != PANEL_FORMAT:
        raise RunDirError(f"{run_dir}: not a panel forecasting run of this lstmkit")
    model = PanelForecaster(PanelForecasterConfig.model_validate(config["model"]))
    load_weights(model, run_dir)
    model.eval()
    return model, config


# -- the history --------------------------------------------------------------------------------
def _stamp(text: str) -> datetime:
    s = text.strip()
    return datetime.fromisoformat(s + "-01" if len(s) == 7 and s[4] == "-" else s)


def find_gap(times: list[str], frequency: str) -> int | None:
    """The first ``i`` where ``times[i]`` is not one ``frequency`` step after ``times[i - 1]``
    (None: every step is one). Frequencies without a fixed step (``irregular``, ``rows``,
    ``business-daily``: weekends and holidays are no gap there) have no gap; ``numbers`` must
    keep the first step throughout."""
    if len(times) < 2:
        return None
    if frequency == "numbers":
        nums = np.array([float(t) for t in times])
        diffs = np.diff(nums)
        bad = np.flatnonzero(~np.isclose(diffs, diffs[0]))
        return int(bad[0]) + 1 if bad.size else None
    months = _MONTH_STEPS.get(frequency)
    seconds = _SECOND_STEPS.get(frequency)
    if months is None and seconds is None:
        return None
    try:
        stamps = [_stamp(t) for t in times]
    except ValueError:
        return 1  # not dates: the frequency cannot hold
    for i in range(1, len(stamps)):
        a, b = stamps[i - 1], stamps[i]
        if months is not None:
            if (b.year * 12 + b.month) - (a.year * 12 + a.month) != months:
                return i
        elif seconds is not None:
            step = parse_time(times[i]) - parse_time(times[i - 1])
            if abs(step - seconds) > 0.05 * seconds:
                return i
    return None


def check_window_times(
    times: list[str] | None, trained: str | None, *, where: str, what: str
) -> None:
    """The last ``lookback`` ``times`` (of ``what``, e.g. "series 'S1'") are consecutive steps:
    at the ``trained`` frequency when the run recorded one (a named other frequency is refused
    first), else at the frequency of these times themselves. No time column: nothing to check."""
    if not times or len(times) < 2:
        return
    own = infer_frequency(times).name
    frequency = own
    if trained is not None and trained not in ("rows", "irregular"):
        if own not in ("irregular", trained):
            raise DataFileError(
                f"{where}: {what} holds {own} times ({times[0]} .. {times[-1]}), but the model "
                f"was trained on {trained} data; give {trained} rows"
            )
        frequency = trained
    i = find_gap(times, frequency)
    if i is not None:
        raise DataFileError(
            f"{where}: {what} has a gap: {times[i - 1]!r} then {times[i]!r}, not one {frequency} "
            f"step apart; the model reads {len(times)} consecutive {frequency} rows (fill the "
            "missing rows in)"
        )


def forecast_series(
    model: Forecaster, config: dict[str, Any], series: Series, *, where: str
) -> list[dict[str, Any]]:
    """The ``horizon`` steps after the end of ``series`` (read with the run's columns): rows of
    ``step, [time column,] <target>_forecast[, q0.1, q0.5, q0.9]`` (the band's quantiles when
    the run has one). ``where`` names the history in errors (a file, the request)."""
    columns: list[str] = config["columns"]
    time_column = config.get("time_column")
    lookback, horizon = int(config["lookback"]), int(config["horizon"])
    if len(series.values) < lookback:
        raise DataFileError(
            f"{where}: {len(series.values)} rows, but the model reads the last {lookback} "
            f"(its lookback); give at least {lookback} rows"
        )
    if series.times is not None:
        check_window_times(series.times[-lookback:], None, where=where, what="the series")
    window = series.values[-lookback:][None].astype(np.float32)
    if model.config.log and float(window[..., 0].min()) <= 0.0:
        raise DataFileError(
            f"{where}: the model forecasts the logarithm of {columns[0]!r} (its training "
            "series was positive), but the last rows hold a value <= 0"
        )
    pred = predict_windows(model, window)[0]
    qs = model.config.quantiles
    quant = predict_quantile_windows(model, window)[0] if qs else None
    times = future_times(series.times, horizon) if series.times else None
    rows = []
    for k in range(horizon):
        row: dict[str, Any] = {"step": k + 1}
        if times is not None and time_column:
            row[time_column] = times[k]
        row[f"{columns[0]}_forecast"] = float(pred[k])
        if quant is not None:
            row.update({f"q{q:g}": float(quant[k, j]) for j, q in enumerate(qs)})
        rows.append(row)
    return rows


def forecast_panel(
    model: PanelForecaster,
    config: dict[str, Any],
    panel: Panel,
    *,
    where: str,
    skip_short: bool,
) -> tuple[list[dict[str, Any]], list[str]]:
    """The ``horizon`` steps after the end of every series of ``panel``: rows of ``id, [time,]
    step, q0.1, q0.5, q0.9``, and the ids left out for being shorter than the lookback (with
    ``skip_short``; without it, such a series is an error). With a series embedding, an id the
    model was not trained on is refused. ``where`` names the history in errors."""
    idc: str = config["id_column"]
    tcol = config.get("time_column")
    frequency = config.get("frequency", "rows")
    lookback, horizon = int(config["lookback"]), int(config["horizon"])
    known = {sid: k for k, sid in enumerate(config.get("ids", []))}
    qs = model.config.quantiles
    rows: list[dict[str, Any]] = []
    short = []
    for sid, ser in zip(panel.ids, panel.series, strict=True):
        if len(ser.values) < lookback:
            if not skip_short:
                raise DataFileError(
                    f"{where}: series {sid!r} has {len(ser.values)} rows, but the model reads "
                    f"the last {lookback} (its lookback); give at least {lookback} rows of it"
                )
            short.append(sid)
            continue
        if model.config.num_series and sid not in known:
            raise DataFileError(
                f"{where}: series {sid!r} is not one the model was trained on (it has a "
                "series embedding); give one of its ids"
            )
        if ser.times is not None:
            check_window_times(
                ser.times[-lookback:], frequency, where=where, what=f"series {sid!r}"
            )
        cal, _ = calendar_columns(ser.times or [], frequency)
        vals = np.concatenate([ser.values, cal], 1) if cal.shape[1] else ser.values
        if model.config.num_series:
            vals = np.concatenate([vals, np.full((len(vals), 1), known[sid])], 1)
        window = vals[-lookback:][None].astype(np.float32)
        q = predict_panel_quantiles(model, window)[0]
        times = future_times(ser.times, horizon) if ser.times else None
        for k in range(horizon):
            row: dict[str, Any] = {idc: sid}
            if tcol and times is not None:
                row[tcol] = times[k]
            row["step"] = k + 1
            for j, qv in enumerate(qs):
                row[f"q{qv:g}"] = float(q[k, j])
            rows.append(row)
    if not rows:
        raise DataFileError(f"{where}: no series has the lookback's {lookback} rows")
    return rows, short
