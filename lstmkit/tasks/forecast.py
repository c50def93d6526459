"""Time-series forecasting from your own CSV: model, training, evaluation against baselines, plot,
and forecasting new data.

``lstmkit train --task forecast --train series.csv --target y --lookback L --horizon H`` (or a
recipe with ``[data] dataset = "series"`` and a ``[data.series]`` table, see
:class:`lstmkit.data.series.SeriesSource`) runs this task (:class:`ForecastTask`):

1. read the series (:func:`lstmkit.data.series.read_series`: finite numbers, distinct times,
   sorted with a warning), split it by time into train / validation / test rows;
2. fit the scaler on the training rows only and scale every column;
3. cut windows (``lookback`` rows in, the next ``horizon`` target values out, every ``stride``
   rows; a window belongs to the part that holds all its targets);
4. train a :class:`lstmkit.models.Forecaster` (recurrent stack -> last state -> linear layer to ``horizon``
   values, identity output) with the Trainer's Regression objective (MSE on the scaled target);
5. on the test windows, in the original units: MAE, RMSE and MASE of the model, of the naive
   forecast and of the seasonal-naive forecast (season given or detected), and ``forecast.png``.

Run directory: ``config.json`` (recipe, columns, scaler, season, split rows, warnings),
``model.safetensors``, ``metrics.json`` (validation, test vs baselines), ``forecast.png``,
plus the Trainer's history, curves and checkpoints. ``lstmkit forecast RUN --data new.csv --out
forecast.csv`` (:func:`forecast_file`) forecasts the ``horizon`` steps after the end of
``new.csv``.
"""

from __future__ import annotations

import csv
import io
import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmkit.config import Recipe, check_monitor
from lstmkit.data.series import (
    Scaler,
    Series,
    SeriesSource,
    chronological_split,
    detect_season,
    forecast_errors,
    make_windows,
    mase_scale,
    naive_forecast,
    read_series,
    seasonal_naive_forecast,
    window_origins,
)
from lstmkit.data.text import DataFileError
from lstmkit.files import atomic_write_text
from lstmkit.models import Forecaster, ForecasterConfig
from lstmkit.objectives import Regression
from lstmkit.plots import pyplot, save_png
from lstmkit.runs import load_weights, read_run_config
from lstmkit.tasks.base import QUICK_CLASSIFIER, Outcome, Record, Setup, took
from lstmkit.train import Trainer

logger = logging.getLogger(__name__)

PART_NAMES = {"train": "training", "valid": "validation", "test": "test"}


class WindowDataset(Dataset[tuple[np.ndarray, np.ndarray]]):
    """``ds[i] = (inputs (lookback, F) float32, targets (horizon,) float32)``."""

    def __init__(self, x: np.ndarray, y: np.ndarray) -> None:
        if len(x) != len(y):
            raise ValueError(f"x and y differ in length: {len(x)} vs {len(y)}")
        self.x = x
        self.y = y
        self.lengths = np.full(len(x), x.shape[1], dtype=np.int64)

    def __len__(self) -> int:
        """Number of windows."""
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """Window ``i``."""
        return self.x[i], self.y[i]


def collate_windows(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor, Tensor]:
    """``(inputs (B, L, F) float32, lengths (B,) int64, targets (B, H) float32)``."""
    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    y = torch.from_numpy(np.stack([b[1] for b in batch]))
    return x, torch.full((len(batch),), x.shape[1], dtype=torch.int64), y


@dataclass
class PreparedSeries:
    """Everything the forecast task needs, computed before anything is written."""

    series: Series
    source: SeriesSource
    scaler: Scaler
    train_end: int
    valid_end: int
    season: int
    season_detected: bool
    scale: float
    origins: dict[str, np.ndarray]
    datasets: dict[str, WindowDataset]


