"""Forecasting your own series (lstmkit.forecast): the model, the CLI end to end (train -> metrics
beside naive / seasonal-naive baselines -> plot -> lstmkit forecast), and bad input."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.series import (
    SeriesSource,
    future_times,
    naive_forecast,
    read_series,
    seasonal_naive_forecast,
)
from lstmkit.models import Forecaster, ForecasterConfig
from lstmkit.tasks.forecast import prepare_series


def _monthly(path: Path, n: int = 240, seed: int = 0) -> Path:
    """A seasonal series (period 12) with a driver column that leads it by one step."""
    rng = np.random.default_rng(seed)
    t = np.arange(n + 1)
    driver = np.sin(2 * np.pi * t / 12)
    y = 20 + 5 * driver[:-1] + rng.normal(0, 0.3, n)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["month", "sales", "driver"])
        for i in range(n):
            w.writerow([f"{2000 + i // 12}-{i % 12 + 1:02d}", f"{y[i]:.4f}", f"{driver[i]:.4f}"])
    return path


def test_the_untrained_forecaster_is_its_baseline() -> None:
    torch.manual_seed(0)
    t = torch.arange(24, dtype=torch.float32)
    season = torch.tensor([0.0, 3.0, -1.0, 5.0])
    y = 10.0 + 0.5 * t + season[(t % 4).long()]  # a linear trend plus a fixed season of 4
    x = torch.stack([y, torch.randn(24)], -1)[None]  # (1, 24, 2): the target and a feature
    cfg = ForecasterConfig(input_size=2, horizon=6, cell="gru", hidden_size=7, season=4)
    naive = Forecaster(cfg).predict(x)[0]
    # seasonal naive: the last season repeated
    torch.testing.assert_close(naive, y[torch.tensor([20, 21, 22, 23, 20, 21])])
    # the seasonal mean with drift is exact on a linear trend plus a fixed season
    mean = Forecaster(cfg.model_copy(update={"baseline": "seasonal_mean"})).predict(x)[0]
    t_next = torch.arange(24, 30, dtype=torch.float32)
    torch.testing.assert_close(mean, 10.0 + 0.5 * t_next + season[(t_next % 4).long()])
    # in logs: a multiplicative season, the same forecast of the seasonal-naive baseline
    logged = Forecaster(cfg.model_copy(update={"log": True})).predict(x)[0]
    torch.testing.assert_close(logged, naive)
    # the level does not matter: a window shifted by 1000 gives the forecast shifted by 1000
    model = Forecaster(cfg)
    with torch.no_grad():
        model.head.weight.normal_()
    shifted = x.clone()
    shifted[..., 0] += 1000.0
    torch.testing.assert_close(model.predict(shifted), model.predict(x) + 1000.0)
    target = y[None, :6] + 7.0
    torch.testing.assert_close(model.denormalise(x, model.normalise_target(x, target)), target)
    with pytest.raises(ValueError, match=r"expected inputs of shape \(B, lookback, 2\)"):
        model(torch.randn(4, 12, 3))
    with pytest.raises(ValueError, match="needs a lookback of at least 4, got 3"):
        model(torch.randn(4, 3, 2))


def test_empirical_band_and_the_forecasters_quantiles() -> None:
    from lstmkit.models import empirical_band

    g = torch.Generator().manual_seed(0)
    errors = torch.randn(400, 3, generator=g, dtype=torch.float64) * torch.tensor([1.0, 2.0, 3.0])
    errors[:, 2] += 10.0  # step 3 lags a trend: every error positive
    band = empirical_band(errors, [0.1, 0.5, 0.9])
    want = torch.quantile(errors, torch.tensor([0.1, 0.5, 0.9], dtype=torch.float64), dim=0).T
    torch.testing.assert_close(band[:2, 0], want[:2, 0].float())
    torch.testing.assert_close(band[:, 2], want[:, 2].float())
    assert band[:, 1].abs().max() == 0 and float(band[2, 0]) == 0.0  # clamped to its side
    # the point forecast plus the band covers 80 % of these errors on the first two steps
    inside = (errors >= band[:, 0].double()) & (errors <= band[:, 2].double())
    torch.testing.assert_close(
        inside[:, :2].double().mean(0), torch.tensor([0.8, 0.8]).double(), atol=0.01, rtol=0
    )
    assert float(inside[:, 2].double().mean()) == pytest.approx(0.9, abs=0.01)

    cfg = ForecasterConfig(
        input_size=1, horizon=3, hidden_size=4, season=1, quantiles=[0.1, 0.5, 0.9]
    )
    model = Forecaster(cfg)
    x = (torch.rand(5, 8, 1, generator=g) + 1.0) * 100.0
    with torch.no_grad():
        model.head.weight.normal_(generator=g)
        model.set_band(band)
        q = model.predict_quantiles(x)
        point = model.predict(x)
    assert q.shape == (5, 3, 3)
    torch.testing.assert_close(q[..., 1], point)
    # additive in the working units: the band times the forecaster's scale around the forecast
    torch.testing.assert_close(
        q - point[..., None], (cfg.scale * band).expand(5, -1, -1), rtol=1e-5, atol=1e-4
    )
    logged = Forecaster(cfg.model_copy(update={"log": True}))
    logged.set_band(band)
    with torch.no_grad():
        ratio = logged.predict_quantiles(x) / logged.predict(x)[..., None]
    torch.testing.assert_close(ratio, torch.exp(band).expand(5, -1, -1), rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="ascending per step and 0 at the median"):
        model.set_band(band.flip(-1))
    with pytest.raises(ValueError, match=r"band must be \(3, 3\)"):
        model.set_band(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="has no band"):
        Forecaster(cfg.model_copy(update={"quantiles": []})).predict_quantiles(x)
    # the band is saved with the weights
    assert "band" in model.state_dict()
    assert "band" not in Forecaster(cfg.model_copy(update={"quantiles": []})).state_dict()


def test_holt_winters_filter_matches_statsmodels_and_refits() -> None:
    import warnings

    from statsmodels.tsa.holtwinters import ExponentialSmoothing

    from lstmkit.baselines.series import _fit, holt_winters_forecasts, smoothing_filter

    rng = np.random.default_rng(0)
    t = np.arange(120)
    y = (50 + 0.5 * t) * (1 + 0.2 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 1, t.size)
    for season, mul in ((12, True), (12, False), (1, False)):
        params = _fit(y[:100], season, mul)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            ref = ExponentialSmoothing(
                y[:100],
                trend="add",
                damped_trend=season == 1,
                seasonal=None if season == 1 else ("mul" if mul else "add"),
                seasonal_periods=season if season > 1 else None,
            ).fit()
        mine = smoothing_filter(y, params, np.array([100]), 15, mul)[0]
        np.testing.assert_allclose(mine, ref.forecast(15), rtol=1e-9)
    origins = np.arange(96, 109)
    every, info = holt_winters_forecasts(y, origins, 12, 12, True)
    assert info["refit_every"] == 1 and info["fits"] == 13
    some, info = holt_winters_forecasts(y, origins, 12, 12, True, max_fits=5)
    assert info["refit_every"] == 3 and info["fits"] == 5
    np.testing.assert_allclose(some[::3], every[::3], rtol=1e-9)  # the refitted origins
    assert np.abs(some - every).max() < 0.05 * np.abs(every).mean()


def test_holt_winters_that_cannot_be_fitted_is_one_baseline_error() -> None:
    from lstmkit.baselines.series import holt_winters_forecasts
    from lstmkit.errors import BaselineError

    y = np.linspace(1.0, 2.0, 40)
    with pytest.raises(BaselineError, match="needs 34 rows before the first forecast origin"):
        holt_winters_forecasts(y, np.arange(30, 35), 3, 12, False)
    y[3] = -1.0
    with pytest.raises(BaselineError, match="multiplicative season needs positive values"):
        holt_winters_forecasts(y, np.arange(36, 38), 2, 12, True)


def test_train_forecast_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _monthly(tmp_path / "sales.csv")
    run = tmp_path / "run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "sales"]
    args += ["--features", "driver", "--time-column", "month", "--horizon", "3"]
    args += ["--out", str(run), "--no-progress"]
    assert main(args) == 0
    assert "test MAE over 46 rolling origins: model " in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["season"] == 12 and test["season_detected"] is True
    assert test["windows"] == 48 - 3 + 1  # the last 20 % of 240 rows are the origins, horizon 3
    assert test["origins"] == [192, 237]
    for name in ("model", "naive", "seasonal_naive", "holt_winters"):
        assert set(test[name]) == {"mae", "rmse", "mase", "per_step_mae", "per_step_mase"}
        assert len(test[name]["per_step_mae"]) == 3
        assert test[name]["mase"] == pytest.approx(test[name]["mae"] / test["mase_scale"])
    # a noisy season: the model must beat both naive baselines on the same windows
    assert test["model"]["mae"] < 0.8 * test["naive"]["mae"], test
    assert test["model"]["mae"] < 0.95 * test["seasonal_naive"]["mae"], test
    assert (run / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((run / "config.json").read_text())
    values = np.loadtxt(data, delimiter=",", skiprows=1, usecols=(1, 2))
    train_end = config["rows"]["train_end"]
    assert train_end == 240 - 48 - 36  # test 20 %, validation 15 %
    chosen = {d["key"]: d["value"] for d in config["defaults"]}
    assert chosen["data.series.lookback"] == 30  # three seasons of 12, at most 10 horizons of 3
    assert chosen["train.early_stopping"] > 0 and chosen["train.monitor"] == "val_mae"
    assert "data.series.horizon" not in chosen  # given: never chosen
    assert config["recipe"]["data"]["series"]["lookback"] == 30
    np.testing.assert_allclose(config["scaler"]["mean"], values[:train_end].mean(0), rtol=1e-12)
    assert config["scaler"]["mean"] != pytest.approx(values.mean(0).tolist())
    # the band: the 80 % interval of the out-of-sample errors, its coverage on the test origins
    assert test["quantiles"] == [0.1, 0.5, 0.9] and test["nominal"] == pytest.approx(0.8)
    assert 0.6 <= test["coverage"] <= 0.97, test["coverage"]
    assert len(test["per_step_coverage"]) == 3
    assert test["coverage"] == pytest.approx(np.mean(test["per_step_coverage"]))
    band = metrics["test"]["band"]
    assert band["parts"] in (["valid"], ["train", "valid"]) and band["quantiles"] == [0.1, 0.5, 0.9]
    # re-evaluation gives the same numbers (the band comes back with the weights)
    assert main(["evaluate", str(run)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model"]["mae"] == pytest.approx(test["model"]["mae"], rel=1e-6)
    assert again["coverage"] == pytest.approx(test["coverage"], abs=1e-12)
    # --backtest: the rolling evaluation again, per step ahead, as a table and as JSON
    back = tmp_path / "backtest.json"
    assert main(["forecast", str(run), "--backtest", "--out", str(back)]) == 0
    table = capsys.readouterr().out.splitlines()
    assert table[0].startswith("| step | model MAE | naive MAE | seasonal naive (m=12) MAE |")
    assert [line.split(" | ")[0] for line in table[2:6]] == ["| 1", "| 2", "| 3", "| all"]
    written = json.loads(back.read_text())
    assert written["model"]["per_step_mae"] == pytest.approx(test["model"]["per_step_mae"])
    assert written["holt_winters"]["mae"] == pytest.approx(test["holt_winters"]["mae"])
    assert main(["forecast", str(run), "--out", str(back)]) == 2
    assert "needs --data FILE and --out FILE (or --backtest)" in capsys.readouterr().err
    # lstmkit forecast: the 3 months after the data's end
    out = tmp_path / "forecast.csv"
    assert main(["forecast", str(run), "--data", str(data), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["month"] for r in rows] == ["2020-01", "2020-02", "2020-03"]
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    # the next three driver values are sin(0), sin(pi/6), sin(pi/3) -> sales about 20, 22.5, 24.3
    got = np.array([float(r["sales_forecast"]) for r in rows])
    np.testing.assert_allclose(got, 20 + 5 * np.sin(2 * np.pi * np.arange(3) / 12), atol=1.5)
    q = np.array([[float(r[c]) for c in ("q0.1", "q0.5", "q0.9")] for r in rows])
    np.testing.assert_allclose(q[:, 1], got, rtol=1e-6)  # the median is the point forecast
    assert bool((q[:, 0] < q[:, 1]).all() and (q[:, 1] < q[:, 2]).all())
    # a classification-only command says what to use instead
    assert main(["predict", str(run), "hello"]) == 2
    assert "is a forecasting run; use lstmkit forecast" in capsys.readouterr().err


def _trending(path: Path, n: int = 300, seed: int = 0) -> Path:
    """A trending series with a multiplicative season of 12 that leaves the training range."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    y = (50 + 0.4 * t) * (1 + 0.15 * np.sin(2 * np.pi * t / 12)) + rng.normal(0, 1.5, n)
    path.write_text("y\n" + "".join(f"{v:.4f}\n" for v in y), encoding="utf-8")
    return path


