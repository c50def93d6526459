"""What every task gives the shared skeleton (:func:`lstmkit.experiment.run_recipe`).

A task is one kind of model trained on one kind of data: ``classify`` (the Keras data sets and
numeric arrays), ``text`` (your own labelled texts), ``forecast`` (your own series) and
``language_model`` (character streams). The skeleton does what every run does -- seed, timer,
run-directory checks, ``config.json``, the :class:`~lstmkit.train.Trainer`, the final weights,
``metrics.json``, the result record -- once; a task does only what is its own:

1. :meth:`Task.check`: the recipe's task-specific settings, before anything is read or written;
2. :meth:`Task.setup`: read and check the data, build the model (pretraining included) -- no file
   is written, so a bad input leaves an earlier run intact -- and say how the Trainer runs it;
3. :meth:`Task.evaluate`: the trained model's figures, the result to record, the reports;
4. :meth:`Task.summary`: the one line the CLI prints; :meth:`Task.evaluate_run`: re-evaluate a
   finished run directory (``lstmkit evaluate``).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from torch import nn
from torch.utils.data import Dataset

if TYPE_CHECKING:
    from lstmkit.config import Recipe
    from lstmkit.tasks.defaults import Choice
    from lstmkit.train import Trainer


def _nothing(_: Path) -> None:
    return None


@dataclass
class Setup:
    """A task's data and model for one run, made before anything is written.

    Attributes:
        model: the model to train (pretrained parts already in place).
        train, valid: the datasets the Trainer reads (``.lengths`` for bucketing).
        trainer: keyword arguments of :class:`~lstmkit.train.Trainer` (``objective`` or
            ``num_classes``, ``collate``, ``bucketing``, ``bucket_chunk``).
        config: the task's entries of ``config.json`` (the skeleton adds recipe, raw, task).
        data: the task's prepared data, for :meth:`Task.evaluate`.
        save_inputs: writes what turns raw input into ids (vocabulary, tokenizer, characters)
            into a new run directory.
        facts: entries of ``metrics.json`` known before training (e.g. the pretraining's).
        unlabelled: texts for virtual adversarial training, or None.
        recipe: the recipe that runs when the task chose defaults from the data
            (:mod:`lstmkit.tasks.defaults`); None = the recipe as given.
        choices: those defaults (kept in ``config.json`` under ``"defaults"``).
    """

    model: nn.Module
    train: Dataset[Any]
    valid: Dataset[Any] | None
    trainer: dict[str, Any]
    config: dict[str, Any]
    data: Any
    save_inputs: Callable[[Path], None] = _nothing
    facts: dict[str, Any] = field(default_factory=dict)
    unlabelled: Dataset[Any] | None = None
    recipe: Recipe | None = None
    choices: list[Choice] = field(default_factory=list)


@dataclass
class Record:
    """The figure of ``results/<recipe>.json`` (:func:`lstmkit.runs.write_result`)."""

    metric: str
    value: float
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass
class Outcome:
    """A task's figures for the trained model.

    Attributes:
        metrics: the task's entries of ``metrics.json`` (the skeleton adds best_val, last_val,
            steps, seconds).
        record: the figure ``--record`` writes, or None (nothing to record).
        reports: writes the task's reports (evaluation.json, plots) into the run directory,
            after the final weights.
    """

    metrics: dict[str, Any]
    record: Record | None = None
    reports: Callable[[Path], None] = _nothing


class Task(Protocol):
    """One task of the registry (:data:`lstmkit.tasks.TASKS`)."""

    name: str
    description: str

    def check(self, recipe: Recipe) -> None:
        """Raise :class:`~lstmkit.errors.ConfigError` / ``DataFileError`` for settings this task
        cannot run (before anything is read or written)."""
        ...

    def setup(self, recipe: Recipe, *, resume: bool, given: frozenset[str] | None = None) -> Setup:
        """Read and check the data, build the model (``resume``: no pretraining, the checkpoint
        restores it). Writes nothing. ``given``: the recipe keys the user set
        (:func:`lstmkit.tasks.defaults.given_keys`); a task may choose the others from the data
        (:attr:`Setup.recipe`, :attr:`Setup.choices`); None = choose nothing."""
        ...

    def evaluate(
        self, recipe: Recipe, setup: Setup, trainer: Trainer, history: list[dict[str, Any]]
    ) -> Outcome:
        """The trained model's figures on the held-out data."""
        ...

    def summary(self, name: str, metrics: dict[str, Any], out: Path) -> str:
        """The one line ``lstmkit train`` prints at the end."""
        ...

    def evaluate_run(self, run_dir: Path) -> dict[str, Any]:
        """Re-evaluate a finished run directory of this task on its held-out data."""
        ...

    def quick_overrides(self, recipe: Recipe) -> list[str]:
        """``--set`` overrides of ``lstmkit train --quick``: a few steps on a little of the
        recipe's real data -- a smoke test of the whole path, no accuracy."""
        ...


def took(metrics: dict[str, Any], out: Path) -> str:
    """``(N steps, M min) -> OUT``, the end of every task's summary line."""
    return f"({metrics['steps']} steps, {metrics['seconds'] / 60:.1f} min) -> {out}"


QUICK_CLASSIFIER = [
    "train.max_steps=2",
    "train.epochs=1",
    "train.evaluate_every=0",
    "data.limit=64",
    "train.batch_size=8",
    "train.eval_batch_size=32",
]
