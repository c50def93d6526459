"""Time-series forecasting from your own CSV: model, training, evaluation against baselines on
the rolling protocol, plot, backtest and forecasting new data.

``lstmkit train --task forecast --train series.csv --target y --horizon H`` (or a recipe with
``[data] dataset = "series"`` and a ``[data.series]`` table, see
:class:`lstmkit.data.series.SeriesSource`) runs this task (:class:`ForecastTask`):

1. read the series (:func:`lstmkit.data.series.read_series`: finite numbers, distinct times,
   sorted with a warning) and split it by time: the last ``ceil(test_fraction * n)`` rows (0.2)
   are the test origins of the **rolling protocol** (:func:`lstmkit.data.series.rolling_origins`:
   every origin ``t`` forecasts ``y[t:t+H]`` from ``y[:t]``), the validation rows before them,
   training before that;
2. detect the season on the training rows; choose what the user did not set
   (:func:`choose_defaults`: lookback three seasons, bounded; training until the validation MAE
   stops improving, best weights restored) -- ``config.json`` keeps the choices under
   ``"defaults"``;
3. cut windows (``lookback`` rows in, the next ``horizon`` target values out);
4. train a :class:`lstmkit.models.Forecaster`: each window is normalised by its own last value
   (in logs when the series' changes grow with its level,
   :func:`lstmkit.data.series.grows_with_level`), and the network predicts a correction on top of
   an in-window baseline (seasonal naive, or the seasonal mean with drift when that is better on
   validation, :func:`choose_baseline`), its head starting at zero: the untrained model is the
   baseline. After training the correction is kept only when it beats that starting point on
   validation by at least 1% (``KEEP_MARGIN``);
5. on the test origins, in the original units: MAE, RMSE and MASE (overall and per step ahead)
   of the model, the naive, the seasonal-naive and the Holt-Winters forecast
   (:mod:`lstmkit.baselines.series`; logged and skipped when it cannot be fitted), which wins,
   and ``forecast.png``.

Run directory: ``config.json`` (recipe, defaults, columns, season, split rows, warnings),
``model.safetensors``, ``metrics.json`` (validation, test vs baselines), ``forecast.png``,
plus the Trainer's history, curves and checkpoints. ``lstmkit forecast RUN --data new.csv --out
forecast.csv`` (:func:`forecast_file`) forecasts the ``horizon`` steps after the end of
``new.csv``; ``lstmkit forecast RUN --backtest`` re-runs the rolling evaluation
(:func:`evaluate_forecast_run`, :func:`backtest_table`).
"""

from __future__ import annotations

import csv
import io
import logging
import math
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmkit.baselines.series import holt_winters_forecasts
from lstmkit.config import Recipe, check_monitor
from lstmkit.data.panel import find_id_column, header_columns, string_columns
from lstmkit.data.series import (
    Scaler,
    Series,
    SeriesSource,
    choose_season,
    chronological_split,
    forecast_errors,
    grows_with_level,
    make_windows,
    mase_scale,
    naive_forecast,
    read_series,
    seasonal_naive_forecast,
    window_origins,
)
from lstmkit.data.text import DataFileError
from lstmkit.errors import BaselineError
from lstmkit.files import atomic_write_text
from lstmkit.forecasting import (
    FORMAT,
    batched_forecaster,
    forecast_series,
    load_forecast_run,
    predict_quantile_windows,
    predict_windows,
)
from lstmkit.models import Forecaster, ForecasterConfig, empirical_band
from lstmkit.objectives import Regression
from lstmkit.plots import pyplot, save_png
from lstmkit.tasks.base import QUICK_CLASSIFIER, Outcome, Record, Setup, took
from lstmkit.tasks.defaults import Choice, apply_choices
from lstmkit.tasks.panel import (
    PreparedPanel,
    evaluate_panel_run,
    evaluate_panel_task,
    is_panel_run,
    panel_summary,
    setup_panel,
)
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
    """Everything the forecast task needs, computed before anything is written.

    ``datasets`` hold raw windows (the series' own units; the :class:`Forecaster` normalises
    each window itself) with the targets in the forecaster's normalised units; ``truth`` the
    targets in the series' units."""

    series: Series
    source: SeriesSource
    scaler: Scaler
    train_end: int
    valid_end: int
    season: int
    season_detected: bool
    scale: float
    origins: dict[str, np.ndarray]
    windows: dict[str, np.ndarray]
    truth: dict[str, np.ndarray]
    log: bool = False
    season_reason: str = ""
    datasets: dict[str, WindowDataset] = field(default_factory=dict)


