"""Your own measurements: a time series from CSV / TSV / JSONL (/ Parquet), cut into windows.

Reading (:func:`read_series`): the ``target`` column, optional ``features`` columns (multivariate
input; the target is always input column 0) and an optional ``time_column``. Every value must be
a finite number: a missing value, NaN, infinity or a non-number is one :class:`DataFileError`
naming the file, line and column. Timestamps (ISO dates/times such as ``2024-03-01``,
``2024-03``, ``2024-03-01T12:00``, or plain numbers such as years) must be distinct: a duplicate is
an error naming both lines. **Unsorted timestamps are sorted** (stable) with a warning naming the
first line out of order; the warning is also kept in the run's ``config.json``.

Splitting (:func:`chronological_split`) is by time: the test part is the last
``ceil(test_fraction * n)`` rows (:func:`test_rows`), validation the ``round(valid_fraction * n)``
rows before it, training the rest. With the default ``test_fraction = 0.2`` the test windows are
the **rolling protocol** of the data sets' anchors (:func:`rolling_origins`: every origin ``t``
from ``n - ceil(0.2 n)`` to ``n - horizon``, each forecasting ``y[t:t+horizon]`` from ``y[:t]``;
MAE over all origins and steps). Windows (:func:`make_windows`) take ``lookback``
rows as input and the next ``horizon`` target values as output, one every ``stride`` rows; a
window belongs to the part that holds *all its targets*, and its input may reach back into
earlier parts (those values are the known past, as at forecast time), so no target of a later
part is ever seen in training. The :class:`Scaler` (mean / standard deviation per column) is fitted
on the training rows only.

Baselines on the same test windows: naive (every step = the last observed value) and
seasonal-naive (each step = the value one season earlier). MASE divides a MAE by the in-sample
MAE of the one-season-back forecast on the training rows (Hyndman & Koehler 2006; one step back
when there is no season). The season is given or detected from the autocorrelation of the
linearly detrended training target, the time column's calendar proposing the candidates
(:func:`choose_season`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, field_validator

from lstmkit.data.text import DataFileError, iter_records
from lstmkit.errors import ConfigError, DataError


class SeriesSource(BaseModel):
    """``[data.series]`` of a recipe (``dataset = "series"``): where the series is and how it is
    cut. Paths are relative to the working directory.

    Attributes:
        train: the CSV / TSV / JSONL / Parquet file (split by time into train / valid / test).
        target: the column to forecast. features: more input columns (multivariate input).
        time_column: timestamps (sorted if needed, duplicates refused); None = file order.
        encoding: of a text file.
        lookback: input rows per window. horizon: values forecast at once. stride: rows between
            window starts.
        valid_fraction, test_fraction: the last shares of the rows (by time); the test rows are
            the rolling protocol's forecast origins (:func:`rolling_origins`).
        season: season length for seasonal naive and MASE; None = detected; 1 = none.
        scale: standardise every column with the training rows' mean and deviation.
        id_column: the column naming each series of a long-format file (None: ``unique_id``
            when the file has one, else the file is one series). The rest apply to such a
            panel (:mod:`lstmkit.tasks.panel`): protocol (``m4``: the last ``horizon`` points
            of every series are the test; ``rolling``: the rolling origins per series),
            quantiles (forecast, trained with the pinball loss; 0.5 is the point forecast),
            members (networks averaged), embedding_dim (a learned series embedding; 0 = none),
            baseline (``statsforecast``: AutoETS, AutoTheta, SeasonalNaive and Naive per
            series beside the model; ``none``: seasonal naive and naive only).
    """

    model_config = ConfigDict(extra="forbid")

    train: str
    target: str
    features: list[str] = Field(default_factory=list)
    time_column: str | None = None
    encoding: str = "utf-8"
    lookback: int = Field(24, ge=1, le=100_000)
    horizon: int = Field(1, ge=1, le=10_000)
    stride: int = Field(1, ge=1, le=100_000)
    valid_fraction: float = Field(0.15, ge=0.0, lt=1.0)
    test_fraction: float = Field(0.2, gt=0.0, lt=1.0)
    season: int | None = Field(None, ge=1, le=100_000)
    scale: bool = True
    id_column: str | None = None
    protocol: Literal["m4", "rolling"] = "m4"
    quantiles: list[float] = Field(default_factory=lambda: [0.1, 0.5, 0.9])
    members: int = Field(5, ge=1, le=64)
    embedding_dim: int = Field(0, ge=0, le=1024)
    baseline: Literal["statsforecast", "none"] = "statsforecast"

    @field_validator("quantiles")
    @classmethod
    def _quantiles(cls, qs: list[float]) -> list[float]:
        if not qs or any(not 0.0 < q < 1.0 for q in qs) or sorted(set(qs)) != qs or 0.5 not in qs:
            raise ValueError(
                f"quantiles must be ascending, distinct, in (0, 1) and hold 0.5, got {qs}"
            )
        return qs


@dataclass
class Series:
    """A multivariate series read from a file.

    Attributes:
        path: the file.
        columns: ``[target, *features]`` (``values[:, 0]`` is the target).
        values: float64 (N, F), in time order.
        times: the time column's text per row (time order), or None.
        lines: the file line (or row) of each value row.
        warnings: what was changed while reading (e.g. sorting).
    """

    path: Path
    columns: list[str]
    values: np.ndarray
    times: list[str] | None
    lines: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @property
    def target(self) -> np.ndarray:
        """The target column (N,)."""
        return self.values[:, 0]


def parse_time(text: str) -> float:
    """A sortable number for a timestamp: a plain number as is, an ISO date/time (``2024-03``,
    ``2024-03-01``, ``2024-03-01 12:00:00+09:00``) as POSIX seconds. ValueError otherwise."""
    s = text.strip()
    try:
        return float(s)
    except ValueError:
        pass
    if len(s) == 7 and s[4] == "-":  # YYYY-MM
        s += "-01"
    dt = datetime.fromisoformat(s)
    return dt.timestamp() if dt.tzinfo else (dt - datetime(1970, 1, 1)).total_seconds()


def _number(path: Path, where: str, line: int, column: str, value: Any) -> float:
    if value is None or (isinstance(value, str) and not value.strip()):
        raise DataFileError(
            f"{path}: {where} {line}, column {column!r}: the value is missing; fill it in or drop "
            "the row (the forecaster needs every value)"
        )
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise DataFileError(
            f"{path}: {where} {line}, column {column!r}: {value!r} is not a number"
        ) from None
    if not math.isfinite(x):
        kind = "NaN" if x != x else "infinite"
        raise DataFileError(
            f"{path}: {where} {line}, column {column!r}: the value is {kind} ({value!r}); the "
            "forecaster needs finite numbers: fill it in or drop the row"
        )
    return x


def time_key(path: Path, where: str, line: int, column: str, raw: Any) -> tuple[float, str]:
    """``(sortable key, stripped text)`` of one time cell (:func:`parse_time`); a cell that is
    not a time is one DataFileError naming the file, line and column."""
    text = "" if raw is None else str(raw)
    try:
        return parse_time(text), text.strip()
    except ValueError:
        raise DataFileError(
            f"{path}: {where} {line}, column {column!r}: {text!r} is not a time; "
            "use ISO dates such as 2024-03-01, 2024-03 or 2024-03-01T12:00, or numbers"
        ) from None


def read_series(
    path: str | Path,
    target: str,
    features: list[str] | tuple[str, ...] = (),
    time_column: str | None = None,
    *,
    encoding: str = "utf-8",
) -> Series:
    """Read a series (see the module docstring for the rules and errors)."""
    path = Path(path)
    features = [f for f in features if f]
    columns = [target, *[f for f in features if f != target]]
    if len(set(columns)) != len(columns):
        raise DataFileError(f"{path}: a feature column is named twice in {columns}")
    if time_column is not None and time_column in columns:
        raise DataFileError(
            f"{path}: the time column {time_column!r} cannot also be the target or a feature"
        )
    wanted = columns + ([time_column] if time_column else [])
    where, records = iter_records(path, wanted, encoding)
    rows: list[list[float]] = []
    lines: list[int] = []
    times: list[str] = []
    keys: list[float] = []
    for line, rec in records:
        for col in wanted:
            if col not in rec:
                raise DataFileError(f"{path}: {where} {line}: no {col!r} key")
        rows.append([_number(path, where, line, c, rec[c]) for c in columns])
        lines.append(line)
        if time_column:
            stamp, text = time_key(path, where, line, time_column, rec[time_column])
            keys.append(stamp)
            times.append(text)
    if not rows:
        raise DataFileError(f"{path} has no rows")
    values = np.asarray(rows, dtype=np.float64)
    line_arr = np.asarray(lines, dtype=np.int64)
    warnings: list[str] = []
    if time_column:
        key = np.asarray(keys)
        order = np.argsort(key, kind="stable")
        sorted_key = key[order]
        dup = np.flatnonzero(np.diff(sorted_key) == 0)
        if dup.size:
            a, b = sorted((int(line_arr[order[dup[0]]]), int(line_arr[order[dup[0] + 1]])))
            raise DataFileError(
                f"{path}: {where}s {a} and {b}, column {time_column!r}: the same time "
                f"{times[order[dup[0]]]!r} twice; keep one row per time (aggregate duplicates first)"
            )
        back = np.flatnonzero(np.diff(key) < 0)
        if back.size:
            i = int(back[0]) + 1
            warnings.append(
                f"{path}: {where} {int(line_arr[i])}: time {times[i]!r} comes before the row "
                f"above it ({times[i - 1]!r}); the rows were sorted by {time_column!r}"
            )
            values, line_arr = values[order], line_arr[order]
            times = [times[i] for i in order]
    return Series(path, columns, values, times if time_column else None, line_arr, warnings)


def test_rows(n: int, fraction: float) -> int:
    """Rows of the test part: ``ceil(fraction * n)`` (the anchors' protocol; 0.2 of 144 rows is
    29), computed so that an exact product (0.1 * 100) is not rounded up by float error."""
    return math.ceil(round(fraction * n, 9))


def rolling_origins(n: int, horizon: int, fraction: float = 0.2) -> np.ndarray:
    """The rolling protocol's forecast origins: every ``t`` from ``n - ceil(fraction * n)`` to
    ``n - horizon``; origin ``t`` forecasts ``y[t:t+horizon]`` from ``y[:t]``. With
    ``fraction = 0.2`` this reproduces the naive and seasonal-naive anchors of
    ``$LSTMKIT_DATA/README.md`` (airpassengers 81.77 / 46.77, wineind 5,636 / 1,823, taylor
    5,516 / 565.2, msft 0.670). The forecast task's test windows are these origins."""
    return np.arange(n - test_rows(n, fraction), n - horizon + 1, dtype=np.int64)


