"""ONNX export (lstmkit.export): onnxruntime's probabilities equal predict_proba on variable-length
post-padded batches, with batch sizes and lengths other than the export example's."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lstmkit.data.batching import collate_tokens  # noqa: E402
from lstmkit.export import ExportError, export_onnx, export_run_onnx  # noqa: E402
from lstmkit.models import ClassifierConfig, SequenceClassifier  # noqa: E402

TOL = 1e-4


def _model(**kw: Any) -> SequenceClassifier:
    torch.manual_seed(0)
    base: dict[str, Any] = dict(
        vocab_size=50, embedding_dim=8, hidden_size=6, pooling="last", init="torch"
    )
    base.update(kw)
    return SequenceClassifier(ClassifierConfig(**base)).eval()


def _batch(lengths: list[int], vocab: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    seqs = [(rng.integers(1, vocab, n), 0) for n in lengths]
    tokens, lens, _ = collate_tokens(seqs)
    return tokens, lens


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _max_diff(
    model: SequenceClassifier, sess: Any, tokens: torch.Tensor, lens: torch.Tensor
) -> float:
    with torch.no_grad():
        ref = model.predict_proba(tokens, lens).numpy()
    (got,) = sess.run(None, {"tokens": tokens.numpy(), "lengths": lens.numpy()})
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max())


@pytest.mark.parametrize(
    "options",
    [
        dict(num_layers=1),
        dict(num_layers=2),
        dict(num_layers=2, num_classes=3),
        dict(bidirectional=True),
        dict(num_layers=2, bidirectional=True, pooling="mean+max"),
        dict(pooling="attention"),
        dict(cell="gru", pooling="max"),
        dict(cell="rnn", impl="loop", pooling="mean"),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_onnx_matches_predict_proba(tmp_path: Path, options: dict[str, Any]) -> None:
    model = _model(**options)
    path = export_onnx(model, tmp_path / "sub" / "model.onnx")
    assert path == tmp_path / "sub" / "model.onnx" and path.exists()
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["model.onnx"]  # no temp left
    onnx.checker.check_model(onnx.load(str(path)))
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["tokens", "lengths"]
    assert [o.name for o in sess.get_outputs()] == ["probabilities"]
    # lengths 1..T, a full row, unsorted; then batch sizes / lengths unlike the example's (3, 7)
    batches = [
        list(range(1, 13)),
        [12, 3, 1, 7, 12],
        [1],
        [30, 2],
        [5] * 9,
    ]
    diffs = [_max_diff(model, sess, *_batch(b, seed=i)) for i, b in enumerate(batches)]
    assert max(diffs) <= TOL, diffs


def test_export_leaves_model_alone(tmp_path: Path) -> None:
    model = _model(dropout=0.2, num_layers=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    assert _max_diff(model, _session(tmp_path / "m.onnx"), *_batch([4, 9, 2])) <= TOL


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (dict(vocab_size=None, input_size=4), "vocab_size=None"),
        (dict(conv_filters=4, conv_kernel=3, pool_size=2), "conv_filters=4"),
        (dict(cell_options={"peephole": True}), "peephole"),
        (dict(cell_options={"proj_size": 3}), "proj_size=3"),
    ],
)
def test_unsupported_raises(tmp_path: Path, options: dict[str, Any], named: str) -> None:
    model = _model(**options)
    with pytest.raises(ExportError, match=named):
        export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


def test_the_classifier_check_fails_loudly_and_writes_nothing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = _model(num_layers=2)
    real = SequenceClassifier.predict_proba

    def off(self: SequenceClassifier, x: torch.Tensor, lengths: Any = None) -> torch.Tensor:
        return real(self, x, lengths) * (1 + 1e-3)  # 1e-3 relative: beyond the 1e-4 tolerance

    monkeypatch.setattr(SequenceClassifier, "predict_proba", off)
    with pytest.raises(ExportError, match=r"'probabilities' of row 0 .* beyond the tolerance"):
        export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())  # no file, no temporary file


REVIEWS = [
    "great",
    "awful film",
    "this movie was wonderful and moving",
    "one of the worst films i have ever seen, a total waste of time",
    "i loved the acting but the plot was thin and the ending made no sense at all",
    "brilliant",
    "boring boring boring",
    "the cast is superb and the director knows exactly what she is doing with every scene",
    "not good",
    "a masterpiece of modern cinema that i will watch again and again",
    "terrible script, wooden acting, and a soundtrack that never stops",
    "funny, warm and surprisingly smart",
    "i fell asleep halfway through",
    "the best performance of his career, heartbreaking and honest",
    "avoid this one",
    "it was fine i guess, nothing special but not bad either",
    "the special effects were cheap and the dialogue was laughable from start to finish",
    "beautiful photography and a haunting score",
    "why did anyone make this",
    "an instant classic",
]


@pytest.fixture(scope="module")
def seed003_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run directory of the imdb-seed003 recipe (its 10,000-word vocabulary, Embedding(32)
    -> LSTM(32)), trained in quick mode (two steps, about 15 s): what ``lstmkit export`` reads."""
    from lstmkit.cli import main
    from lstmkit.data.resolve import ENV_VAR

    if not (Path(os.environ.get(ENV_VAR, "/nonexistent")) / "imdb.npz").exists():
        pytest.skip(f"{ENV_VAR} does not point at a directory with imdb.npz")
    run = tmp_path_factory.mktemp("seed003") / "run"
    assert main(["train", "imdb-seed003", "--quick", "--out", str(run), "--no-progress"]) == 0
    return run


