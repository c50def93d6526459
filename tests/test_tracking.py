"""lstmkit.tracking: what TensorBoard and MLflow hold equals history.jsonl (read back with
TensorBoard's EventAccumulator and MLflow's client), the recipe as hyperparameters, final metrics
and artifacts, resume continues the same MLflow run, and the errors of a bad or missing tracker."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest
from test_train import keyword_data, small_model

from lstmkit.config import TrainConfig, recipe_from_dict
from lstmkit.data.batching import collate_tokens
from lstmkit.errors import ConfigError, MissingDependencyError
from lstmkit.tracking import Tracker, row_scalars
from lstmkit.train import Trainer

pytest.importorskip("tensorboard")
pytest.importorskip("mlflow")


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One ``runs/`` folder for the module: its MLflow store is made once (as for a user's
    runs), each test trains its own run directory in it."""
    return tmp_path_factory.mktemp("runs")


def trainer(run_dir: Path, *, log: list[str], **cfg: Any) -> Trainer:
    base = {"batch_size": 16, "epochs": 2, "lr": 0.01, "seed": 0, "evaluate_every": 4}
    return Trainer(
        small_model(),
        TrainConfig(**{**base, **cfg, "log": log}),
        num_classes=2,
        collate=collate_tokens,
        run_dir=run_dir,
        progress=False,
        hparams={"model": {"hidden_size": 16}, "train": {"lr": 0.01, "log": log}},
        experiment="tracking-test",
    )


def history(run_dir: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in (run_dir / "history.jsonl").read_text().splitlines()]


def expected_scalars(rows: list[dict[str, Any]]) -> dict[str, dict[int, float]]:
    out: dict[str, dict[int, float]] = {}
    for row in rows:
        for tag, value in row_scalars(row).items():
            out.setdefault(tag, {})[int(row["step"])] = value
    return out


def close(a: float, b: float, rel: float) -> bool:
    return (math.isnan(a) and math.isnan(b)) or math.isclose(a, b, rel_tol=rel, abs_tol=1e-12)


def mlflow_client(runs: Path) -> Any:
    from mlflow.tracking import MlflowClient

    return MlflowClient(tracking_uri="sqlite:///" + str((runs / "mlflow.db").resolve()))


def test_tensorboard_and_mlflow_hold_every_history_scalar(runs: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = runs / "both"
    train, valid = keyword_data(96, 0), keyword_data(40, 1)
    t = trainer(run_dir, log=["tensorboard", "mlflow"])
    t.fit(train, train.lengths, valid, valid.lengths)
    rows = history(run_dir)
    want = expected_scalars(rows)
    # every kind of scalar a row holds is there: loss, accuracy, lr, gradient norm, update
    # ratio per layer, tokens/s (train) and the validation metrics
    for tag in ("train/loss", "train/accuracy", "train/lr", "train/grad_norm"):
        assert tag in want
    assert "train/tokens_per_s" in want and "val/accuracy" in want and "val/macro_f1" in want
    assert any(t.startswith("train/layers.") and t.endswith(".update_ratio") for t in want)
    assert len(want["val/loss"]) == sum(r["split"] == "val" for r in rows) >= 3

    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    for tag, by_step in want.items():
        got = {e.step: e.value for e in events.Scalars(tag)}
        assert set(got) == set(by_step), tag
        for step, value in by_step.items():  # float32 in the event file
            assert close(got[step], value, 1e-6), (tag, step, got[step], value)
    final = events.Scalars("final/best_val.value")[0]
    assert close(final.value, t.best["value"], 1e-6) and final.step == t.step
    assert "hparams/text_summary" in events.Tags()["tensors"]  # the recipe as text
    # and as TensorBoard's HParams, whose session holds the final metrics
    assert "_hparams_/session_start_info" in events.PluginTagToContent("hparams")

    client = mlflow_client(runs)
    run_id = json.loads((run_dir / "tracking.json").read_text())["mlflow_run_id"]
    run = client.get_run(run_id)
    assert run.info.status == "FINISHED" and run.info.run_name == "both"
    assert client.get_experiment(run.info.experiment_id).name == "tracking-test"
    assert run.data.params["model.hidden_size"] == "16"
    assert run.data.params["train.log"] == '["tensorboard", "mlflow"]'
    for tag, by_step in want.items():
        got = {m.step: m.value for m in client.get_metric_history(run_id, tag)}
        assert set(got) == set(by_step), tag
        for step, value in by_step.items():
            assert close(got[step], value, 1e-12), (tag, step)
    assert run.data.metrics["final/steps"] == t.step
    assert run.data.metrics["final/best_val.value"] == t.best["value"]
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"curves.png", "history.csv"} <= artifacts
    assert (runs / "mlartifacts").is_dir()


