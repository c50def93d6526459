"""lstmkit.tasks: one registry, every task behind the same interface."""

from __future__ import annotations

import pytest

from lstmkit.config import ConfigError, apply_overrides, recipe_from_dict
from lstmkit.tasks import TASKS, get_task, task_for_recipe

RAW = {
    "classify": {"data": {"dataset": "imdb"}},
    "text": {"data": {"dataset": "text", "text": {"train": "t.csv"}}},
    "forecast": {"data": {"dataset": "series", "series": {"train": "s.csv", "target": "y"}}},
    "language_model": {"data": {"dataset": "chars", "chars": {}}},
}


def test_the_registry_holds_the_four_tasks_and_is_read_only() -> None:
    assert list(TASKS) == ["classify", "text", "forecast", "language_model"]
    for name, task in TASKS.items():
        assert task.name == name and task.description
        for method in ("check", "setup", "evaluate", "summary", "evaluate_run", "quick_overrides"):
            assert callable(getattr(task, method)), (name, method)
    with pytest.raises(TypeError):
        TASKS["other"] = TASKS["text"]  # type: ignore[index]
    with pytest.raises(ConfigError, match="task must be one of classify, text, forecast, "):
        get_task("translate")


@pytest.mark.parametrize("name", list(RAW))
def test_a_recipe_s_task_follows_from_its_data_set(name: str) -> None:
    recipe = recipe_from_dict(RAW[name])
    assert recipe.task == name and task_for_recipe(recipe) is TASKS[name]
    # the --quick overrides of every task give a valid recipe of the same task
    quick = recipe_from_dict(apply_overrides(RAW[name], TASKS[name].quick_overrides(recipe)))
    assert quick.task == name and quick.train.max_steps == 2


@pytest.mark.parametrize("dataset", ["text", "series"])
def test_older_recipes_saying_classify_read_as_their_data_set_s_task(dataset: str) -> None:
    raw = {**RAW["text" if dataset == "text" else "forecast"], "task": "classify"}
    assert recipe_from_dict(raw).task == ("text" if dataset == "text" else "forecast")


def test_a_task_that_does_not_fit_the_data_set_is_one_clear_error() -> None:
    with pytest.raises(
        ConfigError, match="does not fit task 'text': task 'text' reads dataset 'text'"
    ):
        recipe_from_dict({"task": "text", "data": {"dataset": "imdb"}})
    with pytest.raises(ConfigError, match="task 'forecast' reads dataset 'series'"):
        recipe_from_dict({**RAW["text"], "task": "forecast"})
