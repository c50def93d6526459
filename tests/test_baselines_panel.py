"""lstmkit.baselines.panel: statsforecast's models on a panel, M4's scores, the README anchors."""

from __future__ import annotations

import logging
import math
import os
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from lstmkit.baselines.panel import (
    LABELS,
    PANEL_METHODS,
    coverage,
    m4_scores,
    panel_forecasts,
)
from lstmkit.errors import BaselineError, MissingDependencyError

SEASON = [2.0, -1.0, 3.0, -4.0]  # a fixed additive season of period 4 (sums to 0)


def _panel() -> list[np.ndarray]:
    """Three series of period 4 and different lengths: an exact linear trend plus the fixed
    season (40 values), a noisy seasonal series (36) and a random walk (44)."""
    rng = np.random.default_rng(0)
    t = np.arange(40)
    exact = 10.0 + 0.5 * t + np.array(SEASON)[t % 4]
    noisy = 50.0 + np.tile([5.0, -2.0, 1.0, -4.0], 9) + rng.normal(0.0, 1.0, 36)
    walk = 20.0 + np.cumsum(rng.normal(0.0, 1.0, 44))
    return [exact, noisy, walk]


def test_naive_and_seasonal_naive_are_the_hand_computed_forecasts_from_every_origin() -> None:
    ys = _panel()
    origins = [np.array([20, 24, 28, 35]), np.array([16, 21, 31]), np.array([30, 33, 36, 37, 39])]
    f, info = panel_forecasts(ys, origins, 5, 4, methods=("seasonal_naive", "naive"))
    assert info["refit_every"] == 1 and info["failed"] == {}
    for i, (y, o) in enumerate(zip(ys, origins, strict=True)):
        assert f["naive"][i].shape == f["seasonal_naive"][i].shape == (len(o), 5)
        for j, t in enumerate(o):
            # naive: the last value; seasonal naive: y[t-4], y[t-3], y[t-2], y[t-1], y[t-4]
            np.testing.assert_array_equal(f["naive"][i][j], np.full(5, y[t - 1]))
            want = [y[t - 4], y[t - 3], y[t - 2], y[t - 1], y[t - 4]]
            np.testing.assert_array_equal(f["seasonal_naive"][i][j], want)
    # season 1: seasonal naive is naive, both keys kept
    f1, _ = panel_forecasts(ys, origins, 3, 1, methods=("seasonal_naive", "naive"))
    for i in range(3):
        np.testing.assert_array_equal(f1["seasonal_naive"][i], f1["naive"][i])
        np.testing.assert_array_equal(f1["naive"][i][:, 0], ys[i][origins[i] - 1])


def test_auto_ets_forecasts_an_exact_trend_plus_season_and_every_method_has_the_shapes() -> None:
    ys = _panel()
    origins = [np.array([24, 28, 32]), np.array([28]), np.array([30, 34])]
    f, info = panel_forecasts(ys, origins, 8, 4)
    assert set(f) == set(PANEL_METHODS) and info["failed"] == {}
    assert info["labels"] == LABELS and info["seconds"] > 0
    for m in PANEL_METHODS:
        assert [a.shape for a in f[m]] == [(3, 8), (1, 8), (2, 8)]
        assert all(np.isfinite(a).all() for a in f[m])
    exact = ys[0]
    for j, t in enumerate(origins[0]):
        truth = exact[t : t + 8]
        np.testing.assert_allclose(f["auto_ets"][0][j], truth, rtol=1e-3)
    # and the trend is what seasonal naive misses: 0.5 a step, 2 a season behind
    np.testing.assert_allclose(f["seasonal_naive"][0][0] - exact[24:32], [-2.0] * 4 + [-4.0] * 4)


def _long(ys: list[np.ndarray]) -> pd.DataFrame:
    """The long frame StatsForecast reads: integer ds 0..n-1 per series."""
    return pd.concat(
        [
            pd.DataFrame({"unique_id": f"s{i}", "ds": np.arange(len(y)), "y": y})
            for i, y in enumerate(ys)
        ]
    )


