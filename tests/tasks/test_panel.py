"""Many series in the long format (lstmkit.tasks.panel): the PanelForecaster, the CLI end to end
(train -> metrics beside the per-series baselines -> forecasts.csv / forecast.png -> lstmkit
forecast / --backtest / evaluate), series too short, and bad input."""

from __future__ import annotations

import csv
import json
import logging
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from lstmkit.cli import main
from lstmkit.models import (
    PanelForecaster,
    PanelForecasterConfig,
    in_window_baseline,
    window_level_scale,
)

SEASON = np.array([1.0, -0.5, 0.8, -1.3])  # a shared quarterly pattern


def _panel(path: Path, series: int = 12, n: int = 60, seed: int = 0, short: bool = False) -> Path:
    """``series`` quarterly series (quarters starting in March, each from its own year) of ``n``
    points: the shared season with a series-specific level, scale and trend, and noise; with
    ``short``, a first series of one row (a new product)."""
    rng = np.random.default_rng(seed)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["unique_id", "ds", "y"])
        if short:
            w.writerow(["new", "2010-03-01", "5.0"])
        for k in range(series):
            level = rng.uniform(20, 500)
            scale = level * rng.uniform(0.05, 0.2)
            trend = level * rng.uniform(-0.002, 0.01)
            t = np.arange(n)
            y = level + trend * t + scale * SEASON[t % 4] + rng.normal(0, 0.15 * scale, n)
            for i in range(n):
                w.writerow(
                    [f"S{k}", f"{1990 + k + i // 4}-{3 * (i % 4) + 3:02d}-01", f"{y[i]:.4f}"]
                )
    return path


def _prepared_panel(tmp_path: Path, series: int, n: int, lookback: int) -> tuple[Any, Any]:
    """A panel of :func:`_panel` read and split as the forecast task does (horizon 4, no
    baseline): ``(recipe, prepared data)``."""
    from lstmkit.config import recipe_for_task
    from lstmkit.tasks.panel import prepare_panel

    data_file = _panel(tmp_path / "panel.csv", series=series, n=n)
    options = {"train": str(data_file), "target": "y", "time_column": "ds", "horizon": 4}
    options |= {"id_column": "unique_id", "lookback": lookback, "baseline": "none"}
    recipe, _ = recipe_for_task("forecast", options)
    assert recipe.data.series is not None
    return recipe, prepare_panel(recipe.data.series)


def _read_csv(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    with open(path, encoding="utf-8", newline="") as fh:
        reader = csv.DictReader(fh)
        rows = list(reader)
        return list(reader.fieldnames or []), rows


def _series(path: Path) -> dict[str, tuple[list[str], np.ndarray]]:
    _, rows = _read_csv(path)
    out: dict[str, tuple[list[str], list[float]]] = {}
    for r in rows:
        times, ys = out.setdefault(r["unique_id"], ([], []))
        times.append(r["ds"])
        ys.append(float(r["y"]))
    return {k: (t, np.array(y)) for k, (t, y) in out.items()}


# -- the model ---------------------------------------------------------------------------------
def _randomise(model: PanelForecaster, std: float = 1.0, seed: int = 0) -> PanelForecaster:
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * std)
    return model


@settings(max_examples=25, deadline=None)
@given(
    seed=st.integers(0, 2**31 - 1),
    std=st.floats(0.01, 10.0),
    level=st.floats(-1e4, 1e4),
    spread=st.floats(1e-3, 1e3),
    members=st.integers(1, 3),
    baseline=st.sampled_from(["seasonal_naive", "seasonal_mean", "combined"]),
)
def test_quantiles_are_ascending_for_random_weights_and_inputs(
    seed: int, std: float, level: float, spread: float, members: int, baseline: str
) -> None:
    cfg = PanelForecasterConfig(
        input_size=2,
        horizon=3,
        quantiles=[0.05, 0.2, 0.5, 0.8, 0.95],
        members=members,
        hidden_size=5,
        season=4,
        baseline=baseline,
    )
    model = _randomise(PanelForecaster(cfg), std, seed).eval()
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(6, 8, 2, generator=g)
    x[..., 0] = level + spread * x[..., 0]
    with torch.no_grad():
        out = model(x)
        assert out.shape == (6, members, 3, 5)
        assert bool((out.diff(dim=-1) >= 0).all())
        pred = model.predict(x)
    assert pred.shape == (6, 3, 5) and bool(torch.isfinite(pred).all())
    assert bool((pred.diff(dim=-1) >= 0).all())