def chronological_split(n: int, valid_fraction: float, test_fraction: float) -> tuple[int, int]:
    """``(train_end, valid_end)``: rows ``[0, train_end)`` train, ``[train_end, valid_end)``
    validation, ``[valid_end, n)`` test; ``valid_end = n - test_rows(n, test_fraction)``, the
    first origin of :func:`rolling_origins`."""
    if not (0.0 <= valid_fraction < 1 and 0.0 <= test_fraction < 1):
        raise ConfigError("valid and test fractions must be in [0, 1)")
    if valid_fraction + test_fraction >= 1.0:
        raise ConfigError(
            f"valid_fraction + test_fraction must be < 1, got {valid_fraction + test_fraction}"
        )
    n_test = test_rows(n, test_fraction)
    n_valid = round(n * valid_fraction)
    return n - n_valid - n_test, n - n_test


def window_origins(start: int, end: int, lookback: int, horizon: int, stride: int) -> np.ndarray:
    """Forecast origins ``t`` (first target row) of the windows whose targets ``[t, t+horizon)``
    all lie in ``[start, end)`` and whose input ``[t-lookback, t)`` starts at row >= 0, every
    ``stride`` rows from the first one."""
    first = max(start, lookback)
    last = end - horizon
    if last < first:
        return np.empty(0, dtype=np.int64)
    return np.arange(first, last + 1, stride, dtype=np.int64)


