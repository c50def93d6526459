"""statsforecast's classic models on a panel of series, and the M4 scores to compare them.

:func:`panel_forecasts` forecasts ``horizon`` steps from every forecast origin ``t`` of every
series (from ``y[:t]`` only) with four statsforecast models, fitted per series: ``AutoETS``,
``AutoTheta``, ``SeasonalNaive`` and ``Naive`` (:data:`PANEL_METHODS`, shown as
:data:`LABELS`), seasonal with period ``season`` (``season`` 1: no season; seasonal naive is
then naive, both keys are kept). :func:`m4_scores` gives M4's per-series MASE and sMAPE and
their means; :func:`coverage` the share of truths inside an interval. The anchors of
``$LSTMKIT_DATA/README.md`` (``series/panels/``, last 8 quarters of every series) are
``panel_forecasts`` with one origin per series, ``n - 8``, scored by ``m4_scores``.

How the models are called: per series and per model, the very calls that
``StatsForecast(models=..., freq=1, n_jobs=1)`` makes inside ``forecast`` and
``cross_validation`` (``statsforecast/core.py``: ``model.forecast(y=..., h=...)`` for a fresh
fit, ``model.fit`` then ``model.forward`` for ``refit=k``), on the float64 history ``y[:t]``.
``StatsForecast`` itself is not used because (a) its ``cross_validation`` puts the same windows,
counted from the end, on every series, while here each series has its own origins; (b) one
model error on one series ends the whole call, or, with its ``fallback_model``, is replaced
without saying on which series; (c) it needs a DataFrame with a time column, where the models
need only the array. The tests check the two give the same forecasts.

Refitting: a model is fitted on ``y[:t]`` at the first origin of a series and again every
``k`` origins (``k = refit_every``; default ``ceil(most origins of a series / 30)``, as the
Holt-Winters baseline of :mod:`lstmkit.baselines.series`). With ``k`` 1 every origin is a fresh
fit (``model.forecast``, statsforecast's ``refit=True``), so a single origin per series -- the M4
protocol -- is always a fresh fit. With ``k`` > 1 the origins between two fits are forecast by
``model.forward(y[:t])``: the last fit's parameters (smoothing weights, initial states; the
theta and the decomposition of AutoTheta) run through the data up to the origin, without
refitting -- statsforecast's ``refit=k``. A forecast never reads a value at or after its origin.

The one fallback: a model that raises or gives a non-finite value on a series, at any of its
origins, is replaced on that whole series by the seasonal-naive forecast (the last season
repeated; with ``season`` 1 the last value), recorded in ``info["failed"]`` with the reason and
logged once per model with a warning.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from typing import Any

import numpy as np

from lstmkit.errors import BaselineError
from lstmkit.extras import needs

logger = logging.getLogger(__name__)

PANEL_METHODS = ("auto_ets", "auto_theta", "seasonal_naive", "naive")
LABELS = {
    "auto_ets": "AutoETS",
    "auto_theta": "AutoTheta",
    "seasonal_naive": "SeasonalNaive",
    "naive": "Naive",
}
MAX_FITS = 30
_SKIP = "pass --baseline none to skip the baseline"


def _factories(methods: Sequence[str], season: int) -> dict[str, Any]:
    """A maker of a fresh statsforecast model per method (imported here, not at import time)."""
    with needs(
        "forecast",
        "the panel baselines (AutoETS, AutoTheta, SeasonalNaive, Naive)",
        hint=f"or {_SKIP}",
        verb="need",
    ):
        import statsforecast  # noqa: F401  (a missing package fails here, not in a submodule)
        from statsforecast.models import AutoETS, AutoTheta, Naive, SeasonalNaive
    build = {
        "auto_ets": lambda: AutoETS(season_length=season),
        "auto_theta": lambda: AutoTheta(season_length=season),
        "seasonal_naive": lambda: SeasonalNaive(season_length=season),
        "naive": lambda: Naive(),
    }
    return {name: build[name] for name in methods}


def check_available() -> None:
    """MissingDependencyError now (before a run trains) when statsforecast is not installed."""
    _factories(PANEL_METHODS, 1)


def seasonal_naive(y: np.ndarray, origins: np.ndarray, horizon: int, season: int) -> np.ndarray:
    """(len(origins), horizon): from each origin ``t`` the last season ``y[t-season:t]``
    repeated (``season`` 1: the last value); every origin must be at least ``season``."""
    steps = np.arange(horizon)
    idx = np.asarray(origins, dtype=np.int64)[:, None] - season + steps[None, :] % season
    return np.asarray(y, dtype=np.float64)[idx]


def _check(
    ys: Sequence[np.ndarray],
    origins: Sequence[np.ndarray],
    horizon: int,
    season: int,
    methods: Sequence[str],
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if horizon < 1:
        raise BaselineError(f"the forecast horizon must be at least 1, got {horizon}")
    if season < 1:
        raise BaselineError(f"the season must be at least 1 (1: no season), got {season}")
    unknown = [m for m in methods if m not in PANEL_METHODS]
    if unknown or not methods:
        raise BaselineError(
            f"panel baseline methods must be some of {', '.join(PANEL_METHODS)}, got "
            f"{list(methods)}"
        )
    if len(ys) != len(origins):
        raise BaselineError(
            f"expected one array of origins per series, got {len(origins)} for {len(ys)} series"
        )
    first = max(season, 2)
    out_y, out_o = [], []
    for i, (y, o) in enumerate(zip(ys, origins, strict=True)):
        y = np.asarray(y, dtype=np.float64)
        o = np.asarray(o)
        if y.ndim != 1:
            raise BaselineError(f"series {i} must be one-dimensional, got shape {y.shape}")
        if o.ndim != 1 or o.size == 0 or not np.issubdtype(o.dtype, np.integer):
            raise BaselineError(
                f"the origins of series {i} must be a non-empty 1-D integer array, got "
                f"{o.dtype} of shape {o.shape}"
            )
        o = o.astype(np.int64)
        if o.size > 1 and not (np.diff(o) > 0).all():
            raise BaselineError(f"the origins of series {i} must be ascending, got {o.tolist()}")
        if o[0] < first:
            raise BaselineError(
                f"series {i}: origin {int(o[0])} leaves too little history; every origin must "
                f"be at least {first} (max(season, 2) with season {season})"
            )
        if o[-1] + horizon > len(y):
            raise BaselineError(
                f"series {i}: origin {int(o[-1])} + horizon {horizon} runs past the series' "
                f"{len(y)} values; the last origin can be {len(y) - horizon}"
            )
        bad = np.flatnonzero(~np.isfinite(y[: o[-1]]))
        if bad.size:
            raise BaselineError(
                f"series {i} has a non-finite value at position {int(bad[0])}, before its last "
                f"origin {int(o[-1])}; fill or drop it, or {_SKIP}"
            )
        out_y.append(y)
        out_o.append(o)
    return out_y, out_o


def _one_series(
    model: Any,
    y: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    every: int,
    level: int | None = None,
) -> tuple[np.ndarray, np.ndarray | None]:
    """(len(origins), horizon) forecasts of one model on one series, and with ``level`` its
    prediction interval (len(origins), horizon, 2) when the model gives one (raises what it
    raises)."""
    out = np.empty((len(origins), horizon))
    band: np.ndarray | None = np.empty((len(origins), horizon, 2)) if level else None
    extra = {"level": [level]} if level else {}
    for j, t in enumerate(origins):
        history = y[: int(t)]
        if every == 1:
            res = model.forecast(y=history, h=horizon, **extra)
        else:
            if j % every == 0:
                model = model.fit(y=history)
            res = model.forward(y=history, h=horizon, **extra)
        out[j] = np.asarray(res["mean"], dtype=np.float64)
        if not np.isfinite(out[j]).all():
            raise ValueError(f"non-finite forecast from origin {int(t)}")
        if band is not None:
            if f"lo-{level}" in res:
                band[j, :, 0] = res[f"lo-{level}"]
                band[j, :, 1] = res[f"hi-{level}"]
            else:
                band = None
    return out, band


def panel_forecasts(
    ys: Sequence[np.ndarray],
    origins: Sequence[np.ndarray],
    horizon: int,
    season: int,
    methods: Sequence[str] = PANEL_METHODS,
    *,
    refit_every: int | None = None,
    level: int | None = None,
) -> tuple[dict[str, list[np.ndarray]], dict[str, Any]]:
    """Each method's forecasts from every origin of every series (see the module docstring).

    ``ys[i]`` is the full history of series ``i`` (1-D float); ``origins[i]`` its forecast
    origins (ascending ints, each in ``[max(season, 2), len(ys[i]) - horizon]``); origin ``t``
    forecasts ``ys[i][t:t + horizon]`` from ``ys[i][:t]``. Returns ``(forecasts, info)``:
    ``forecasts[method][i]`` of shape ``(len(origins[i]), horizon)``, and ``info`` with
    ``seconds`` (wall time), ``refit_every`` (``k``), ``failed`` (``{method: {series index:
    reason}}``, the series whose forecasts are the seasonal-naive fallback) and ``labels``.
    With ``level`` (e.g. 80), ``info["intervals"][method]`` holds each series' prediction
    interval ``(origins, horizon, 2)`` (low, high) for the methods that give one on every
    series (statsforecast's own intervals).
    Raises BaselineError for bad input, MissingDependencyError without statsforecast.
    """
    start = time.perf_counter()
    ys_, origins_ = _check(ys, origins, horizon, season, methods)
    if refit_every is None:
        every = max(1, math.ceil(max(len(o) for o in origins_) / MAX_FITS))
    elif refit_every < 1:
        raise BaselineError(
            f"refit_every must be at least 1 (1: refit at every origin), got {refit_every}"
        )
    else:
        every = int(refit_every)
    make = _factories(methods, season)
    forecasts: dict[str, list[np.ndarray]] = {m: [] for m in methods}
    failed: dict[str, dict[int, str]] = {m: {} for m in methods}
    bands: dict[str, list[np.ndarray] | None] = {m: [] for m in methods}
    for i, (y, o) in enumerate(zip(ys_, origins_, strict=True)):
        for name in methods:
            band: np.ndarray | None = None
            try:
                f, band = _one_series(make[name](), y, o, horizon, every, level)
            except Exception as err:  # any model error: the one documented fallback
                failed[name][i] = f"{type(err).__name__}: {err}"
                f = seasonal_naive(y, o, horizon, season)
            forecasts[name].append(f)
            kept = bands[name]
            if kept is not None:
                if band is None:
                    bands[name] = None
                else:
                    kept.append(band)
    for name, bad in failed.items():
        if bad:
            shown = "; ".join(f"series {i}: {why}" for i, why in list(bad.items())[:3])
            logger.warning(
                "%s failed on %d of %d series (%s%s); their forecasts are the seasonal-naive "
                "forecast",
                LABELS[name],
                len(bad),
                len(ys_),
                shown,
                "; ..." if len(bad) > 3 else "",
            )
    info = {
        "seconds": time.perf_counter() - start,
        "refit_every": every,
        "failed": {m: bad for m, bad in failed.items() if bad},
        "labels": {m: LABELS[m] for m in methods},
    }
    if level:
        info["intervals"] = {m: b for m, b in bands.items() if b is not None}
    return forecasts, info


def _name(i: int, ids: Sequence[str] | None) -> str:
    return f"series {i} ({ids[i]!r})" if ids is not None else f"series {i}"


def m4_scores(
    truth: Sequence[np.ndarray],
    preds: Sequence[np.ndarray],
    train: Sequence[np.ndarray],
    season: int,
    ids: Sequence[str] | None = None,
) -> dict[str, Any]:
    """M4's per-series MASE and sMAPE (%) and their means over the series.

    ``MASE_i = mean |pred - truth| / scale_i``, ``scale_i`` the in-sample seasonal-naive MAE of
    ``train[i]``: ``mean |train[t] - train[t - season]|`` (lag 1 when ``season`` is 1);
    ``sMAPE_i = mean 200 |pred - truth| / (|pred| + |truth|)``, a 0/0 term counting 0. The means
    run over every value of ``truth[i]`` / ``preds[i]``: same shape, ``(horizon,)`` or
    ``(origins, horizon)``. Returns ``mase``, ``smape``, ``mase_per_series`` and
    ``smape_per_series``. A series whose scale is 0 (constant at lag ``season``) has no MASE:
    BaselineError naming it (by ``ids[i]`` where given); the caller decides what to drop.
    """
    if season < 1:
        raise BaselineError(f"the season must be at least 1 (1: no season), got {season}")
    if not (len(truth) == len(preds) == len(train)) or not truth:
        raise BaselineError(
            "expected as many truths, forecasts and training series, at least one, got "
            f"{len(truth)}, {len(preds)} and {len(train)}"
        )
    if ids is not None and len(ids) != len(truth):
        raise BaselineError(f"expected {len(truth)} ids, got {len(ids)}")
    mase, smape = [], []
    for i, (t, p, h) in enumerate(zip(truth, preds, train, strict=True)):
        t = np.asarray(t, dtype=np.float64)
        p = np.asarray(p, dtype=np.float64)
        h = np.asarray(h, dtype=np.float64).ravel()
        if t.shape != p.shape or t.size == 0:
            raise BaselineError(
                f"{_name(i, ids)}: truth and forecast must have the same non-empty shape, got "
                f"{t.shape} and {p.shape}"
            )
        if not (np.isfinite(t).all() and np.isfinite(p).all()):
            raise BaselineError(f"{_name(i, ids)}: non-finite truth or forecast values")
        if len(h) <= season:
            raise BaselineError(
                f"{_name(i, ids)}: the training series needs more than {season} values for the "
                f"seasonal-naive scale of MASE, got {len(h)}"
            )
        scale = float(np.mean(np.abs(h[season:] - h[:-season])))
        if not scale > 0:
            raise BaselineError(
                f"{_name(i, ids)}: MASE is undefined, the training series' in-sample "
                f"seasonal-naive error (lag {season}) is {scale:g}; drop the series or score "
                "it otherwise"
            )
        err = np.abs(p - t)
        den = np.abs(p) + np.abs(t)
        terms = np.divide(200.0 * err, den, out=np.zeros_like(err), where=den > 0)
        mase.append(float(np.mean(err)) / scale)
        smape.append(float(np.mean(terms)))
    return {
        "mase": float(np.mean(mase)),
        "smape": float(np.mean(smape)),
        "mase_per_series": mase,
        "smape_per_series": smape,
    }


def coverage(
    truth: Sequence[np.ndarray] | np.ndarray,
    lower: Sequence[np.ndarray] | np.ndarray,
    upper: Sequence[np.ndarray] | np.ndarray,
) -> float:
    """The share of truth values within ``[lower, upper]`` (ends included), over all series,
    origins and steps; ``truth[i]``, ``lower[i]``, ``upper[i]`` of one shape per series."""
    if not (len(truth) == len(lower) == len(upper)) or len(truth) == 0:
        raise BaselineError(
            "expected as many truths, lower and upper bounds, at least one, got "
            f"{len(truth)}, {len(lower)} and {len(upper)}"
        )
    inside = total = 0
    for i, (t, lo, hi) in enumerate(zip(truth, lower, upper, strict=True)):
        t, lo, hi = (np.asarray(a, dtype=np.float64) for a in (t, lo, hi))
        if not (t.shape == lo.shape == hi.shape):
            raise BaselineError(
                f"series {i}: truth and bounds must have the same shape, got {t.shape}, "
                f"{lo.shape} and {hi.shape}"
            )
        inside += int(np.count_nonzero((t >= lo) & (t <= hi)))
        total += t.size
    if total == 0:
        raise BaselineError("coverage of no values: every truth array is empty")
    return inside / total
