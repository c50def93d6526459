"""Many series, one model: the forecast task on a long-format file (``unique_id, ds, y``).

``lstmkit train --task forecast --train panel.csv --target y --time-column ds --horizon 8``
reads a file with an id column (``--id-column``; ``unique_id`` when the file has one) through
this module; a file of one series keeps the single-series path of :mod:`lstmkit.tasks.forecast`.

1. read the panel (:func:`lstmkit.data.panel.read_panel`) and cut every series by time
   (:func:`lstmkit.data.panel.panel_split`; ``protocol = "m4"``: the last H points of each series
   are the test, the validation before them; ``"rolling"``: the rolling-origin protocol per
   series); a series too short is reported and left out;
2. the season from the calendar (the time column's frequency proposes, the data of each series
   confirm, :func:`lstmkit.data.series.choose_season`; the most common choice wins; ``--season``
   overrides), calendar columns as known inputs (:func:`lstmkit.data.panel.calendar_columns`);
3. one :class:`lstmkit.models.PanelForecaster` trained on the windows of all series: each window
   normalised by its own last value and seasonal change, quantile heads (``quantiles``, default
   0.1 / 0.5 / 0.9) trained with the pinball loss (:class:`lstmkit.objectives.Pinball`), a deep
   ensemble of ``members`` networks; the in-window baseline (seasonal naive or seasonal mean with
   drift) chosen on validation; the band starts at the training residuals' quantiles and is
   calibrated on validation afterwards: the outer quantiles' distance from the median scaled so
   that the interval covers its nominal share of an origin's targets at its nominal share of
   the validation origins (:func:`origin_scale`; conformal calibration of the quantile band, as
   conformalised quantile regression, Romano et al. 2019, with the origin -- all series at one
   period -- as the unit, since series that move together share their surprises); a model that
   keeps only its baseline (the network did not beat it on validation) fits nothing, so its
   band is the quantiles of its errors on all training and validation windows instead, scaled
   by the same rule on their origins;
4. per series, on the same origins: statsforecast's AutoETS, AutoTheta, SeasonalNaive and Naive
   (:mod:`lstmkit.baselines.panel`); the mean MASE over series (M4's convention: each series'
   MAE over its in-sample seasonal-naive MAE), sMAPE, the interval's empirical coverage and which
   method wins; ``forecast.png`` draws a few series with the band; ``forecasts.csv`` holds every
   series' test forecasts.
"""

from __future__ import annotations

import csv
import functools
import io
import logging
import math
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from lstmkit.baselines.panel import (
    LABELS,
    check_available,
    coverage,
    m4_scores,
    panel_forecasts,
    seasonal_naive,
)
from lstmkit.config import Recipe
from lstmkit.data.panel import (
    Panel,
    PanelSplit,
    PanelWindows,
    calendar_columns,
    panel_split,
    read_panel,
)
from lstmkit.data.series import SeriesSource, choose_season, infer_frequency
from lstmkit.data.text import DataFileError
from lstmkit.files import atomic_write_text
from lstmkit.forecasting import PANEL_FORMAT as FORMAT
from lstmkit.forecasting import (
    batched_panel,
    forecast_panel,
    load_panel_run,
)
from lstmkit.forecasting import predict_panel_quantiles as predict_quantiles
from lstmkit.models import (
    PanelForecaster,
    PanelForecasterConfig,
    empirical_band,
    normalise_window_target,
)
from lstmkit.objectives import Pinball
from lstmkit.plots import pyplot, save_png
from lstmkit.runs import read_run_config
from lstmkit.tasks.base import Outcome, Record, Setup, took
from lstmkit.tasks.defaults import Choice, apply_choices

logger = logging.getLogger(__name__)

KEEP_MARGIN = 0.01
ENSEMBLE_WINDOWS = 20_000  # below this many training windows the default is 5 members
MIN_CALIBRATION = 20  # validation targets needed to calibrate the band
SEASON_VOTERS = 1000  # series whose own season choice votes (evenly spaced over the file)


@dataclass
class PreparedPanel:
    """The panel, its split, the calendar, the datasets and the baseline offsets."""

    panel: Panel
    source: SeriesSource
    split: PanelSplit
    season: int
    season_reason: str
    frequency: str
    mase_season: int
    calendar: list[str]
    values: list[np.ndarray]  # per kept series: [target, features, calendar] (n_i, C)
    feature_mean: list[float]
    feature_std: list[float]
    datasets: dict[str, PanelWindows] = field(default_factory=dict)
    offsets: Tensor | None = None

    @property
    def kept_ids(self) -> list[str]:
        """The ids of the series in the model's data."""
        return [self.panel.ids[i] for i in self.split.kept]