def make_windows(
    values: np.ndarray, origins: np.ndarray, lookback: int, horizon: int
) -> tuple[np.ndarray, np.ndarray]:
    """Inputs ``(n, lookback, F)`` = ``values[t-lookback:t]`` and targets ``(n, horizon)`` =
    ``values[t:t+horizon, 0]`` for each origin ``t`` (float32 copies)."""
    if values.ndim != 2:
        raise ValueError(f"values must be (N, F), got shape {values.shape}")
    idx_in = origins[:, None] + np.arange(-lookback, 0)[None, :]
    idx_out = origins[:, None] + np.arange(horizon)[None, :]
    return values[idx_in].astype(np.float32), values[idx_out, 0].astype(np.float32)


@dataclass
class Scaler:
    """Per-column standardisation ``(x - mean) / std``, fitted on the training rows only.
    A column that is constant there gets std 1 (it is only shifted) and a warning."""

    mean: np.ndarray
    std: np.ndarray
    warnings: list[str] = field(default_factory=list)

    @classmethod
    def fit(cls, values: np.ndarray, columns: list[str]) -> Scaler:
        """Mean and (population) standard deviation of each column of ``values``."""
        mean = values.mean(0)
        std = values.std(0)
        warnings = []
        for j, s in enumerate(std):
            if not s > 1e-12 * max(1.0, abs(float(mean[j]))):
                warnings.append(
                    f"column {columns[j]!r} is constant ({mean[j]:g}) in the training part; it "
                    "carries no information there"
                )
                std[j] = 1.0
        return cls(mean, std, warnings)

    def transform(self, values: np.ndarray) -> np.ndarray:
        """Scaled copy of ``values`` (N, F)."""
        return (values - self.mean) / self.std

    def inverse_target(self, y: np.ndarray) -> np.ndarray:
        """Target values (any shape) back to the original scale."""
        return y * self.std[0] + self.mean[0]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return {"mean": self.mean.tolist(), "std": self.std.tolist()}

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Scaler:
        """Inverse of :meth:`to_dict`."""
        return cls(np.asarray(d["mean"], dtype=np.float64), np.asarray(d["std"], dtype=np.float64))


