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


# --- the fit, the guards' exact errors, a season of two and the multiplicative filter ---------


def _seasonal(n: int, m: int, base: float = 50.0, seed: int = 1) -> np.ndarray:
    """A positive series with a trend, a season of period m and a little noise."""
    t = np.arange(n, dtype=np.float64)
    noise = np.random.default_rng(seed).normal(0.0, 0.01 * base, n)
    return (base + 0.01 * base * t) * (1 + 0.2 * np.sin(2 * np.pi * t / m)) + noise


def _statsmodels(y: np.ndarray, season: int, mul: bool) -> object:
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return ExponentialSmoothing(
            y,
            trend="add",
            damped_trend=season == 1,
            seasonal=None if season == 1 else ("mul" if mul else "add"),
            seasonal_periods=season if season > 1 else None,
            initialization_method="estimated",
        ).fit()


def test_baselines_series_fit_reports_statsmodels_parameters() -> None:
    """_fit's parameters are statsmodels' own; a model without a season has gamma 0 and no
    seasonal states, an undamped one phi 1 (a season of two is a season: not damped)."""
    from lstmkit.baselines.series import _fit

    y = _seasonal(60, 4)
    for season, mul in ((1, False), (2, False), (4, False), (4, True)):
        mine = _fit(y, season, mul)
        p = _statsmodels(y, season, mul).params  # type: ignore[attr-defined]
        assert mine.alpha == pytest.approx(float(p["smoothing_level"]), rel=1e-12)
        assert mine.beta == pytest.approx(float(p["smoothing_trend"]), rel=1e-12, abs=1e-15)
        assert mine.level == pytest.approx(float(p["initial_level"]), rel=1e-12)
        assert mine.trend == pytest.approx(float(p["initial_trend"]), rel=1e-12, abs=1e-12)
        if season == 1:
            assert mine.gamma == 0.0
            assert mine.phi == pytest.approx(float(p["damping_trend"]), rel=1e-12)
            assert mine.phi < 1.0
            assert mine.seasons.shape == (0,)
        else:
            assert mine.gamma == pytest.approx(float(p["smoothing_seasonal"]), abs=1e-12)
            assert mine.phi == 1.0
            assert mine.seasons.dtype == np.float64 and mine.seasons.shape == (season,)
            np.testing.assert_allclose(mine.seasons, p["initial_seasons"], rtol=1e-12)


def test_baselines_series_a_season_of_two() -> None:
    """m = 2 is a season (additive, undamped): it needs 2 * 2 + 10 = 14 rows before the first
    origin (14 itself is enough) and forecasts as statsmodels' model fitted at each origin."""
    y = _seasonal(40, 2)
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(y, np.array([13, 20]), 3, 2, False)
    assert str(info.value) == (
        "Holt-Winters (additive trend, additive season (m=2)) needs 14 rows before the first "
        "forecast origin (two full seasons and ten more), got 13"
    )
    origins = np.array([14, 25, 32])
    out, meta = holt_winters_forecasts(y, origins, 3, 2, False)
    assert meta == {"model": "additive trend, additive season (m=2)", "refit_every": 1, "fits": 3}
    for row, origin in zip(out, origins, strict=True):
        ref = _statsmodels(y[:origin], 2, False).forecast(3)  # type: ignore[attr-defined]
        np.testing.assert_allclose(row, ref, rtol=1e-9)


def test_baselines_series_the_first_origin_may_be_exactly_the_rows_it_needs() -> None:
    y = _seasonal(60, 12)
    out, _ = holt_winters_forecasts(y, np.array([34]), 2, 12, False)  # 2 * 12 + 10
    assert out.shape == (1, 2) and np.isfinite(out).all()
    out, meta = holt_winters_forecasts(y, np.array([10]), 2, 1, False)
    assert out.shape == (1, 2) and np.isfinite(out).all()
    assert meta["model"] == "damped additive trend, no season"


def test_baselines_series_multiplicative_messages_name_the_multiplicative_model() -> None:
    y = _seasonal(60, 12)
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(y, np.array([33]), 2, 12, True)
    assert str(info.value) == (
        "Holt-Winters (additive trend, multiplicative season (m=12)) needs 34 rows before the "
        "first forecast origin (two full seasons and ten more), got 33"
    )
    low = y.copy()
    low[7] = -2.5
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(low, np.array([40]), 2, 12, True)
    assert str(info.value) == (
        "Holt-Winters with a multiplicative season needs positive values; the series has -2.5"
    )
    # an additive season takes the same values
    out, _ = holt_winters_forecasts(low, np.array([40]), 2, 12, False)
    assert np.isfinite(out).all()


