"""lstmkit.runs: the run directory's only reader and writer."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from lstmkit.errors import LstmkitError, RunDirError, RunExistsError, RunKindError
from lstmkit.models import ClassifierConfig, LanguageModel, LanguageModelConfig, SequenceClassifier
from lstmkit.runs import (
    check_run_dir,
    has_checkpoint,
    is_classifier_run,
    load_run,
    read_history,
    read_metrics,
    read_run_config,
    save_config,
    save_final,
    task_of_run,
)


def test_check_run_dir_guards_finished_runs_and_resume(tmp_path: Path) -> None:
    check_run_dir(tmp_path / "new", resume=False)  # a new directory is fine
    with pytest.raises(RunDirError, match="has no checkpoints to resume from"):
        check_run_dir(tmp_path / "new", resume=True)
    (tmp_path / "old" / "checkpoints").mkdir(parents=True)
    with pytest.raises(RunExistsError, match="already holds a run; pass --resume"):
        check_run_dir(tmp_path / "old", resume=False)
    check_run_dir(tmp_path / "old", resume=True)
    assert not has_checkpoint(tmp_path / "old")
    (tmp_path / "old" / "checkpoints" / "latest").write_text("step-000000001")
    assert has_checkpoint(tmp_path / "old")


def test_read_run_config_names_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(RunDirError, match="is not a run directory: config.json is missing"):
        read_run_config(tmp_path)
    (tmp_path / "config.json").write_text("{not json")
    with pytest.raises(RunDirError, match="config.json: cannot be read as JSON"):
        read_run_config(tmp_path)
    (tmp_path / "config.json").write_text("[1, 2]")
    with pytest.raises(RunDirError, match="expected a JSON object, got list"):
        read_run_config(tmp_path)
    save_config(tmp_path, {"task": "forecast", "labels": ["가", "나"]})
    assert "가" in (tmp_path / "config.json").read_text(encoding="utf-8")  # kept as written
    assert read_run_config(tmp_path, "forecast")["labels"] == ["가", "나"]
    with pytest.raises(RunKindError, match="holds a 'forecast' run, not a 'language_model' run!"):
        read_run_config(tmp_path, "language_model", "!")


@pytest.mark.parametrize(
    ("config", "task", "classifier"),
    [
        ({"task": "classify", "recipe": {"data": {"dataset": "imdb"}}}, "classify", True),
        ({"task": "text", "recipe": {"data": {"dataset": "text"}}}, "text", True),
        # written before the task registry: own texts and series said "classify"
        ({"task": "classify", "recipe": {"data": {"dataset": "text"}}}, "text", True),
        ({"task": "classify", "recipe": {"data": {"dataset": "series"}}}, "forecast", False),
        (
            {"task": "language_model", "recipe": {"data": {"dataset": "chars"}}},
            "language_model",
            False,
        ),
        ({}, "classify", True),
    ],
)
def test_task_of_run(config: dict[str, object], task: str, classifier: bool) -> None:
    assert task_of_run(config) == task
    assert is_classifier_run(config) is classifier


def test_save_final_and_load_run_round_trip(tmp_path: Path) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(ClassifierConfig(vocab_size=20, embedding_dim=4, hidden_size=3))
    save_config(tmp_path, {"task": "classify", "model": model.config.to_dict()})
    with pytest.raises(RunDirError, match="model.safetensors is missing: the run did not finish"):
        load_run(tmp_path)
    assert read_metrics(tmp_path) is None
    save_final(model, tmp_path, {"test": {"accuracy": 0.5}})
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "config.json",
        "metrics.json",
        "model.safetensors",
    ]  # no temporary file left behind
    assert read_metrics(tmp_path) == {"test": {"accuracy": 0.5}}
    loaded, config, vocab = load_run(tmp_path)
    assert vocab is None and not loaded.training and config["task"] == "classify"
    for name, tensor in model.state_dict().items():
        assert torch.equal(tensor, loaded.state_dict()[name]), name


def test_load_run_refuses_a_model_that_is_not_a_classifier(tmp_path: Path) -> None:
    lm = LanguageModel(LanguageModelConfig(vocab_size=5, embedding_dim=3, hidden_size=4))
    save_config(tmp_path, {"task": "language_model", "model": lm.config.to_dict()})
    save_final(lm, tmp_path, {})
    with pytest.raises(RunKindError, match="holds a 'language_model' run, not a classifier") as e:
        load_run(tmp_path)
    assert isinstance(e.value, LstmkitError)


def test_read_history_skips_a_row_still_being_written(tmp_path: Path) -> None:
    assert read_history(tmp_path) == []
    rows = [{"step": 1, "split": "train"}, {"step": 1, "split": "val"}]
    text = "".join(json.dumps(r) + "\n" for r in rows)
    (tmp_path / "history.jsonl").write_text(text + '{"step": 2, "spl')
    assert read_history(tmp_path) == rows
