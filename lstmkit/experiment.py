"""A recipe from start to finish, for every task: the skeleton they share, written once.

``lstmkit train RECIPE.toml`` (and ``--task text|forecast``) runs :func:`run_recipe`:

1. the task's checks (:meth:`~lstmkit.tasks.base.Task.check`) and the run directory's
   (:func:`lstmkit.runs.check_run_dir`), before anything is read or written;
2. the seed, then the task's data and model (:meth:`~lstmkit.tasks.base.Task.setup`; it writes
   nothing, so a bad input leaves an earlier run intact);
3. ``config.json`` and the task's inputs (vocabulary / tokenizer / characters) of a new run;
4. the :class:`~lstmkit.train.Trainer` (checkpoints, early stopping, ``--resume``, DDP);
5. the task's evaluation; ``model.safetensors``, ``metrics.json`` and the task's reports; with
   ``--record``, ``results/<recipe>.json``.

The run directory's layout is in :mod:`lstmkit.runs`; the tasks are in :mod:`lstmkit.tasks`.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch

from lstmkit.config import Recipe
from lstmkit.runs import check_run_dir, git_commit, save_config, save_final, write_result
from lstmkit.tasks import task_for_recipe, task_for_run
from lstmkit.tasks.defaults import given_keys
from lstmkit.tracking import Tracker
from lstmkit.train import Trainer


def run_recipe(
    recipe: Recipe,
    raw: dict[str, Any],
    run_dir: Path,
    *,
    resume: bool = False,
    record: Path | None = None,
    progress: bool = True,
    command: str | None = None,
    callbacks: Sequence[Tracker] = (),
) -> dict[str, Any]:
    """Train ``recipe`` into ``run_dir`` and evaluate it on its held-out data; returns the
    metrics (also in ``metrics.json``). ``record``: a directory for ``<recipe>.json``. ``raw``:
    the recipe as the user wrote it; the keys it does not set are the ones a task may choose
    from the data (:mod:`lstmkit.tasks.defaults`). ``callbacks``: the Trainer's own trackers
    (:class:`lstmkit.tracking.Tracker`; ``lstmkit tune`` prunes trials through one)."""
    task = task_for_recipe(recipe)
    start = time.perf_counter()
    commit = git_commit()  # the code this run starts from, for its result record
    task.check(recipe)
    check_run_dir(run_dir, resume)
    torch.manual_seed(recipe.train.seed)
    setup = task.setup(recipe, resume=resume, given=given_keys(raw))
    recipe = setup.recipe or recipe  # with the defaults the task chose from the data
    run_dir.mkdir(parents=True, exist_ok=True)
    if not resume:  # a resumed run keeps the files it started with
        save_config(
            run_dir,
            {
                "recipe": recipe.model_dump(),
                "raw": raw,
                "task": task.name,
                "defaults": [c.to_dict() for c in setup.choices],
                **setup.config,
            },
        )
        setup.save_inputs(run_dir)
    trainer = Trainer(
        setup.model,
        recipe.train,
        run_dir=run_dir,
        progress=progress,
        hparams=recipe.model_dump(),
        experiment=recipe.name,
        callbacks=callbacks,
        **setup.trainer,
    )
    unlabelled = setup.unlabelled
    history = trainer.fit(
        setup.train,
        setup.train.lengths,  # type: ignore[attr-defined]
        setup.valid,
        setup.valid.lengths if setup.valid is not None else None,  # type: ignore[attr-defined]
        resume=resume,
        unlabelled=unlabelled,
        unlabelled_lengths=unlabelled.lengths if unlabelled is not None else None,  # type: ignore[attr-defined]
        finish=False,  # the trackers get the test metrics and the reports below
    )
    try:
        outcome = task.evaluate(recipe, setup, trainer, history)
    except BaseException:
        trainer.end_tracking(trainer.final_metrics(), status="FAILED")
        raise
    seconds = time.perf_counter() - start
    val_rows = [r for r in history if r["split"] == "val"]
    metrics = {
        **outcome.metrics,
        "best_val": trainer.best,
        "last_val": val_rows[-1] if val_rows else None,
        "steps": trainer.step,
        "seconds": seconds,
        **setup.facts,
    }
    if trainer.writes:  # rank 0 of a DDP job
        save_final(setup.model, run_dir, metrics)
        outcome.reports(run_dir)
        if record is not None and outcome.record is not None:
            write_result(
                record,
                recipe,
                commit=commit,
                metric=outcome.record.metric,
                value=outcome.record.value,
                seconds=seconds,
                command=command,
                extra=outcome.record.extra,
            )
    trainer.end_tracking(metrics)  # the trackers (train.log): final metrics, plots as artifacts
    return metrics


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Re-evaluate a finished run directory on its held-out data (same data preparation)."""
    return task_for_run(run_dir).evaluate_run(run_dir)


def quick_overrides(recipe: Recipe) -> list[str]:
    """``--set`` overrides of ``lstmkit train --quick`` for the recipe's task: a few optimizer
    steps on a little of the recipe's real data -- a smoke test of the whole path, no accuracy."""
    return task_for_recipe(recipe).quick_overrides(recipe)


def summary(recipe: Recipe, metrics: dict[str, Any], out: Path) -> str:
    """The one line ``lstmkit train`` prints for a finished run."""
    return task_for_recipe(recipe).summary(recipe.name, metrics, out)
