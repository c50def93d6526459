"""Holt-Winters exponential smoothing on the rolling origins: the classic forecasting baseline.

:func:`holt_winters_forecasts` forecasts ``horizon`` steps from every origin ``t`` (from
``y[:t]`` only) with statsmodels' ``ExponentialSmoothing``: additive trend, and a seasonal term of
period ``season`` -- multiplicative when the caller says the series grows with its level
(:func:`lstmkit.data.series.grows_with_level`), additive otherwise; without a season (``season``
1) the trend is damped. It is the anchors' Holt-Winters of ``$LSTMKIT_DATA/README.md``.

Refitting: the parameters (smoothing weights, damping, initial states) are fitted by statsmodels
on ``y[:t]`` at the first origin and again every ``k`` origins, ``k = ceil(origins / max_fits)``
(``max_fits`` = 30: every origin of a short series such as airpassengers' 18 is refitted, as in
the README; taylor's 760 origins with a season of 336 are refitted every 26). Between two fits
the smoothing filter runs with the last fitted parameters through the data up to each origin
(:func:`smoothing_filter`, statsmodels' recursions, checked against its forecasts in the tests),
so a forecast never reads a value at or after its origin. The initial states are estimated with
the weights (statsmodels' ``initialization_method="estimated"``).

A baseline that cannot be fitted -- fewer than two full seasons (plus ten rows) before the first
origin, a multiplicative season on non-positive values, a statsmodels error -- is one
:class:`~lstmkit.errors.BaselineError`; the forecast task logs it and reports the baseline as
skipped.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.errors import BaselineError
from lstmkit.extras import needs

NAME = "holt_winters"
MAX_FITS = 30


@dataclass(frozen=True)
class HoltWintersParams:
    """Fitted parameters of one Holt-Winters model (statsmodels' names)."""

    alpha: float
    beta: float
    gamma: float
    phi: float
    level: float
    trend: float
    seasons: np.ndarray  # (m,) initial seasonal states; empty without a season


def describe(season: int, multiplicative: bool) -> str:
    """``"additive trend, multiplicative season (m=12)"`` and the like."""
    if season <= 1:
        return "damped additive trend, no season"
    kind = "multiplicative" if multiplicative else "additive"
    return f"additive trend, {kind} season (m={season})"


def _fit(y: np.ndarray, season: int, multiplicative: bool) -> HoltWintersParams:
    with needs("forecast", "the Holt-Winters baseline"):
        from statsmodels.tsa.holtwinters import ExponentialSmoothing
    seasonal = None if season <= 1 else ("mul" if multiplicative else "add")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # convergence chatter; a failed fit raises below
        try:
            model = ExponentialSmoothing(
                y,
                trend="add",
                damped_trend=season <= 1,
                seasonal=seasonal,
                seasonal_periods=season if seasonal else None,
                initialization_method="estimated",
            )
            p: dict[str, Any] = model.fit().params
        except (ValueError, np.linalg.LinAlgError) as err:
            raise BaselineError(
                f"Holt-Winters ({describe(season, multiplicative)}): {err}"
            ) from None
    out = HoltWintersParams(
        alpha=float(p["smoothing_level"]),
        beta=float(p["smoothing_trend"]),
        gamma=float(p["smoothing_seasonal"]) if seasonal else 0.0,
        phi=float(p["damping_trend"]) if season <= 1 else 1.0,
        level=float(p["initial_level"]),
        trend=float(p["initial_trend"]),
        seasons=np.asarray(p["initial_seasons"], dtype=np.float64) if seasonal else np.empty(0),
    )
    if not all(math.isfinite(v) for v in (out.alpha, out.beta, out.level, out.trend)):
        raise BaselineError(f"Holt-Winters ({describe(season, multiplicative)}): the fit diverged")
    return out


def smoothing_filter(
    y: np.ndarray,
    params: HoltWintersParams,
    origins: np.ndarray,
    horizon: int,
    multiplicative: bool,
) -> np.ndarray:
    """(len(origins), horizon): the forecasts from each origin ``t`` (sorted, ``t <= len(y)``)
    of the Holt-Winters filter with fixed ``params`` run through ``y[:t]`` (statsmodels'
    recursions: level, damped additive trend, seasonal state per phase; the forecast's season of
    the last observed phase is its state before that observation, as in statsmodels)."""
    a, b, g, phi = params.alpha, params.beta, params.gamma, params.phi
    m = len(params.seasons)
    s = list(params.seasons)  # s[i]: the seasonal state applied to y[i]
    lvl, tr = params.level, params.trend
    damp = np.cumsum(phi ** np.arange(1, horizon + 1))  # phi + ... + phi^h
    out = np.empty((len(origins), horizon))
    j = 0
    for i in range(int(origins[-1]) + 1):
        while j < len(origins) and origins[j] == i:
            base = lvl + damp * tr
            if m:
                # season for step k (0-based) from origin i: the latest state of its phase
                idx = [i + k if k < m - 1 else i - 1 + (k - (m - 1)) % m for k in range(horizon)]
                season = np.array([s[q] for q in idx])
                out[j] = base * season if multiplicative else base + season
            else:
                out[j] = base
            j += 1
        if i == len(y):
            break
        lead = lvl + phi * tr
        if m:
            if multiplicative:
                new_lvl = a * y[i] / s[i] + (1 - a) * lead
                s.append(g * y[i] / lead + (1 - g) * s[i])
            else:
                new_lvl = a * (y[i] - s[i]) + (1 - a) * lead
                s.append(g * (y[i] - lead) + (1 - g) * s[i])
        else:
            new_lvl = a * y[i] + (1 - a) * lead
        tr = b * (new_lvl - lvl) + (1 - b) * phi * tr
        lvl = new_lvl
    return out


def holt_winters_forecasts(
    y: np.ndarray,
    origins: np.ndarray,
    horizon: int,
    season: int,
    multiplicative: bool,
    *,
    max_fits: int = MAX_FITS,
) -> tuple[np.ndarray, dict[str, Any]]:
    """(len(origins), horizon) forecasts from each origin (see the module docstring) and a
    description (``model``, ``refit_every``, ``fits``). Raises BaselineError."""
    origins = np.asarray(origins, dtype=np.int64)
    first = int(origins.min())
    m = max(1, season)
    need = 2 * m + 10 if m > 1 else 10
    if first < need:
        raise BaselineError(
            f"Holt-Winters ({describe(season, multiplicative)}) needs {need} rows before the "
            f"first forecast origin (two full seasons and ten more), got {first}"
        )
    if multiplicative and float(np.min(y[:first])) <= 0.0:
        raise BaselineError(
            "Holt-Winters with a multiplicative season needs positive values; the series has "
            f"{float(np.min(y[:first])):g}"
        )
    every = max(1, math.ceil(len(origins) / max_fits))
    out = np.empty((len(origins), horizon))
    fits = 0
    for start in range(0, len(origins), every):
        block = origins[start : start + every]
        params = _fit(y[: int(block[0])], season, multiplicative)
        fits += 1
        out[start : start + len(block)] = smoothing_filter(
            y, params, block, horizon, multiplicative
        )
    if not np.isfinite(out).all():
        raise BaselineError(
            f"Holt-Winters ({describe(season, multiplicative)}): non-finite forecasts"
        )
    return out, {"model": describe(season, multiplicative), "refit_every": every, "fits": fits}