def test_real_run_seed003(seed003_run: Path, tmp_path: Path) -> None:
    from lstmkit.runs import load_run

    model, _, vocab = load_run(seed003_run)
    assert model.config.vocab_size == 10000 and model.config.hidden_size == 32
    assert vocab is not None
    path = export_run_onnx(seed003_run, tmp_path / "imdb.onnx")
    sess = _session(path)
    rng = random.Random(3)
    texts = [" ".join([t] * rng.randint(1, 8)) for t in REVIEWS]  # 1 to ~200 words
    seqs = [(vocab.encode(t, maxlen=500), 0) for t in texts]
    tokens, lens, _ = collate_tokens(seqs)
    assert int(lens.min()) < 5 and int(lens.max()) > 100
    assert _max_diff(model, sess, tokens, lens) <= TOL
    # one at a time too (B=1, T=len): another batch size and length
    for i in (0, 7, 19):
        t, n, _ = collate_tokens([seqs[i]])
        assert _max_diff(model, sess, t, n) <= TOL


# -- forecasters --------------------------------------------------------------------------------
from lstmkit.data.series import read_series  # noqa: E402
from lstmkit.export import (  # noqa: E402
    FORECAST_INPUT,
    export_forecaster_onnx,
    forecast_windows,
)
from lstmkit.forecasting import (  # noqa: E402
    predict_panel_quantiles,
    predict_quantile_windows,
    predict_windows,
)
from lstmkit.models import (  # noqa: E402
    Forecaster,
    ForecasterConfig,
    PanelForecaster,
    PanelForecasterConfig,
)


def _close(got: np.ndarray, want: np.ndarray, rtol: float = 1e-5) -> None:
    """``got`` within ``rtol`` of each window's largest |value| (float32 in two orders)."""
    want = np.asarray(want, np.float64)
    assert got.shape == want.shape
    scale = np.abs(want.reshape(len(want), -1)).max(1)
    diff = np.abs(got - want).reshape(len(want), -1).max(1)
    assert bool((diff <= rtol * scale).all()), (diff / scale).max()


def _windows(n: int, lookback: int, size: int, seed: int, level: float = 50.0) -> np.ndarray:
    """Trending, seasonal, noisy positive windows (n, lookback, size) around ``level``."""
    rng = np.random.default_rng(seed)
    t = np.arange(lookback)[None, :]
    start = rng.uniform(0, 100, (n, 1))
    y = level + 0.3 * (t + start) + 0.1 * level * np.sin(2 * np.pi * (t + start) / 4)
    y = y + rng.normal(0, 0.01 * level, y.shape)
    x = np.concatenate([y[..., None], rng.normal(0, 1, (n, lookback, size - 1))], -1)
    return x.astype(np.float32)