def prepare_series(source: SeriesSource) -> PreparedSeries:
    """Read, check, split, scale and window the series of ``source`` (no file is written)."""
    s = source
    series = read_series(s.train, s.target, s.features, s.time_column, encoding=s.encoding)
    n = len(series.values)
    need = s.lookback + s.horizon
    if n < need:
        raise DataFileError(
            f"{s.train}: the series has {n} rows, shorter than lookback {s.lookback} + horizon "
            f"{s.horizon} = {need}; use a shorter --lookback / --horizon or more data"
        )
    train_end, valid_end = chronological_split(n, s.valid_fraction, s.test_fraction)
    origins = {
        "train": window_origins(0, train_end, s.lookback, s.horizon, s.stride),
        "valid": window_origins(train_end, valid_end, s.lookback, s.horizon, s.stride),
        "test": window_origins(valid_end, n, s.lookback, s.horizon, s.stride),
    }
    rows = {"train": train_end, "valid": valid_end - train_end, "test": n - valid_end}
    for part in ("train", "valid", "test"):
        if part != "train" and rows[part] == 0:
            continue  # a fraction of 0: no such part
        if len(origins[part]) == 0:
            raise DataFileError(
                f"{s.train}: the {PART_NAMES[part]} part ({rows[part]} of {n} rows) holds no "
                f"window of "
                f"lookback {s.lookback} + horizon {s.horizon} (it needs at least "
                f"{s.horizon if part != 'train' else need} rows); use a shorter --lookback / "
                "--horizon, larger split fractions or more data"
            )
    if rows["test"] == 0:
        raise DataFileError(f"{s.train}: test_fraction 0 leaves no test rows to evaluate on")
    scaler = (
        Scaler.fit(series.values[:train_end], series.columns)
        if s.scale
        else Scaler(np.zeros(len(series.columns)), np.ones(len(series.columns)))
    )
    scaled = scaler.transform(series.values)
    y_train = series.target[:train_end]
    if s.season is None:
        season, detected = detect_season(y_train), True
    else:
        season, detected = s.season, False
    if season >= train_end:
        raise DataFileError(
            f"{s.train}: season {season} is not shorter than the training part ({train_end} rows)"
        )
    try:
        scale = mase_scale(y_train, season)
    except ValueError as err:
        raise DataFileError(f"{s.train}: {err}") from None
    datasets = {}
    for part, o in origins.items():
        if len(o):
            x, y = make_windows(scaled, o, s.lookback, s.horizon)
            datasets[part] = WindowDataset(x, y)
    return PreparedSeries(
        series, s, scaler, train_end, valid_end, season, detected, scale, origins, datasets
    )


def forecaster_config(recipe: Recipe, input_size: int, horizon: int) -> ForecasterConfig:
    """The recurrent part of the recipe's ``[model]`` table, sized for this series."""
    m = recipe.classifier
    return ForecasterConfig(
        input_size=input_size,
        horizon=horizon,
        cell=m.cell,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        bidirectional=m.bidirectional,
        dropout=m.dropout,
        output_dropout=m.output_dropout,
        impl=m.impl,
        cell_options=dict(m.cell_options),
    )


@torch.no_grad()
def predict_windows(model: Forecaster, x: np.ndarray, batch_size: int = 512) -> np.ndarray:
    """Scaled forecasts (n, horizon) for scaled input windows (n, lookback, F)."""
    was = model.training
    model.eval()
    out = []
    device = next(model.parameters()).device
    for i in range(0, len(x), batch_size):
        out.append(model(torch.from_numpy(x[i : i + batch_size]).to(device)).cpu().numpy())
    model.train(was)
    return np.concatenate(out).astype(np.float64)


