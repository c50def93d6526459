"""Season detection from the calendar and the data: infer_frequency, choose_season, detect_season."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import numpy as np
import pytest

from lstmkit.data.series import (
    Frequency,
    autocorrelation,
    choose_season,
    detect_season,
    infer_frequency,
)


def months(start_year: int, start_month: int, n: int, step: int = 1, day: int = 1) -> list[str]:
    out = []
    for i in range(n):
        k = start_month - 1 + i * step
        out.append(date(start_year + k // 12, k % 12 + 1, day).isoformat())
    return out


def every(start: datetime, step: timedelta, n: int, sep: str = " ") -> list[str]:
    return [(start + i * step).isoformat(sep=sep) for i in range(n)]


def old_highest_peak(y: np.ndarray) -> tuple[int, np.ndarray]:
    """The rule before: the lag of the highest ACF peak above 0.3 (lags 2 .. n//3 - 1)."""
    n = len(y)
    t = np.arange(n, dtype=np.float64)
    slope, intercept = np.polyfit(t, y, 1)
    acf = autocorrelation(y - (slope * t + intercept), n // 3)
    best, best_val = 1, 0.3
    for k in range(2, n // 3):
        if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] > best_val:
            best, best_val = k, float(acf[k])
    return best, acf


# -- infer_frequency -----------------------------------------------------------------------


def test_infer_frequency_monthly_quarterly_yearly() -> None:
    assert infer_frequency(months(2020, 1, 30)) == Frequency("monthly", (12,))
    assert infer_frequency([m[:7] for m in months(2020, 1, 30)]) == Frequency("monthly", (12,))
    assert infer_frequency(months(2020, 1, 30, day=15)) == Frequency("monthly", (12,))
    month_ends = [
        (date(2020 + k // 12, k % 12 + 1, 1) - timedelta(days=1)).isoformat() for k in range(1, 30)
    ]
    assert infer_frequency(month_ends) == Frequency("monthly", (12,))
    q = months(2005, 3, 20, step=3)
    assert q[:3] == ["2005-03-01", "2005-06-01", "2005-09-01"]
    assert infer_frequency(q) == Frequency("quarterly", (4,))
    assert infer_frequency(months(2005, 1, 10, step=6)) == Frequency("half-yearly", (2,))
    assert infer_frequency(months(1990, 1, 20, step=12)) == Frequency("yearly", ())


def test_infer_frequency_fixed_steps() -> None:
    t0 = datetime(2024, 3, 1)
    assert infer_frequency(every(t0, timedelta(days=7), 60)[:]) == Frequency("weekly", (52,))
    days = [d[:10] for d in every(t0, timedelta(days=1), 400)]
    assert infer_frequency(days) == Frequency("daily", (7, 365))
    weekdays = [d for d in days if date.fromisoformat(d).weekday() < 5]
    assert len(weekdays) < len(days) and infer_frequency(weekdays) == Frequency(
        "business-daily", (5,)
    )
    hourly = every(t0, timedelta(hours=1), 500)
    assert hourly[1] == "2024-03-01 01:00:00"
    assert infer_frequency(hourly) == Frequency("hourly", (24, 168))
    half = every(t0, timedelta(minutes=30), 500, sep="T")
    assert infer_frequency(half) == Frequency("half-hourly", (48, 336))
    assert infer_frequency(every(t0, timedelta(minutes=1), 100)) == Frequency(
        "minutely", (1440, 10080)
    )
    # unsorted input is sorted first; a few missing rows keep the frequency
    assert infer_frequency(hourly[::-1]) == Frequency("hourly", (24, 168))
    assert infer_frequency(hourly[:100] + hourly[102:]) == Frequency("hourly", (24, 168))


def test_infer_frequency_numbers_none_irregular() -> None:
    assert infer_frequency([str(y) for y in range(1700, 1800)]) == Frequency("numbers", ())
    assert infer_frequency(["0", "1", "2", "3"]) == Frequency("numbers", ())
    assert infer_frequency(None) == Frequency("rows", ())
    rng = np.random.default_rng(0)
    gaps = np.cumsum(rng.uniform(0.1, 50.0, size=100))  # hours, uneven
    irregular = [(datetime(2024, 1, 1) + timedelta(hours=float(g))).isoformat() for g in gaps]
    assert infer_frequency(irregular) == Frequency("irregular", ())
    # monthly-ish spacing but months skipped half the time
    skipping = months(2020, 1, 10) + months(2021, 1, 10, step=2)
    assert infer_frequency(skipping) == Frequency("irregular", ())
    assert infer_frequency(["1999", "2000-01-01", "2000-02-01"]) == Frequency("irregular", ())
    assert infer_frequency(["2020-01-01"]) == Frequency("irregular", ())


# -- choose_season -------------------------------------------------------------------------


def monthly_with_weak_24() -> np.ndarray:
    """Season 12 plus a weak period-24 component and noise: the ACF at lag 24 beats lag 12."""
    t = np.arange(240)
    rng = np.random.default_rng(0)
    season = 3 * np.sin(2 * np.pi * t / 12) + 0.6 * np.sin(2 * np.pi * t / 24)
    return 10 + 0.02 * t + season + rng.normal(0, 1.5, t.size)


def test_multiple_with_higher_peak_loses_to_the_period() -> None:
    y = monthly_with_weak_24()
    old, acf = old_highest_peak(y)
    assert old == 24  # the old rule: the multiple wins
    assert acf[24] == pytest.approx(0.631, abs=0.001) and acf[12] == pytest.approx(0.589, abs=0.001)
    assert acf[24] > acf[12] >= 0.9 * acf[24]

    season, why = choose_season(y)
    assert season == 12
    assert why == (
        "12 (the smallest autocorrelation peak within 90% of the highest: 0.59 at lag 12, "
        "the highest 0.63 at lag 24)"
    )
    assert detect_season(y) == 12

    season, why = choose_season(y, months(2000, 1, 240))
    assert (season, why) == (12, "12 (monthly calendar season, autocorrelation 0.59 at lag 12)")

    # with a stricter ratio than the two peaks' 0.93 the highest peak is the only strong one
    assert choose_season(y, ratio=0.95)[0] == 24


def test_multiple_that_wins_by_noise_over_several_seeds() -> None:
    """A pure season-12 series with AR noise: wherever the old rule picks a multiple of 12,
    the new one picks 12 (seeds where the old rule errs are counted, so the test can fail)."""
    t = np.arange(300)
    wrong_before = 0
    for seed in range(40):
        rng = np.random.default_rng(seed)
        e = np.zeros(t.size)
        for i in range(1, t.size):
            e[i] = 0.8 * e[i - 1] + rng.normal(0, 0.5)
        y = 2 * np.sin(2 * np.pi * t / 12) + np.cos(2 * np.pi * t / 6) + e
        old, _ = old_highest_peak(y)
        wrong_before += old != 12
        assert choose_season(y)[0] == 12, seed
        assert choose_season(y, months(1990, 1, t.size))[0] == 12, seed
    assert wrong_before >= 5


def test_daily_weekly_and_hourly_daily() -> None:
    rng = np.random.default_rng(3)
    t = np.arange(730)
    profile = np.array([1.0, 1.2, 1.1, 1.3, 1.5, -2.0, -2.5])
    y = 50 + 0.01 * t + profile[t % 7] + rng.normal(0, 0.5, t.size)
    days = [d[:10] for d in every(datetime(2022, 1, 1), timedelta(days=1), t.size)]
    season, why = choose_season(y, days)
    assert season == 7 and why.startswith("7 (daily calendar season, autocorrelation 0.")

    h = np.arange(24 * 60)
    y = 100 + 10 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 2, h.size)
    hours = every(datetime(2024, 1, 1), timedelta(hours=1), h.size)
    season, why = choose_season(y, hours)
    assert season == 24  # the week (168) is a peak too, but forecasts no better than the day
    assert "168 is confirmed too" in why and why.startswith("24 (hourly calendar season")
    assert choose_season(y)[0] == 24


def half_hourly(weekend_drop: float) -> np.ndarray:
    """Like taylor: 12 weeks of a daily cycle with lower demand at weekends."""
    rng = np.random.default_rng(4)
    k = np.arange(48 * 7 * 12)
    day = (k // 48) % 7
    return (
        30 + 5 * np.sin(2 * np.pi * k / 48) - weekend_drop * (day >= 5) + rng.normal(0, 0.5, k.size)
    )


def test_half_hourly_weekly_season_of_its_own() -> None:
    """The week (336) forecasts far better than the day (48): it is the season, with the
    calendar and without it; a week that forecasts only somewhat better stays the day."""
    half = every(datetime(2000, 6, 5), timedelta(minutes=30), 48 * 7 * 12, sep="T")
    y = half_hourly(3.0)
    season, why = choose_season(y, half)
    assert season == 336
    assert why == (
        "336 (half-hourly calendar season, autocorrelation 0.90 at lag 336; one season back it "
        "forecasts the training rows with 55% lower mean absolute error than 48 back "
        "(autocorrelation 0.89))"
    )
    season, why = choose_season(y)
    assert season == 336
    assert why.endswith(
        "55% lower mean absolute error than the smaller peak 48 (0.89), so it is a season of its own)"
    )

    y = half_hourly(2.0)
    old, acf = old_highest_peak(y)
    assert old == 48 and acf[48] == pytest.approx(0.930, abs=0.001)
    assert acf[336] == pytest.approx(0.900, abs=0.001)
    season, why = choose_season(y, half)
    assert season == 48
    assert why == (
        "48 (half-hourly calendar season, autocorrelation 0.93 at lag 48; 336 is confirmed too "
        "(autocorrelation 0.90) but its one-season-back error on the training rows is 0.58x "
        "that of 48 (a season of its own needs below 0.5x))"
    )
    assert choose_season(y, half, error_ratio=0.75)[0] == 336
    assert choose_season(y)[0] == 48


def test_no_season_and_unconfirmed_calendar() -> None:
    rng = np.random.default_rng(5)
    noise = rng.normal(size=360)
    assert choose_season(noise) == (1, "no autocorrelation peak above 0.3: no season")
    assert detect_season(noise) == 1
    season, why = choose_season(noise, months(1990, 1, 360))
    assert season == 1
    assert why.startswith("the monthly calendar season 12 is not confirmed by the data")
    assert why.endswith("; no autocorrelation peak above 0.3: no season")

    # monthly times, but the data repeat every 7 rows: the data's own peak, with the reason
    t = np.arange(240)
    y = np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.3, t.size)
    season, why = choose_season(y, months(2000, 1, 240))
    assert season == 7
    assert "monthly calendar season 12 is not confirmed" in why
    assert "7 (the highest autocorrelation peak" in why

    # a calendar season that does not fit: daily data shorter than three years
    y = np.sin(2 * np.pi * np.arange(300) / 7) + rng.normal(0, 0.3, 300)
    days = [d[:10] for d in every(datetime(2022, 1, 1), timedelta(days=1), 300)]
    assert choose_season(y, days)[0] == 7

    assert choose_season(np.arange(5.0)) == (1, "too few rows (5) to detect a season: no season")
    assert choose_season(np.ones(50))[0] == 1  # constant: no ACF at all


def test_detect_season_keeps_max_lag() -> None:
    t = np.arange(360)
    y = np.sin(2 * np.pi * t / 24)
    assert detect_season(y) == 24
    assert detect_season(y, max_lag=20) == 1  # lag 24 is out of reach