def read_and_split(source: SeriesSource) -> tuple[Series, int, int]:
    """The series of ``source`` and its ``(train_end, valid_end)`` rows (see
    :func:`lstmkit.data.series.chronological_split`)."""
    s = source
    series = read_series(s.train, s.target, s.features, s.time_column, encoding=s.encoding)
    train_end, valid_end = chronological_split(
        len(series.values), s.valid_fraction, s.test_fraction
    )
    return series, train_end, valid_end


def season_of(
    source: SeriesSource, y_train: np.ndarray, times: list[str] | None = None
) -> tuple[int, bool, str]:
    """``(season, detected, reason)``: the recipe's season, or the one the training rows (and
    their times' calendar) give (:func:`lstmkit.data.series.choose_season`)."""
    if source.season is None:
        season, why = choose_season(y_train, times)
        return season, True, why
    return source.season, False, f"{source.season} (given)"


def prepare_series(source: SeriesSource) -> PreparedSeries:
    """Read, check, split and window the series of ``source`` (no file is written)."""
    s = source
    series, train_end, valid_end = read_and_split(s)
    n = len(series.values)
    need = s.lookback + s.horizon
    if n < need:
        raise DataFileError(
            f"{s.train}: the series has {n} rows, shorter than lookback {s.lookback} + horizon "
            f"{s.horizon} = {need}; use a shorter --lookback / --horizon or more data"
        )
    origins = {
        "train": window_origins(0, train_end, s.lookback, s.horizon, s.stride),
        "valid": window_origins(train_end, valid_end, s.lookback, s.horizon, s.stride),
        "test": window_origins(valid_end, n, s.lookback, s.horizon, 1),
    }
    rows = {"train": train_end, "valid": valid_end - train_end, "test": n - valid_end}
    for part in ("train", "valid", "test"):
        if part == "valid" and rows[part] == 0:
            continue  # a fraction of 0: no such part
        if len(origins[part]) == 0:
            raise DataFileError(
                f"{s.train}: the {PART_NAMES[part]} part ({rows[part]} of {n} rows) holds no "
                f"window of "
                f"lookback {s.lookback} + horizon {s.horizon} (it needs at least "
                f"{s.horizon if part != 'train' else need} rows); use a shorter --lookback / "
                "--horizon, larger split fractions or more data"
            )
    scaler = (
        Scaler.fit(series.values[:train_end], series.columns)
        if s.scale
        else Scaler(np.zeros(len(series.columns)), np.ones(len(series.columns)))
    )
    y_train = series.target[:train_end]
    times = series.times[:train_end] if series.times else None
    season, detected, season_reason = season_of(s, y_train, times)
    if season >= train_end:
        raise DataFileError(
            f"{s.train}: season {season} is not shorter than the training part ({train_end} rows)"
        )
    try:
        scale = mase_scale(y_train, season)
    except ValueError as err:
        raise DataFileError(f"{s.train}: {err}") from None
    log = grows_with_level(y_train, season)
    windows, truth = {}, {}
    for part, o in origins.items():
        if len(o):
            windows[part], truth[part] = make_windows(series.values, o, s.lookback, s.horizon)
    return PreparedSeries(
        series,
        s,
        scaler,
        train_end,
        valid_end,
        season,
        detected,
        scale,
        origins,
        windows,
        truth,
        log,
        season_reason,
    )


def working_scale(y_train: np.ndarray, season: int, log: bool) -> float:
    """The mean absolute change over one season of the training target in the forecaster's
    working units (``log y`` or ``y``): what a normalised window is divided by."""
    z = np.log(y_train) if log else y_train
    m = max(1, season)
    scale = float(np.mean(np.abs(z[m:] - z[:-m])))
    return scale if scale > 0 else 1.0


