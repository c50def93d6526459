"""Forecasting your own series (lstmkit.forecast): the model, the CLI end to end (train -> metrics
beside naive / seasonal-naive baselines -> plot -> lstmkit forecast), and bad input."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.cli import main
from lstmkit.data.series import SeriesSource
from lstmkit.models import Forecaster, ForecasterConfig
from lstmkit.tasks.forecast import _future_times, prepare_series


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


def test_forecaster_shapes_and_identity_output() -> None:
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(input_size=3, horizon=5, cell="gru", hidden_size=7))
    out = model(torch.randn(4, 12, 3))
    assert out.shape == (4, 5)
    assert (out < 0).any() and (out > 0).any()  # no squashing activation on the output
    with pytest.raises(ValueError, match=r"expected inputs of shape \(B, lookback, 3\)"):
        model(torch.randn(4, 12, 2))


def test_train_forecast_cli_end_to_end(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    data = _monthly(tmp_path / "sales.csv")
    run = tmp_path / "run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "sales"]
    args += ["--features", "driver", "--time-column", "month", "--lookback", "12", "--horizon", "3"]
    args += ["--out", str(run), "--no-progress", "--set", "epochs=25", "--set", "lr=0.01"]
    args += ["--set", "batch_size=32", "--set", "hidden_size=16"]
    assert main(args) == 0
    assert "test MAE model" in capsys.readouterr().out
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert test["season"] == 12 and test["season_detected"] is True
    assert test["windows"] == 36 - 3 + 1  # 15 % of 240 rows, horizon 3
    for name in ("model", "naive", "seasonal_naive"):
        assert set(test[name]) == {"mae", "rmse", "mase", "per_step_mae"}
        assert len(test[name]["per_step_mae"]) == 3
        assert test[name]["mase"] == pytest.approx(test[name]["mae"] / test["mase_scale"])
    # the driver leads the target: the model must beat both baselines on the same windows
    assert test["model"]["mae"] < 0.8 * test["naive"]["mae"], test
    assert test["model"]["mae"] < test["seasonal_naive"]["mae"], test
    assert (run / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((run / "config.json").read_text())
    values = np.loadtxt(data, delimiter=",", skiprows=1, usecols=(1, 2))
    train_end = config["rows"]["train_end"]
    assert train_end == 168
    np.testing.assert_allclose(config["scaler"]["mean"], values[:train_end].mean(0), rtol=1e-12)
    assert config["scaler"]["mean"] != pytest.approx(values.mean(0).tolist())
    # re-evaluation gives the same numbers
    assert main(["evaluate", str(run)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model"]["mae"] == pytest.approx(test["model"]["mae"], rel=1e-6)
    # lstmkit forecast: the 3 months after the data's end
    out = tmp_path / "forecast.csv"
    assert main(["forecast", str(run), "--data", str(data), "--out", str(out)]) == 0
    rows = list(csv.DictReader(out.open(encoding="utf-8")))
    assert [r["month"] for r in rows] == ["2020-01", "2020-02", "2020-03"]
    assert [r["step"] for r in rows] == ["1", "2", "3"]
    # the next three driver values are sin(0), sin(pi/6), sin(pi/3) -> sales about 20, 22.5, 24.3
    got = np.array([float(r["sales_forecast"]) for r in rows])
    np.testing.assert_allclose(got, 20 + 5 * np.sin(2 * np.pi * np.arange(3) / 12), atol=1.5)
    # a classification-only command says what to use instead
    assert main(["predict", str(run), "hello"]) == 2
    assert "is a forecasting run; use lstmkit forecast" in capsys.readouterr().err


def test_future_times() -> None:
    assert _future_times(["2023-10", "2023-11", "2023-12"], 2) == ["2024-01", "2024-02"]
    days = ["2024-01-29", "2024-01-30", "2024-01-31"]
    assert _future_times(days, 2) == ["2024-02-01", "2024-02-02"]
    assert _future_times(["2024-01-31", "2024-02-29", "2024-03-31"], 1) is None  # month ends
    assert _future_times(["2024-01-01", "2024-01-02"], 1) is None  # two times prove nothing
    assert _future_times(["1998", "1999", "2000"], 2) == ["2001", "2002"]
    hours = ["2024-01-01T00:00", "2024-01-01T06:00", "2024-01-01T12:00"]
    assert _future_times(hours, 1) == ["2024-01-01T18:00:00"]


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
