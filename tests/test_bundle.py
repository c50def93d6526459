"""lstmkit.bundle: export_bundle, load -> Predictor, batching by length, clear load errors; the
bundles of forecasting runs (one series, a panel) and what reads them.

Every classifier's run directory here is built in a fixture from a tiny untrained model: no data
set needed; the forecasting runs are trained by the CLI for a few steps on small synthetic CSVs.
"""

from __future__ import annotations

import json
import random
from pathlib import Path
from typing import Any

import pytest
import torch

import lstmkit
from lstmkit.bundle import BundleError, Predictor, export_bundle, load
from lstmkit.checkpoint import model_state, save_tensors
from lstmkit.cli import main
from lstmkit.config import Recipe
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.models import ClassifierConfig, SequenceClassifier

WORDS = ["good", "bad", "film", "plot", "great", "awful", "acting", "boring", "fun", "long"]


def make_run(run_dir: Path, *, num_classes: int = 2, seed: int = 0, **model: Any) -> Path:
    """A finished run directory as ``run_recipe`` writes it, for a tiny untrained model."""
    torch.manual_seed(seed)
    net = SequenceClassifier(
        ClassifierConfig(
            vocab_size=50, num_classes=num_classes, embedding_dim=8, hidden_size=8, **model
        )
    )
    run_dir.mkdir(parents=True)
    save_tensors(model_state(net), run_dir / "model.safetensors")
    recipe = Recipe().model_dump()
    recipe["data"]["maxlen"] = 40
    labels = ["negative", "positive"] if num_classes == 2 else [f"c{i}" for i in range(num_classes)]
    config = {
        "recipe": recipe,
        "raw": {},
        "model": net.config.to_dict(),
        "task": "classify",
        "real_valued": False,
        "labels": labels,
    }
    (run_dir / "config.json").write_text(json.dumps(config, indent=2))
    # ids from 4 up (Keras' index_from=3); "rare" is beyond the embedding: read as OOV
    Vocabulary({**{w: i + 4 for i, w in enumerate(WORDS)}, "rare": 70}).save(run_dir / "vocab.json")
    metrics = {"test": {"accuracy": 0.5, "macro_f1": 0.4, "loss": 0.69, "examples": 10}}
    (run_dir / "metrics.json").write_text(json.dumps(metrics))
    return run_dir


def random_texts(n: int, seed: int = 0) -> list[str]:
    """``n`` texts of 1 to 60 words (some beyond maxlen), unknown and rare words included."""
    rng = random.Random(seed)
    pool = [*WORDS, "unknown", "rare", "Good!", "<br />"]
    return [" ".join(rng.choice(pool) for _ in range(rng.randint(1, 60))) for _ in range(n)]


@pytest.fixture
def run(tmp_path: Path) -> Path:
    return make_run(tmp_path / "run")


def max_diff(a: list[dict[str, Any]], b: list[dict[str, Any]]) -> float:
    assert [x["scores"].keys() for x in a] == [x["scores"].keys() for x in b]
    return max(
        abs(x["scores"][k] - y["scores"][k]) for x, y in zip(a, b, strict=True) for k in x["scores"]
    )


def test_export_round_trip_gives_identical_predictions(run: Path, tmp_path: Path) -> None:
    out = export_bundle(run, tmp_path / "bundle")
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle.json",
        "config.json",
        "metrics.json",
        "model.safetensors",
        "vocab.json",
    ]
    assert not (tmp_path / "bundle.tmp").exists()
    info = json.loads((out / "bundle.json").read_text())
    assert info["format"] == "lstmkit-bundle"
    assert info["version"] == 1
    assert info["lstmkit_version"] == lstmkit.__version__
    assert info["created"]
    assert set(info["files"]) == {"config.json", "model.safetensors", "vocab.json", "metrics.json"}
    texts = random_texts(20)
    from_run = load(run).predict(texts)
    from_bundle = lstmkit.load(out).predict(texts)
    assert from_bundle == from_run  # the very same floats
    # a bundle re-exports to an equal bundle
    again = export_bundle(out, tmp_path / "bundle2")
    assert load(again).predict(texts) == from_run


def test_export_refuses_a_non_empty_directory(run: Path, tmp_path: Path) -> None:
    out = tmp_path / "bundle"
    out.mkdir()
    export_bundle(run, out)  # an empty directory is fine
    with pytest.raises(FileExistsError, match="already exists and is not empty"):
        export_bundle(run, out)
    assert load(out).predict(["good film"])