def autocorrelation(y: np.ndarray, max_lag: int) -> np.ndarray:
    """ACF of ``y`` at lags 0..max_lag (biased estimator, as statsmodels' ``acf``)."""
    z = y - y.mean()
    denom = float(z @ z)
    if denom == 0.0:
        return np.zeros(max_lag + 1)
    n = len(z)
    return np.array([float(z[: n - k] @ z[k:]) / denom for k in range(max_lag + 1)])


@dataclass(frozen=True)
class Frequency:
    """The spacing of a time column (:func:`infer_frequency`).

    Attributes:
        name: ``monthly``, ``quarterly``, ``half-yearly``, ``yearly``, ``weekly``, ``daily``,
            ``business-daily``, ``hourly``, ``half-hourly``, ``quarter-hourly``, ``minutely``, ...,
            ``irregular``, ``numbers`` (plain numbers) or ``rows`` (no time column).
        candidates: the calendar seasons in rows, shortest first: (12,) monthly, (4,) quarterly,
            (2,) half-yearly, (52,) weekly, (7, 365) daily, (5,) business-daily, and for a step
            that divides a day the day and the week, e.g. (24, 168) hourly, (48, 336)
            half-hourly; () when the calendar proposes none.
    """

    name: str
    candidates: tuple[int, ...]


_DAY = 86400.0
_MONTHS = (
    (1, "monthly", (12,)),
    (3, "quarterly", (4,)),
    (6, "half-yearly", (2,)),
    (12, "yearly", ()),
)
_SUBDAILY = {
    60: "minutely",
    300: "5-minutely",
    600: "10-minutely",
    900: "quarter-hourly",
    1800: "half-hourly",
    3600: "hourly",
    7200: "2-hourly",
    10800: "3-hourly",
    21600: "6-hourly",
    43200: "12-hourly",
}
_REGULAR = 0.9  # share of the gaps that must be one step for a frequency to be named


def _datetime(text: str) -> datetime:
    s = text.strip()
    if len(s) == 7 and s[4] == "-":  # YYYY-MM
        s += "-01"
    return datetime.fromisoformat(s)


