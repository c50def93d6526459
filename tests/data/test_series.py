"""lstmkit.data.series: reading a series (errors naming file/line/column), windows, chronological
split without leakage, scaling on the training part only, baselines, MASE, season detection."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.series import (
    Scaler,
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


def _write(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def test_read_multivariate_with_times(tmp_path: Path) -> None:
    p = _write(tmp_path / "s.csv", "date,y,temp,other\n2024-01,1.5,10,x\n2024-02,2,11,y\n")
    s = read_series(p, "y", ["temp"], "date")
    assert s.columns == ["y", "temp"]
    np.testing.assert_array_equal(s.values, [[1.5, 10.0], [2.0, 11.0]])
    assert s.times == ["2024-01", "2024-02"] and s.warnings == []
    assert s.lines.tolist() == [2, 3]


@pytest.mark.parametrize(
    "cell,expected",
    [
        ("nan", "line 3, column 'y': the value is NaN"),
        ("inf", "line 3, column 'y': the value is infinite"),
        ("-Infinity", "line 3, column 'y': the value is infinite"),
        ("12,5", "has 3 fields"),  # an unquoted decimal comma splits the row
        ('"12,5"', "line 3, column 'y': '12,5' is not a number"),
        ("abc", "line 3, column 'y': 'abc' is not a number"),
        ("", "line 3, column 'y': the value is missing"),
    ],
)
def test_bad_values_name_the_line_and_column(tmp_path: Path, cell: str, expected: str) -> None:
    p = _write(tmp_path / "s.csv", f"t,y\n1,1.0\n2,{cell}\n3,2.0\n")
    with pytest.raises(DataFileError) as info:
        read_series(p, "y", time_column="t")
    assert str(p) in str(info.value) and expected in str(info.value)


def test_duplicate_times_are_refused_unsorted_times_are_sorted_with_a_warning(
    tmp_path: Path,
) -> None:
    p = _write(tmp_path / "d.csv", "t,y\n2024-01-01,1\n2024-01-02,2\n2024-01-01,3\n")
    with pytest.raises(
        DataFileError, match=r"lines 2 and 4, column 't': the same time '2024-01-01'"
    ):
        read_series(p, "y", time_column="t")
    p = _write(tmp_path / "u.csv", "t,y\n2024-01-03,3\n2024-01-01,1\n2024-01-02,2\n")
    s = read_series(p, "y", time_column="t")
    np.testing.assert_array_equal(s.target, [1.0, 2.0, 3.0])
    assert s.times == ["2024-01-01", "2024-01-02", "2024-01-03"]
    assert s.lines.tolist() == [3, 4, 2]
    assert len(s.warnings) == 1 and "line 3: time '2024-01-01' comes before" in s.warnings[0]
    p = _write(tmp_path / "bad.csv", "t,y\n2024-01-01,1\nyesterday,2\n")
    with pytest.raises(DataFileError, match=r"line 3, column 't': 'yesterday' is not a time"):
        read_series(p, "y", time_column="t")
    with pytest.raises(DataFileError, match=r"line 1: no column 'temp' in the header"):
        read_series(p, "y", ["temp"], time_column="t")


def test_windows_and_chronological_split_have_no_leakage() -> None:
    n, lookback, horizon = 100, 8, 3
    values = np.stack([np.arange(n, dtype=np.float64), -np.arange(n, dtype=np.float64)], 1)
    train_end, valid_end = chronological_split(n, 0.2, 0.1)
    assert (train_end, valid_end) == (70, 90)
    parts = {
        "train": window_origins(0, train_end, lookback, horizon, 1),
        "valid": window_origins(train_end, valid_end, lookback, horizon, 1),
        "test": window_origins(valid_end, n, lookback, horizon, 1),
    }
    targets = {}
    for name, o in parts.items():
        x, y = make_windows(values, o, lookback, horizon)
        assert x.shape == (len(o), lookback, 2) and y.shape == (len(o), horizon)
        # the target column is the row index: inputs are the lookback rows right before t
        np.testing.assert_array_equal(x[:, :, 0], o[:, None] + np.arange(-lookback, 0))
        np.testing.assert_array_equal(x[:, :, 1], -x[:, :, 0])
        np.testing.assert_array_equal(y, o[:, None] + np.arange(horizon))
        targets[name] = y
    assert targets["train"].max() < train_end <= targets["valid"].min()
    assert targets["valid"].max() < valid_end <= targets["test"].min()
    assert targets["test"].max() == n - 1
    assert [len(o) for o in parts.values()] == [70 - 8 - 3 + 1, 20 - 3 + 1, 10 - 3 + 1]
    assert window_origins(0, 70, lookback, horizon, 5).tolist() == list(range(8, 68, 5))
    assert window_origins(0, 10, 8, 3, 1).size == 0


def test_scaler_is_fitted_on_the_training_rows_only() -> None:
    rng = np.random.default_rng(0)
    values = rng.normal(5.0, 2.0, size=(200, 2))
    train_end, _ = chronological_split(200, 0.15, 0.15)
    a = Scaler.fit(values[:train_end], ["y", "x"])
    changed = values.copy()
    changed[train_end:] *= 1000.0  # whatever comes after the training rows
    b = Scaler.fit(changed[:train_end], ["y", "x"])
    np.testing.assert_array_equal(a.mean, b.mean)
    np.testing.assert_allclose(a.mean, values[:train_end].mean(0))
    np.testing.assert_allclose(a.std, values[:train_end].std(0))
    z = a.transform(values[:train_end])
    np.testing.assert_allclose(z.mean(0), 0.0, atol=1e-12)
    np.testing.assert_allclose(a.inverse_target(z[:, 0]), values[:train_end, 0])
    const = Scaler.fit(np.ones((10, 1)) * 3.0, ["flag"])
    assert const.std.tolist() == [1.0] and "constant" in const.warnings[0]


@pytest.mark.parametrize(
    ("column", "constant"),
    [
        ([-1e-12, 1e-12], True),  # std 1e-12, exactly the threshold at mean 0: constant
        ([-1.5e-12, 1.5e-12], False),  # above it (the threshold is 1e-12 * max(1, |mean|))
        ([1e6 - 1e-9, 1e6 + 1e-9], True),  # std ~1e-9 at mean 1e6: below 1e-12 * 1e6
        ([1e6 - 1e-5, 1e6 + 1e-5], False),  # ~1e-5: above 1e-6
    ],
)
def test_a_constant_column_is_told_by_its_std_relative_to_its_mean(
    column: list[float], constant: bool
) -> None:
    values = np.array([column, [0.0, 1.0]]).T  # (2, 2): the column and a varying one
    scaler = Scaler.fit(values, ["c", "v"])
    assert scaler.std[1] == 0.5 and scaler.std[0] == (1.0 if constant else values[:, 0].std())
    assert scaler.warnings == (
        [
            f"column 'c' is constant ({values[:, 0].mean():g}) in the training part; it carries "
            "no information there"
        ]
        if constant
        else []
    )


def test_the_scaler_round_trips_through_json() -> None:
    scaler = Scaler.fit(np.array([[1.0, 10.0], [3.0, 30.0]]), ["y", "x"])
    saved = json.loads(json.dumps(scaler.to_dict()))
    assert saved == {"mean": [2.0, 20.0], "std": [1.0, 10.0]}
    back = Scaler.from_dict(saved)
    assert back.mean.dtype == back.std.dtype == np.float64
    ints = Scaler.from_dict({"mean": [2, 20], "std": [1, 10]})  # JSON integers read as floats
    assert ints.mean.dtype == ints.std.dtype == np.float64
    np.testing.assert_array_equal(back.mean, scaler.mean)
    np.testing.assert_array_equal(back.std, scaler.std)
    assert back.warnings == []


def test_baselines_and_mase_by_hand() -> None:
    y = np.array([1.0, 2, 3, 4, 5, 6, 7, 8, 9, 10])
    o = np.array([6, 7])
    np.testing.assert_array_equal(naive_forecast(y, o, 3), [[6, 6, 6], [7, 7, 7]])
    # season 2: step h takes the value at t + h - 2 * (h // 2 + 1)
    np.testing.assert_array_equal(seasonal_naive_forecast(y, o, 3, 2), [[5, 6, 5], [6, 7, 6]])
    with pytest.raises(ValueError, match="season length 8"):
        seasonal_naive_forecast(y, o, 3, 8)
    assert mase_scale(y, 1) == 1.0 and mase_scale(y, 3) == 3.0
    m = forecast_errors(np.array([[1.0, 2.0]]), np.array([[2.0, 4.0]]), 2.0)
    assert m == {"mae": 1.5, "rmse": pytest.approx(np.sqrt(2.5)), "mase": 0.75}
    with pytest.raises(ValueError, match="never changes"):
        mase_scale(np.ones(10), 1)


def test_detect_season() -> None:
    rng = np.random.default_rng(1)
    t = np.arange(360)
    monthly = 0.05 * t + 3 * np.sin(2 * np.pi * t / 12) + rng.normal(0, 0.5, t.size)
    assert detect_season(monthly) == 12
    weekly = np.sin(2 * np.pi * t / 7) + rng.normal(0, 0.3, t.size)
    assert detect_season(weekly) == 7
    assert detect_season(rng.normal(size=360)) == 1  # white noise: no season