def test_export_of_a_broken_run_makes_no_bundle(run: Path, tmp_path: Path) -> None:
    (run / "model.safetensors").unlink()
    with pytest.raises(BundleError, match="model.safetensors is missing"):
        export_bundle(run, tmp_path / "bundle")
    assert not (tmp_path / "bundle").exists()
    assert not (tmp_path / "bundle.tmp").exists()


@pytest.mark.parametrize(
    "model",
    [
        {"num_classes": 2},
        {"num_classes": 3, "cell": "gru", "bidirectional": True, "pooling": "mean"},
        {"num_classes": 2, "conv_filters": 4, "conv_kernel": 3, "pool_size": 2},
    ],
    ids=["lstm-last", "bigru-mean-3cls", "conv"],
)
def test_batching_never_changes_a_result(tmp_path: Path, model: dict[str, Any]) -> None:
    predictor = load(make_run(tmp_path / "run", **model))
    texts = random_texts(150, seed=1)  # three batches of <= 64, lengths all mixed up
    together = predictor.predict(texts)
    alone = [predictor.predict([t])[0] for t in texts]
    assert max_diff(together, alone) <= 1e-6
    assert [r["label"] for r in together] == [r["label"] for r in alone]
    for r in together:
        assert r["label"] == max(r["scores"], key=r["scores"].__getitem__)
        assert sum(r["scores"].values()) == pytest.approx(1.0, abs=1e-6)
    # input order: the reversed input gives the reversed output
    assert max_diff(predictor.predict(texts[::-1]), together[::-1]) <= 1e-6


@pytest.mark.parametrize(
    ("model", "padded"),
    [
        ({"num_classes": 2}, True),
        ({"num_classes": 2, "num_layers": 2, "cell": "gru"}, True),
        ({"num_classes": 3, "cell": "lstm", "bidirectional": True, "pooling": "mean"}, True),
        ({"num_classes": 2, "cell": "rnn", "pooling": "max"}, True),
        ({"num_classes": 2, "conv_filters": 4, "conv_kernel": 3, "pool_size": 2}, False),
    ],
    ids=["lstm-last", "gru-2layers", "bilstm-mean-3cls", "rnn-max", "conv"],
)
def test_padded_inference_equals_the_models_own_forward(
    tmp_path: Path, model: dict[str, Any], padded: bool
) -> None:
    from lstmkit.data.batching import collate_tokens

    predictor = load(make_run(tmp_path / "run", **model))
    assert (predictor._padded is not None) == padded  # conv: the model's own path
    texts = random_texts(40, seed=3)  # lengths 2..41 mixed in one batch: much padding
    tokens, lengths, _ = collate_tokens([(ids, 0) for ids in predictor.encode(texts)])
    assert int(lengths.min()) * 4 < int(lengths.max())
    with torch.inference_mode():
        own = predictor.model.predict_proba(tokens, lengths)  # packed / split
    got = torch.tensor(
        [[p["scores"][lab] for lab in predictor.labels] for p in predictor.predict(texts)]
    )
    assert float((got - own).abs().max()) <= 1e-6


