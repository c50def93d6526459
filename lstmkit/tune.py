"""Hyperparameter search on a recipe with Optuna: ``lstmkit tune RECIPE --trials N``.

Each trial is a real run: :func:`lstmkit.experiment.run_recipe` into ``OUT/trial-NNN/`` (its
history, checkpoints, metrics, and the trackers of ``train.log``), with the values the sampler
chose as ``--set`` overrides. What a tune writes into ``OUT`` (default ``runs/tune-RECIPE``)::

    study.db                  the Optuna study (SQLite): run the same command again and it goes
                              on -- finished trials are kept, ``--trials`` is the study's total
    trial-000/ ...            one run directory per trial (a pruned one stops where it was cut)
    RECIPE-tuned.toml         the best trial's configuration as a recipe: lstmkit train FILE
    trials.csv                number, state, value, the values tried, run directory
    optimization_history.png  every trial's value and the best so far

The sampler is TPE (seeded with ``train.seed``); the pruner is the median rule fed by the
validation rows (``train.evaluate_every`` steps apart, else one per epoch): a trial whose
value at a step is worse than the median of the earlier trials' at that step stops there. The
value is the best validation ``--metric`` of the run (default: the recipe's ``train.monitor``,
else ``val_loss``, which every task reports); the trials' ``train.monitor`` is set to it, so the
weights a trial keeps are its best by the same measure.

The search space (``--space space.toml``; default :data:`DEFAULT_SPACE`) is one table per
recipe key::

    [train.lr]
    low = 1e-4
    high = 1e-2
    log = true           # sampled on a log scale
    [model.hidden_size]
    choices = [32, 64, 128]
    [train.batch_size]
    low = 16
    high = 128
    step = 16            # integers when low and high are (step: their spacing)

``--jobs J`` runs J worker processes on the same study (Optuna's parallel mode over a shared
database); ``--max-minutes M`` stops starting trials after M minutes (a running trial ends).
Needs ``pip install 'lstmkit[tune]'`` (optuna).
"""

from __future__ import annotations

import csv
import json
import math
import multiprocessing
import warnings
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmkit.config import Recipe, load_recipe, read_recipe_toml
from lstmkit.errors import ConfigError
from lstmkit.extras import missing
from lstmkit.files import atomic_write_text
from lstmkit.objectives import LOWER_IS_BETTER
from lstmkit.tracking import Tracker

__all__ = ["DEFAULT_SPACE", "Param", "TuneResult", "read_space", "tune"]

STUDY_FILE = "study.db"
STUDY_NAME = "lstmkit-tune"  # the study's name in STUDY_FILE (lstmkit studio reads it too)
TRIAL_DIR = "trial-{number:03d}"  # a trial's run directory in OUT
TRIALS_FILE = "trials.csv"
HISTORY_PLOT = "optimization_history.png"
MONITORS = ("val_accuracy", "val_loss", "val_macro_f1", "val_mae", "val_rmse", "val_perplexity")
SPEC_KEYS = frozenset({"low", "high", "log", "step", "choices"})


@dataclass(frozen=True)
class Param:
    """One dimension of the search: a recipe key (``train.lr``) and its range or choices."""

    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] = ()

    @property
    def integer(self) -> bool:
        """Whether values are integers (low and high are)."""
        return isinstance(self.low, int) and isinstance(self.high, int)

    def suggest(self, trial: Any) -> Any:
        """The value ``trial`` (an optuna.Trial) draws."""
        if self.choices:
            return trial.suggest_categorical(self.name, list(self.choices))
        assert self.low is not None and self.high is not None
        if self.integer:
            return trial.suggest_int(
                self.name, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.name, self.low, self.high, step=self.step, log=self.log)

    def example(self) -> Any:
        """A value of the space (the lower end, or the first choice): checks the key."""
        return self.choices[0] if self.choices else self.low


DEFAULT_SPACE: tuple[Param, ...] = (
    Param("train.lr", 1e-4, 1e-2, log=True),
    Param("model.hidden_size", choices=(32, 64, 128, 256)),
    Param("model.dropout", 0.0, 0.5),
)