def _randomise(model: torch.nn.Module, seed: int = 0) -> None:
    """Weights of a trained-looking network: the heads off zero (the network matters)."""
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "head" in name:
                p.copy_(0.3 * torch.randn(p.shape, generator=gen))


@pytest.mark.parametrize(
    "options",
    [
        dict(input_size=2, season=4, baseline="seasonal_mean"),
        dict(input_size=1, season=4, log=True),
        dict(input_size=3, season=1, cell="gru", num_layers=2, bidirectional=True),
        dict(input_size=1, season=4, cell="rnn", impl="loop"),
        dict(input_size=2, season=4, quantiles=[]),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_forecaster_onnx_matches_predict(tmp_path: Path, options: dict[str, Any]) -> None:
    kw: dict[str, Any] = dict(horizon=3, hidden_size=6, scale=2.5, quantiles=[0.1, 0.5, 0.9])
    kw.update(options)
    size = kw["input_size"]
    if size > 1:
        kw.update(feature_mean=[0.1] * (size - 1), feature_std=[2.0] * (size - 1))
    torch.manual_seed(0)
    model = Forecaster(ForecasterConfig(**kw)).eval()
    _randomise(model)
    if kw["quantiles"]:
        model.set_band(torch.tensor([[-1.5, 0.0, 1.0], [-2.0, 0.0, 1.5], [-2.5, 0.0, 2.5]]))
    x = _windows(40, 12, size, seed=1)
    path, check = export_forecaster_onnx(model, tmp_path / "f.onnx", lookback=12, windows=x)
    assert path.exists() and check is not None and check[0] <= 1.0
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == [FORECAST_INPUT]
    names = ["forecast", "quantiles"] if kw["quantiles"] else ["forecast"]
    assert [o.name for o in sess.get_outputs()] == names
    for batch in (x[:1], x[5:12], _windows(200, 12, size, seed=2, level=5000.0)):
        outs = sess.run(None, {FORECAST_INPUT: batch})
        point = predict_windows(model, batch)
        assert float(np.abs(point).max()) > 1.0  # in the series' units, not normalised
        _close(outs[0], point)
        if kw["quantiles"]:
            q = predict_quantile_windows(model, batch)
            _close(outs[1], q)
            assert bool((np.diff(outs[1], axis=-1) > 0).all())  # the band spreads them
    assert len(sess.run(None, {FORECAST_INPUT: x[:1]})[0]) == 1


@pytest.mark.parametrize(
    "options",
    [
        dict(members=2, num_series=3, embedding_dim=2, input_size=4, baseline="combined"),
        dict(members=1, input_size=1, baseline="seasonal_mean", log=True, cell="gru"),
    ],
    ids=["embedding-combined", "log-gru"],
)
def test_panel_forecaster_onnx_matches_predict(tmp_path: Path, options: dict[str, Any]) -> None:
    torch.manual_seed(0)
    feats = options["input_size"] - 1 - (1 if options.get("num_series") else 0)
    model = PanelForecaster(
        PanelForecasterConfig(
            horizon=4,
            hidden_size=5,
            season=4,
            feature_mean=[0.0] * feats,
            feature_std=[1.0] * feats,
            **options,
        )
    ).eval()
    model.set_offsets(torch.tensor([[-1.0, 0.0, 1.0]] * 4))
    _randomise(model)
    x = _windows(30, 12, options["input_size"], seed=3)
    if options.get("num_series"):
        x[..., -1] = (np.arange(30) % 3)[:, None]  # the series index, last column
    path, _ = export_forecaster_onnx(model, tmp_path / "p.onnx", lookback=12, windows=x)
    point, quantiles = _session(path).run(None, {FORECAST_INPUT: x[3:20]})
    want = predict_panel_quantiles(model, x[3:20])
    _close(quantiles, want)
    _close(point, want[..., model.median])


def test_unsupported_forecaster_raises(tmp_path: Path) -> None:
    model = Forecaster(ForecasterConfig(horizon=2, cell_options={"peephole": True}))
    with pytest.raises(ExportError, match="peephole"):
        export_forecaster_onnx(model, tmp_path / "f.onnx", lookback=6)
    assert not list(tmp_path.iterdir())


# a forecasting run of the CLI, exported with `lstmkit export RUN --onnx`
def _trending_seasonal(path: Path, n: int = 144) -> Path:
    """A monthly series with a trend and a season of 12: ``month, y, promo``."""
    rng = np.random.default_rng(7)
    t = np.arange(n)
    promo = (t % 12 == 11).astype(float)
    y = 200 + 1.5 * t + 25 * np.sin(2 * np.pi * t / 12) + 10 * promo + rng.normal(0, 2, n)
    lines = ["month,y,promo"]
    lines += [f"{2000 + i // 12}-{i % 12 + 1:02d},{y[i]:.3f},{promo[i]:g}" for i in range(n)]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def forecast_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from served_runs import panel_run

    from lstmkit.cli import main

    root = tmp_path_factory.mktemp("forecast-export")
    data = _trending_seasonal(root / "series.csv")
    run = root / "series-run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "y"]
    args += ["--features", "promo", "--time-column", "month", "--horizon", "6"]
    args += ["--lookback", "36", "--set", "train.max_steps=6", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return {"series": run, "panel": panel_run(root), "root": root}


def _cli_forecast(run: Path, data: Path, tmp: Path) -> list[dict[str, str]]:
    import csv

    from lstmkit.cli import main

    out = tmp / f"{run.name}-forecast.csv"
    assert main(["forecast", str(run), "--data", str(data), "--out", str(out)]) == 0
    return list(csv.DictReader(out.open(encoding="utf-8")))


def test_cli_export_of_a_forecasting_run_matches_lstmkit_forecast(
    forecast_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import json

    from lstmkit.cli import main
    from lstmkit.forecasting import load_forecast_run

    run, root = forecast_runs["series"], forecast_runs["root"]
    path = tmp_path / "series.onnx"
    assert main(["export", str(run), "--onnx", str(path)]) == 0
    out = capsys.readouterr().out
    assert f"ONNX graph written to {path}" in out
    assert f"windows of the run's data {root / 'series.csv'}" in out  # real windows
    meta = {p.key: p.value for p in onnx.load(str(path)).metadata_props}
    info = json.loads(meta["lstmkit"])
    assert (info["lookback"], info["horizon"], info["inputs"]) == (36, 6, ["y", "promo"])
    assert info["quantiles"] == [0.1, 0.5, 0.9]
    model, config, _ = load_forecast_run(run)
    sess = _session(path)
    # several histories: the file's end, and the file cut at earlier points
    full = (root / "series.csv").read_text(encoding="utf-8").splitlines()
    for end in (len(full), 100, 60):
        data = tmp_path / f"history-{end}.csv"
        data.write_text("\n".join(full[:end]) + "\n", encoding="utf-8")
        _, window = forecast_windows(config, read_series(data, "y", ["promo"], "month"))
        assert window.shape == (1, 36, 2)
        point, quantiles = sess.run(None, {FORECAST_INPUT: window})
        rows = _cli_forecast(run, data, tmp_path)
        cli_point = np.array([[float(r["y_forecast"]) for r in rows]])
        cli_q = np.array([[[float(r[f"q{q}"]) for q in (0.1, 0.5, 0.9)] for r in rows]])
        assert float(cli_point.min()) > 100  # the series' units
        _close(point, cli_point)
        _close(quantiles, cli_q)
        _close(point, predict_windows(model, window))
    # a batch of every window of the file at once: the same as the model's own predict
    series = read_series(root / "series.csv", "y", ["promo"], "month")
    _, every = forecast_windows(config, series, last_only=False)
    assert every.shape == (144 - 36 + 1, 36, 2)
    _, some = forecast_windows(config, series, last_only=False, most=10)  # evenly spread
    np.testing.assert_array_equal(
        some, every[np.linspace(0, len(every) - 1, 10).round().astype(int)]
    )
    point, quantiles = sess.run(None, {FORECAST_INPUT: every})
    _close(point, predict_windows(model, every))
    _close(quantiles, predict_quantile_windows(model, every))


def test_cli_export_of_a_panel_run_matches_lstmkit_forecast(
    forecast_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmkit.cli import main
    from lstmkit.data.panel import read_panel
    from lstmkit.forecasting import load_panel_run

    run, root = forecast_runs["panel"], forecast_runs["root"]
    path = tmp_path / "panel.onnx"
    assert main(["export", str(run), "--onnx", str(path)]) == 0
    assert f"windows of the run's data {root / 'panel.csv'}" in capsys.readouterr().out
    _, config = load_panel_run(run)
    # two of the three series, each its own level (about 20 to 500)
    lines = (root / "panel.csv").read_text(encoding="utf-8").splitlines()
    history = tmp_path / "history.csv"
    history.write_text(
        "\n".join([lines[0], *[x for x in lines[1:] if x.split(",")[0] in ("S2", "S0")]]) + "\n",
        encoding="utf-8",
    )
    ids, windows = forecast_windows(config, read_panel(history, "y", "unique_id", [], "ds"))
    assert ids == ["S0", "S2"] and windows.shape == (2, 12, 4)  # y, 2 calendar, series index
    assert windows[:, 0, -1].tolist() == [0.0, 2.0]
    point, quantiles = _session(path).run(None, {FORECAST_INPUT: windows})
    rows = _cli_forecast(run, history, tmp_path)
    assert [r["unique_id"] for r in rows] == ["S0"] * 4 + ["S2"] * 4
    cli = np.array([[float(r[f"q{q}"]) for q in (0.1, 0.5, 0.9)] for r in rows]).reshape(2, 4, 3)
    _close(quantiles, cli)
    _close(point, cli[..., 1])
    assert abs(np.log10(cli[0, 0, 1] / cli[1, 0, 1])) > 0.1  # levels apart: scaled tolerance
    # the check's windows: at most `most` of all series' windows, spread over every series
    panel = read_panel(root / "panel.csv", "y", "unique_id", [], "ds")
    all_ids, every = forecast_windows(config, panel, last_only=False)
    assert len(every) == 3 * (40 - 12 + 1)
    some_ids, some = forecast_windows(config, panel, last_only=False, most=10)
    pick = np.linspace(0, len(every) - 1, 10).round().astype(int)
    np.testing.assert_array_equal(some, every[pick])
    assert some_ids == [all_ids[i] for i in pick] and set(some_ids) == {"S0", "S1", "S2"}


def test_export_check_fails_loudly_and_writes_nothing(
    forecast_runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import lstmkit.export as export

    real = export.torch_forecasts

    def off(model: Any, windows: np.ndarray) -> tuple[np.ndarray, ...]:
        outs = real(model, windows)
        return (outs[0] * (1 + 5e-4), *outs[1:])  # 5e-4 relative: beyond the 1e-4 tolerance

    monkeypatch.setattr(export, "torch_forecasts", off)
    with pytest.raises(ExportError, match=r"'forecast' of window 0 .* beyond the tolerance"):
        export.export_forecast_run_onnx(forecast_runs["series"], tmp_path / "f.onnx")
    assert not list(tmp_path.iterdir())  # no file, no temporary file


def test_export_without_the_runs_data_checks_synthetic_windows(
    forecast_runs: dict[str, Path], tmp_path: Path
) -> None:
    import json
    import shutil

    from lstmkit.export import export_forecast_run_onnx

    run = tmp_path / "moved"
    shutil.copytree(forecast_runs["series"], run)
    config = json.loads((run / "config.json").read_text())
    config["recipe"]["data"]["series"]["train"] = str(tmp_path / "gone.csv")
    (run / "config.json").write_text(json.dumps(config))
    check = export_forecast_run_onnx(run, tmp_path / "f.onnx")
    assert check.windows == 64 and check.max_ratio <= 1.0
    assert "synthetic data (the run's data cannot be read" in check.summary()
    assert "gone.csv" in check.summary()


def test_export_of_an_unsupported_run_is_one_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from lstmkit.cli import main

    run = tmp_path / "lm"
    run.mkdir()
    (run / "config.json").write_text('{"task": "language_model", "model": {}}')
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 2
    err = capsys.readouterr().err
    assert "config.json: task 'language_model' cannot be exported to ONNX" in err
    assert "Traceback" not in err
    assert not (tmp_path / "m.onnx").exists()