def test_the_untrained_model_is_its_baseline_plus_the_offsets() -> None:
    torch.manual_seed(0)
    cfg = PanelForecasterConfig(input_size=3, horizon=4, members=2, hidden_size=6, season=4)
    offsets = torch.tensor(
        [[-1.0, 0.0, 0.5], [-2.0, 0.0, 1.5], [-0.25, 0.0, 3.0], [-4.0, 0.0, 0.125]]
    )
    x = torch.randn(5, 12, 3)
    x[..., 0] = 50.0 + 10.0 * x[..., 0]
    for baseline in ("seasonal_naive", "seasonal_mean", "combined"):
        model = _randomise(PanelForecaster(cfg.model_copy(update={"baseline": baseline})))
        model.set_offsets(offsets)
        z, level, scale = window_level_scale(x[..., 0], 4, False)
        base = in_window_baseline((z - level) / scale, 4, 4, baseline)  # (B, H)
        with torch.no_grad():
            out = model(x)  # (B, K, H, Q)
            want = base[:, None, :, None] + offsets[None, None]
            torch.testing.assert_close(out, want.expand_as(out), rtol=0, atol=2e-5)
            pred = model.predict(x)
        torch.testing.assert_close(
            pred, level[..., None] + scale[..., None] * (base[..., None] + offsets), rtol=1e-5,
            atol=1e-4
        )  # fmt: skip
    with pytest.raises(ValueError, match=r"offsets must be \(4, 3\)"):
        model.set_offsets(torch.zeros(3, 3))


def test_predict_denormalises_and_is_scale_and_shift_invariant() -> None:
    cfg = PanelForecasterConfig(
        input_size=2, horizon=5, members=3, hidden_size=7, season=4, baseline="combined"
    )
    model = _randomise(PanelForecaster(cfg), 0.5).eval()
    torch.manual_seed(1)
    x = torch.randn(4, 16, 2)
    x[..., 0] = 3.0 + torch.cumsum(x[..., 0], 1)
    moved = x.clone()
    moved[..., 0] = 10.0 * x[..., 0] + 100.0  # the target only: the feature is unchanged
    with torch.no_grad():
        p, q = model.predict(x), model.predict(moved)
        torch.testing.assert_close(model(moved), model(x), rtol=1e-4, atol=1e-4)
        # by hand: the members' mean in the window's units
        _, level, scale = window_level_scale(x[..., 0], 4, False)
        by_hand = level[..., None] + scale[..., None] * model(x).mean(1)
    torch.testing.assert_close(p, by_hand, rtol=1e-5, atol=1e-5 * float(p.abs().max()))
    mag = float(q.abs().max())
    torch.testing.assert_close(q, 10.0 * p + 100.0, rtol=1e-5, atol=1e-5 * mag)
    assert float((p - x[:, -1:, :1]).abs().max()) > 0.1  # not trivially the last value


def test_interval_scale_widens_the_band_and_is_saved_with_the_weights() -> None:
    cfg = PanelForecasterConfig(input_size=1, horizon=2, members=1, hidden_size=4, season=1)
    model = _randomise(PanelForecaster(cfg), 0.3).eval()
    x = torch.randn(3, 6, 1) + 20.0
    with torch.no_grad():
        before = model.predict(x)
        model.interval_scale.fill_(2.5)  # type: ignore[operator]
        after = model.predict(x)
    med = before[..., 1:2]
    torch.testing.assert_close(after[..., 1], before[..., 1])
    torch.testing.assert_close(after - med, 2.5 * (before - med), rtol=1e-5, atol=1e-5)
    state = model.state_dict()
    assert float(state["interval_scale"]) == 2.5
    assert "feature_mean" not in state  # taken from the config, not the weights
    fresh = PanelForecaster(cfg).eval()
    assert float(fresh.interval_scale) == 1.0  # type: ignore[arg-type]
    fresh.load_state_dict(state)
    assert float(fresh.interval_scale) == 2.5  # type: ignore[arg-type]
    with torch.no_grad():
        torch.testing.assert_close(fresh.predict(x), after)