def _param(name: str, spec: dict[str, Any], source: str) -> Param:
    where = f"{source}: [{name}]"
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; expected low + high [+ log, step] "
            "or choices"
        )
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices is a non-empty list, alone (no low/high)")
        return Param(name, choices=tuple(choices))
    low, high = spec.get("low"), spec.get("high")
    numbers = all(isinstance(v, int | float) and not isinstance(v, bool) for v in (low, high))
    if not numbers:
        raise ConfigError(f"{where}: give low and high (numbers) or choices, got {spec}")
    assert isinstance(low, int | float) and isinstance(high, int | float)
    if not low < high:
        raise ConfigError(f"{where}: low must be below high, got low={low}, high={high}")
    log = spec.get("log", False)
    if not isinstance(log, bool) or (log and low <= 0):
        raise ConfigError(f"{where}: log = true needs low > 0 (got log={log!r}, low={low})")
    step = spec.get("step")
    if step is not None and (not isinstance(step, int | float) or step <= 0 or log):
        raise ConfigError(f"{where}: step must be a positive number, without log (got {step!r})")
    return Param(name, low, high, log=log, step=step)


def _walk(table: dict[str, Any], prefix: str, source: str) -> list[Param]:
    params: list[Param] = []
    for key, value in table.items():
        name = f"{prefix}{key}"
        if not isinstance(value, dict):
            raise ConfigError(
                f"{source}: {name} = {value!r}; each key is a table such as "
                f"[{name}] with low/high or choices"
            )
        if set(value) & SPEC_KEYS:
            params.append(_param(name, value, source))
        else:
            params += _walk(value, f"{name}.", source)
    return params


def read_space(path: Path) -> tuple[Param, ...]:
    """The search space of a ``space.toml`` (see the module docstring); ConfigError naming the
    file and the table of anything malformed."""
    params = _walk(read_recipe_toml(path), "", str(path))
    if not params:
        raise ConfigError(f"{path}: no parameter to search; e.g. [train.lr] low = 1e-4 high = 1e-2")
    return tuple(params)


def toml_literal(value: Any) -> str:
    """A ``--set`` value (a TOML literal) of a sampled value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)
    return repr(value)


@dataclass
class TuneResult:
    """What :func:`tune` found: the best trial's number, value and values, and the files."""

    metric: str
    direction: str
    best_trial: int | None
    best_value: float | None
    best_params: dict[str, Any]
    best_recipe: Path | None
    trials: list[dict[str, Any]] = field(default_factory=list)
    out: Path = Path()


class _PruneOnValidation(Tracker):
    """Reports each validation row's ``metric`` to the Optuna trial; stops the run (raising
    optuna.TrialPruned) when the pruner says so."""

    def __init__(self, trial: Any, metric: str) -> None:
        self.trial = trial
        self.key = metric.removeprefix("val_")

    def log_row(self, row: dict[str, Any]) -> None:
        if row.get("split") != "val" or self.key not in row:
            return
        value = float(row[self.key])
        if not math.isfinite(value):
            return
        self.trial.report(value, int(row["step"]))
        if self.trial.should_prune():
            import optuna

            raise optuna.TrialPruned(f"val_{self.key} {value:.4g} at step {row['step']}")


def _optuna() -> Any:
    try:
        import optuna
    except ImportError:
        raise missing("tune", "lstmkit tune", "optuna") from None
    return optuna


@dataclass(frozen=True)
class _Job:
    """Everything a worker process needs (picklable)."""

    recipe: str
    overrides: tuple[str, ...]
    out: Path
    space: tuple[Param, ...]
    metric: str
    direction: str
    trials: int
    timeout_s: float | None
    seed: int


def _storage_url(out: Path) -> str:
    return "sqlite:///" + str((out / STUDY_FILE).resolve())