def test_the_same_forecasts_as_statsforecast_forecast_and_cross_validation() -> None:
    from statsforecast import StatsForecast
    from statsforecast.models import AutoETS, AutoTheta, Naive, SeasonalNaive

    ys = _panel()
    sf = StatsForecast(
        models=[
            AutoETS(season_length=4),
            AutoTheta(season_length=4),
            SeasonalNaive(season_length=4),
            Naive(),
        ],
        freq=1,
        n_jobs=1,
    )
    # one origin per series, n - 6 (the M4 protocol): StatsForecast.forecast on y[:n - 6]
    origins = [np.array([len(y) - 6]) for y in ys]
    ours, _ = panel_forecasts(ys, origins, 6, 4)
    theirs = sf.forecast(df=_long([y[:-6] for y in ys]), h=6)
    for i in range(3):
        got = theirs[theirs["unique_id"] == f"s{i}"]
        for m in PANEL_METHODS:
            np.testing.assert_allclose(ours[m][i][0], got[LABELS[m]].to_numpy(), rtol=1e-9)
    # four origins 3 apart ending at n - 6, refitted every 2: cross_validation(refit=2)
    for refit in (2, True):
        origins = [len(y) - 6 - 3 * np.arange(3, -1, -1) for y in ys]
        ours, info = panel_forecasts(ys, origins, 6, 4, refit_every=2 if refit == 2 else 1)
        assert info["refit_every"] == (2 if refit == 2 else 1)
        cv = sf.cross_validation(df=_long(ys), h=6, n_windows=4, step_size=3, refit=refit)
        for i in range(len(ys)):
            got = cv[cv["unique_id"] == f"s{i}"].sort_values(["cutoff", "ds"])
            assert sorted(set(got["cutoff"] + 1)) == origins[i].tolist()
            for m in PANEL_METHODS:
                want = got[LABELS[m]].to_numpy().reshape(4, 6)
                np.testing.assert_allclose(ours[m][i], want, rtol=1e-9)
    # refit every 2 differs from refit every origin for AutoETS on the noisy series (forward is
    # used between the fits, not a fresh fit)
    every1, _ = panel_forecasts(ys, origins, 6, 4, methods=("auto_ets",), refit_every=1)
    every2, _ = panel_forecasts(ys, origins, 6, 4, methods=("auto_ets",), refit_every=2)
    np.testing.assert_allclose(
        every1["auto_ets"][1][[0, 2]], every2["auto_ets"][1][[0, 2]], rtol=1e-9
    )
    assert not np.allclose(every1["auto_ets"][1][[1, 3]], every2["auto_ets"][1][[1, 3]])


def test_the_default_refit_is_every_ceil_origins_over_30() -> None:
    y = 10.0 + np.sin(np.arange(120))
    _, info = panel_forecasts([y, y[:50]], [np.arange(8, 71), np.arange(8, 10)], 1, 1, ("naive",))
    assert info["refit_every"] == math.ceil(63 / 30) == 3


