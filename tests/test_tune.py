"""lstmkit tune: Optuna trials as real run directories, the study in SQLite (a second call adds
trials to it rather than starting again), the best configuration as a recipe that loads and
trains, the table and the plot, the pruner fed by validation rows, and the errors of a bad space
or metric."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.config import load_recipe
from lstmkit.errors import ConfigError
from lstmkit.tune import Param, read_space, tune

optuna = pytest.importorskip("optuna")

SPACE = """
[train.lr]
low = 1e-3
high = 3e-2
log = true

[model]
hidden_size = { choices = [8, 16] }
"""


def needs_imdb() -> None:
    if not (Path(os.environ.get("LSTMKIT_DATA", "/nonexistent")) / "imdb.npz").exists():
        pytest.skip("LSTMKIT_DATA has no imdb.npz")


def test_tune_trials_are_runs_the_study_resumes_and_the_best_recipe_trains(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    needs_imdb()
    (tmp_path / "space.toml").write_text(SPACE)
    out = tmp_path / "study"
    args = ["tune", "imdb-seed003", "--quick", "--space", str(tmp_path / "space.toml")]
    args += ["--out", str(out), "--set", "data.validation_split=0.25"]
    assert main([*args, "--trials", "2"]) == 0
    storage = "sqlite:///" + str(out / "study.db")
    study = optuna.load_study(study_name="lstmkit-tune", storage=storage)
    first = [(t.number, t.params, t.value) for t in study.get_trials()]
    assert [n for n, _, _ in first] == [0, 1]
    assert study.direction.name == "MINIMIZE"  # val_loss: the recipe sets no monitor
    for number, params, value in first:
        run = out / f"trial-{number:03d}"
        metrics = json.loads((run / "metrics.json").read_text())
        assert metrics["best_val"]["value"] == value and metrics["steps"] == 2
        assert set(params) == {"train.lr", "model.hidden_size"}
        assert 1e-3 <= params["train.lr"] <= 3e-2 and params["model.hidden_size"] in (8, 16)
        config = json.loads((run / "config.json").read_text())["recipe"]
        assert config["train"]["lr"] == params["train.lr"]
        assert config["model"]["hidden_size"] == params["model.hidden_size"]
        assert config["train"]["monitor"] == "val_loss"

    # the same command again with a larger total: trials 0 and 1 are kept, one is added
    assert main([*args, "--trials", "3"]) == 0
    study = optuna.load_study(study_name="lstmkit-tune", storage=storage)
    again = [(t.number, t.params, t.value) for t in study.get_trials()]
    assert again[:2] == first and len(again) == 3 and (out / "trial-002").is_dir()
    # and with the total reached, no trial runs
    assert main([*args, "--trials", "3"]) == 0
    assert len(optuna.load_study(study_name="lstmkit-tune", storage=storage).trials) == 3

    table = list(csv.DictReader((out / "trials.csv").open()))
    assert [r["number"] for r in table] == ["0", "1", "2"]
    # the first two always complete (the median pruner's start-up trials); the third may be cut
    assert [r["state"] for r in table][:2] == ["COMPLETE", "COMPLETE"]
    assert table[2]["state"] in ("COMPLETE", "PRUNED")
    assert (out / "optimization_history.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    best = min((t for t in again if t[2] is not None), key=lambda t: t[2])
    recipe_file = out / "imdb-seed003-tuned.toml"
    recipe, _ = load_recipe(recipe_file)
    assert recipe.name == "imdb-seed003-tuned"
    assert recipe.train.lr == best[1]["train.lr"]
    assert recipe.model.hidden_size == best[1]["model.hidden_size"]
    assert f"best: trial {best[0]}, val_loss {best[2]:.4f}" in capsys.readouterr().out
    # the best recipe trains as it is
    assert main(["train", str(recipe_file), "--out", str(tmp_path / "best"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "best" / "metrics.json").read_text())["steps"] == 2


def test_the_pruner_reads_the_validation_rows(tmp_path: Path) -> None:
    """Trials that validate every step and are worse than the median of the first two at a step
    stop there: PRUNED, with the steps they reported."""
    needs_imdb()
    result = tune(
        "imdb-seed003",
        trials=4,
        out=tmp_path / "study",
        overrides=[
            "data.validation_split=0.25",
            "data.limit=64",
            "train.batch_size=8",
            "train.eval_batch_size=32",
            "train.max_steps=4",
            "train.epochs=1",
            "train.evaluate_every=1",
        ],
        space=[Param("train.lr", 1e-5, 0.5, log=True), Param("model.hidden_size", choices=(8,))],
    )
    study = optuna.load_study(
        study_name="lstmkit-tune", storage="sqlite:///" + str(tmp_path / "study" / "study.db")
    )
    trials = study.get_trials()
    assert len(trials) == 4
    for t in trials:
        assert sorted(t.intermediate_values) == list(range(1, len(t.intermediate_values) + 1))
        history = (tmp_path / "study" / f"trial-{t.number:03d}" / "history.jsonl").read_text()
        val = [json.loads(x) for x in history.splitlines() if '"split": "val"' in x]
        assert {r["step"]: r["loss"] for r in val} == t.intermediate_values
    pruned = [t for t in trials if t.state.name == "PRUNED"]
    for t in pruned:
        assert len(t.intermediate_values) < 4
    assert result.best_trial is not None and result.direction == "minimize"


def test_bad_spaces_and_metrics_are_one_error(tmp_path: Path) -> None:
    bad = tmp_path / "space.toml"
    bad.write_text("[train.lr]\nlow = 0.1\nhigh = 0.01\n")
    with pytest.raises(ConfigError, match=r"\[train.lr\]: low must be below high, got low=0.1"):
        read_space(bad)
    bad.write_text("[train.lr]\nlow = 0\nhigh = 0.01\nlog = true\n")
    with pytest.raises(ConfigError, match=r"log = true needs low > 0"):
        read_space(bad)
    bad.write_text("[model.hidden_size]\nchoices = []\n")
    with pytest.raises(ConfigError, match="choices is a non-empty list"):
        read_space(bad)
    bad.write_text("[train.lr]\nlow = 1e-4\nhigh = 1e-2\nscale = 'log'\n")
    with pytest.raises(ConfigError, match=r"unknown key\(s\) scale"):
        read_space(bad)
    with pytest.raises(ConfigError, match=r"search space \[train.lrate\]"):
        tune("imdb-seed003", trials=1, out=tmp_path / "s", space=[Param("train.lrate", 0.1, 1.0)])
    with pytest.raises(ConfigError, match="--metric val_auc: expected one of val_accuracy"):
        tune("imdb-seed003", trials=1, out=tmp_path / "s", metric="val_auc")
    assert not (tmp_path / "s").exists()  # nothing written before the checks pass