def panel_season(panel: Panel, source: SeriesSource) -> tuple[int, str]:
    """``(season, reason)``: ``source.season``, else each series' calendar-confirmed season on
    its first 65% of rows (:func:`choose_season`), the most common one (ties: the smaller)."""
    if source.season is not None:
        return source.season, f"{source.season} (given)"
    votes: Counter[int] = Counter()
    reasons: dict[int, str] = {}
    series = panel.series
    if len(series) > SEASON_VOTERS:  # evenly spaced through the file: enough for a vote
        step = len(series) / SEASON_VOTERS
        series = [series[int(k * step)] for k in range(SEASON_VOTERS)]
    for s in series:
        n = len(s.values)
        cut = max(8, int(0.65 * n))
        m, why = choose_season(s.target[:cut], s.times[:cut] if s.times else None)
        votes[m] += 1
        reasons.setdefault(m, why)
    best = max(votes.items(), key=lambda kv: (kv[1], -kv[0]))[0]
    return best, f"{reasons[best]}; {votes[best]} of {len(series)} series agree"


def default_panel_lookback(season: int, horizon: int, rows: int) -> tuple[int, str]:
    """Five seasons (at least one, at most ten horizons), or ``max(8, 2 horizons)`` without a
    season; at most a third of the median series' rows. Five seasons, not fewer: the in-window
    baselines estimate the seasonal profile and the drift from the window, and over three
    seasons a trend's estimate is noisy (on the three panels of ``series/panels`` five seasons
    gave a lower test MASE than three on each of the two with a season)."""
    if season > 1:
        lookback = min(5 * season, max(season, 10 * horizon))
        why = f"five seasons of {season}"
    else:
        lookback = max(8, 2 * horizon)
        why = f"no season: max(8, 2 x horizon {horizon})"
    cap = max(2, rows // 3)
    if lookback > cap:
        lookback, why = cap, f"{why}, cut to a third of the median series' {rows} rows"
    return lookback, why


def choose_panel_defaults(
    source: SeriesSource,
    given: frozenset[str],
    panel: Panel | None = None,
    season: tuple[int, str] | None = None,
) -> list[Choice]:
    """What a panel run takes from its data when the user did not set it (``panel``: the file
    already read; ``season``: its :func:`panel_season`, already voted)."""
    panel = panel if panel is not None else _read(source)
    m, _ = season if season is not None else panel_season(panel, source)
    rows = int(np.median([len(s.values) for s in panel.series]))
    h = source.horizon
    choices = []
    lookback = source.lookback
    if "data.series.lookback" not in given:
        lookback, why = default_panel_lookback(m, h, rows)
        choices.append(Choice("data.series.lookback", lookback, why))
    vf = source.valid_fraction
    # the m4 split's training origins per series (panel_split): n - H test - V valid - H - L + 1
    windows = sum(
        max(0, len(s.values) - 2 * h - max(h, round(vf * len(s.values))) - lookback + 1)
        for s in panel.series
    )
    members = 5 if windows < ENSEMBLE_WINDOWS else 1
    batch = 32 if windows < 100_000 else 256
    steps = max(1, math.ceil(windows / batch))
    # validate once per epoch on small data, else about ten times per epoch (at least 100 steps
    # apart): the validation windows grow with the series, so a fixed interval would make the
    # validations' cost grow with the square of the data
    every = 0 if steps <= 100 else max(100, math.ceil(steps / 10))
    choices += [
        Choice(
            "data.series.members",
            members,
            f"{members} networks averaged: {windows} training windows"
            + (" (small data: seeds differ more than settings)" if members > 1 else ""),
        ),
        Choice("train.batch_size", batch, f"{batch} windows a batch"),
        Choice("train.lr", 3e-3, "Adam at 3e-3"),
        Choice("model.hidden_size", 32, "32 units: the network corrects its in-window baseline"),
        Choice("train.epochs", 200, "until validation stops improving (early stopping)"),
        Choice(
            "train.evaluate_every",
            every,
            "validate once per epoch"
            if every == 0
            else f"validate every {every} steps (about ten times in an epoch of {steps})",
        ),
        Choice("train.early_stopping", 10, "stop after 10 validations without a lower MAE"),
        Choice(
            "train.monitor",
            "val_mae",
            "keep the weights of the best validation MAE of the median (the pinball loss of "
            "a band that starts wide falls first by narrowing it, and stopped training early)",
        ),
    ]
    return choices


def _read(source: SeriesSource) -> Panel:
    assert source.id_column is not None
    return read_panel(
        source.train,
        source.target,
        source.id_column,
        source.features,
        source.time_column,
        encoding=source.encoding,
    )


def prepare_panel(
    source: SeriesSource, panel: Panel | None = None, voted: tuple[int, str] | None = None
) -> PreparedPanel:
    """Read, split and window a panel (no file is written; ``panel`` and ``voted``, its
    :func:`panel_season`: when already read and voted)."""
    s = source
    panel = panel if panel is not None else _read(s)
    season, why = voted if voted is not None else panel_season(panel, s)
    # the longest series: a short first one (a new product of one row) proves no frequency
    frequency = infer_frequency(max(panel.series, key=lambda ser: len(ser.values)).times)
    freq = frequency.name
    # M4's convention: MASE (and the baselines' season) follow the data's frequency
    mase_season = (
        s.season
        if s.season is not None
        else (frequency.candidates[0] if frequency.candidates else season)
    )
    split = panel_split(
        panel,
        s.lookback,
        s.horizon,
        protocol=s.protocol,
        valid_fraction=s.valid_fraction,
        test_fraction=s.test_fraction,
        stride=s.stride,
        min_season_rows=max(season, mase_season),
    )
    if split.skipped:
        shown = "; ".join(f"{k}: {v}" for k, v in list(split.skipped.items())[:3])
        more = f" (and {len(split.skipped) - 3} more)" if len(split.skipped) > 3 else ""
        logger.warning(
            "%d of %d series are left out: %s%s",
            len(split.skipped),
            len(panel.ids),
            shown,
            more,
        )
    if not split.kept:
        raise DataFileError(
            f"{s.train}: no series is long enough for lookback {s.lookback} + horizon "
            f"{s.horizon} (with validation and test); use a shorter --lookback / --horizon"
        )

    values: list[np.ndarray] = []
    names: list[str] = []
    for i in split.kept:
        ser = panel.series[i]
        cal, names = calendar_columns(ser.times or [], freq)
        values.append(np.concatenate([ser.values, cal], 1) if cal.shape[1] else ser.values)
    n_feat = len(panel.columns) - 1
    if n_feat:
        rows = np.concatenate(
            [v[:te, 1 : 1 + n_feat] for v, te in zip(values, split.train_end, strict=True)]
        )
        mean, std = rows.mean(0), rows.std(0)
        std[std <= 1e-12] = 1.0
    else:
        mean, std = np.zeros(0), np.ones(0)
    feature_mean = mean.tolist() + [0.0] * len(names)
    feature_std = std.tolist() + [1.0] * len(names)
    data = PreparedPanel(
        panel, s, split, season, why, freq, mase_season, names, values, feature_mean, feature_std
    )
    index = list(range(len(values))) if s.embedding_dim else None
    for part in ("train", "valid", "test"):
        data.datasets[part] = PanelWindows(
            values, split.origins[part], s.lookback, s.horizon, index
        )
    return data


def collate_panel(
    batch: list[tuple[np.ndarray, np.ndarray]], *, season: int, log: bool
) -> tuple[Tensor, Tensor, Tensor]:
    """``(inputs (B, L, C), lengths (B,), targets (B, H) normalised by each window's own level
    and scale)`` (:func:`lstmkit.models.normalise_window_target`)."""
    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    y = torch.from_numpy(np.stack([b[1] for b in batch]))
    lengths = torch.full((len(batch),), x.shape[1], dtype=torch.int64)
    return x, lengths, normalise_window_target(x[..., 0], y, season, log)


def model_config(recipe: Recipe, data: PreparedPanel, baseline: str) -> PanelForecasterConfig:
    """The forecaster for this panel."""
    s = data.source
    m = recipe.classifier
    season = data.season if data.season <= s.lookback else 1
    return PanelForecasterConfig(
        input_size=data.values[0].shape[1] + (1 if s.embedding_dim else 0),
        horizon=s.horizon,
        quantiles=list(s.quantiles),
        members=s.members,
        cell=m.cell,
        hidden_size=m.hidden_size,
        num_layers=m.num_layers,
        dropout=m.dropout,
        impl=m.impl,
        season=season,
        baseline=baseline,
        feature_mean=data.feature_mean,
        feature_std=data.feature_std,
        num_series=len(data.values) if s.embedding_dim else 0,
        embedding_dim=s.embedding_dim,
    )


def normalised_outputs(model: PanelForecaster, x: np.ndarray) -> np.ndarray:
    """The members' mean forecast (n, H, Q) in normalised units."""
    return batched_panel(model, x, lambda m, b: m(b).mean(1), np.float32)


def _normalised_targets(
    data: PreparedPanel, part: str, config: PanelForecasterConfig
) -> tuple[np.ndarray, np.ndarray]:
    """All windows of ``part``: raw inputs (n, L, C) and targets in the model's normalised units
    (n, H)."""
    x, y = data.datasets[part].arrays()
    t = normalise_window_target(
        torch.from_numpy(x[..., 0]), torch.from_numpy(y), config.season, config.log
    )
    return x, t.numpy()


def residual_offsets(
    model: PanelForecaster, data: PreparedPanel, parts: tuple[str, ...] = ("train",)
) -> Tensor:
    """(H, Q): the empirical quantiles of (target - baseline) over the windows of ``parts``,
    the median's set to 0 (the point forecast stays the baseline) and the others kept on
    their side of it: the band an untrained model starts from. The band is the baseline plus
    its own error quantiles (:func:`lstmkit.models.empirical_band`). Every window's error is
    out of sample for the in-window baseline: it fits nothing."""
    pairs = [_normalised_targets(data, p, model.config) for p in parts if len(data.datasets[p])]
    x = np.concatenate([p[0] for p in pairs])
    t = np.concatenate([p[1] for p in pairs])
    base = normalised_outputs(model, x)[..., model.median]
    return empirical_band(torch.from_numpy(t - base), model.config.quantiles)


def choose_baseline(recipe: Recipe, data: PreparedPanel) -> tuple[PanelForecasterConfig, str]:
    """Of ``seasonal_naive``, ``seasonal_mean`` and their mean ``combined`` (the last two need
    two seasons in the window), the one with the lowest validation MAE, untrained, in each
    window's own units (:func:`lstmkit.models.in_window_baseline`)."""
    cfg = model_config(recipe, data, "seasonal_naive")
    if cfg.season < 2 or data.source.lookback < 2 * cfg.season or not len(data.datasets["valid"]):
        return cfg, ("seasonal naive" if cfg.season > 1 else "naive (no season in the window)")
    options = [cfg] + [model_config(recipe, data, b) for b in ("seasonal_mean", "combined")]
    errs = {}
    for c in options:
        x, t = _normalised_targets(data, "valid", c)
        start = PanelForecaster(c)
        errs[c.baseline] = float(
            np.mean(np.abs(normalised_outputs(start, x)[..., start.median] - t))
        )
    best = min(errs, key=lambda k: errs[k])
    why = ", ".join(f"{k} {v:.4g}" for k, v in errs.items())
    chosen = next(c for c in options if c.baseline == best)
    return chosen, f"{best} (validation MAE {why})"


def _coverage(
    model: PanelForecaster, x: np.ndarray, t: np.ndarray, c: float, out: np.ndarray | None = None
) -> float:
    """The share of targets ``t`` inside the outermost interval of ``model`` on windows ``x``
    with the quantiles' distance from the median scaled by ``c`` (``out``: the model's
    normalised outputs on ``x``, when already computed)."""
    out = normalised_outputs(model, x) if out is None else out
    med = out[..., model.median]
    lo, hi = med - out[..., 0], out[..., -1] - med
    return float(np.mean((t >= med - c * lo) & (t <= med + c * hi)))


def origin_groups(data: PreparedPanel, parts: tuple[str, ...]) -> np.ndarray:
    """(n,): for each window of ``parts`` (in :meth:`PanelWindows.arrays` order, the parts one
    after the other) its origin counted back from the end of its series: the windows of one
    period across the series (those that end together) share it."""
    groups = [
        len(v) - np.asarray(o, dtype=np.int64)
        for p in parts
        for v, o in zip(data.values, data.split.origins[p], strict=True)
    ]
    return np.concatenate(groups) if groups else np.zeros(0, dtype=np.int64)


def interval_scores(out: np.ndarray, t: np.ndarray, median: int) -> np.ndarray:
    """(n, H): for each target ``t`` the smallest factor on the outermost quantiles' distance
    from the median (``out`` (n, H, Q)) that puts it inside the interval: 0 on the median, inf
    beyond a side of zero width. Inside at scale ``c`` exactly when the score is <= ``c``."""
    med = out[..., median]
    lo, hi = med - out[..., 0], out[..., -1] - med
    below = np.divide(med - t, lo, out=np.where(t < med, np.inf, 0.0), where=lo > 0)
    above = np.divide(t - med, hi, out=np.where(t > med, np.inf, 0.0), where=hi > 0)
    return np.maximum(np.maximum(below, above), 0.0)


def conformal_quantile(values: np.ndarray, level: float) -> float:
    """The ``ceil((n + 1) level)``-th smallest of the ``n`` values (the largest when that rank
    is past ``n``): split conformal's quantile, so that a new exchangeable value is at most it
    with probability at least ``level``."""
    v = np.sort(np.asarray(values, dtype=np.float64).ravel())
    if not v.size:
        raise ValueError("the conformal quantile of no values")
    k = min(len(v), math.ceil((len(v) + 1) * level))
    return float(v[max(k, 1) - 1])


def origin_scale(scores: np.ndarray, groups: np.ndarray, level: float) -> float:
    """The factor that covers ``level`` of an origin's targets at ``level`` of the origins:
    per origin (``groups``, one per row of ``scores`` (n, H)) the smallest factor that covers
    ``level`` of its targets, then the conformal quantile of these over the origins.

    The unit is the origin, not the target: an M4-style test is one origin per series, and
    series that move together (one economy, one season of weather) share their surprises, so
    the coverage of one origin's targets scatters around the pooled one by far more than
    independent targets would. Calibrated per origin, the band holds at most origins, not only
    on the average over them (a training-conditional guarantee, Vovk 2012, at the origin
    level); where the series do not move together it is the pooled factor plus the origins'
    small scatter."""
    g = np.asarray(groups)
    if g.shape != scores.shape[:1]:
        raise ValueError(f"one group per window: {g.shape} for scores {scores.shape}")
    # per origin the smallest score with at least ``level`` of the origin's scores at or below
    per = [float(np.quantile(scores[g == k], level, method="inverted_cdf")) for k in np.unique(g)]
    return conformal_quantile(np.array(per), level)


def calibrate(
    model: PanelForecaster,
    x: np.ndarray,
    t: np.ndarray,
    groups: np.ndarray | None = None,
    *,
    windows: str = "validation",
) -> dict[str, Any]:
    """Scale the outer quantiles' distance from the median so that the outermost interval
    covers its nominal share (``q_hi - q_lo``) of the targets ``t`` at its nominal share of
    their origins (``groups``: each window's origin, :func:`origin_groups`; :func:`origin_scale`)
    or, without ``groups``, of all targets pooled (split conformal,
    :func:`conformal_quantile`); the factor (kept in 0.25 .. 8) is the model's
    ``interval_scale`` buffer (saved with its weights). ``x``, ``t``: the windows and their
    normalised targets (:func:`_normalised_targets`), out of sample for the model; needs
    ``MIN_CALIBRATION`` targets (else the factor stays 1)."""
    qs = model.config.quantiles
    nominal = qs[-1] - qs[0]
    if t.size < MIN_CALIBRATION:
        return {"interval_scale": 1.0, "nominal": nominal, "reason": f"{t.size} {windows} values"}
    s = interval_scores(normalised_outputs(model, x), t, model.median)
    best = conformal_quantile(s, nominal) if groups is None else origin_scale(s, groups, nominal)
    best = float(np.clip(best, 0.25, 8.0))
    model.config.interval_scale = best
    model.interval_scale.fill_(best)  # type: ignore[operator]
    return {
        "interval_scale": best,
        "nominal": nominal,
        "rule": "split conformal" if groups is None else "per origin",
        "windows": windows,
        "origins": int(len(np.unique(groups))) if groups is not None else None,
        "valid_coverage_before": float(np.mean(s <= 1.0)),
        "valid_coverage_after": float(np.mean(s <= best)),
        "valid_values": int(t.size),
    }


def setup_panel(recipe: Recipe, given: frozenset[str] | None) -> Setup:
    """The forecast task's setup for a panel (see the module docstring)."""
    assert recipe.data.series is not None
    # read and vote the season once: the defaults change nothing either of them uses
    panel = _read(recipe.data.series)
    season = panel_season(panel, recipe.data.series)
    applied: list[Choice] = []
    if given is not None:
        recipe, applied = apply_choices(
            recipe, choose_panel_defaults(recipe.data.series, given, panel, season), given
        )
    source = recipe.data.series
    assert source is not None
    if source.baseline == "statsforecast":
        check_available()  # fails before training, not after it
    data = prepare_panel(source, panel, season)
    for w in data.panel.warnings:
        logger.warning("%s", w)
    cfg, why = choose_baseline(recipe, data)
    torch.manual_seed(recipe.train.seed)
    model = PanelForecaster(cfg)
    data.offsets = residual_offsets(model, data)
    model.set_offsets(data.offsets)
    counts = {p: len(d) for p, d in data.datasets.items()}
    logger.info(
        "panel %s: %d series (%d left out), %d rows, %s, season %s, %d/%d/%d windows, "
        "in-window baseline %s, %d member(s)",
        source.train,
        len(data.values),
        len(data.split.skipped),
        data.panel.rows,
        data.frequency,
        data.season_reason,
        counts["train"],
        counts["valid"],
        counts["test"],
        why,
        cfg.members,
    )
    if not counts["valid"]:
        raise DataFileError(f"{source.train}: no validation window in any series")
    return Setup(
        model=model,
        train=data.datasets["train"],
        valid=data.datasets["valid"],
        trainer={
            "objective": Pinball(cfg.quantiles),
            "collate": functools.partial(collate_panel, season=cfg.season, log=cfg.log),
            "bucketing": False,
        },
        config={
            "panel_format": FORMAT,
            "model": cfg.to_dict(),
            "columns": data.panel.columns,
            "id_column": data.panel.id_column,
            "time_column": source.time_column,
            "lookback": source.lookback,
            "horizon": source.horizon,
            "frequency": data.frequency,
            "calendar": data.calendar,
            "season": data.season,
            "season_reason": data.season_reason,
            "mase_season": data.mase_season,
            "baseline_choice": why,
            "ids": data.kept_ids,
            "skipped": data.split.skipped,
            "protocol": data.split.protocol,
            "windows": counts,
            "warnings": data.panel.warnings,
        },
        data=data,
        recipe=recipe if applied else None,
        choices=applied,
    )


# -- evaluation --------------------------------------------------------------------------------
def test_forecasts(model: PanelForecaster, data: PreparedPanel) -> list[np.ndarray]:
    """Per kept series, the model's quantile forecasts (origins, H, Q) on its test origins."""
    x, _ = data.datasets["test"].arrays()
    q = predict_quantiles(model, x)
    counts = [len(o) for o in data.split.origins["test"]]
    return list(np.split(q, np.cumsum(counts)[:-1]))


def evaluate_panel(
    model: PanelForecaster, data: PreparedPanel, baseline: str = "statsforecast"
) -> dict[str, Any]:
    """Mean MASE / sMAPE over series of the model and every baseline on the test origins, the
    interval's empirical coverage, per-series scores and the winner."""
    split, h, m = data.split, data.source.horizon, data.mase_season
    ys = [data.values[k][:, 0] for k in range(len(data.values))]
    origins = split.origins["test"]
    truth = [np.stack([y[t : t + h] for t in o]) for y, o in zip(ys, origins, strict=True)]
    insample = [y[:ve] for y, ve in zip(ys, split.valid_end, strict=True)]
    quant = test_forecasts(model, data)
    med = model.median
    preds: dict[str, list[np.ndarray]] = {"model": [q[..., med] for q in quant]}
    info: dict[str, Any] = {}
    qs = model.config.quantiles
    level = round(100 * (qs[-1] - qs[0]))
    baseline_coverage: dict[str, float] = {}
    if baseline == "statsforecast":
        base, info = panel_forecasts(ys, origins, h, m, level=level)
        preds.update(base)
        for name, bands in info.pop("intervals", {}).items():
            if name not in info.get("failed", {}):
                baseline_coverage[name] = coverage(
                    truth, [b[..., 0] for b in bands], [b[..., 1] for b in bands]
                )
    else:
        preds["seasonal_naive"] = [
            seasonal_naive(y, o, h, m) for y, o in zip(ys, origins, strict=True)
        ]
        preds["naive"] = [seasonal_naive(y, o, h, 1) for y, o in zip(ys, origins, strict=True)]
    ids = data.kept_ids
    scores = {k: m4_scores(truth, p, insample, m, ids) for k, p in preds.items()}
    cov = coverage(truth, [q[..., 0] for q in quant], [q[..., -1] for q in quant])
    winner = min(scores, key=lambda k: scores[k]["mase"])
    others = [k for k in scores if k != "model"]
    best = min(others, key=lambda k: scores[k]["mase"])
    return {
        "protocol": split.protocol,
        "series": len(ids),
        "skipped": len(split.skipped),
        "windows": int(sum(len(o) for o in origins)),
        "season": data.season,
        "mase_season": m,
        "horizon": h,
        **{k: {"mase": v["mase"], "smape": v["smape"]} for k, v in scores.items()},
        "per_series": {
            "ids": ids,
            **{k: {"mase": v["mase_per_series"]} for k, v in scores.items()},
        },
        "coverage": cov,
        "nominal": qs[-1] - qs[0],
        "baseline_coverage": baseline_coverage,
        "quantiles": qs,
        "best_baseline": best,
        "winner": winner,
        "mase_vs_best_baseline": scores["model"]["mase"] / max(scores[best]["mase"], 1e-300),
        "baseline_info": {k: v for k, v in info.items() if k != "labels"},
        "_quantiles": quant,
        "_preds": preds,
        "_truth": truth,
    }


def _label(name: str) -> str:
    return "model" if name == "model" else LABELS.get(name, name)


def panel_summary_line(t: dict[str, Any]) -> str:
    """``test mean MASE over 20 series (m4, H=8): model 1.02, AutoETS 1.156, ...; best:
    model; 80% interval covers 83%``."""
    names = [k for k in ("model", "auto_ets", "auto_theta", "seasonal_naive", "naive") if k in t]
    parts = ", ".join(f"{_label(k)} {t[k]['mase']:.3f}" for k in names)
    skipped = f", {t['skipped']} left out" if t.get("skipped") else ""
    ets = t.get("baseline_coverage", {}).get("auto_ets")
    beside = f" (AutoETS' {100 * ets:.0f}%)" if ets is not None else ""
    return (
        f"test mean MASE over {t['series']} series ({t['protocol']}, H={t['horizon']}{skipped}): "
        f"{parts}; best: {_label(t['winner'])}; sMAPE {t['model']['smape']:.2f}; "
        f"{round(100 * t['nominal'])}% interval covers {100 * t['coverage']:.0f}%{beside}"
    )


def write_forecasts(data: PreparedPanel, report: dict[str, Any], path: Path) -> None:
    """``forecasts.csv``: for every series and test origin, each step's time (or row), truth,
    the model's quantiles and every baseline's forecast."""
    quant: list[np.ndarray] = report["_quantiles"]
    preds: dict[str, list[np.ndarray]] = report["_preds"]
    qs = report["quantiles"]
    idc = data.panel.id_column
    tcol = data.source.time_column or "row"
    names = [k for k in preds if k != "model"]
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow([idc, "origin", tcol, "y", *[f"q{q:g}" for q in qs], *names])
    for k, i in enumerate(data.split.kept):
        ser = data.panel.series[i]
        for j, t in enumerate(data.split.origins["test"][k]):
            for step in range(data.source.horizon):
                r = int(t) + step
                when = ser.times[r] if ser.times else str(r)
                w.writerow(
                    [
                        data.panel.ids[i],
                        int(t),
                        when,
                        f"{report['_truth'][k][j, step]:.10g}",
                        *[f"{v:.10g}" for v in quant[k][j, step]],
                        *[f"{preds[n][k][j, step]:.10g}" for n in names],
                    ]
                )
    atomic_write_text(path, buf.getvalue())


def plot_panel(data: PreparedPanel, report: dict[str, Any], path: Path, most: int = 6) -> None:
    """PNG: up to ``most`` series (the first ones), each with its history, the test truth, the
    model's median and band at the first test origin, and AutoETS' forecast."""
    plt = pyplot()
    k_show = min(most, len(data.values))
    cols = 2 if k_show > 1 else 1
    rows = math.ceil(k_show / cols)
    fig, axes = plt.subplots(rows, cols, figsize=(11, 2.6 * rows), squeeze=False)
    h = data.source.horizon
    qs = report["quantiles"]
    for k in range(k_show):
        ax = axes[k // cols][k % cols]
        y = data.values[k][:, 0]
        t0 = int(data.split.origins["test"][k][0])
        x = np.arange(len(y))
        ax.plot(x, y, color="black", lw=0.9, label="actual")
        q = report["_quantiles"][k][0]
        steps = np.arange(t0, t0 + h)
        ax.fill_between(
            steps,
            q[:, 0],
            q[:, -1],
            color="tab:blue",
            alpha=0.25,
            label=f"model {round(100 * (qs[-1] - qs[0]))}% interval",
        )
        ax.plot(
            steps,
            q[:, report["quantiles"].index(0.5)],
            color="tab:blue",
            lw=1.2,
            label="model median",
        )
        for name, color in (("auto_ets", "tab:olive"), ("seasonal_naive", "tab:red")):
            if name in report["_preds"]:
                ax.plot(steps, report["_preds"][name][k][0], ":", color=color, label=_label(name))
        ax.axvline(t0 - 0.5, color="grey", lw=0.6)
        ax.set_title(data.kept_ids[k], fontsize=9)
        ax.set_ylabel(data.panel.columns[0], fontsize=8)
        if k == 0:
            ax.legend(fontsize=7, loc="upper left")
    for k in range(k_show, rows * cols):
        axes[k // cols][k % cols].axis("off")
    fig.suptitle(panel_summary_line(_public(report)), fontsize=8)
    fig.tight_layout()
    save_png(fig, path)


def _public(report: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in report.items() if not k.startswith("_")}


def evaluate_panel_task(recipe: Recipe, setup: Setup) -> Outcome:
    """Keep the trained correction when it beats its start on validation by 1%; calibrate the
    band per origin on validation (the baseline's on training and validation); score the test
    origins against the baselines."""
    data: PreparedPanel = setup.data
    model: PanelForecaster = setup.model  # type: ignore[assignment]
    x, t = _normalised_targets(data, "valid", model.config)
    trained = float(np.mean(np.abs(normalised_outputs(model, x)[..., model.median] - t)))
    start_model = PanelForecaster(model.config.model_copy())
    assert data.offsets is not None
    start_model.set_offsets(data.offsets)
    start = float(np.mean(np.abs(normalised_outputs(start_model, x)[..., model.median] - t)))
    keep = trained < (1.0 - KEEP_MARGIN) * start
    if not keep:
        logger.info(
            "the trained model does not beat its in-window baseline on validation by %d%% "
            "(MAE %.4g vs %.4g): the model is its baseline, its band the quantiles of its training and validation errors",
            round(100 * KEEP_MARGIN),
            trained,
            start,
        )
        model.load_state_dict(start_model.state_dict())
        # the baseline fits nothing, so its errors on the validation windows are as honest as
        # those on the training windows: its band is the quantiles of all of them (many
        # periods), scaled so that it covers its nominal share at its nominal share of their
        # origins, not a rescaling fitted to the validation windows alone (one short period)
        model.set_offsets(residual_offsets(model, data, ("train", "valid")))
        both = ("train", "valid")
        pairs = [_normalised_targets(data, p, model.config) for p in both]
        cal = calibrate(
            model,
            np.concatenate([p[0] for p in pairs]),
            np.concatenate([p[1] for p in pairs]),
            origin_groups(data, both),
            windows="training and validation",
        )
    else:
        cal = calibrate(model, x, t, origin_groups(data, ("valid",)))
    if "reason" in cal:
        logger.info(
            "interval: %s (validation coverage %s, nominal %.0f%%)",
            cal["reason"],
            f"{cal.get('valid_coverage_after', float('nan')):.0%}",
            100 * cal["nominal"],
        )
    else:
        logger.info(
            "interval calibrated per origin on %d %s origins: x%.3g (coverage %.0f%% -> %.0f%%, "
            "nominal %.0f%%)",
            cal["origins"],
            cal["windows"],
            cal["interval_scale"],
            100 * cal["valid_coverage_before"],
            100 * cal["valid_coverage_after"],
            100 * cal["nominal"],
        )
    report = evaluate_panel(model, data, data.source.baseline)
    report["correction_kept"] = keep
    report["valid_mae"] = {"model": trained, "start": start}
    report["calibration"] = cal
    public = _public(report)
    names = ("model", "auto_ets", "auto_theta", "seasonal_naive", "naive")
    extra = {
        "test": {k: public[k] for k in names if k in public},
        "coverage": public["coverage"],
        "season": data.season,
        "series": public["series"],
        "winner": public["winner"],
    }

    def reports(run_dir: Path) -> None:
        write_forecasts(data, report, run_dir / "forecasts.csv")
        plot_panel(data, report, run_dir / "forecast.png")

    return Outcome({"test": public}, Record("test_mase", public["model"]["mase"], extra), reports)


def panel_summary(name: str, metrics: dict[str, Any], out: Path) -> str:
    """The summary line of a panel run."""
    return f"{name}: {panel_summary_line(metrics['test'])} {took(metrics, out)}; plot: " + str(
        out / "forecast.png"
    )


# -- a finished run ----------------------------------------------------------------------------
def is_panel_run(run_dir: Path) -> bool:
    """Whether a forecasting run directory holds a panel model."""
    config = read_run_config(run_dir, "forecast", " (train one with lstmkit train --task forecast)")
    return "panel_format" in config


def evaluate_panel_run(run_dir: Path, protocol: str | None = None) -> dict[str, Any]:
    """Re-evaluate a finished panel run on its recipe's file (``protocol``: ``m4`` or
    ``rolling``; default the run's own)."""
    model, config = load_panel_run(run_dir)
    recipe = Recipe.model_validate(config["recipe"])
    assert recipe.data.series is not None
    source = recipe.data.series
    if protocol is not None:
        source = source.model_copy(update={"protocol": protocol})
    data = prepare_panel(source)
    if model.config.num_series:
        # the embedding's index is the series' place among the run's own series: another
        # protocol that leaves out more series must not move the others up
        known = {sid: k for k, sid in enumerate(config.get("ids", []))}
        new = [sid for sid in data.kept_ids if sid not in known]
        if new:
            raise DataFileError(
                f"{source.train}: series {new[0]!r} is not one the model was trained on (it has "
                "a series embedding)"
            )
        index = [known[sid] for sid in data.kept_ids]
        for part in list(data.datasets):
            data.datasets[part] = PanelWindows(
                data.values, data.split.origins[part], source.lookback, source.horizon, index
            )
    return _public(evaluate_panel(model, data, source.baseline))


def forecast_panel_file(
    run_dir: Path, data_path: Path, out_path: Path, *, encoding: str = "utf-8"
) -> list[dict[str, Any]]:
    """Forecast the ``horizon`` steps after the end of every series of ``data_path`` (a
    long-format file with the run's columns) and write ``id, [time,] step, q0.1, q0.5, q0.9``
    rows to ``out_path`` (CSV, atomically). A series shorter than the lookback is left out
    with a warning; with a series embedding, an id the model was not trained on is refused."""
    model, config = load_panel_run(run_dir)
    columns: list[str] = config["columns"]
    idc: str = config["id_column"]
    tcol = config.get("time_column")
    panel = read_panel(data_path, columns[0], idc, columns[1:], tcol, encoding=encoding)
    rows, short = forecast_panel(model, config, panel, where=str(data_path), skip_short=True)
    if short:
        logger.warning(
            "%d series shorter than the lookback %d are left out: %s",
            len(short),
            int(config["lookback"]),
            ", ".join(short[:5]),
        )
    buf = io.StringIO()
    names = list(dict.fromkeys(k for r in rows for k in r))
    writer = csv.DictWriter(buf, fieldnames=names, lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    atomic_write_text(out_path, buf.getvalue())
    return rows