def infer_frequency(times: list[str] | None) -> Frequency:
    """The frequency of a time column (its text per row, as :func:`parse_time` reads it).

    The median gap between consecutive times (sorted) decides; at least 90% of the gaps must be
    that one step, else the times are ``irregular``. About one, three, six or twelve months
    (calendar months, so a quarter may start in any month and month ends count) are monthly,
    quarterly, half-yearly or yearly; 7 days weekly; 1 day daily, or ``business-daily`` (season
    5) when no time falls on a weekend and the gaps are whole days (weekends, holidays); a step
    that divides a day (30 minutes, 1 hour, ...) proposes the day and the week. Plain numbers
    (years, row numbers) are ``numbers`` without candidates, None (no time column) ``rows``.
    """
    if times is None:
        return Frequency("rows", ())
    texts = [str(t).strip() for t in times]
    if len(texts) < 2:
        return Frequency("irregular", ())
    try:
        [float(t) for t in texts]
        return Frequency("numbers", ())
    except ValueError:
        pass
    try:
        stamps = [_datetime(t) for t in texts]
        secs = np.array([parse_time(t) for t in texts])
    except (TypeError, ValueError):  # mixed numbers and dates, or not a time
        return Frequency("irregular", ())
    order = np.argsort(secs, kind="stable")
    secs = secs[order]
    stamps = [stamps[i] for i in order]
    gaps = np.diff(secs)
    keep = gaps > 0
    gaps = gaps[keep]
    if gaps.size == 0:
        return Frequency("irregular", ())
    med = float(np.median(gaps))
    months = np.array([d.year * 12 + d.month for d in stamps])
    month_gaps = np.diff(months)[keep]
    for step, name, candidates in _MONTHS:
        if 27 * step * _DAY <= med <= 32 * step * _DAY:
            if np.mean(month_gaps == step) >= _REGULAR:
                return Frequency(name, candidates)
            return Frequency("irregular", ())

    def share(step: float) -> float:
        return float(np.mean(np.abs(gaps - step) <= 0.05 * step))

    if abs(med - 7 * _DAY) <= 0.05 * 7 * _DAY:
        return (
            Frequency("weekly", (52,))
            if share(7 * _DAY) >= _REGULAR
            else Frequency("irregular", ())
        )
    if abs(med - _DAY) <= 0.05 * _DAY:
        if share(_DAY) >= _REGULAR:
            return Frequency("daily", (7, 365))
        days = gaps / _DAY
        whole = np.abs(days - np.round(days)) <= 0.05
        if all(d.weekday() < 5 for d in stamps) and np.mean(whole & (days < 6)) >= _REGULAR:
            return Frequency("business-daily", (5,))
        return Frequency("irregular", ())
    for step_s, name in _SUBDAILY.items():
        if abs(med - step_s) <= 0.05 * step_s:
            if share(step_s) < _REGULAR:
                return Frequency("irregular", ())
            per_day = int(_DAY) // step_s
            return Frequency(name, (per_day, 7 * per_day))
    return Frequency("irregular", ())


def _detrended(y: np.ndarray) -> np.ndarray:
    t = np.arange(len(y), dtype=np.float64)
    slope, intercept = np.polyfit(t, y, 1)
    return np.asarray(y - (slope * t + intercept), dtype=np.float64)


def _season_error(r: np.ndarray, m: int) -> float:
    """Mean absolute error of the m-back forecast of the detrended training rows."""
    return float(np.mean(np.abs(r[m:] - r[:-m])))