def evaluate_windows(model: Forecaster, data: PreparedSeries) -> dict[str, Any]:
    """MAE / RMSE / MASE of the model, the naive and the seasonal-naive forecasts on the same
    test windows (original units), per step ahead as well as overall."""
    o = data.origins["test"]
    y = data.series.target
    h = data.source.horizon
    ds = data.datasets["test"]
    truth = data.scaler.inverse_target(ds.y.astype(np.float64))
    preds = {
        "model": data.scaler.inverse_target(predict_windows(model, ds.x)),
        "naive": naive_forecast(y, o, h),
    }
    if data.season > 1:
        preds["seasonal_naive"] = seasonal_naive_forecast(y, o, h, data.season)
    report: dict[str, Any] = {
        "windows": len(o),
        "season": data.season,
        "season_detected": data.season_detected,
        "mase_scale": data.scale,
    }
    for name, p in preds.items():
        report[name] = forecast_errors(truth, p, data.scale)
        report[name]["per_step_mae"] = np.mean(np.abs(p - truth), axis=0).tolist()
    best = min((n for n in preds if n != "model"), key=lambda n: report[n]["mae"])
    report["best_baseline"] = best
    report["mae_vs_best_baseline"] = report["model"]["mae"] / max(report[best]["mae"], 1e-300)
    return report


def _time_axis(series: Series) -> tuple[np.ndarray, str]:
    """x values for plots: the time column (numbers, or dates) when there is one, else the row."""
    n = len(series.values)
    if series.times:
        try:
            return np.array([float(t) for t in series.times]), "time"
        except ValueError:
            pass
        try:
            stamps = [datetime.fromisoformat(t + "-01" if len(t) == 7 else t) for t in series.times]
            return np.array(stamps, dtype="datetime64[s]"), "time"
        except ValueError:
            pass
    return np.arange(n), "row"


def plot_forecast(data: PreparedSeries, model: Forecaster, path: Path) -> None:
    """PNG: the target series (train / validation / test shaded) and, over the test part, the
    model's 1-step and H-step-ahead forecasts beside the (seasonal-)naive one."""
    plt = pyplot()

    y = data.series.target
    n = len(y)
    o = data.origins["test"]
    h = data.source.horizon
    pred = data.scaler.inverse_target(predict_windows(model, data.datasets["test"].x))
    fig, axes = plt.subplots(2, 1, figsize=(11, 7))
    t, xlabel = _time_axis(data.series)
    ax = axes[0]
    ax.plot(t, y, lw=0.8, color="black", label=data.series.columns[0])
    ax.axvspan(
        t[data.train_end], t[data.valid_end], color="tab:orange", alpha=0.12, label="validation"
    )
    ax.axvspan(t[data.valid_end], t[n - 1], color="tab:green", alpha=0.12, label="test")
    ax.set_title("the series; the scaler and the model saw only the training part")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    lo = max(0, data.valid_end - 2 * data.source.lookback)
    ax.plot(t[lo:], y[lo:], color="black", lw=1.0, label="actual")
    ax.plot(t[o], pred[:, 0], "-", color="tab:blue", lw=1.0, label="model, 1 step ahead")
    if h > 1:
        ax.plot(
            t[o + h - 1],
            pred[:, -1],
            "-",
            color="tab:purple",
            lw=1.0,
            label=f"model, {h} steps ahead",
        )
    if data.season > 1:
        base = seasonal_naive_forecast(y, o, h, data.season)
        ax.plot(t[o], base[:, 0], ":", color="tab:red", label=f"seasonal naive (m={data.season})")
    else:
        ax.plot(t[o], naive_forecast(y, o, h)[:, 0], ":", color="tab:red", label="naive")
    ax.axvline(t[data.valid_end], color="grey", lw=0.6)
    ax.set_title("test part: forecasts vs actual")
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


MONITORS = ("val_loss", "val_mae", "val_rmse")