def test_the_series_embedding_maps_each_index_to_its_own_vector() -> None:
    cfg = PanelForecasterConfig(
        input_size=3, horizon=2, members=1, hidden_size=5, season=1, num_series=3,
        embedding_dim=2, feature_mean=[0.5], feature_std=[2.0],
    )  # fmt: skip
    model = _randomise(PanelForecaster(cfg)).eval()
    assert model.embedding is not None and model.embedding.weight.shape == (3, 2)
    x = torch.randn(1, 6, 3).expand(3, -1, -1).clone()
    x[..., 0] += 10.0
    x[..., 2] = torch.tensor([0.0, 1.0, 2.0])[:, None]  # the same window, three series
    with torch.no_grad():
        out = model(x)
        assert out.shape == (3, 1, 2, 3)
        assert float((out[0] - out[1]).abs().max()) > 1e-4
        assert float((out[1] - out[2]).abs().max()) > 1e-4
        # the index is rounded; an embedding of zeros is the same as no series information
        near = x.clone()
        near[..., 2] = torch.tensor([0.2, 0.9, 2.1])[:, None]
        torch.testing.assert_close(model(near), out)
        model.embedding.weight.zero_()
        flat = model(x)
    torch.testing.assert_close(flat[0], flat[2])
    with pytest.raises(ValueError, match="feature_mean / feature_std must have 1 values"):
        PanelForecaster(cfg.model_copy(update={"feature_mean": [0.0, 1.0]}))
    with pytest.raises(ValueError, match="quantiles must be ascending, in \\(0, 1\\)"):
        PanelForecaster(cfg.model_copy(update={"quantiles": [0.1, 0.9]}))


# -- end to end --------------------------------------------------------------------------------
def _train_args(data: Path, run: Path, *extra: str) -> list[str]:
    return [
        "train", "--task", "forecast", "--train", str(data), "--target", "y",
        "--time-column", "ds", "--horizon", "4", "--out", str(run), "--no-progress", *extra,
    ]  # fmt: skip