def test_batches_are_length_buckets(run: Path) -> None:
    predictor = load(run)
    predictor.batch_size = 16
    padded = predictor._padded
    assert padded is not None
    calls: list[list[int]] = []

    def spy(tokens: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
        calls.append(lengths.tolist())
        return padded(tokens, lengths)

    predictor._padded = spy  # type: ignore[assignment]
    texts = random_texts(100, seed=4)
    got = predictor.predict(texts)
    predictor._padded = padded
    assert max_diff(got, predictor.predict(texts)) == 0.0
    assert sum(len(c) for c in calls) == 100
    for lengths in calls:  # sorted, at most 16, longest at most twice the shortest
        assert lengths == sorted(lengths) and len(lengths) <= 16
        assert lengths[-1] <= 2 * lengths[0]
    # and no more calls than that needs: a new one only when full or when the length doubles
    for prev, nxt in zip(calls, calls[1:], strict=False):
        assert len(prev) == 16 or nxt[0] > 2 * prev[0], (prev, nxt)
    assert len(calls) < 100 / 4  # buckets, not one text per call


def test_predictor_metadata_and_encoding(run: Path, tmp_path: Path) -> None:
    meta = load(run).metadata
    assert meta["labels"] == ["negative", "positive"]
    assert meta["model"]["vocab_size"] == 50
    assert meta["maxlen"] == 40
    assert meta["metrics"]["test"]["accuracy"] == 0.5
    assert meta["lstmkit_version"] == lstmkit.__version__
    assert meta["bundle"] is None
    json.dumps(meta)
    bundled = load(export_bundle(run, tmp_path / "b")).metadata
    assert bundled["bundle"]["version"] == 1
    assert {k: v for k, v in bundled.items() if k != "bundle"} == {
        k: v for k, v in meta.items() if k != "bundle"
    }
    predictor = load(run)
    assert isinstance(predictor, Predictor)
    (ids,) = predictor.encode(["good rare zzz " * 30])
    assert len(ids) == 40  # maxlen keeps the last 40
    assert set(ids) == {4, 2}  # "rare" (id 70 >= vocab_size 50) and "zzz" read as OOV (2)


def test_empty_text_names_its_index(run: Path) -> None:
    with pytest.raises(ValueError, match="text 2 is empty"):
        load(run).predict(["good", "bad", "  \n\t"])


def test_missing_model_file(run: Path, tmp_path: Path) -> None:
    bundle = export_bundle(run, tmp_path / "bundle")
    for path in (run, bundle):
        (path / "model.safetensors").unlink()
        with pytest.raises(BundleError, match=r"model\.safetensors is missing"):
            load(path)


def test_missing_config_or_vocab(run: Path, tmp_path: Path) -> None:
    (run / "vocab.json").unlink()
    with pytest.raises(BundleError, match=r"vocab\.json is missing"):
        load(run)
    with pytest.raises(BundleError, match="is not a run directory"):
        load(tmp_path)
    with pytest.raises(BundleError, match="is not a directory"):
        load(tmp_path / "nowhere")


def test_truncated_safetensors(run: Path, tmp_path: Path) -> None:
    bundle = export_bundle(run, tmp_path / "bundle")
    for path in (run, bundle):
        data = (path / "model.safetensors").read_bytes()
        (path / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"cannot read weights .*model\.safetensors"):
        load(run)
    with pytest.raises(BundleError, match=r"model\.safetensors is corrupted"):
        load(bundle)  # the checksum in bundle.json catches it first
    info = json.loads((bundle / "bundle.json").read_text())
    del info["files"]["model.safetensors"]
    (bundle / "bundle.json").write_text(json.dumps(info))
    with pytest.raises(BundleError, match=r"cannot read weights .*model\.safetensors"):
        load(bundle)


def test_unknown_bundle_version(run: Path, tmp_path: Path) -> None:
    bundle = export_bundle(run, tmp_path / "bundle")
    info = json.loads((bundle / "bundle.json").read_text())
    (bundle / "bundle.json").write_text(json.dumps({**info, "version": 99}))
    with pytest.raises(BundleError, match=r"bundle\.json: bundle version 99 is not supported"):
        load(bundle)
    (bundle / "bundle.json").write_text("{not json")
    with pytest.raises(BundleError, match=r"cannot read .*bundle\.json"):
        load(bundle)


def test_cli_export(run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "bundle"
    assert main(["export", str(run), "--bundle", str(out)]) == 0
    assert "bundle written to" in capsys.readouterr().out
    assert (out / "bundle.json").exists()
    assert main(["export", str(run), "--bundle", str(out)]) == 2
    assert "already exists and is not empty" in capsys.readouterr().err
    assert main(["export", str(tmp_path / "none"), "--bundle", str(tmp_path / "b2")]) == 2
    assert "is not a directory" in capsys.readouterr().err
    assert main(["predict", str(out), "good film"]) == 0
    assert '"label"' in capsys.readouterr().out


def test_cli_export_onnx_matches_the_bundle(
    run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import numpy as np
    import onnxruntime as ort

    from lstmkit.data.batching import collate_tokens

    onnx_path = tmp_path / "model.onnx"
    assert main(["export", str(run), "--onnx", str(onnx_path)]) == 0
    assert "ONNX graph written to" in capsys.readouterr().out
    predictor = load(run)
    texts = random_texts(6)
    tokens, lengths, _ = collate_tokens([(ids, 0) for ids in predictor.encode(texts)])
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    (probs,) = sess.run(None, {"tokens": tokens.numpy(), "lengths": lengths.numpy()})
    expected = np.array(
        [[p["scores"][lab] for lab in predictor.labels] for p in predictor.predict(texts)]
    )
    assert float(np.abs(probs - expected).max()) <= 1e-4
    assert main(["export", str(run)]) == 2
    assert "--bundle OUT_DIR and/or --onnx FILE" in capsys.readouterr().err


# -- forecasting runs ---------------------------------------------------------------------------
@pytest.fixture(scope="module")
def forecast_runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    from served_runs import forecast_run, panel_run

    root = tmp_path_factory.mktemp("forecast-bundles")
    return {"series": forecast_run(root), "panel": panel_run(root), "root": root}


def _history(forecast_runs: dict[str, Path], kind: str) -> Path:
    return forecast_runs["root"] / ("sales.csv" if kind == "series" else "panel.csv")


@pytest.mark.parametrize("kind", ["series", "panel"])
def test_a_forecasting_bundle_forecasts_as_its_run(
    forecast_runs: dict[str, Path], tmp_path: Path, kind: str, capsys: pytest.CaptureFixture[str]
) -> None:
    pytest.importorskip("fastapi")
    from lstmkit.serve.models import ForecastModel, load_served

    run = forecast_runs[kind]
    out = export_bundle(run, tmp_path / "bundle")
    assert sorted(p.name for p in out.iterdir()) == [
        "bundle.json",
        "config.json",
        "metrics.json",
        "model.safetensors",
    ]
    assert not (tmp_path / "bundle.tmp").exists()
    info = json.loads((out / "bundle.json").read_text())
    assert (info["format"], info["version"]) == ("lstmkit-bundle", 1)
    assert set(info["files"]) == {"config.json", "model.safetensors", "metrics.json"}
    # the served model: the same weights, config and metrics from the bundle as from the run
    a, b = load_served(run), load_served(out)
    assert isinstance(a, ForecastModel) and isinstance(b, ForecastModel)
    assert a.panel == b.panel == (kind == "panel")
    assert a.config == b.config and a.metrics == b.metrics and a.metadata() == b.metadata()
    sa, sb = a.model.state_dict(), b.model.state_dict()
    assert sa.keys() == sb.keys() and all(torch.equal(sa[k], sb[k]) for k in sa)
    # lstmkit forecast reads the bundle as it reads the run: the same CSV, byte for byte
    data = _history(forecast_runs, kind)
    for src, name in ((run, "run.csv"), (out, "bundle.csv")):
        assert main(["forecast", str(src), "--data", str(data), "--out", str(tmp_path / name)]) == 0
    from_run = (tmp_path / "run.csv").read_text()
    assert (tmp_path / "bundle.csv").read_text() == from_run
    assert len(from_run.splitlines()) == 1 + (3 if kind == "series" else 3 * 4)
    # a bundle re-exports; lstmkit.load is the classifier's loader and says what reads this one
    again = export_bundle(out, tmp_path / "bundle2")
    assert load_served(again).config == a.config  # type: ignore[union-attr]
    with pytest.raises(BundleError, match="is a forecasting run; use lstmkit forecast .* serve"):
        lstmkit.load(out)
    capsys.readouterr()
    assert main(["export", str(run), "--bundle", str(tmp_path / "cli")]) == 0
    assert "bundle written to" in capsys.readouterr().out


def test_a_broken_forecasting_run_or_bundle_is_one_error(
    forecast_runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import shutil

    pytest.importorskip("fastapi")
    from lstmkit.serve.models import load_served

    run = tmp_path / "run"
    shutil.copytree(forecast_runs["series"], run)
    bundle = export_bundle(run, tmp_path / "bundle")
    # a corrupted weights file: the bundle's checksum names it, for serving and the ONNX export
    data = (bundle / "model.safetensors").read_bytes()
    (bundle / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"model\.safetensors is corrupted"):
        load_served(bundle)
    assert main(["export", str(bundle), "--onnx", str(tmp_path / "f.onnx")]) == 2
    err = capsys.readouterr().err
    assert "model.safetensors is corrupted" in err and "Traceback" not in err
    assert not (tmp_path / "f.onnx").exists()
    # a run whose weights are cut short, or whose model section is wrong: no bundle
    (run / "model.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(BundleError, match=r"model\.safetensors"):
        export_bundle(run, tmp_path / "b2")
    assert not (tmp_path / "b2").exists() and not (tmp_path / "b2.tmp").exists()
    (run / "model.safetensors").write_bytes(data)
    config = json.loads((run / "config.json").read_text())
    config["model"]["horizon"] = 0
    (run / "config.json").write_text(json.dumps(config))
    with pytest.raises(BundleError, match=r"config\.json: invalid model section"):
        export_bundle(run, tmp_path / "b3")
    assert not (tmp_path / "b3").exists()
    (run / "model.safetensors").unlink()
    with pytest.raises(BundleError, match=r"model\.safetensors is missing"):
        export_bundle(run, tmp_path / "b4")