def test_a_model_that_raises_or_gives_nan_falls_back_to_seasonal_naive_and_says_so(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    from statsforecast.models import AutoETS, AutoTheta

    real = AutoETS.forecast

    def ets_fails_at_origin_30(self: AutoETS, y: np.ndarray, h: int, **kw: object) -> dict:
        if len(y) == 30:
            raise RuntimeError("no convergence")
        return real(self, y=y, h=h, **kw)

    def theta_nan(self: AutoTheta, y: np.ndarray, h: int, **kw: object) -> dict:
        return {"mean": np.full(h, np.nan)}

    monkeypatch.setattr(AutoETS, "forecast", ets_fails_at_origin_30)
    monkeypatch.setattr(AutoTheta, "forecast", theta_nan)
    ys = _panel()
    origins = [np.array([24, 32]), np.array([20, 30]), np.array([36])]
    with caplog.at_level(logging.WARNING, logger="lstmkit.baselines.panel"):
        f, info = panel_forecasts(ys, origins, 4, 4, methods=("auto_ets", "auto_theta"))
    assert info["failed"]["auto_ets"] == {1: "RuntimeError: no convergence"}
    assert sorted(info["failed"]["auto_theta"]) == [0, 1, 2]
    assert "non-finite" in info["failed"]["auto_theta"][0]
    # the failed series is seasonal naive at every origin, the others are the model's
    y = ys[1]
    np.testing.assert_array_equal(f["auto_ets"][1], [y[16:20], y[26:30]])
    np.testing.assert_allclose(f["auto_ets"][0], [ys[0][24:28], ys[0][32:36]], rtol=1e-3)
    np.testing.assert_array_equal(f["auto_theta"][2], [ys[2][32:36]])
    warned = [r.getMessage() for r in caplog.records]
    assert len(warned) == 2
    assert "AutoETS failed on 1 of 3 series" in warned[0] and "seasonal-naive" in warned[0]
    assert "AutoTheta failed on 3 of 3 series" in warned[1]


def test_m4_scores_by_hand() -> None:
    # series 0: season 2, train 1 3 2 5 4 -> scale mean(|2-1|, |5-3|, |4-2|) = 5/3
    #   truth 6 4, forecast 5 6: MAE 1.5 -> MASE 0.9; sMAPE (200*1/11 + 200*2/10) / 2 = 29.0909
    # series 1: train 0 2 0 4 -> scale mean(|0-0|, |4-2|) = 1; two origins of two steps:
    #   truth [[0, 2], [3, 1]], forecast [[0, 1], [3, 3]]: MAE (0+1+0+2)/4 = 0.75 -> MASE 0.75;
    #   sMAPE (0 [0/0] + 200/3 + 0 + 200*2/4) / 4 = (66.6667 + 100) / 4 = 41.6667
    s = m4_scores(
        truth=[np.array([6.0, 4.0]), np.array([[0.0, 2.0], [3.0, 1.0]])],
        preds=[np.array([5.0, 6.0]), np.array([[0.0, 1.0], [3.0, 3.0]])],
        train=[np.array([1.0, 3.0, 2.0, 5.0, 4.0]), np.array([0.0, 2.0, 0.0, 4.0])],
        season=2,
    )
    assert s["mase_per_series"] == pytest.approx([0.9, 0.75], abs=1e-12)
    assert s["smape_per_series"] == pytest.approx([29.090909, 41.666667], abs=1e-5)
    assert s["mase"] == pytest.approx(0.825, abs=1e-12)
    assert s["smape"] == pytest.approx(35.378788, abs=1e-5)
    # season 1: the scale is the lag-1 MAE, mean(|3-1|, |2-3|, |5-2|, |4-5|) = 7/4
    s1 = m4_scores([np.array([6.0, 4.0])], [np.array([5.0, 6.0])], [np.array([1.0, 3, 2, 5, 4])], 1)
    assert s1["mase"] == pytest.approx(1.5 / 1.75, abs=1e-12)


def test_m4_scores_refuses_a_series_without_a_scale_and_bad_shapes() -> None:
    ok = np.array([1.0, 2.0, 3.0, 4.0, 5.0, 6.0])
    flat = np.array([5.0, 5.0, 5.0, 5.0, 5.0, 5.0])  # constant: no seasonal-naive error
    truth, preds = [np.ones(2), np.ones(2)], [np.ones(2), np.ones(2)]
    with pytest.raises(BaselineError, match=r"series 1: MASE is undefined"):
        m4_scores(truth, preds, [ok, flat], 4)
    with pytest.raises(BaselineError, match=r"series 1 \('T2'\).*MASE is undefined"):
        m4_scores(truth, preds, [ok, flat], 4, ids=["T1", "T2"])
    # a season that repeats exactly has no scale either, though it is not constant
    with pytest.raises(BaselineError, match="series 0"):
        m4_scores([np.ones(2)], [np.ones(2)], [np.array([1.0, 2.0, 1.0, 2.0, 1.0])], 2)
    with pytest.raises(BaselineError, match=r"series 0: .*same non-empty shape.*\(2,\) and \(3,\)"):
        m4_scores([np.ones(2)], [np.ones(3)], [ok], 1)


def test_coverage() -> None:
    truth = [np.array([1.0, 2.0, 3.0, 4.0]), np.array([[0.0, 10.0]])]
    lower = [np.array([0.0, 2.5, 3.0, 0.0]), np.array([[-1.0, 0.0]])]
    upper = [np.array([2.0, 3.0, 3.0, 3.0]), np.array([[1.0, 9.0]])]
    # inside: 1 (yes), 2 (below 2.5), 3 (both ends), 4 (above 3), 0 (yes), 10 (above 9)
    assert coverage(truth, lower, upper) == pytest.approx(3 / 6)
    with pytest.raises(BaselineError, match="series 1"):
        coverage(truth, lower, [upper[0], np.ones(3)])


@pytest.mark.parametrize(
    ("origins", "horizon", "season", "match"),
    [
        ([[8], [3], [8]], 4, 4, r"series 1: origin 3 .*at least 4"),
        ([[8], [8], [1]], 4, 1, r"series 2: origin 1 .*at least 2"),
        ([[8], [8], [41]], 4, 4, r"series 2: origin 41 \+ horizon 4 .*the last origin can be 40"),
        ([[8, 37], [8], [8]], 4, 4, r"series 0: origin 37 \+ horizon 4"),
        ([[8], [12, 10], [8]], 4, 4, r"origins of series 1 must be ascending"),
        ([[8], [8], [8]], 0, 4, r"horizon must be at least 1, got 0"),
        ([[8], [8], [8]], 4, 0, r"season must be at least 1 .*got 0"),
    ],
)
def test_bad_origins_horizon_or_season_name_the_series_and_origin(
    origins: list[list[int]], horizon: int, season: int, match: str
) -> None:
    ys = _panel()  # lengths 40, 36, 44
    with pytest.raises(BaselineError, match=match):
        panel_forecasts(ys, [np.array(o) for o in origins], horizon, season)


def test_bad_methods_and_a_hole_in_the_history() -> None:
    ys = _panel()
    o = [np.array([20])] * 3
    with pytest.raises(BaselineError, match=r"some of auto_ets, .*got \['arima'\]"):
        panel_forecasts(ys, o, 4, 4, methods=("arima",))
    ys[2] = ys[2].copy()
    ys[2][7] = np.nan
    with pytest.raises(
        BaselineError, match=r"series 2 has a non-finite value at position 7.*--baseline none"
    ):
        panel_forecasts(ys, o, 4, 4)


def test_without_statsforecast_the_error_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "statsforecast", None)
    with pytest.raises(MissingDependencyError, match=r"statsforecast.*--baseline none"):
        panel_forecasts(_panel(), [np.array([20])] * 3, 4, 4)