def test_panel_cli_end_to_end_with_statsforecast(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _panel(tmp_path / "panel.csv")
    run = tmp_path / "run"
    assert main(_train_args(data, run)) == 0
    line = capsys.readouterr().out
    assert "test mean MASE over 12 series (m4, H=4): model " in line and "AutoETS" in line
    metrics = json.loads((run / "metrics.json").read_text())
    test = metrics["test"]
    assert (test["protocol"], test["series"], test["skipped"], test["windows"]) == ("m4", 12, 0, 12)
    assert (test["season"], test["mase_season"], test["horizon"]) == (4, 4, 4)
    assert {"model", "auto_ets", "auto_theta", "seasonal_naive", "naive"} <= set(test)
    mase = {k: test[k]["mase"] for k in ("model", "auto_ets", "seasonal_naive", "naive")}
    # one global model over series of levels 20 .. 500: far below naive, near seasonal naive
    assert mase["model"] < 0.5 * mase["naive"], mase
    assert mase["model"] < 1.15 * mase["seasonal_naive"], mase
    assert len(test["per_series"]["model"]["mase"]) == 12
    assert test["model"]["mase"] == pytest.approx(np.mean(test["per_series"]["model"]["mase"]))
    assert 0.0 <= test["coverage"] <= 1.0 and test["nominal"] == pytest.approx(0.8)
    assert 0.0 <= test["baseline_coverage"]["auto_ets"] <= 1.0
    assert test["quantiles"] == [0.1, 0.5, 0.9]
    cal = test["calibration"]
    assert 0.25 <= cal["interval_scale"] <= 8.0 and cal["rule"] == "per origin"
    if test["correction_kept"]:  # calibrated on the 6 validation origins of the 12 series
        assert (cal["windows"], cal["valid_values"], cal["origins"]) == ("validation", 288, 6)
    else:  # the baseline: on every training and validation window
        assert cal["windows"] == "training and validation" and cal["valid_values"] > 288
    # forecasts.csv: every series x step of its test origin, the truth, ascending quantiles
    header, rows = _read_csv(run / "forecasts.csv")
    assert header == [
        "unique_id", "origin", "ds", "y", "q0.1", "q0.5", "q0.9",
        "auto_ets", "auto_theta", "seasonal_naive", "naive",
    ]  # fmt: skip
    assert len(rows) == 12 * 4
    truth = _series(data)
    for r in rows:
        qs = [float(r[c]) for c in ("q0.1", "q0.5", "q0.9")]
        assert qs == sorted(qs)
        times, ys = truth[r["unique_id"]]
        assert r["origin"] == "56"
        row = times.index(r["ds"])
        assert row >= 56 and float(r["y"]) == pytest.approx(ys[row], abs=1e-9)
        assert float(r["naive"]) == pytest.approx(ys[55], abs=1e-9)
        assert float(r["seasonal_naive"]) == pytest.approx(ys[row - 4], abs=1e-9)
    assert [r["unique_id"] for r in rows[::4]] == [f"S{k}" for k in range(12)]
    assert (run / "forecast.png").read_bytes()[:4] == b"\x89PNG"
    config = json.loads((run / "config.json").read_text())
    assert config["panel_format"] == 1 and config["id_column"] == "unique_id"
    assert (config["frequency"], config["season"], config["mase_season"]) == ("quarterly", 4, 4)
    assert config["calendar"] == ["quarter_of_year_sin", "quarter_of_year_cos"]
    assert config["ids"] == [f"S{k}" for k in range(12)] and config["skipped"] == {}
    chosen = {d["key"]: d["value"] for d in config["defaults"]}
    assert chosen["data.series.lookback"] == 20  # five seasons of 4
    assert chosen["data.series.members"] == 5 and chosen["train.monitor"] == "val_mae"
    assert config["model"]["members"] == 5 and config["model"]["input_size"] == 3
    # lstmkit evaluate: the same numbers again (the calibrated band comes back with the weights)
    assert main(["evaluate", str(run)]) == 0
    again = json.loads(capsys.readouterr().out)
    assert again["model"]["mase"] == pytest.approx(test["model"]["mase"], rel=1e-6)
    assert again["coverage"] == pytest.approx(test["coverage"], abs=1e-9)


def test_panel_cli_without_baselines_forecast_backtest_and_a_short_series(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    data = _panel(tmp_path / "panel.csv", short=True)  # "new": one row, first in the file
    run = tmp_path / "run"
    with caplog.at_level(logging.WARNING):
        assert main(_train_args(data, run, "--baseline", "none")) == 0
    warned = [r.getMessage() for r in caplog.records if "left out" in r.getMessage()]
    assert warned == [
        "1 of 13 series are left out: new: 1 rows: too short for lookback 20 + horizon 4 "
        "training rows, 4 validation and 4 test rows (needs 32)"
    ]
    line = capsys.readouterr().out
    assert "test mean MASE over 12 series (m4, H=4, 1 left out): model " in line
    assert "AutoETS" not in line
    test = json.loads((run / "metrics.json").read_text())["test"]
    assert set(test) >= {"model", "seasonal_naive", "naive"} and "auto_ets" not in test
    assert test["model"]["mase"] < 0.5 * test["naive"]["mase"], test
    assert (test["series"], test["skipped"]) == (12, 1)
    config = json.loads((run / "config.json").read_text())
    assert list(config["skipped"]) == ["new"] and "new" not in config["ids"]
    # the one-row first series does not hide the calendar of the others
    assert (config["frequency"], config["mase_season"]) == ("quarterly", 4)
    assert config["calendar"] == ["quarter_of_year_sin", "quarter_of_year_cos"]
    _, rows = _read_csv(run / "forecasts.csv")
    assert len(rows) == 48 and {r["unique_id"] for r in rows} == {f"S{k}" for k in range(12)}

    # lstmkit forecast: the next four quarters of every series long enough for the lookback
    out = tmp_path / "next.csv"
    caplog.clear()
    with caplog.at_level(logging.WARNING):
        assert main(["forecast", str(run), "--data", str(data), "--out", str(out)]) == 0
    assert any(
        "1 series shorter than the lookback 20 are left out: new" in r.getMessage()
        for r in caplog.records
    )
    header, rows = _read_csv(out)
    assert header == ["unique_id", "ds", "step", "q0.1", "q0.5", "q0.9"]
    assert len(rows) == 12 * 4
    truth = _series(data)
    from lstmkit.tasks.panel import load_panel_run

    model, _ = load_panel_run(run)
    for k in range(12):
        mine = rows[4 * k : 4 * k + 4]
        assert {r["unique_id"] for r in mine} == {f"S{k}"}
        year = 1990 + k + 15  # 60 quarters from March 1990 + k: the next is March, 15 years on
        assert [r["ds"] for r in mine] == [f"{year}-{m:02d}-01" for m in (3, 6, 9, 12)]
        assert [r["step"] for r in mine] == ["1", "2", "3", "4"]
        q = np.array([[float(r[c]) for c in ("q0.1", "q0.5", "q0.9")] for r in mine])
        assert bool((np.diff(q, axis=1) >= 0).all())
        # the model's own forecast of the last 20 rows (target and quarter sin / cos)
        times, ys = truth[f"S{k}"]
        pos = np.arange(len(ys))[-20:] % 4
        window = np.stack(
            [ys[-20:], np.sin(2 * np.pi * pos / 4), np.cos(2 * np.pi * pos / 4)], 1
        ).astype(np.float32)
        with torch.no_grad():
            want = model.predict(torch.from_numpy(window)[None])[0].numpy()
        np.testing.assert_allclose(q, want, rtol=1e-5, atol=1e-5 * float(np.abs(want).max()))

    # --backtest: the rolling protocol on the run's own series
    assert main(["forecast", str(run), "--backtest"]) == 0
    back = capsys.readouterr().out
    assert "test mean MASE over 12 series (rolling, H=4, 1 left out): model " in back
    assert "SeasonalNaive" in back and "interval covers" in back


def test_every_series_too_short_is_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _panel(tmp_path / "short.csv", series=3, n=19)  # needs 20 rows
    run = tmp_path / "run"
    capsys.readouterr()
    assert main(_train_args(data, run, "--lookback", "8", "--baseline", "none")) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert err[-1] == (
        f"lstmkit train: error: {data}: no series is long enough for lookback 8 + horizon 4 "
        "(with validation and test); use a shorter --lookback / --horizon"
    )
    assert "Traceback" not in "\n".join(err) and not run.exists()


def test_bad_panel_input_is_one_error_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data = _panel(tmp_path / "panel.csv", series=3, n=30)
    shop = tmp_path / "shop.csv"
    shop.write_text(data.read_text().replace("unique_id,", "shop,", 1), encoding="utf-8")
    run = tmp_path / "run"
    capsys.readouterr()

    def error(args: list[str]) -> str:
        assert main(args) == 2
        err = capsys.readouterr().err
        assert "Traceback" not in err and not run.exists()
        lines = [x for x in err.splitlines() if x.startswith("lstmkit train: error: ")]
        assert len(lines) == 1, err
        return lines[0]

    # the time repeats beside a text column that is not declared an id
    msg = error(_train_args(shop, run))
    assert "the same time '1991-03-01' twice" in msg and "pass --id-column shop" in msg
    msg = error(_train_args(data, run, "--id-column", "nope"))
    assert msg.endswith(f"{data}: no id column 'nope'; the columns are unique_id, ds, y")
    msg = error(_train_args(data, run, "--quantiles", "0.2,0.9"))
    assert "quantiles must be ascending, distinct, in (0, 1) and hold 0.5, got [0.2, 0.9]" in msg
    msg = error(_train_args(data, run, "--quantiles", "a,b"))
    assert "--quantiles a,b: give numbers in (0, 1), comma-separated, holding 0.5" in msg
    msg = error(_train_args(data, run, "--baseline", "ets"))
    assert "ets" in msg


def test_a_series_embedding_keeps_each_series_index_in_the_backtest(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmkit.tasks.panel import evaluate_panel_run, load_panel_run

    # S0 of 24 rows is kept by the m4 protocol (test 20, training 16 = lookback 12 + 4) but left
    # out by the rolling one (5 test rows): every later series moves up one place there
    data = _panel(tmp_path / "panel.csv", series=4, n=40)
    lines = data.read_text().splitlines()
    keep = [ln for ln in lines[1:] if not ln.startswith("S0,")]
    s0 = [ln for ln in lines[1:] if ln.startswith("S0,")][:24]
    data.write_text("\n".join([lines[0], *s0, *keep]) + "\n", encoding="utf-8")
    run = tmp_path / "run"
    extra = ["--baseline", "none", "--lookback", "12", "--set", "data.series.embedding_dim=2"]
    extra += ["--set", "data.series.members=1", "--set", "train.max_steps=3"]
    assert main(_train_args(data, run, *extra)) == 0
    capsys.readouterr()
    model, config = load_panel_run(run)
    assert model.config.num_series == 4 and config["ids"] == ["S0", "S1", "S2", "S3"]
    with torch.no_grad():  # make the embedding matter
        assert model.embedding is not None
        model.embedding.weight.copy_(torch.tensor([[0.0, 0.0], [5.0, -5.0], [-5.0, 5.0], [9, 9]]))
        model.members[0].head.weight.normal_(0.0, 1.0, generator=torch.Generator().manual_seed(0))
    from lstmkit.checkpoint import model_state, save_tensors

    save_tensors(model_state(model), run / "model.safetensors")
    report = evaluate_panel_run(run, "rolling")
    assert report["per_series"]["ids"] == ["S1", "S2", "S3"]
    truth = _series(data)
    for k, sid in enumerate(["S1", "S2", "S3"]):
        _, y = truth[sid]
        origins = np.arange(40 - 8, 40 - 4 + 1)  # rolling: the last ceil(0.2 * 40) = 8 rows
        pos = np.arange(40) % 4
        cols = np.stack(
            [y, np.sin(np.pi * pos / 2), np.cos(np.pi * pos / 2), np.full(40, k + 1)], 1
        )
        x = np.stack([cols[t - 12 : t] for t in origins]).astype(np.float32)
        with torch.no_grad():
            med = model.predict(torch.from_numpy(x))[..., 1].numpy()
        target = np.stack([y[t : t + 4] for t in origins])
        ve = int(origins[0])
        scale = np.abs(y[4:ve] - y[: ve - 4]).mean()
        want = np.abs(med - target).mean() / scale
        assert report["per_series"]["model"]["mase"][k] == pytest.approx(want, rel=1e-4), sid
    # lstmkit forecast maps ids to the same indices and refuses an id it was not trained on
    out = tmp_path / "next.csv"
    assert main(["forecast", str(run), "--data", str(data), "--out", str(out)]) == 0
    _, rows = _read_csv(out)
    assert [r["unique_id"] for r in rows[::4]] == ["S0", "S1", "S2", "S3"]
    other = tmp_path / "other.csv"
    other.write_text(data.read_text().replace("S3,", "S9,"), encoding="utf-8")
    capsys.readouterr()
    assert main(["forecast", str(run), "--data", str(other), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "series 'S9' is not one the model was trained on" in err and "Traceback" not in err


def test_the_baseline_only_band_is_the_quantiles_of_all_its_training_and_validation_errors(
    tmp_path: Path,
) -> None:
    """An in-window baseline fits nothing, so its errors on the training and the validation
    windows are all out of sample: its band is their per-step quantiles, and so its interval
    covers its nominal 80% of those windows' targets (per step, up to the quantiles'
    interpolation), more than the training windows' band alone covers of the validation ones
    when the validation period is wilder."""
    from lstmkit.tasks.panel import (
        _coverage,
        _normalised_targets,
        calibrate,
        model_config,
        normalised_outputs,
        origin_groups,
        residual_offsets,
    )

    recipe, data = _prepared_panel(tmp_path, series=6, n=60, lookback=12)
    model = PanelForecaster(model_config(recipe, data, "seasonal_naive"))
    pooled = residual_offsets(model, data, ("train", "valid"))
    # by hand: the errors of the last-season forecast, per step, in each window's units
    pairs = [_normalised_targets(data, p, model.config) for p in ("train", "valid")]
    x = np.concatenate([p[0] for p in pairs])
    t = np.concatenate([p[1] for p in pairs])
    err = t - normalised_outputs(model, x)[..., model.median]
    want = np.quantile(err, [0.1, 0.5, 0.9], axis=0).T  # (H, Q)
    assert float(np.abs(want[:, 1]).max()) > 0.05  # the errors lean one way: a trend it lags
    want[:, 1] = 0.0  # the point forecast stays the baseline, the band is its error quantiles
    assert (want[:, 0] < 0).all() and (want[:, 2] > 0).all()
    torch.testing.assert_close(pooled, torch.from_numpy(want).float(), rtol=1e-4, atol=1e-5)
    train_only = residual_offsets(model, data)
    assert float((pooled - train_only).abs().max()) > 1e-3  # the validation windows count
    model.set_offsets(pooled)
    out = normalised_outputs(model, x)
    inside = ((t >= out[..., 0]) & (t <= out[..., 2])).mean(0)  # per step
    np.testing.assert_allclose(inside, 0.8, atol=2.5 / len(t))  # up to interpolation ties
    assert _coverage(model, x, t, 1.0) == pytest.approx(float(inside.mean()), abs=1e-12)
    # the old band, centred on the errors' median, covers less of these lagged windows
    centred = torch.from_numpy(np.quantile(err, [0.1, 0.5, 0.9], axis=0).T).float()
    model.set_offsets(centred - centred[:, 1:2])
    assert _coverage(model, x, t, 1.0) < 0.75
    # scaled per origin (as evaluate_panel_task does): 80% of each origin's targets at 80% of
    # the origins, the pooled band's factor 1 moved up only by the origins' scatter
    model.set_offsets(pooled)
    groups = origin_groups(data, ("train", "valid"))
    cal = calibrate(model, x, t, groups, windows="training and validation")
    c = cal["interval_scale"]
    assert cal["rule"] == "per origin" and cal["origins"] == len(np.unique(groups))
    assert 1.0 <= c < 1.5 and float(model.interval_scale) == pytest.approx(c)
    out = normalised_outputs(model, x)  # the raw band: the factor acts in predict
    med = out[..., 1]
    inside = (t >= med - c * (med - out[..., 0])) & (t <= med + c * (out[..., 2] - med))
    per_origin = np.array([inside[groups == g].mean() for g in np.unique(groups)])
    assert np.mean(per_origin >= 0.8) >= 0.8
    assert cal["valid_coverage_after"] == pytest.approx(float(inside.mean()))


def test_the_conformal_quantile_gives_its_nominal_coverage() -> None:
    """Split conformal's quantile is the ``ceil((n + 1) level)``-th smallest value, so a new
    exchangeable value is at most it with probability ``ceil((n + 1) level) / (n + 1)``: on
    40 calibration values and 0.8, 33 / 41 = 0.805 (measured over 4000 draws of 40, each
    judged on 50 new values: standard error about 0.001)."""
    from lstmkit.tasks.panel import conformal_quantile, interval_scores

    assert conformal_quantile(np.arange(1.0, 11.0), 0.8) == 9.0  # rank ceil(11 x 0.8) = 9
    assert conformal_quantile(np.arange(1.0, 4.0), 0.8) == 3.0  # rank 4 past n: the largest
    with pytest.raises(ValueError):
        conformal_quantile(np.zeros(0), 0.8)
    rng = np.random.default_rng(0)
    cal = np.abs(rng.normal(size=(4000, 40)))
    new = np.abs(rng.normal(size=(4000, 50)))
    q = np.array([conformal_quantile(c, 0.8) for c in cal])
    assert float(np.mean(new <= q[:, None])) == pytest.approx(33 / 41, abs=0.005)
    # the scores: the factor on each side's distance from the median that reaches the target
    out = np.array([[[-1.0, 0.0, 2.0]] * 4])  # (1, H=4, Q=3): 1 below, 2 above
    t = np.array([[-0.5, 3.0, 0.0, -2.0]])
    np.testing.assert_allclose(interval_scores(out, t, 1), [[0.5, 1.5, 0.0, 2.0]])
    flat = np.array([[[0.0, 0.0, 1.0]]])  # no width below the median
    assert interval_scores(flat, np.array([[-0.1]]), 1)[0, 0] == np.inf


def test_the_per_origin_scale_covers_most_origins_where_the_series_move_together() -> None:
    """Scores |a_g + b|: a shock a_g ~ N(0, 1) common to the 20 series x 4 steps of origin g,
    b ~ N(0, 0.5) their own; calibrated on 40 origins, judged on 200 new ones, 100 times.
    The pooled conformal factor covers its 80% on average (0.79: the shared shocks make the
    values dependent) but only 68% of the origins get 80% of their targets covered; the
    per-origin factor gets 80% of the origins there (the nominal share; 0.87 of the targets on
    average). Without the shared shock it is close to the pooled one: 0.83 of the targets."""
    from lstmkit.tasks.panel import conformal_quantile, origin_scale

    rng = np.random.default_rng(0)
    g_cal, series, h = 40, 20, 4
    groups = np.repeat(np.arange(g_cal), series)
    for shock, want in ((1.0, {"origin": (0.80, 0.87), "pooled": (0.68, 0.79)}), (0.0, None)):
        share = {"origin": [], "pooled": []}
        cover = {"origin": [], "pooled": []}
        for _ in range(100):
            cal = np.abs(
                rng.normal(0, shock, (g_cal, 1, 1)) + rng.normal(0, 0.5, (g_cal, series, h))
            )
            scores = cal.reshape(g_cal * series, h)
            new = np.abs(rng.normal(0, shock, (200, 1, 1)) + rng.normal(0, 0.5, (200, series, h)))
            for rule, c in (
                ("origin", origin_scale(scores, groups, 0.8)),
                ("pooled", conformal_quantile(scores, 0.8)),
            ):
                per_origin = (new <= c).mean((1, 2))
                share[rule].append(float(np.mean(per_origin >= 0.8)))
                cover[rule].append(float(per_origin.mean()))
        if want is not None:
            for rule, (s, c) in want.items():
                assert np.mean(share[rule]) == pytest.approx(s, abs=0.02), rule
                assert np.mean(cover[rule]) == pytest.approx(c, abs=0.01), rule
        else:
            assert np.mean(cover["pooled"]) == pytest.approx(0.80, abs=0.01)
            assert np.mean(cover["origin"]) == pytest.approx(0.83, abs=0.01)
    with pytest.raises(ValueError):
        origin_scale(np.zeros((3, 2)), np.zeros(2), 0.8)


def test_origin_groups_count_each_window_back_from_its_series_end(tmp_path: Path) -> None:
    """Every validation (and training) window's origin counted from its series' end: the
    windows of one period across series of one end share a group."""
    from lstmkit.tasks.panel import origin_groups

    recipe, data = _prepared_panel(tmp_path, series=3, n=40, lookback=8)
    valid = origin_groups(data, ("valid",))
    assert len(valid) == len(data.datasets["valid"])
    per_series = [40 - o for o in data.split.origins["valid"]]
    np.testing.assert_array_equal(valid, np.concatenate(per_series))
    assert all((p == per_series[0]).all() for p in per_series)  # one end: the same origins
    both = origin_groups(data, ("train", "valid"))
    assert len(both) == len(data.datasets["train"]) + len(data.datasets["valid"])
    np.testing.assert_array_equal(both[-len(valid) :], valid)