class ForecastTask:
    """Your own time series (see the module docstring)."""

    name = "forecast"
    description = "your own time series (CSV / TSV / JSONL / Parquet), model vs naive forecasts"

    def check(self, recipe: Recipe) -> None:
        """A ``[data.series]`` table, and a monitor this task measures."""
        if recipe.data.series is None:
            raise DataFileError('dataset "series" needs a [data.series] table (train, target, ...)')
        check_monitor(recipe, MONITORS, "forecasting")

    def setup(self, recipe: Recipe, *, resume: bool, given: frozenset[str] | None = None) -> Setup:
        """Read, split, scale and window the series; build the forecaster."""
        source = recipe.data.series
        assert source is not None
        data = prepare_series(source)
        if recipe.data.limit is not None:
            # a series is cut by time, not by examples; reading and windowing it is cheap anyway
            logger.warning(
                "data.limit = %d does not apply to a series: the whole series is used",
                recipe.data.limit,
            )
        for w in data.series.warnings + data.scaler.warnings:
            logger.warning("%s", w)
        logger.info(
            "series %s: %d rows (train %d, valid %d, test %d), %d/%d/%d windows, season %d%s",
            source.train,
            len(data.series.values),
            data.train_end,
            data.valid_end - data.train_end,
            len(data.series.values) - data.valid_end,
            *(len(data.origins[p]) for p in ("train", "valid", "test")),
            data.season,
            " (detected)" if data.season_detected else "",
        )
        torch.manual_seed(recipe.train.seed)
        cfg = forecaster_config(recipe, len(data.series.columns), source.horizon)
        model = Forecaster(cfg)
        return Setup(
            model=model,
            train=data.datasets["train"],
            valid=data.datasets.get("valid"),
            trainer={"objective": Regression(), "collate": collate_windows, "bucketing": False},
            config={
                "model": cfg.to_dict(),
                "columns": data.series.columns,
                "time_column": source.time_column,
                "lookback": source.lookback,
                "horizon": source.horizon,
                "scaler": data.scaler.to_dict(),
                "season": data.season,
                "season_detected": data.season_detected,
                "mase_scale": data.scale,
                "rows": {
                    "total": len(data.series.values),
                    "train_end": data.train_end,
                    "valid_end": data.valid_end,
                },
                "windows": {p: len(o) for p, o in data.origins.items()},
                "warnings": data.series.warnings + data.scaler.warnings,
            },
            data=data,
        )

    def evaluate(
        self, recipe: Recipe, setup: Setup, trainer: Trainer, history: list[dict[str, Any]]
    ) -> Outcome:
        """MAE / RMSE / MASE of the model and of the naive forecasts on the test windows."""
        data: PreparedSeries = setup.data
        model: Forecaster = setup.model  # type: ignore[assignment]
        test_scaled = trainer.evaluate(data.datasets["test"], data.datasets["test"].lengths)
        report = evaluate_windows(model, data)
        extra = {
            "test": {k: report[k] for k in ("model", "naive", "seasonal_naive") if k in report},
            "season": data.season,
        }
        return Outcome(
            {"test": report, "test_scaled": test_scaled},
            Record("test_mase", report["model"]["mase"], extra),
            lambda run_dir: plot_forecast(data, model, run_dir / "forecast.png"),
        )

    def summary(self, name: str, metrics: dict[str, Any], out: Path) -> str:
        """The test MAE of the model beside the naive ones, and the MASE."""
        t = metrics["test"]
        parts = [f"model {t['model']['mae']:.4g}", f"naive {t['naive']['mae']:.4g}"]
        if "seasonal_naive" in t:
            parts.append(f"seasonal naive (m={t['season']}) {t['seasonal_naive']['mae']:.4g}")
        return (
            f"{name}: test MAE {', '.join(parts)}; MASE {t['model']['mase']:.3f} "
            f"{took(metrics, out)}; plot: {out / 'forecast.png'}"
        )

    def evaluate_run(self, run_dir: Path) -> dict[str, Any]:
        """Re-evaluate on the recipe's test windows (model vs baselines)."""
        return evaluate_forecast_run(run_dir)

    def quick_overrides(self, recipe: Recipe) -> list[str]:
        """Two steps, small batches (the whole series: it is cut by time, not by examples)."""
        return list(QUICK_CLASSIFIER)


def load_forecast_run(run_dir: Path) -> tuple[Forecaster, dict[str, Any], Scaler]:
    """Model (eval mode), config and scaler of a finished forecasting run."""
    how = " (train one with lstmkit train --task forecast)"
    config = read_run_config(run_dir, "forecast", how)
    model = Forecaster(ForecasterConfig.model_validate(config["model"]))
    load_weights(model, run_dir)
    return model, config, Scaler.from_dict(config["scaler"])