def _study(job: _Job, *, worker: int) -> Any:
    optuna = _optuna()
    optuna.logging.set_verbosity(optuna.logging.WARNING)  # our one line per trial instead
    with warnings.catch_warnings():  # heartbeats are "experimental" since optuna 2.9
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        storage = optuna.storages.RDBStorage(
            _storage_url(job.out),
            # a trial of a killed tune stops beating: the next tune marks it failed and runs
            # its values again (RetryHeartbeatStaleTrialCallback)
            heartbeat_interval=20,
            grace_period=60,
            heartbeat_stale_trial_callback=optuna.storages.RetryHeartbeatStaleTrialCallback(
                max_retry=1
            ),
        )
    return optuna.create_study(
        study_name=STUDY_NAME,
        storage=storage,
        direction=job.direction,
        load_if_exists=True,
        sampler=optuna.samplers.TPESampler(seed=job.seed + worker),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=2, n_warmup_steps=0),
    )


def _finished(study: Any) -> int:
    optuna = _optuna()
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    return len(study.get_trials(deepcopy=False, states=states))


def _run_trial(trial: Any, job: _Job) -> float:
    from lstmkit.experiment import run_recipe

    values = {p.name: p.suggest(trial) for p in job.space}
    sets = [f"{k}={toml_literal(v)}" for k, v in values.items()]
    recipe, raw = load_recipe(
        job.recipe, [*job.overrides, *sets, f"train.monitor={toml_literal(job.metric)}"]
    )
    run_dir = job.out / TRIAL_DIR.format(number=trial.number)
    trial.set_user_attr("run_dir", str(run_dir))
    shown = ", ".join(
        f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in values.items()
    )
    optuna = _optuna()
    try:
        metrics = run_recipe(
            recipe,
            raw,
            run_dir,
            progress=False,
            callbacks=[_PruneOnValidation(trial, job.metric)],
        )
    except optuna.TrialPruned as pruned:
        print(f"trial {trial.number}: pruned ({pruned}) [{shown}] -> {run_dir}", flush=True)
        raise
    value = metrics["best_val"]["value"]
    if value is None:
        raise ConfigError(
            f"trial {trial.number} ({run_dir}) has no validation rows to tune on: give the "
            "recipe a validation split (e.g. --set data.validation_split=0.1)"
        )
    print(f"trial {trial.number}: {job.metric} {value:.4f} [{shown}] -> {run_dir}", flush=True)
    return float(value)


def _optimize(job: _Job, worker: int) -> None:
    optuna = _optuna()
    study = _study(job, worker=worker)
    left = job.trials - _finished(study)
    if left <= 0:
        return
    states = (optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED)
    study.optimize(
        lambda trial: _run_trial(trial, job),
        n_trials=left,
        timeout=job.timeout_s,
        callbacks=[optuna.study.MaxTrialsCallback(job.trials, states=states)],
        gc_after_trial=True,
    )


def _worker(job: _Job, worker: int) -> None:  # a --jobs process: one thread of torch each
    import torch

    torch.set_num_threads(1)
    _optimize(job, worker)


def tune(
    recipe: str,
    *,
    trials: int,
    out: Path | None = None,
    overrides: Sequence[str] = (),
    space: Sequence[Param] | None = None,
    metric: str | None = None,
    max_minutes: float | None = None,
    jobs: int = 1,
) -> TuneResult:
    """Search ``space`` on ``recipe`` (a packaged name or a .toml file) until the study in
    ``out`` holds ``trials`` finished (complete or pruned) trials or ``max_minutes`` pass; write
    the best recipe, the table and the plot. See the module docstring."""
    optuna = _optuna()
    base, _ = load_recipe(recipe, overrides)
    out = out or Path("runs") / f"tune-{base.name}"
    space = tuple(space or DEFAULT_SPACE)
    metric = metric or base.train.monitor or "val_loss"
    if metric not in MONITORS:
        raise ConfigError(f"--metric {metric}: expected one of {', '.join(MONITORS)}")
    if trials < 1 or jobs < 1:
        raise ConfigError(f"--trials and --jobs must be >= 1, got {trials} and {jobs}")
    names = [p.name for p in space]
    if len(set(names)) != len(names):
        raise ConfigError(f"the search space names a key twice: {names}")
    for param in space:  # a key the recipe does not have is one error now, not in trial 0
        try:
            load_recipe(recipe, [*overrides, f"{param.name}={toml_literal(param.example())}"])
        except ConfigError as err:
            raise ConfigError(f"search space [{param.name}]: {err}") from None
    direction = "minimize" if metric.removeprefix("val_") in LOWER_IS_BETTER else "maximize"
    out.mkdir(parents=True, exist_ok=True)
    job = _Job(
        recipe=str(recipe),
        overrides=tuple(overrides),
        out=out,
        space=space,
        metric=metric,
        direction=direction,
        trials=trials,
        timeout_s=max_minutes * 60 if max_minutes else None,
        seed=base.train.seed,
    )
    study = _study(job, worker=0)  # creates the study (and checks a resumed one's direction)
    if study.direction.name.lower() != direction:
        raise ConfigError(
            f"{out / STUDY_FILE} {study.direction.name.lower()}s; --metric {metric} would "
            f"{direction}: give another --out"
        )
    if jobs == 1:
        _optimize(job, 0)
    else:
        context = multiprocessing.get_context("spawn")
        procs = [context.Process(target=_worker, args=(job, w)) for w in range(jobs)]
        for proc in procs:
            proc.start()
        for proc in procs:
            proc.join()
        failed = [p.exitcode for p in procs if p.exitcode]
        if failed:
            raise ConfigError(f"lstmkit tune: {len(failed)} of {jobs} workers failed (see above)")
    return _report(job, base, optuna.load_study(study_name=STUDY_NAME, storage=_storage_url(out)))