def test_a_resumed_run_continues_its_mlflow_run_and_tensorboard_drops_nothing(runs: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    run_dir = runs / "resumed"
    train, valid = keyword_data(96, 0), keyword_data(40, 1)
    trainer(run_dir, log=["mlflow", "tensorboard"], max_steps=6).fit(
        train, train.lengths, valid, valid.lengths
    )
    first = json.loads((run_dir / "tracking.json").read_text())["mlflow_run_id"]
    t = trainer(run_dir, log=["mlflow", "tensorboard"])
    t.fit(train, train.lengths, valid, valid.lengths, resume=True)
    assert json.loads((run_dir / "tracking.json").read_text())["mlflow_run_id"] == first
    want = expected_scalars(history(run_dir))
    client = mlflow_client(runs)
    got = {m.step: m.value for m in client.get_metric_history(first, "val/loss")}
    assert got == want["val/loss"] and 6 in got and t.step in got
    assert client.get_run(first).info.status == "FINISHED"
    events = EventAccumulator(str(run_dir / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    assert {e.step: e.value for e in events.Scalars("val/loss")}.keys() == want["val/loss"].keys()


def test_mlflow_tracking_uri_is_honoured(
    tmp_path: Path, runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = tmp_path / "elsewhere.db"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", "sqlite:///" + str(store))
    run_dir = tmp_path / "runs" / "env"
    train = keyword_data(32, 0)
    trainer(run_dir, log=["mlflow"], epochs=1).fit(train, train.lengths)
    assert store.is_file() and not (run_dir.parent / "mlflow.db").exists()


def test_own_callback_sees_every_row_once(tmp_path: Path) -> None:
    class Counting(Tracker):
        def __init__(self) -> None:
            self.calls: list[Any] = []

        def start(self, params: dict[str, Any], *, step: int) -> None:
            self.calls.append(("start", step, params["lr"]))

        def log_row(self, row: dict[str, Any]) -> None:
            self.calls.append(("row", row["step"], row["split"]))

        def finish(self, metrics: dict[str, Any], artifacts: Any = (), *, status: str = "") -> None:
            self.calls.append(("finish", metrics["steps"], status))

    seen = Counting()
    train, valid = keyword_data(64, 0), keyword_data(20, 1)
    t = Trainer(
        small_model(),
        TrainConfig(batch_size=16, epochs=1, lr=0.01, evaluate_every=2),
        num_classes=2,
        collate=collate_tokens,
        run_dir=None,
        progress=False,
        callbacks=[seen],
    )
    rows = t.fit(train, train.lengths, valid, valid.lengths)
    assert seen.calls[0] == ("start", 0, 0.01)
    assert seen.calls[1:-1] == [("row", r["step"], r["split"]) for r in rows]
    assert seen.calls[-1] == ("finish", 4, "FINISHED")


def test_a_missing_tracker_package_is_one_error_naming_the_extra(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow -> ImportError
    with pytest.raises(MissingDependencyError) as err:
        trainer(tmp_path / "run", log=["tensorboard", "mlflow"])
    assert str(err.value) == (
        "train.log = ['mlflow'] needs mlflow, which is not installed: pip install 'lstmkit[track]'"
    )
    assert not (tmp_path / "run").exists()  # nothing written


def test_bad_tracker_settings_are_one_error() -> None:
    with pytest.raises(ConfigError, match=r"train\.log\.0: Input should be 'tensorboard' or"):
        recipe_from_dict({"train": {"log": ["wandb"]}})
    with pytest.raises(ConfigError, match="give the Trainer a run_dir"):
        trainer(None, log=["tensorboard"])  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="name each tracker once"):
        trainer(Path("unused"), log=["mlflow", "mlflow"])


def test_lstmkit_train_log_sends_a_recipe_run_to_both(
    runs: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``lstmkit train reuters-seed002 --quick --log tensorboard,mlflow``: the recipe as params,
    the test metrics as final metrics, the run's plots as artifacts."""
    import os

    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from lstmkit.cli import main

    if not (Path(os.environ.get("LSTMKIT_DATA", "/nonexistent")) / "reuters.npz").exists():
        pytest.skip("LSTMKIT_DATA has no reuters.npz")
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    out = runs / "reuters-quick"
    args = ["train", "reuters-seed002", "--quick", "--out", str(out), "--no-progress"]
    assert main([*args, "--log", "tensorboard,mlflow"]) == 0
    metrics = json.loads((out / "metrics.json").read_text())
    client = mlflow_client(runs)
    run_id = json.loads((out / "tracking.json").read_text())["mlflow_run_id"]
    run = client.get_run(run_id)
    assert client.get_experiment(run.info.experiment_id).name == "reuters-seed002"
    recipe = json.loads((out / "config.json").read_text())["recipe"]
    assert run.data.params["model.hidden_size"] == str(recipe["model"]["hidden_size"])
    assert run.data.params["train.max_steps"] == "2"  # the --quick overrides are the params
    assert run.data.metrics["final/test.accuracy"] == metrics["test"]["accuracy"]
    assert run.data.metrics["final/steps"] == 2
    artifacts = {a.path for a in client.list_artifacts(run_id)}
    assert {"curves.png", "metrics.json", "config.json"} <= artifacts
    want = expected_scalars(history(out))
    got = {m.step: m.value for m in client.get_metric_history(run_id, "train/loss")}
    assert got == want["train/loss"]
    events = EventAccumulator(str(out / "tensorboard"), size_guidance={"scalars": 0})
    events.Reload()
    final = events.Scalars("final/test.accuracy")[0].value
    assert close(final, metrics["test"]["accuracy"], 1e-6)


def test_log_flag_refuses_an_unknown_tracker(capsys: pytest.CaptureFixture[str]) -> None:
    from lstmkit.cli import main

    assert main(["train", "reuters-seed002", "--log", "tensorboard,wandb"]) == 2
    assert "expected tensorboard, mlflow or tensorboard,mlflow, got 'tensorboard,wandb'" in (
        capsys.readouterr().err
    )