def test_defaults_beat_the_naive_forecasts_on_a_trending_seasonal_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _trending(tmp_path / "trend.csv")
    run = tmp_path / "run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "y"]
    assert main(args + ["--horizon", "6", "--out", str(run), "--no-progress"]) == 0
    line = capsys.readouterr().out
    assert "test MAE over 55 rolling origins: model " in line and "Holt-Winters" in line
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert (test["season"], test["windows"]) == (12, 60 - 6 + 1)
    mae = {k: test[k]["mae"] for k in ("model", "naive", "seasonal_naive", "holt_winters")}
    # the level leaves the training range, the windows are normalised: no flat line below it
    assert mae["model"] < 0.5 * mae["seasonal_naive"], mae
    assert mae["model"] < 0.2 * mae["naive"], mae
    # Holt-Winters is the right model of this series: the forecaster comes close to it
    assert mae["model"] < 1.3 * mae["holt_winters"], mae
    assert test["holt_winters_model"]["model"].startswith("additive trend, ")


def test_the_rolling_protocol_reproduces_the_readme_anchors() -> None:
    from lstmkit.data.series import rolling_origins

    root = Path(os.environ.get("LSTMKIT_DATA", "")) / "series"
    if not (root / "airpassengers.csv").exists():
        pytest.skip("no series/ folder in LSTMKIT_DATA")
    y = read_series(root / "airpassengers.csv", "passengers").target
    o = rolling_origins(len(y), 12)
    assert (o[0], o[-1], len(o)) == (115, 132, 18)
    truth = y[o[:, None] + np.arange(12)]
    assert np.abs(naive_forecast(y, o, 12) - truth).mean() == pytest.approx(81.77, abs=0.005)
    sn = seasonal_naive_forecast(y, o, 12, 12)
    assert np.abs(sn - truth).mean() == pytest.approx(46.77, abs=0.005)
    # and the Holt-Winters anchor (multiplicative season, refitted at every origin): 16.87
    from lstmkit.baselines.series import holt_winters_forecasts

    hw, info = holt_winters_forecasts(y, o, 12, 12, True)
    assert info["fits"] == 18
    assert np.abs(hw - truth).mean() == pytest.approx(16.87, abs=0.005)
    w = read_series(root / "wineind.csv", "litres").target
    o = rolling_origins(len(w), 12)
    truth = w[o[:, None] + np.arange(12)]
    assert np.abs(naive_forecast(w, o, 12) - truth).mean() == pytest.approx(5636, abs=0.5)
    sn = seasonal_naive_forecast(w, o, 12, 12)
    assert np.abs(sn - truth).mean() == pytest.approx(1823, abs=0.5)


