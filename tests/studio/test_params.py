"""The new-run form's values -> ``--set`` overrides: TOML literals that read back as the same
values, the recipe carried into an own-data run intact, errors placed on the right field."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from lstmkit.config import load_recipe, parse_override, recipe_for_task
from lstmkit.studio.params import (
    FieldError,
    RunRequest,
    _toml,
    base_overrides,
    recipe_catalog,
    to_overrides,
    validate_request,
)

RECIPES = Path(__file__).resolve().parents[2] / "lstmkit" / "recipes"


@pytest.mark.parametrize(
    "value",
    [
        True,
        False,
        0,
        7,
        1e-05,
        0.001,
        2.5,
        "gru",
        'say "hi"\\n',
        [1, 2],
        ["a", "b"],
        {"forget_bias": 1.0, "peephole": True},
    ],
)
def test_toml_literals_read_back(value: Any) -> None:
    assert parse_override(f"k={_toml(value)}") == (["k"], value)


def test_overrides_of_the_seed_parameters() -> None:
    recipe, _ = load_recipe(RECIPES / "imdb-seed000.toml")
    request = RunRequest(
        recipe="imdb-seed000",
        dataset="reuters",
        hidden_size=64,
        dropout_keep_prob=0.8,
        learn_rate=0.002,
        cell="gru",
        bidirectional=True,
        vocab_size=5000,
    )
    overrides = to_overrides(request, recipe)
    assert overrides == [
        'data.dataset="reuters"',
        "pretrain.unlabelled=false",
        "hidden_size=64",
        "dropout_keep_prob=0.8",
        "learn_rate=0.002",
        'model.cell="gru"',
        "model.bidirectional=true",
        "data.num_words=5000",
    ]
    changed, _ = load_recipe(RECIPES / "imdb-seed000.toml", overrides)
    assert changed.data.dataset == "reuters" and changed.model.hidden_size == 64
    assert changed.model.dropout == pytest.approx(0.2)
    assert changed.model.output_dropout == pytest.approx(0.2)
    assert changed.train.lr == 0.002 and changed.model.cell == "gru"
    assert changed.model.bidirectional and changed.data.num_words == 5000
    assert changed.model.num_layers == 2 and changed.train.batch_size == 1000  # the recipe's
    assert changed.pretrain.method == "word2vec" and changed.pretrain.freeze  # still the note's
    assert not changed.pretrain.unlabelled  # reuters has no unlabelled reviews


def test_an_own_data_run_keeps_the_recipes_model_and_training(tmp_path: Path) -> None:
    recipe, _ = load_recipe(RECIPES / "imdb-seed000.toml")
    data = tmp_path / "d.csv"
    data.write_text("text,label\na,1\nb,0\n")
    own, _ = recipe_for_task("text", {"train": str(data)}, overrides=base_overrides(recipe))
    assert own.data.dataset == "text" and own.data.maxlen == recipe.data.maxlen
    skip = {"num_classes", "vocab_size", "input_size"}
    assert own.model.model_dump(exclude=skip) == recipe.model.model_dump(exclude=skip)
    assert own.train == recipe.train


def test_errors_land_on_their_field() -> None:
    catalog = recipe_catalog(RECIPES)
    with pytest.raises(FieldError) as err:
        validate_request(RunRequest(recipe="imdb-seed003", dataset="chars"), catalog)
    assert err.value.field == "dataset" and "[data.chars]" in err.value.message
    with pytest.raises(FieldError) as err:
        validate_request(
            RunRequest(recipe="imdb-seed003", dataset="mnist", vocab_size=100), catalog
        )
    assert err.value.field == "vocab_size"
    plan = validate_request(
        RunRequest(recipe="imdb-seed003", dataset="mnist", hidden_size=16), catalog
    )
    assert plan.overrides == ['data.dataset="mnist"', "hidden_size=16"]
    assert plan.task_args is None


UPLOAD_META = {"filename": "panel.csv", "columns": ["unique_id", "ds", "y", "note"]}


def forecast_request(**fields: Any) -> RunRequest:
    base = {
        "recipe": "imdb-seed003",
        "dataset": "upload",
        "task": "forecast",
        "upload_id": "0123456789ab",
        "target_column": "y",
        "id_column": "unique_id",
    }
    return RunRequest(**{**base, **fields})


def test_a_forecast_upload_runs_task_forecast_with_only_the_chosen_values() -> None:
    catalog = recipe_catalog(RECIPES)
    stored = Path("/home/uploads/0123456789ab.csv")
    plan = validate_request(
        forecast_request(time_column="ds", horizon=8), catalog, UPLOAD_META, stored
    )
    assert plan.task_args == [
        "--task", "forecast", "--train", str(stored), "--target", "y",
        "--time-column", "ds", "--id-column", "unique_id", "--horizon", "8",
    ]  # fmt: skip
    assert plan.overrides == []  # the data chooses the rest: no recipe values as --set
    # a field that is set becomes --set (the validation share: [data.series]); blank = none
    plan = validate_request(
        forecast_request(hidden_size=16, validation_split=0.2, max_steps=10),
        catalog,
        UPLOAD_META,
        stored,
    )
    assert plan.task_args == [
        "--task", "forecast", "--train", str(stored), "--target", "y", "--id-column", "unique_id",
    ]  # fmt: skip
    assert plan.overrides == [
        "hidden_size=16",
        "data.series.valid_fraction=0.2",
        "train.max_steps=10",
    ]
    recipe, raw = recipe_for_task(
        "forecast", {"train": str(stored), "target": "y"}, overrides=plan.overrides
    )
    assert recipe.data.series is not None and recipe.data.series.valid_fraction == 0.2
    assert "epochs" not in raw.get("train", {})  # the recipe's own epochs did not come along


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target_column": "sales"}, "target_column", "no column 'sales'; its columns are"),
        ({"target_column": None}, "target_column", "target_column is required"),
        ({"time_column": "y"}, "time_column", "'y' is already the target_column"),
        ({"id_column": None}, "id_column", "has a 'unique_id' column"),
        ({"id_column": "ds", "time_column": "ds"}, "id_column", "already the time_column"),
        ({"text_column": "note"}, "text_column", "is for text classification"),
        ({"vocab_size": 100}, "vocab_size", "does not apply to a forecast"),
        ({"upload_id": None}, "upload_id", "upload_id is required"),
    ],
)
def test_forecast_field_errors(fields: dict[str, Any], field: str, words: str) -> None:
    with pytest.raises(FieldError) as err:
        validate_request(
            forecast_request(**fields), recipe_catalog(RECIPES), UPLOAD_META, Path("/x.csv")
        )
    assert err.value.field == field and words in err.value.message


def test_forecast_fields_belong_to_the_forecast_task() -> None:
    catalog = recipe_catalog(RECIPES)
    with pytest.raises(FieldError) as err:
        validate_request(forecast_request(task="text", text_column="note", label_column="ds"),
                         catalog, UPLOAD_META, Path("/x.csv"))  # fmt: skip
    assert err.value.field == "target_column" and "choose the task 'forecast'" in err.value.message
    with pytest.raises(FieldError) as err:
        validate_request(
            RunRequest(recipe="imdb-seed003", dataset="mnist", task="forecast"), catalog
        )
    assert err.value.field == "task"
    for horizon in (0, 1001):
        with pytest.raises(ValueError, match="horizon"):
            forecast_request(horizon=horizon)
