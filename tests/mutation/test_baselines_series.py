"""The Holt-Winters baseline (lstmkit.baselines.series) beyond its statsmodels parity test: the
textbook damped-trend recursion by hand, its names, the rows it needs and the refits it makes.
(Written for ``python benchmarks/mutation.py --only baselines``.)"""

from __future__ import annotations

import numpy as np
import pytest

from lstmkit.baselines.series import (
    HoltWintersParams,
    describe,
    holt_winters_forecasts,
    smoothing_filter,
)
from lstmkit.errors import BaselineError


def _by_hand(y: list[float], p: HoltWintersParams, origin: int, horizon: int) -> list[float]:
    """Damped additive trend, no season: level and trend through y[:origin], then
    level + (phi + ... + phi^k) * trend for k = 1..horizon."""
    lvl, tr = p.level, p.trend
    for value in y[:origin]:
        lead = lvl + p.phi * tr
        new = p.alpha * value + (1 - p.alpha) * lead
        tr = p.beta * (new - lvl) + (1 - p.beta) * p.phi * tr
        lvl = new
    return [lvl + sum(p.phi**j for j in range(1, k + 1)) * tr for k in range(1, horizon + 1)]


def test_the_damped_trend_filter_is_the_textbook_recursion() -> None:
    p = HoltWintersParams(0.5, 0.3, 0.0, 0.9, 1.0, 0.5, np.empty(0))
    y = [1.0, 2.5, 2.0, 4.0, 3.5]
    out = smoothing_filter(np.array(y), p, np.array([0, 2, 5]), 3, False)
    assert out.shape == (3, 3)
    for row, origin in zip(out, (0, 2, 5), strict=True):
        np.testing.assert_allclose(row, _by_hand(y, p, origin, 3), rtol=1e-12)
    assert out[0].tolist() == pytest.approx([1.45, 1.855, 2.2195])  # 1 + 0.5 * (0.9, 1.71, 2.439)


def test_an_additive_season_adds_its_state_to_the_trend_line() -> None:
    """m = 2, from the first origin: the forecast is level + damp * trend + the season state of
    each step's phase (s[0], then s[1] for the next step, ...), before any observation."""
    p = HoltWintersParams(0.5, 0.3, 0.2, 1.0, 10.0, 1.0, np.array([2.0, -2.0]))
    out = smoothing_filter(np.arange(6.0), p, np.array([0]), 4, False)[0]
    np.testing.assert_allclose(out, [10 + 1 + 2, 10 + 2 - 2, 10 + 3 + 2, 10 + 4 - 2])
    mul = HoltWintersParams(0.5, 0.3, 0.2, 1.0, 10.0, 1.0, np.array([1.5, 0.5]))
    out = smoothing_filter(np.arange(1.0, 7.0), mul, np.array([0]), 2, True)[0]
    np.testing.assert_allclose(out, [11 * 1.5, 12 * 0.5])


def test_names_of_the_models() -> None:
    assert describe(1, False) == "damped additive trend, no season"
    assert describe(0, True) == "damped additive trend, no season"
    assert describe(2, False) == "additive trend, additive season (m=2)"
    assert describe(12, True) == "additive trend, multiplicative season (m=12)"


def test_the_rows_it_needs_and_the_values_a_multiplicative_season_needs() -> None:
    y = np.abs(np.sin(np.arange(200) / 3.0)) + 1.0
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(y, np.array([33, 40]), 2, 12, False)
    assert str(info.value) == (
        "Holt-Winters (additive trend, additive season (m=12)) needs 34 rows before the first "
        "forecast origin (two full seasons and ten more), got 33"
    )
    with pytest.raises(BaselineError, match="needs 10 rows before .* got 9$"):
        holt_winters_forecasts(y, np.array([9]), 2, 1, False)
    low = y.copy()
    low[5] = 0.0
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(low, np.array([40]), 2, 12, True)
    assert str(info.value).endswith("needs positive values; the series has 0")


def test_one_fit_per_block_of_origins() -> None:
    t = np.arange(160, dtype=np.float64)
    y = 10 + 0.1 * t + np.sin(2 * np.pi * t / 4)
    origins = np.arange(100, 160)
    out, info = holt_winters_forecasts(y, origins, 3, 4, False, max_fits=7)
    assert info == {
        "model": "additive trend, additive season (m=4)",
        "refit_every": 9,  # ceil(60 / 7)
        "fits": 7,
    }
    assert out.shape == (60, 3) and np.isfinite(out).all()
    np.testing.assert_allclose(out[:, 0], y[origins], rtol=0.02)  # a clean series is followed
    _, one = holt_winters_forecasts(y, origins[:1], 3, 4, False)
    assert one["refit_every"] == 1 and one["fits"] == 1