def _season(
    y: np.ndarray,
    times: list[str] | None,
    threshold: float,
    ratio: float,
    max_lag: int | None,
    error_ratio: float = 0.5,
) -> tuple[int, str]:
    y = np.asarray(y, dtype=np.float64)
    n = len(y)
    if n < 8:
        return 1, f"too few rows ({n}) to detect a season: no season"
    max_lag = min(max_lag or n // 3, n - 2)
    if max_lag < 3:
        return 1, f"too few rows ({n}) to detect a season: no season"
    r = _detrended(y)
    acf = autocorrelation(r, max_lag + 1)
    peaks = [
        k
        for k in range(2, max_lag + 1)
        if acf[k] > acf[k - 1] and acf[k] >= acf[k + 1] and acf[k] > threshold
    ]
    freq = infer_frequency(times) if times is not None else Frequency("rows", ())
    notes: list[str] = []
    confirmed: list[tuple[int, int]] = []  # (calendar season, lag of its peak)
    for m in freq.candidates:
        if m > max_lag:
            notes.append(
                f"the {freq.name} calendar season {m} needs {3 * m} training rows ({n} here)"
            )
            continue
        near = [k for k in peaks if abs(k - m) <= (1 if m >= 24 else 0)]
        if near:
            confirmed.append((m, max(near, key=lambda k: acf[k])))
        else:
            notes.append(
                f"the {freq.name} calendar season {m} is not confirmed by the data "
                f"(autocorrelation {acf[m]:.2f} at lag {m}, not a local peak above {threshold:g})"
            )
    if confirmed:
        m, lag = confirmed[0]
        why = f"autocorrelation {acf[lag]:.2f} at lag {lag}"
        for big, big_lag in confirmed[1:]:
            small_err, big_err = _season_error(r, m), _season_error(r, big)
            if big_err < error_ratio * small_err:
                why = (
                    f"autocorrelation {acf[big_lag]:.2f} at lag {big_lag}; one season back it "
                    f"forecasts the training rows with {1 - big_err / small_err:.0%} lower mean "
                    f"absolute error than {m} back (autocorrelation {acf[lag]:.2f})"
                )
                m, lag = big, big_lag
            else:
                why += (
                    f"; {big} is confirmed too (autocorrelation {acf[big_lag]:.2f}) but "
                    f"its one-season-back error on the training rows is {big_err / small_err:.2f}x "
                    f"that of {m} (a season of its own needs below {error_ratio:g}x)"
                )
        return m, f"{m} ({freq.name} calendar season, {why})"
    prefix = "; ".join(notes) + "; " if notes else ""
    if not peaks:
        return 1, f"{prefix}no autocorrelation peak above {threshold:g}: no season"
    best = max(peaks, key=lambda k: acf[k])
    chosen = min(k for k in peaks if acf[k] >= ratio * acf[best])
    small_err, big_err = _season_error(r, chosen), _season_error(r, best)
    if chosen != best and big_err < error_ratio * small_err:
        return best, (
            f"{prefix}{best} (the highest autocorrelation peak, {acf[best]:.2f} at lag {best}: one "
            f"season back it forecasts the training rows with {1 - big_err / small_err:.0%} lower "
            f"mean absolute error than the smaller peak {chosen} ({acf[chosen]:.2f}), so it is a "
            "season of its own)"
        )
    if chosen == best:
        return (
            best,
            f"{prefix}{best} (the highest autocorrelation peak, {acf[best]:.2f} at lag {best})",
        )
    return chosen, (
        f"{prefix}{chosen} (the smallest autocorrelation peak within {ratio:.0%} of the highest: "
        f"{acf[chosen]:.2f} at lag {chosen}, the highest {acf[best]:.2f} at lag {best})"
    )


def choose_season(
    y: np.ndarray,
    times: list[str] | None = None,
    *,
    threshold: float = 0.3,
    ratio: float = 0.9,
    error_ratio: float = 0.5,
) -> tuple[int, str]:
    """``(season, reason in words)`` for a training target ``y`` (1 = no season); the caller
    logs the reason. ``times``: the time column's text (:func:`infer_frequency`; only the
    spacing matters, so the whole column may be given).

    The autocorrelation (ACF) of the linearly detrended ``y`` up to lag ``len(y) // 3`` (three
    seasons must fit); a *peak* is a local maximum at a lag >= 2 above ``threshold``.

    1. Calendar: the frequency of ``times`` proposes candidates (monthly 12, daily 7 and 365,
       half-hourly 48 and 336, ...). A candidate is *confirmed* by a peak at it (or one lag
       beside it, for candidates >= 24). The shortest confirmed candidate is the season; a
       longer confirmed one (the week of half-hourly data) replaces it only when its
       one-season-back forecast of the detrended training rows has a mean absolute error below
       ``error_ratio`` x the shorter one's: a real weekly season forecasts far better than the
       day (taylor: 72% lower error), a multiple that merely ties with the day does not.
    2. Otherwise (no candidates, none fitting, none confirmed): the smallest peak whose ACF is
       at least ``ratio`` x the highest peak's, so a multiple of the period that wins by noise
       loses to the period itself; the highest peak is kept instead only when its
       one-season-back error is below ``error_ratio`` x the smaller one's (the same test as for
       the calendar: taylor, whose time column is row numbers, keeps 336). The error test is
       strict (half the error) because the in-sample error under a persistent noise varies a
       lot between lags (a season-12 series with AR(0.8) noise: 27% lower at lag 60 than 12).
    3. No peak: 1.
    """
    return _season(y, times, threshold, ratio, None, error_ratio)


def detect_season(y: np.ndarray, max_lag: int | None = None, threshold: float = 0.3) -> int:
    """Season length of ``y`` from its data alone: :func:`choose_season` without times (the
    smallest autocorrelation peak within 90% of the highest, see there); 1 when there is none.

    ``max_lag`` defaults to ``len(y) // 3`` (at least three seasons must fit).
    """
    return _season(y, None, threshold, 0.9, max_lag)[0]


def grows_with_level(y: np.ndarray, season: int) -> bool:
    """Whether ``y`` is strictly positive and its changes grow in proportion to its level: the
    slope of log(mean |y_t - y_{t-m}|) on log(mean level) over consecutive blocks of two seasons
    (50 rows without a season) is above 0.5 (at least three blocks). Then the forecaster works on
    ``log y`` and Holt-Winters takes a multiplicative season (a multiplicative series is
    additive in logs)."""
    if len(y) == 0 or float(np.min(y)) <= 0.0:
        return False
    m = max(1, season)
    block = 2 * m if m > 1 else 50
    d = np.abs(y[m:] - y[:-m])
    level = y[m:]
    blocks = len(d) // block
    if blocks < 3:
        return False
    a = d[: blocks * block].reshape(blocks, block).mean(1)
    b = level[: blocks * block].reshape(blocks, block).mean(1)
    if float(np.ptp(np.log(b))) < 1e-9 or float(np.min(a)) <= 0.0:
        return False
    return bool(np.polyfit(np.log(b), np.log(a), 1)[0] > 0.5)


def naive_forecast(y: np.ndarray, origins: np.ndarray, horizon: int) -> np.ndarray:
    """(n, horizon): every step = ``y[t-1]``, the last value before the origin."""
    return np.repeat(y[origins - 1][:, None], horizon, axis=1)


def seasonal_naive_forecast(
    y: np.ndarray, origins: np.ndarray, horizon: int, season: int
) -> np.ndarray:
    """(n, horizon): step ``h`` = ``y[t + h - m * (h // m + 1)]``, the value one season before
    (the last observed season repeated). Needs ``t >= m`` for every origin."""
    h = np.arange(horizon)
    idx = origins[:, None] + h[None, :] - season * (h // season + 1)[None, :]
    if (idx < 0).any():
        raise DataError(
            f"season length {season} is longer than the history before the first forecast "
            f"origin {int(origins.min())}; use a shorter season"
        )
    return y[idx]


def mase_scale(y_train: np.ndarray, season: int) -> float:
    """In-sample MAE of the one-season-back forecast on the training rows (MASE's denominator)."""
    m = max(1, season)
    if len(y_train) <= m:
        raise DataError(
            f"the training part ({len(y_train)} rows) is not longer than the season {m}"
        )
    scale = float(np.mean(np.abs(y_train[m:] - y_train[:-m])))
    if scale == 0.0:
        raise DataError(
            "the training target never changes over one season: MASE is undefined (scale 0)"
        )
    return scale


def forecast_errors(y_true: np.ndarray, y_pred: np.ndarray, scale: float) -> dict[str, float]:
    """MAE, RMSE and MASE (MAE / ``scale``) over every window and step."""
    err = np.asarray(y_pred, dtype=np.float64) - np.asarray(y_true, dtype=np.float64)
    mae = float(np.mean(np.abs(err)))
    return {"mae": mae, "rmse": float(np.sqrt(np.mean(err**2))), "mase": mae / scale}


def future_times(times: list[str], horizon: int) -> list[str] | None:
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