# -- defaults chosen from the data ---------------------------------------------------------------
MIN_TRAIN_WINDOWS = 20  # the default lookback leaves at least this many training windows
MAX_LOOKBACK = 1000
EVALUATE_EVERY = 100  # steps between validations when an epoch is longer


def default_lookback(season: int, horizon: int, train_rows: int) -> tuple[int, str]:
    """The lookback a series gets when none is given, and why: five seasons (at most ten
    horizons, at least one season) with a season, else ``max(20, 4 horizons)``; never so long
    that fewer than ``MIN_TRAIN_WINDOWS`` training windows remain (then whole seasons, as many
    as fit), nor over 1000. Five seasons, not fewer: the in-window baselines estimate the
    seasonal profile and the drift from the window, and over three seasons a trend's estimate
    is noisy (measured on airpassengers and wineind: the seasonal mean with drift over five
    seasons beat Holt-Winters on both, over three on neither without the network)."""
    if season > 1:
        lookback = min(5 * season, max(season, 10 * horizon))
        why = f"five seasons of {season} (at most 10 x horizon {horizon}, at least one season)"
    else:
        lookback = max(20, 4 * horizon)
        why = f"no season: max(20, 4 x horizon {horizon})"
    cap = max(2, min(MAX_LOOKBACK, train_rows - horizon - MIN_TRAIN_WINDOWS + 1))
    if lookback > cap:
        whole = (cap // season) * season if season > 1 else 0
        lookback = whole if whole >= season > 1 else cap
        why = (
            f"{why}, cut to {lookback} so that {MIN_TRAIN_WINDOWS} training windows of the "
            f"{train_rows} training rows remain"
        )
    return lookback, why


def choose_defaults(source: SeriesSource, given: frozenset[str]) -> list[Choice]:
    """The settings a forecast run takes from its series when the user did not give them
    (:mod:`lstmkit.tasks.defaults`): the lookback from the season, and training until the
    validation MAE stops improving (best weights restored)."""
    series, train_end, _ = read_and_split(source)
    times = series.times[:train_end] if series.times else None
    season, _, _ = season_of(source, series.target[:train_end], times)
    h = source.horizon
    lookback = source.lookback
    choices = []
    if "data.series.lookback" not in given:
        lookback, why = default_lookback(season, h, train_end)
        choices.append(Choice("data.series.lookback", lookback, why))
    windows = max(1, train_end - lookback - h + 1)
    batch = 32
    steps_per_epoch = math.ceil(windows / batch)
    every = 0 if steps_per_epoch <= EVALUATE_EVERY else EVALUATE_EVERY
    choices += [
        Choice("train.batch_size", batch, "small batches: a series gives few windows"),
        Choice("train.lr", 3e-3, "Adam at 3e-3 for the small forecaster"),
        Choice("model.hidden_size", 32, "32 units: the network only corrects its baseline"),
        Choice("train.epochs", 200, "train until validation stops improving (early stopping)"),
        Choice(
            "train.evaluate_every",
            every,
            "validate once per epoch"
            if every == 0
            else f"validate every {every} steps (an epoch has {steps_per_epoch})",
        ),
        Choice("train.early_stopping", 10, "stop after 10 validations without a better MAE"),
        Choice("train.monitor", "val_mae", "keep the weights of the best validation MAE"),
    ]
    return choices


def forecaster_config(
    recipe: Recipe, data: PreparedSeries, baseline: str = "seasonal_naive"
) -> ForecasterConfig:
    """The recurrent part of the recipe's ``[model]`` table, sized and normalised for this
    series."""
    m = recipe.classifier
    lookback = data.source.lookback
    season = data.season if data.season <= lookback else 1
    return ForecasterConfig(
        input_size=len(data.series.columns),
        horizon=data.source.horizon,
        quantiles=list(data.source.quantiles),
        cell=m.cell,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        bidirectional=m.bidirectional,
        dropout=m.dropout,
        output_dropout=m.output_dropout,
        impl=m.impl,
        cell_options=dict(m.cell_options),
        season=season,
        baseline=baseline,
        log=data.log,
        scale=working_scale(data.series.target[: data.train_end], season, data.log),
        feature_mean=data.scaler.mean[1:].tolist(),
        feature_std=data.scaler.std[1:].tolist(),
    )


def baseline_model(config: ForecasterConfig) -> Forecaster:
    """A forecaster whose correction is zero: exactly its in-window baseline."""
    return Forecaster(config.model_copy())


def choose_baseline(recipe: Recipe, data: PreparedSeries) -> tuple[ForecasterConfig, str]:
    """The forecaster's in-window baseline: ``seasonal_mean`` when the window holds two seasons
    and it has the lower validation MAE, else ``seasonal_naive`` (the reason in words)."""
    cfg = forecaster_config(recipe, data, "seasonal_naive")
    if cfg.season < 2 or data.source.lookback < 2 * cfg.season or "valid" not in data.windows:
        why = "seasonal naive" if cfg.season > 1 else "naive (no season in the window)"
        return cfg, why
    other = forecaster_config(recipe, data, "seasonal_mean")
    x, truth = data.windows["valid"], data.truth["valid"]
    errs = {
        c.baseline: float(np.mean(np.abs(predict_windows(baseline_model(c), x) - truth)))
        for c in (cfg, other)
    }
    best = min(errs, key=lambda k: errs[k])
    why = ", ".join(f"{k} {v:.4g}" for k, v in errs.items())
    return (other if best == "seasonal_mean" else cfg), f"{best} (validation MAE {why})"


def _targets(model: Forecaster, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        t = model.normalise_target(torch.from_numpy(x), torch.from_numpy(y))
    return t.numpy().astype(np.float32)


def normalised_errors(model: Forecaster, x: np.ndarray, y: np.ndarray) -> Tensor:
    """Targets minus point forecasts (n, H) in the model's normalised units, for raw windows
    ``x`` and their targets ``y`` in the series' units."""
    target = np.asarray(y, dtype=np.float32)

    def errors(m: Forecaster, b: Tensor, rows: slice) -> Tensor:
        return m.normalise_target(b, torch.from_numpy(target[rows]).to(b.device)) - m(b)

    return torch.from_numpy(batched_forecaster(model, x, errors))


def fit_band(model: Forecaster, data: PreparedSeries, kept: bool) -> dict[str, Any]:
    """Set the model's band (:meth:`lstmkit.models.Forecaster.set_band`): per step, the
    quantiles of its out-of-sample errors (:func:`lstmkit.models.empirical_band`). The
    validation windows' errors are out of sample for a trained correction; a model that is its
    in-window baseline fits nothing, so its training windows' errors are out of sample too and
    join them (many periods, not one). A trained correction with fewer than
    ``MIN_BAND_WINDOWS`` validation windows takes the training windows as well (said in the
    reason: their errors are in sample, the band may be narrow)."""
    qs = model.config.quantiles
    valid = len(data.windows.get("valid", ()))
    parts = ["valid"] if valid else []
    if not kept:
        why = "its errors on the training and validation windows (the baseline fits nothing)"
        parts = ["train", *parts]
    elif valid < MIN_BAND_WINDOWS:
        why = (
            f"its errors on the training and validation windows (only {valid} validation "
            f"windows, fewer than {MIN_BAND_WINDOWS}; the training errors are in sample)"
        )
        parts = ["train", *parts]
    else:
        why = "its errors on the validation windows"
    x = np.concatenate([data.windows[p] for p in parts])
    y = np.concatenate([data.truth[p] for p in parts])
    model.set_band(empirical_band(normalised_errors(model, x, y), qs))
    return {"quantiles": qs, "windows": len(x), "parts": parts, "reason": why}


def interval_coverage(truth: np.ndarray, quantiles: np.ndarray) -> float:
    """The share of ``truth`` (n, H) inside the outermost interval of ``quantiles`` (n, H, Q)."""
    inside = (truth >= quantiles[..., 0]) & (truth <= quantiles[..., -1])
    return float(np.mean(inside))


# -- evaluation on the rolling origins ---------------------------------------------------------
BASELINE_LABELS = {
    "naive": "naive",
    "seasonal_naive": "seasonal naive",
    "holt_winters": "Holt-Winters",
}


def baseline_forecasts(data: PreparedSeries) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
    """Naive, seasonal-naive (with a season) and Holt-Winters forecasts on the test origins;
    the Holt-Winters details, or why it was skipped (logged)."""
    o = data.origins["test"]
    y = data.series.target
    h = data.source.horizon
    preds = {"naive": naive_forecast(y, o, h)}
    if data.season > 1:
        preds["seasonal_naive"] = seasonal_naive_forecast(y, o, h, data.season)
    try:
        preds["holt_winters"], info = holt_winters_forecasts(y, o, h, data.season, data.log)
    except BaselineError as err:
        logger.warning("the Holt-Winters baseline is skipped: %s", err)
        info = {"skipped": str(err)}
    return preds, info


def evaluate_windows(
    model: Forecaster, data: PreparedSeries, extra: dict[str, Any] | None = None
) -> dict[str, Any]:
    """MAE / RMSE / MASE of the model, its in-window baseline, the naive, seasonal-naive and
    Holt-Winters forecasts on the same test origins (the rolling protocol, original units),
    per step ahead as well as overall; ``best_baseline`` and ``winner``."""
    o = data.origins["test"]
    truth = data.truth["test"].astype(np.float64)
    preds = {"model": predict_windows(model, data.windows["test"])}
    base, hw = baseline_forecasts(data)
    preds.update(base)
    report: dict[str, Any] = {
        "origins": [int(o[0]), int(o[-1])],
        "windows": len(o),
        "season": data.season,
        "season_detected": data.season_detected,
        "log": data.log,
        "mase_scale": data.scale,
        "model_baseline": model.config.baseline if model.config.season > 1 else "naive",
        "holt_winters_model": hw,
        **(extra or {}),
    }
    for name, p in preds.items():
        report[name] = forecast_errors(truth, p, data.scale)
        step = np.mean(np.abs(p - truth), axis=0)
        report[name]["per_step_mae"] = step.tolist()
        report[name]["per_step_mase"] = (step / data.scale).tolist()
    qs = model.config.quantiles
    if qs:
        quant = predict_quantile_windows(model, data.windows["test"])
        report["quantiles"] = qs
        report["nominal"] = qs[-1] - qs[0]
        report["coverage"] = interval_coverage(truth, quant)
        inside = (truth >= quant[..., 0]) & (truth <= quant[..., -1])
        report["per_step_coverage"] = np.mean(inside, axis=0).tolist()
        report["_quantiles"] = quant
    others = [n for n in preds if n != "model"]
    best = min(others, key=lambda n: report[n]["mae"])
    report["best_baseline"] = best
    report["mae_vs_best_baseline"] = report["model"]["mae"] / max(report[best]["mae"], 1e-300)
    report["winner"] = min(preds, key=lambda n: report[n]["mae"])
    report["_preds"] = preds  # for the plot; dropped before writing
    return report


def _public(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith("_")}


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


def plot_forecast(data: PreparedSeries, report: dict[str, Any], path: Path) -> None:
    """PNG: the target series (train / validation / test shaded) and, over the test origins,
    the model's 1-step and H-step-ahead forecasts beside every baseline's 1-step one; the title
    says which wins."""
    plt = pyplot()

    y = data.series.target
    n = len(y)
    o = data.origins["test"]
    h = data.source.horizon
    preds: dict[str, np.ndarray] = report["_preds"]
    fig, axes = plt.subplots(2, 1, figsize=(11, 7))
    t, xlabel = _time_axis(data.series)
    ax = axes[0]
    ax.plot(t, y, lw=0.8, color="black", label=data.series.columns[0])
    ax.axvspan(
        t[data.train_end], t[data.valid_end], color="tab:orange", alpha=0.12, label="validation"
    )
    ax.axvspan(t[data.valid_end], t[n - 1], color="tab:green", alpha=0.12, label="test")
    ax.set_title("the series; the model was fitted on the training part, stopped on validation")
    ax.legend(loc="upper left", fontsize=8)
    ax = axes[1]
    lo = max(0, data.valid_end - 2 * data.source.lookback)
    ax.plot(t[lo:], y[lo:], color="black", lw=1.0, label="actual")
    pred = preds["model"]
    quant = report.get("_quantiles")
    if quant is not None:
        ax.fill_between(
            t[o],
            quant[:, 0, 0],
            quant[:, 0, -1],
            color="tab:blue",
            alpha=0.18,
            lw=0,
            label=f"model {100 * report['nominal']:.0f}% interval, 1 step "
            f"(covers {100 * report['coverage']:.0f}% of the test values)",
        )
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
    styles = {"naive": "tab:gray", "seasonal_naive": "tab:red", "holt_winters": "tab:olive"}
    for name, p in preds.items():
        if name != "model":
            label = BASELINE_LABELS[name] + (f" (m={data.season})" if name != "naive" else "")
            ax.plot(t[o], p[:, 0], ":", color=styles[name], label=f"{label}, 1 step")
    ax.axvline(t[data.valid_end], color="grey", lw=0.6)
    maes = ", ".join(
        f"{'model' if k == 'model' else BASELINE_LABELS[k]} {report[k]['mae']:.4g}" for k in preds
    )
    win = report["winner"]
    ax.set_title(
        f"test origins ({len(o)}), MAE over {h} steps: {maes}; best: "
        f"{'model' if win == 'model' else BASELINE_LABELS[win]}",
        fontsize=9,
    )
    ax.set_xlabel(xlabel)
    ax.legend(loc="upper left", fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


MONITORS = ("val_loss", "val_mae", "val_rmse")
KEEP_MARGIN = 0.01  # a correction must cut the validation MAE of its start by 1% to be kept
MIN_BAND_WINDOWS = 20  # validation windows a trained correction's band needs on their own


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
        """Choose the defaults the user did not give, read, split and window the series; build
        the forecaster on its chosen in-window baseline. A file of many series (an id column:
        ``id_column``, or ``unique_id`` when the file has one) is a panel
        (:func:`lstmkit.tasks.panel.setup_panel`)."""
        assert recipe.data.series is not None
        src = recipe.data.series
        id_column = find_id_column(src.train, src.id_column, src.encoding)
        if id_column is not None:
            if id_column != src.id_column:
                logger.info("the file has a %r column: one model for all its series", id_column)
                recipe = recipe.model_copy(
                    update={
                        "data": recipe.data.model_copy(
                            update={"series": src.model_copy(update={"id_column": id_column})}
                        )
                    }
                )
            return setup_panel(recipe, given)
        unused = string_columns(
            src.train,
            [
                c
                for c in header_columns(src.train, src.encoding)
                if c not in (src.target, src.time_column, *src.features)
            ],
            src.encoding,
        )
        if unused:
            logger.warning(
                "%s: the text column(s) %s are not used; if they name several series (the long "
                "format), pass --id-column %s",
                src.train,
                ", ".join(repr(c) for c in unused),
                unused[0],
            )
        applied: list[Choice] = []
        try:
            if given is not None:
                recipe, applied = apply_choices(recipe, choose_defaults(src, given), given)
            source = recipe.data.series
            assert source is not None
            data = prepare_series(source)
        except DataFileError as err:
            if unused and "twice" in str(err):
                raise DataFileError(
                    f"{err}. The file's text column {unused[0]!r} changes while the time repeats: "
                    f"if it names the series of a long-format file, pass --id-column {unused[0]} "
                    "(one model for all of them)"
                ) from None
            raise
        if recipe.data.limit is not None:
            # a series is cut by time, not by examples; reading and windowing it is cheap anyway
            logger.warning(
                "data.limit = %d does not apply to a series: the whole series is used",
                recipe.data.limit,
            )
        for w in data.series.warnings + data.scaler.warnings:
            logger.warning("%s", w)
        if data.season > source.lookback:
            logger.warning(
                "season %d is longer than the lookback %d: the model starts from the naive "
                "forecast (give --lookback %d or more for a seasonal start)",
                data.season,
                source.lookback,
                data.season,
            )
        cfg, why = choose_baseline(recipe, data)
        logger.info(
            "series %s: %d rows (train %d, valid %d, test %d), %d/%d/%d windows, season %d%s, "
            "%s, in-window baseline %s",
            source.train,
            len(data.series.values),
            data.train_end,
            data.valid_end - data.train_end,
            len(data.series.values) - data.valid_end,
            *(len(data.origins[p]) for p in ("train", "valid", "test")),
            data.season,
            f" ({data.season_reason})" if data.season_detected else "",
            "log scale" if data.log else "linear scale",
            why,
        )
        torch.manual_seed(recipe.train.seed)
        model = Forecaster(cfg)
        for part, x in data.windows.items():
            data.datasets[part] = WindowDataset(x, _targets(model, x, data.truth[part]))
        return Setup(
            model=model,
            train=data.datasets["train"],
            valid=data.datasets.get("valid"),
            trainer={"objective": Regression(), "collate": collate_windows, "bucketing": False},
            config={
                "forecaster_format": FORMAT,
                "model": cfg.to_dict(),
                "columns": data.series.columns,
                "time_column": source.time_column,
                "lookback": source.lookback,
                "horizon": source.horizon,
                "scaler": data.scaler.to_dict(),
                "season": data.season,
                "season_detected": data.season_detected,
                "season_reason": data.season_reason,
                "log": data.log,
                "baseline_choice": why,
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
            recipe=recipe if applied else None,
            choices=applied,
        )

    def evaluate(
        self, recipe: Recipe, setup: Setup, trainer: Trainer, history: list[dict[str, Any]]
    ) -> Outcome:
        """Keep the trained correction only when it cuts the validation MAE of the in-window
        baseline by at least ``KEEP_MARGIN`` (1%; less is noise: the model is then its baseline); then MAE / RMSE / MASE of the model and of every
        baseline on the test origins. A panel: :func:`lstmkit.tasks.panel.evaluate_panel_task`."""
        if isinstance(setup.data, PreparedPanel):
            return evaluate_panel_task(recipe, setup)
        data: PreparedSeries = setup.data
        model: Forecaster = setup.model  # type: ignore[assignment]
        kept: dict[str, Any] = {"correction_kept": True}
        if "valid" in data.windows:
            x, truth = data.windows["valid"], data.truth["valid"]
            trained = float(np.mean(np.abs(predict_windows(model, x) - truth)))
            start = float(np.mean(np.abs(predict_windows(baseline_model(model.config), x) - truth)))
            keep = trained < (1.0 - KEEP_MARGIN) * start
            kept = {
                "correction_kept": keep,
                "valid_mae": {"model": trained, "start": start},
            }
            if not keep:
                logger.info(
                    "the trained correction does not beat its starting point on validation by "
                    "%d%% (MAE %.4g vs %.4g): the model is its in-window baseline",
                    round(100 * KEEP_MARGIN),
                    trained,
                    start,
                )
                model.zero_correction()
        if model.config.quantiles:
            band = fit_band(model, data, bool(kept["correction_kept"]))
            logger.info("interval: %s, %d windows", band["reason"], band["windows"])
            kept["band"] = band
        test_scaled = trainer.evaluate(data.datasets["test"], data.datasets["test"].lengths)
        report = evaluate_windows(model, data, kept)
        names = ("model", "naive", "seasonal_naive", "holt_winters")
        extra = {
            "test": {k: report[k] for k in names if k in report},
            "season": data.season,
            "winner": report["winner"],
        }
        return Outcome(
            {"test": _public(report), "test_scaled": test_scaled},
            Record("test_mase", report["model"]["mase"], extra),
            lambda run_dir: plot_forecast(data, report, run_dir / "forecast.png"),
        )

    def summary(self, name: str, metrics: dict[str, Any], out: Path) -> str:
        """The test MAE of the model beside every baseline on the rolling origins, and which
        wins."""
        if "series" in metrics["test"]:
            return panel_summary(name, metrics, out)
        return f"{name}: {summary_line(metrics['test'])} {took(metrics, out)}; plot: " + str(
            out / "forecast.png"
        )

    def evaluate_run(self, run_dir: Path) -> dict[str, Any]:
        """Re-evaluate on the recipe's test origins (model vs baselines)."""
        if is_panel_run(run_dir):
            return evaluate_panel_run(run_dir)
        return evaluate_forecast_run(run_dir)

    def quick_overrides(self, recipe: Recipe) -> list[str]:
        """Two steps, small batches (the whole series: it is cut by time, not by examples)."""
        return list(QUICK_CLASSIFIER)


def _label(name: str, season: int) -> str:
    if name == "model":
        return "model"
    return BASELINE_LABELS[name] + (f" (m={season})" if name == "seasonal_naive" else "")


def summary_line(t: dict[str, Any]) -> str:
    """``test MAE over 18 rolling origins: model 13.6, naive 81.8, ...; best: model; MASE``."""
    names = [k for k in ("model", "naive", "seasonal_naive", "holt_winters") if k in t]
    parts = [f"{_label(k, t['season'])} {t[k]['mae']:.4g}" for k in names]
    skipped = t.get("holt_winters_model", {}).get("skipped")
    tail = " (Holt-Winters skipped: see the log)" if skipped else ""
    band = (
        f"; {100 * t['nominal']:.0f}% interval covers {100 * t['coverage']:.0f}%"
        if "coverage" in t
        else ""
    )
    return (
        f"test MAE over {t['windows']} rolling origins: {', '.join(parts)}{tail}; best: "
        f"{_label(t['winner'], t['season'])}; MASE {t['model']['mase']:.3f}{band}"
    )


def backtest_table(report: dict[str, Any]) -> str:
    """Per-horizon MAE and MASE of the model and every baseline, as a Markdown table."""
    names = [k for k in ("model", "naive", "seasonal_naive", "holt_winters") if k in report]
    season = report["season"]
    head = "| step | " + " | ".join(f"{_label(k, season)} MAE" for k in names)
    head += " | " + " | ".join(f"{_label(k, season)} MASE" for k in names) + " |"
    lines = [head, "|" + " ---: |" * (1 + 2 * len(names))]
    steps = len(report["model"]["per_step_mae"])
    for i in range(steps):
        row = [f"{report[k]['per_step_mae'][i]:.4g}" for k in names]
        row += [f"{report[k]['per_step_mase'][i]:.3f}" for k in names]
        lines.append(f"| {i + 1} | " + " | ".join(row) + " |")
    row = [f"{report[k]['mae']:.4g}" for k in names] + [f"{report[k]['mase']:.3f}" for k in names]
    lines.append("| all | " + " | ".join(row) + " |")
    return "\n".join(lines)


def evaluate_forecast_run(run_dir: Path) -> dict[str, Any]:
    """Re-evaluate a finished forecasting run on its recipe's test origins (the rolling
    protocol: model vs naive, seasonal naive and Holt-Winters, per step ahead)."""
    model, config, _ = load_forecast_run(run_dir)
    recipe = Recipe.model_validate(config["recipe"])
    assert recipe.data.series is not None
    data = prepare_series(recipe.data.series)
    return _public(evaluate_windows(model, data))


def forecast_file(
    run_dir: Path, data_path: Path, out_path: Path, *, encoding: str = "utf-8"
) -> list[dict[str, Any]]:
    """Forecast the ``horizon`` steps after the end of ``data_path`` (same columns as the run's
    training file; at least ``lookback`` rows) and write them to ``out_path`` as CSV
    (``step, [time,] forecast[, q0.1, q0.5, q0.9]``: the band's quantiles when the run has
    one), atomically. Returns the rows."""
    model, config, _ = load_forecast_run(run_dir)
    columns: list[str] = config["columns"]
    series = read_series(
        data_path, columns[0], columns[1:], config.get("time_column"), encoding=encoding
    )
    for w in series.warnings:
        logger.warning("%s", w)
    rows = forecast_series(model, config, series, where=str(data_path))
    buf = io.StringIO()
    writer = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_path, buf.getvalue())
    return rows
