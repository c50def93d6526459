"""The task registry: one module per task, each a :class:`~lstmkit.tasks.base.Task`.

=================  ==========================  ==============================================
task               data (``[data] dataset``)   module
=================  ==========================  ==============================================
``classify``       imdb, reuters, mnist,       :mod:`lstmkit.tasks.classify`
                   arrays
``text``           text (your labelled texts)  :mod:`lstmkit.tasks.text`
``forecast``       series (your time series)   :mod:`lstmkit.tasks.forecast`
``language_model`` chars (a text file)         :mod:`lstmkit.tasks.language_model`
=================  ==========================  ==============================================

:func:`task_for_recipe` picks a recipe's task (``recipe.task``), :func:`task_for_run` a run
directory's (its ``config.json``). :mod:`lstmkit.experiment` runs any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING

from lstmkit.errors import ConfigError
from lstmkit.runs import read_run_config, task_of_run
from lstmkit.tasks.base import Outcome, Record, Setup, Task
from lstmkit.tasks.classify import ClassifyTask
from lstmkit.tasks.forecast import ForecastTask
from lstmkit.tasks.language_model import LanguageModelTask
from lstmkit.tasks.text import TextTask

if TYPE_CHECKING:
    from lstmkit.config import Recipe

__all__ = [
    "TASKS",
    "Outcome",
    "Record",
    "Setup",
    "Task",
    "get_task",
    "task_for_recipe",
    "task_for_run",
]

# read-only: the tasks are stateless objects, the mapping cannot be changed at run time
TASKS: Mapping[str, Task] = MappingProxyType(
    {t.name: t for t in (ClassifyTask(), TextTask(), ForecastTask(), LanguageModelTask())}
)


def get_task(name: str) -> Task:
    """The task called ``name``; an unknown name is a ConfigError listing the known ones."""
    try:
        return TASKS[name]
    except KeyError:
        raise ConfigError(f"task must be one of {', '.join(TASKS)}, got {name!r}") from None


def task_for_recipe(recipe: Recipe) -> Task:
    """The task that runs ``recipe`` (``recipe.task``, which the recipe derives from its data
    set when the TOML does not say)."""
    return get_task(recipe.task)


def task_for_run(run_dir: Path) -> Task:
    """The task that wrote the run directory ``run_dir``."""
    return get_task(task_of_run(read_run_config(run_dir)))