def test_baselines_series_a_multiplicative_season_below_one_is_statsmodels_forecast() -> None:
    """Positive values under 1 (a rate) are fine for a multiplicative season; its forecasts
    from each refitted origin are statsmodels' of the model fitted on y[:t]."""
    y = _seasonal(60, 4, base=0.5)
    assert y.min() > 0.0 and y.max() < 1.0
    origins = np.array([40, 47])
    out, meta = holt_winters_forecasts(y, origins, 5, 4, True)
    assert meta == {
        "model": "additive trend, multiplicative season (m=4)",
        "refit_every": 1,
        "fits": 2,
    }
    for row, origin in zip(out, origins, strict=True):
        ref = _statsmodels(y[:origin], 4, True).forecast(5)  # type: ignore[attr-defined]
        np.testing.assert_allclose(row, ref, rtol=1e-9)
    additive, _ = holt_winters_forecasts(y, origins, 5, 4, False)
    assert np.abs(additive - out).max() > 1e-6  # the two models differ on these data


def test_baselines_series_multiplicative_filter_by_hand() -> None:
    """m = 3, phi = 1: the textbook recursions (level from y / s, season from y / (l + b),
    forecast (l + h b) * s of the step's phase) through two observations, by hand."""
    p = HoltWintersParams(0.5, 0.2, 0.4, 1.0, 10.0, 1.0, np.array([1.2, 0.8, 1.0]))
    y = np.array([12.0, 9.0, 11.0, 14.0])
    out = smoothing_filter(y, p, np.array([1, 2]), 2, True)
    # y0 = 12: lead 11, level 0.5 * 12 / 1.2 + 0.5 * 11 = 10.5, trend 0.2 * 0.5 + 0.8 = 0.9,
    # season of phase 0: 0.4 * 12 / 11 + 0.6 * 1.2
    np.testing.assert_allclose(out[0], [11.4 * 0.8, 12.3 * 1.0], rtol=1e-12)
    # y1 = 9: lead 11.4, level 0.5 * 9 / 0.8 + 0.5 * 11.4 = 11.325, trend 0.2 * 0.825 + 0.72
    # = 0.885; the second step (phase 0) takes the season updated by y0
    np.testing.assert_allclose(
        out[1], [12.21 * 1.0, 13.095 * (0.4 * 12 / 11 + 0.6 * 1.2)], rtol=1e-12
    )


def test_baselines_series_a_statsmodels_error_is_one_baseline_error() -> None:
    """The refit of the second block reads a 0 (after the first origin, so the positive-values
    guard passed): statsmodels refuses it, and that is one BaselineError naming the model."""
    y = _seasonal(60, 4)
    y[42] = 0.0
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(y, np.arange(40, 50), 2, 4, True, max_fits=2)
    assert str(info.value).startswith(
        "Holt-Winters (additive trend, multiplicative season (m=4)): endog must be strictly "
        "positive"
    )
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_baselines_series_a_diverged_fit_is_one_baseline_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    y = np.arange(1.0, 41.0)
    y[5] = np.inf  # the damped fit's states come out non-finite
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(y, np.array([40]), 2, 1, False)
    assert str(info.value) == "Holt-Winters (damped additive trend, no season): the fit diverged"

    import statsmodels.tsa.holtwinters as hw

    class Diverged:  # a fit whose level came out NaN (a stand-in: statsmodels rarely does it)
        def __init__(self, *args: object, **kwargs: object) -> None:
            pass

        def fit(self) -> object:
            params = {
                "smoothing_level": 0.5,
                "smoothing_trend": 0.1,
                "smoothing_seasonal": 0.1,
                "damping_trend": np.nan,
                "initial_level": np.nan,
                "initial_trend": 0.0,
                "initial_seasons": np.ones(4),
            }
            return type("Result", (), {"params": params})()

    monkeypatch.setattr(hw, "ExponentialSmoothing", Diverged)
    with pytest.raises(BaselineError) as info:
        holt_winters_forecasts(_seasonal(40, 4), np.array([30]), 2, 4, True)
    assert str(info.value) == (
        "Holt-Winters (additive trend, multiplicative season (m=4)): the fit diverged"
    )


def test_baselines_series_non_finite_forecasts_are_one_baseline_error() -> None:
    """An infinite value after the first origin (the one fit never reads it) makes the filter's
    later forecasts non-finite: one BaselineError, not inf in the table."""
    y = _seasonal(60, 4)
    y[42] = np.inf
    with np.errstate(invalid="ignore"), pytest.raises(BaselineError) as info:
        holt_winters_forecasts(y, np.arange(40, 46), 2, 4, True, max_fits=1)
    assert str(info.value) == (
        "Holt-Winters (additive trend, multiplicative season (m=4)): non-finite forecasts"
    )
    with np.errstate(invalid="ignore"):
        ok, _ = holt_winters_forecasts(y, np.arange(40, 43), 2, 4, True, max_fits=1)
    assert np.isfinite(ok).all()  # the origins up to the value itself are fine


def test_baselines_series_without_statsmodels_names_the_forecast_extra(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    from lstmkit.errors import MissingDependencyError

    monkeypatch.setitem(sys.modules, "statsmodels.tsa.holtwinters", None)
    with pytest.raises(MissingDependencyError) as info:
        holt_winters_forecasts(_seasonal(40, 4), np.array([30]), 2, 4, False)
    assert str(info.value) == (
        "the Holt-Winters baseline needs statsmodels, which is not installed: "
        "pip install 'lstmkit[forecast]'"
    )