# the README's anchors: M4 protocol (the last 8 quarters of every series), season 4, the mean
# over the series of MASE and sMAPE (%), printed to 3 and 2 decimals
ANCHORS = {
    "visnights": {
        "auto_ets": (1.156, 13.82),
        "auto_theta": (1.176, 14.14),
        "seasonal_naive": (1.127, 13.47),
        "naive": (1.703, 18.68),
    },
    "prison": {
        "auto_ets": (2.299, 18.91),
        "auto_theta": (2.214, 18.14),
        "seasonal_naive": (2.566, 20.88),
        "naive": (2.310, 18.28),
    },
    "accommodation": {
        "auto_ets": (2.112, 9.59),
        "auto_theta": (2.031, 9.26),
        "seasonal_naive": (2.807, 12.79),
        "naive": (4.528, 20.80),
    },
}


@pytest.mark.parametrize("name", sorted(ANCHORS))
def test_the_readme_anchors_of_the_panels(name: str) -> None:
    root = os.environ.get("LSTMKIT_DATA")
    path = Path(root or ".") / "series" / "panels" / f"{name}.csv"
    if not root or not path.exists():
        pytest.skip(f"no series/panels/{name}.csv in LSTMKIT_DATA")
    df = pd.read_csv(path)
    ys = [
        g.sort_values("ds")["y"].to_numpy(np.float64)
        for _, g in df.groupby("unique_id", sort=False)
    ]
    f, info = panel_forecasts(ys, [np.array([len(y) - 8]) for y in ys], 8, 4)
    assert info["failed"] == {}
    for method, (mase, smape) in ANCHORS[name].items():
        s = m4_scores([y[-8:] for y in ys], [a[0] for a in f[method]], [y[:-8] for y in ys], 4)
        assert s["mase"] == pytest.approx(mase, abs=0.0005), method
        assert s["smape"] == pytest.approx(smape, abs=0.005), method


def test_a_panel_run_without_statsforecast_fails_before_training(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmkit.cli import main

    rows = ["unique_id,ds,y"]
    for sid in ("a", "b"):
        rows += [
            f"{sid},{2000 + i // 4}-{3 * (i % 4) + 1:02d}-01,{10 + i % 4 + 0.1 * i}"
            for i in range(40)
        ]
    path = tmp_path / "p.csv"
    path.write_text("\n".join(rows) + "\n")
    monkeypatch.setitem(sys.modules, "statsforecast", None)
    out = tmp_path / "run"
    args = ["train", "--task", "forecast", "--train", str(path), "--target", "y"]
    assert main([*args, "--time-column", "ds", "--horizon", "4", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "need statsforecast" in err and "--baseline none" in err and "Traceback" not in err
    assert not (out / "model.safetensors").exists()