def evaluate_forecast_run(run_dir: Path) -> dict[str, Any]:
    """Re-evaluate a finished forecasting run on its recipe's test windows (model vs baselines)."""
    model, config, _ = load_forecast_run(run_dir)
    recipe = Recipe.model_validate(config["recipe"])
    assert recipe.data.series is not None
    data = prepare_series(recipe.data.series)
    data.scaler = Scaler.from_dict(config["scaler"])  # the run's own scaler
    return evaluate_windows(model, data)


def _future_times(times: list[str], horizon: int) -> list[str] | None:
    """The ``horizon`` times after ``times`` when their last (up to) four are evenly spaced
    (numbers, fixed durations, or whole months); None otherwise or with fewer than three."""
    if len(times) < 3:
        return None
    try:
        nums = [float(t) for t in times]
        step = nums[-1] - nums[-2]
        if step > 0 and np.allclose(np.diff(nums[-4:]), step):
            fmt = (lambda v: str(int(v))) if all(float(v).is_integer() for v in nums) else str
            return [fmt(nums[-1] + step * k) for k in range(1, horizon + 1)]
        return None
    except ValueError:
        pass
    try:
        stamps = [datetime.fromisoformat(t + "-01" if len(t) == 7 else t) for t in times[-4:]]
    except ValueError:
        return None
    monthly = all(s.day == 1 and s.time() == stamps[0].time() for s in stamps)
    months = [s.year * 12 + s.month for s in stamps]
    if monthly and len(set(np.diff(months))) == 1 and months[-1] > months[-2]:
        step_m = months[-1] - months[-2]
        out = []
        for k in range(1, horizon + 1):
            m = months[-1] + step_m * k - 1
            s = stamps[-1].replace(year=m // 12, month=m % 12 + 1)
            if len(times[-1]) == 7:
                out.append(s.strftime("%Y-%m"))
            elif len(times[-1]) == 10:
                out.append(s.date().isoformat())
            else:
                out.append(s.isoformat(sep=" " if " " in times[-1] else "T"))
        return out
    deltas = {b - a for a, b in zip(stamps, stamps[1:], strict=False)}
    if len(deltas) == 1:
        (delta,) = deltas
        if delta > timedelta(0):
            last = stamps[-1]
            date_only = len(times[-1]) == 10
            return [
                (last + delta * k).date().isoformat()
                if date_only
                else (last + delta * k).isoformat()
                for k in range(1, horizon + 1)
            ]
    return None


def forecast_file(
    run_dir: Path, data_path: Path, out_path: Path, *, encoding: str = "utf-8"
) -> list[dict[str, Any]]:
    """Forecast the ``horizon`` steps after the end of ``data_path`` (same columns as the run's
    training file; at least ``lookback`` rows) and write them to ``out_path`` as CSV
    (``step, [time,] forecast``), atomically. Returns the rows."""
    model, config, scaler = load_forecast_run(run_dir)
    columns: list[str] = config["columns"]
    time_column = config.get("time_column")
    lookback, horizon = int(config["lookback"]), int(config["horizon"])
    series = read_series(data_path, columns[0], columns[1:], time_column, encoding=encoding)
    for w in series.warnings:
        logger.warning("%s", w)
    if len(series.values) < lookback:
        raise DataFileError(
            f"{data_path}: {len(series.values)} rows, but the model reads the last {lookback} "
            f"(its lookback); give at least {lookback} rows"
        )
    window = scaler.transform(series.values[-lookback:])[None].astype(np.float32)
    pred = scaler.inverse_target(predict_windows(model, window))[0]
    times = _future_times(series.times, horizon) if series.times else None
    rows = []
    for k in range(horizon):
        row: dict[str, Any] = {"step": k + 1}
        if times is not None and time_column:
            row[time_column] = times[k]
        row[f"{columns[0]}_forecast"] = float(pred[k])
        rows.append(row)
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_path, buf.getvalue())
    return rows