def test_a_baseline_that_cannot_be_fitted_is_skipped_with_one_warning(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = _monthly(tmp_path / "s.csv", n=80)
    run = tmp_path / "run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "sales"]
    args += ["--season", "30", "--horizon", "2", "--out", str(run), "--no-progress"]
    with caplog.at_level("WARNING"):
        assert main(args) == 0
    assert "(Holt-Winters skipped: see the log)" in capsys.readouterr().out
    skips = [
        r.getMessage()
        for r in caplog.records
        if "Holt-Winters baseline is skipped" in r.getMessage()
    ]
    assert skips == [
        "the Holt-Winters baseline is skipped: Holt-Winters (additive trend, additive season "
        "(m=30)) needs 70 rows before the first forecast origin (two full seasons and ten "
        "more), got 64"
    ]
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert "holt_winters" not in test and "skipped" in test["holt_winters_model"]
    assert {"model", "naive", "seasonal_naive"} <= set(test)


def testfuture_times() -> None:
    assert future_times(["2023-10", "2023-11", "2023-12"], 2) == ["2024-01", "2024-02"]
    days = ["2024-01-29", "2024-01-30", "2024-01-31"]
    assert future_times(days, 2) == ["2024-02-01", "2024-02-02"]
    assert future_times(["2024-01-31", "2024-02-29", "2024-03-31"], 1) is None  # month ends
    assert future_times(["2024-01-01", "2024-01-02"], 1) is None  # two times prove nothing
    assert future_times(["1998", "1999", "2000"], 2) == ["2001", "2002"]
    hours = ["2024-01-01T00:00", "2024-01-01T06:00", "2024-01-01T12:00"]
    assert future_times(hours, 1) == ["2024-01-01T18:00:00"]


def test_bad_series_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    short = tmp_path / "short.csv"
    short.write_text("t,y\n" + "".join(f"{i},{i % 3}\n" for i in range(20)), encoding="utf-8")
    with pytest.raises(ValueError, match=r"the series has 20 rows, shorter than lookback 24"):
        prepare_series(SeriesSource(train=str(short), target="y", lookback=24, horizon=1))
    with pytest.raises(ValueError, match=r"the validation part \(3 of 20 rows\) holds no window"):
        prepare_series(SeriesSource(train=str(short), target="y", lookback=4, horizon=5))
    bad = tmp_path / "bad.csv"
    bad.write_text("t,y\n1,1.0\n2,NaN\n", encoding="utf-8")
    run = tmp_path / "run"
    args = ["train", "--task", "forecast", "--train", str(bad), "--target", "y"]
    args += ["--time-column", "t", "--out", str(run), "--no-progress"]
    capsys.readouterr()
    assert main(args) == 2
    assert f"{bad}: line 3, column 'y': the value is NaN" in capsys.readouterr().err
    assert not run.exists()
    args[args.index(str(bad))] = str(short)
    assert main(args + ["--lookback", "30"]) == 2
    assert "shorter than lookback 30 + horizon 1" in capsys.readouterr().err
    assert main(args + ["--tokenizer", "bpe"]) == 2
    assert "--tokenizer: not used by --task forecast" in capsys.readouterr().err


ROOT = Path(__file__).resolve().parents[2]


def test_forecast_table_and_the_docs_page_are_generated_from_results(tmp_path: Path) -> None:
    from lstmkit.report import forecast_table, render

    (tmp_path / "f.json").write_text(
        json.dumps(
            {
                "recipe": "f",
                "metric": "test_mase",
                "value": 0.5,
                "season": 7,
                "commit": "0123456789",
                "test": {
                    "model": {"mae": 1.0, "rmse": 2.0, "mase": 0.5},
                    "naive": {"mae": 3.0, "rmse": 4.0, "mase": 1.5},
                    "seasonal_naive": {"mae": 2.0, "rmse": 3.0, "mase": 1.0},
                },
            }
        )
    )
    (tmp_path / "imdb.json").write_text(json.dumps({"recipe": "imdb", "metric": "x", "value": 1}))
    table = forecast_table(tmp_path).splitlines()
    assert table[2:] == [
        "| f | model | 1 | 2 | 0.500 | `01234567` |",
        "| f | naive | 3 | 4 | 1.500 | `01234567` |",
        "| f | seasonal naive (m=7) | 2 | 3 | 1.000 | `01234567` |",
    ]
    # docs/own-data.md's measured figures come from results/ (lstmkit report --readme docs/own-data.md)
    text = (ROOT / "docs" / "own-data.md").read_text(encoding="utf-8")
    assert "<!-- BEGIN GENERATED: forecasts -->" in text
    assert render(text, ROOT / "results") == text
    assert "| forecast-sunspots | model |" in text


def test_task_flags_override_a_base_recipe(tmp_path: Path) -> None:
    from lstmkit.config import ConfigError, recipe_for_task

    base = tmp_path / "base.toml"
    base.write_text(
        '[data]\ndataset = "series"\n[data.series]\ntrain = "a.csv"\ntarget = "y"\nlookback = 48\n'
        "[model]\nhidden_size = 7\n",
        encoding="utf-8",
    )
    recipe, raw = recipe_for_task(
        "forecast",
        {"train": "b.csv", "horizon": 4, "lookback": None},
        recipe_path=base,
        overrides=["data.series.stride=2", "epochs=3"],
    )
    s = recipe.data.series
    assert s is not None
    assert (s.train, s.target, s.lookback, s.horizon, s.stride) == ("b.csv", "y", 48, 4, 2)
    assert (recipe.model.hidden_size, recipe.train.epochs, recipe.name) == (7, 3, "base")
    with pytest.raises(ConfigError, match="reads dataset 'text', but the recipe says"):
        recipe_for_task("text", {"train": "x.csv"}, recipe_path=base)
    with pytest.raises(ConfigError, match=r"data.series.lookback: Input should be greater than"):
        recipe_for_task("forecast", {"train": "x.csv", "target": "y", "lookback": 0})


def test_a_classification_monitor_is_refused_for_forecasting(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _monthly(tmp_path / "s.csv", n=60)
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "sales"]
    args += ["--out", str(tmp_path / "run"), "--set", "monitor=val_accuracy"]
    capsys.readouterr()
    assert main(args) == 2
    assert "train.monitor = 'val_accuracy' is not measured for forecasting" in (
        capsys.readouterr().err
    )
    assert not (tmp_path / "run").exists()


def test_the_default_lookback_is_five_seasons_cut_to_whole_seasons_when_data_are_short() -> None:
    from lstmkit.tasks.forecast import MIN_TRAIN_WINDOWS, default_lookback

    assert default_lookback(12, 12, 114)[0] == 60  # wineind's training part: 43 windows remain
    assert default_lookback(12, 3, 500)[0] == 30  # at most ten horizons
    assert default_lookback(336, 48, 2620)[0] == 480  # half-hourly, weekly season: ten horizons
    assert default_lookback(4, 8, 1000)[0] == 20
    # 100 training rows, horizon 12: at most 100 - 12 - 20 + 1 = 69 rows -> five seasons of 12 fit
    assert default_lookback(12, 12, 100)[0] == 60
    # 80 rows: 49 rows fit -> four whole seasons, and the reason says why
    lookback, why = default_lookback(12, 12, 80)
    assert lookback == 48 and f"{MIN_TRAIN_WINDOWS} training windows" in why
    assert 80 - lookback - 12 + 1 >= MIN_TRAIN_WINDOWS
    # less than a season fits: as many rows as leave the windows
    assert default_lookback(12, 2, 30)[0] == 9
    assert default_lookback(1, 5, 10_000) == (20, "no season: max(20, 4 x horizon 5)")
    assert default_lookback(1, 5, 30)[0] == 6