def _report(job: _Job, base: Recipe, study: Any) -> TuneResult:
    optuna = _optuna()
    rows = []
    for t in study.get_trials(deepcopy=False):
        rows.append(
            {
                "number": t.number,
                "state": t.state.name,
                "value": t.value,
                **{p.name: t.params.get(p.name) for p in job.space},
                "run_dir": t.user_attrs.get("run_dir", ""),
            }
        )
    _write_table(job.out / TRIALS_FILE, rows)
    done = study.get_trials(deepcopy=False, states=(optuna.trial.TrialState.COMPLETE,))
    result = TuneResult(job.metric, job.direction, None, None, {}, None, rows, job.out)
    _plot(job, done, job.out / HISTORY_PLOT)
    if not done:
        return result
    best = study.best_trial
    result.best_trial, result.best_value, result.best_params = best.number, best.value, best.params
    result.best_recipe = _write_best_recipe(job, base, best)
    return result


def _write_table(path: Path, rows: list[dict[str, Any]]) -> None:
    keys = list(rows[0]) if rows else ["number", "state", "value", "run_dir"]
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(fh, fieldnames=keys)
        writer.writeheader()
        writer.writerows(rows)
    tmp.replace(path)


def _plot(job: _Job, done: list[Any], path: Path) -> None:
    from lstmkit.plots import pyplot, save_png

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(7, 4))
    numbers = [t.number for t in done]
    values = [float(t.value) for t in done]
    pick = min if job.direction == "minimize" else max
    best = [pick(values[: i + 1]) for i in range(len(values))]
    ax.plot(numbers, values, "o", label="trial", markersize=4)
    ax.plot(numbers, best, "-", label="best so far")
    ax.set_xlabel("trial")
    ax.set_ylabel(job.metric)
    ax.set_title(f"{job.metric} by trial ({job.direction}; pruned trials not shown)")
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    save_png(fig, path)


def _write_best_recipe(job: _Job, base: Recipe, best: Any) -> Path:
    try:
        import tomli_w
    except ImportError:
        raise missing("tune", "lstmkit tune", "tomli_w") from None
    sets = [f"{k}={toml_literal(v)}" for k, v in best.params.items()]
    sets.append(f"train.monitor={toml_literal(job.metric)}")
    _, raw = load_recipe(job.recipe, [*job.overrides, *sets])
    raw["name"] = f"{base.name}-tuned"
    raw["description"] = (
        f"{base.name} tuned by lstmkit tune: trial {best.number} of {job.out / STUDY_FILE}, "
        f"{job.metric} = {best.value:.4f}"
    )
    raw.pop("seed_figure", None)  # the seed's figure is not this configuration's
    path = job.out / f"{base.name}-tuned.toml"
    atomic_write_text(path, tomli_w.dumps(raw))
    load_recipe(path)  # what was written loads as a recipe (else a bug: raise)
    return path
