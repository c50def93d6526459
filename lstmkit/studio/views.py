"""How the API shows a stored run (:class:`~lstmkit.studio.schemas.RunOut`): its progress from
the newest metric rows, whether it resumes or has a model, the form fields' values of the recipe
it trains (its ``config.json``), the end of its log. The routes of runs, their live stream,
compare and "Use this model" read runs through these. The trials of ``lstmkit tune`` studies and
the seeds of repeated runs (``lstmkit train --seeds N``) under ``HOME/runs`` are found here
(:func:`sync_studies`, :func:`sync_repeats`), and a repeated run's spread computed
(:func:`repeat_groups`, :func:`compare_spread`)."""

from __future__ import annotations

import hashlib
import math
import re
import sqlite3
import time
from pathlib import Path
from typing import Any

from lstmkit.config import Recipe
from lstmkit.repeat import read_summary, spread
from lstmkit.runs import (
    CONFIG_FILE,
    HISTORY_FILE,
    METRICS_FILE,
    has_checkpoint,
    read_history,
    read_json_or_none,
)
from lstmkit.studio.deps import Studio
from lstmkit.studio.jobs import LOG_NAME
from lstmkit.studio.params import recipe_values
from lstmkit.studio.schemas import (
    MetricRow,
    Progress,
    RepeatGroup,
    RepeatSpread,
    RunOut,
    SeedFigure,
    SpreadCurve,
    SpreadStats,
)
from lstmkit.studio.store import RUN_ID_PATTERN
from lstmkit.tune import STUDY_FILE, STUDY_NAME, TRIAL_DIR

# the studio's own bookkeeping: no pids or paths
_HIDDEN = ("pid", "resume", "task_args", "path", "study", "trial", "repeat", "seed")
# an Optuna trial state that is over -> the status its run shows (RUNNING, WAITING: not yet)
TRIAL_STATUS = {"COMPLETE": "finished", "PRUNED": "cancelled", "FAIL": "failed"}
LOG_TAIL_BYTES = 20_000  # how much of train.log a client gets at first (GET .../log, the stream)


def progress(run: dict[str, Any], rows: list[MetricRow]) -> Progress:
    """Step, total steps, tokens/s and ETA from the newest train row (the Trainer's own
    ``eta_s`` when it writes one, else elapsed time scaled by the steps left)."""
    train = [r for r in rows if r.get("split") == "train"]
    last = train[-1] if train else (rows[-1] if rows else {})
    step = last.get("step")
    total = last.get("total_steps")
    eta = last.get("eta_s")
    if eta is None and run["status"] == "running" and step and total and run.get("started"):
        eta = (time.time() - run["started"]) * max(0, total - step) / step
    return Progress(
        step=step,
        total_steps=total,
        tokens_per_s=last.get("tokens_per_s"),
        eta_s=eta if run["status"] in ("running", "cancelling") else None,
    )


def recent_rows(rows: list[MetricRow], keep: int = 50) -> list[MetricRow]:
    """The newest ``keep`` rows of each split (a replaced row counts once), by step."""
    latest = {(r["step"], r["split"]): r for r in rows}
    out = []
    for split in {s for _, s in latest}:
        same = sorted((r for (_, s), r in latest.items() if s == split), key=lambda r: r["step"])
        out += same[-keep:]
    return sorted(out, key=lambda r: r["step"])


def newest_train(rows: list[MetricRow]) -> list[MetricRow]:
    """[the train row with the highest step] (or [] without one)."""
    train = [r for r in rows if r.get("split") == "train"]
    return [max(train, key=lambda r: r["step"])] if train else []


def run_dir(studio: Studio, run: dict[str, Any]) -> Path:
    """The run's directory: ``HOME/runs/<id>``, or a study's ``HOME/runs/STUDY/trial-NNN``."""
    return studio.runs_dir / (run.get("path") or run["id"])


def public_run(studio: Studio, run: dict[str, Any], rows: list[MetricRow] | None = None) -> RunOut:
    """A run as the API shows it; with ``rows``, its progress too. A study's trial never
    resumes here (``lstmkit tune`` runs its trials)."""
    bundle = studio.bundles_dir / run["id"] / "bundle.json"
    return RunOut(
        **{k: v for k, v in run.items() if k not in _HIDDEN},
        resumable=run["status"] in ("interrupted", "cancelled")
        and not run.get("path")
        and has_checkpoint(run_dir(studio, run)),
        model_url=f"/models/{run['id']}/" if bundle.is_file() else None,
        progress=progress(run, rows) if rows is not None else None,
    )


def run_config(run_dir: Path) -> dict[str, Any]:
    """The run's config.json ({} before the run wrote it, or when it cannot be read)."""
    return read_json_or_none(run_dir / CONFIG_FILE) or {}


def run_values(run_dir: Path) -> dict[str, Any] | None:
    """The form fields' values of the recipe the run trains (its config.json), or None before
    the run wrote one."""
    try:
        recipe = Recipe.model_validate(run_config(run_dir)["recipe"])
    except (ValueError, KeyError):
        return None
    return recipe_values(recipe)


def log_tail(studio: Studio, run: dict[str, Any], max_bytes: int) -> str:
    """The last ``max_bytes`` of the run's ``train.log`` ("" before it has one)."""
    path = run_dir(studio, run) / LOG_NAME
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")


# -- the trials of `lstmkit tune` studies, listed like runs ----------------------------------
def study_trials(db: Path) -> dict[int, dict[str, Any]]:
    """Trial number -> ``state`` (Optuna's name), ``value`` and ``params`` (the names of the
    sampled recipe keys) of the study in ``db``, read with sqlite3 alone (read-only: no
    optuna needed); {} for a file that is not such a study."""
    try:
        con = sqlite3.connect(db.resolve().as_uri() + "?mode=ro", uri=True, timeout=5.0)
    except sqlite3.Error:
        return {}
    try:
        trials = con.execute(
            "SELECT t.trial_id, t.number, t.state, v.value FROM trials t "
            "JOIN studies s ON s.study_id = t.study_id "
            "LEFT JOIN trial_values v ON v.trial_id = t.trial_id AND v.objective = 0 "
            "WHERE s.study_name = ?",
            (STUDY_NAME,),
        ).fetchall()
        names: dict[int, list[str]] = {}
        for trial_id, name in con.execute("SELECT trial_id, param_name FROM trial_params"):
            names.setdefault(trial_id, []).append(name)
    except sqlite3.Error:
        return {}
    finally:
        con.close()
    return {
        number: {"state": str(state), "value": value, "params": names.get(trial_id, [])}
        for trial_id, number, state, value in trials
    }


def _dotted(table: dict[str, Any], key: str) -> Any:
    """``table``'s value at a dotted key (``train.lr``), or None."""
    value: Any = table
    for part in key.split("."):
        value = value.get(part) if isinstance(value, dict) else None
    return value


def _trial_id(studio: Studio, path: str) -> str:
    """A run id for the trial at ``path``: 8 hex digits of its hash (the same in every studio
    on this home), the next salt where a run of another folder holds it."""
    for salt in range(1000):
        run_id = hashlib.sha256(f"{path}#{salt}".encode()).hexdigest()[:8]
        other = studio.store.get_run(run_id)
        if (other is None and not (studio.runs_dir / run_id).exists()) or (
            other is not None and other.get("path") == path
        ):
            return run_id
    raise RuntimeError(f"no free run id for {path}")  # 1000 collisions of 8 hex digits


def _mtime(path: Path) -> float | None:
    try:
        return path.stat().st_mtime
    except OSError:
        return None


def sync_studies(studio: Studio) -> int:
    """Record the ended trials of every study under ``HOME/runs`` (a folder with
    ``study.db``, as ``lstmkit tune --out HOME/runs/STUDY`` writes it) as runs named "STUDY
    trial N", with their history rows and metrics; a trial already recorded with the same
    status is left as it is. Returns how many trials were (re)recorded."""
    if not studio.runs_dir.is_dir():
        return 0
    known = studio.store.trial_runs()
    changed = 0
    for folder in sorted(studio.runs_dir.iterdir()):
        if re.match(RUN_ID_PATTERN, folder.name) or not (folder / STUDY_FILE).is_file():
            continue
        for number, trial in sorted(study_trials(folder / STUDY_FILE).items()):
            status = TRIAL_STATUS.get(trial["state"])
            trial_dir = folder / TRIAL_DIR.format(number=number)
            config = read_json_or_none(trial_dir / CONFIG_FILE)
            if status is None or config is None:
                continue  # still running, or it stopped before writing its configuration
            path = f"{folder.name}/{trial_dir.name}"
            old = known.get(path)
            if old is not None and old["status"] == status:
                continue
            recipe = config.get("recipe")
            recipe = recipe if isinstance(recipe, dict) else {}
            try:
                rows = read_history(trial_dir)
            except ValueError:  # a history.jsonl that is not JSON lines: not a run to show
                continue
            last = max((r.get("step", 0) for r in rows), default=0)
            errors = {
                "cancelled": f"pruned by the study at step {last}: worse than the median of the "
                "earlier trials there",
                "failed": "the trial failed; lstmkit tune printed why",
            }
            created = _mtime(trial_dir / CONFIG_FILE)
            run = {
                "name": f"{folder.name} trial {number}",
                "recipe": str(recipe.get("name", "")),
                "dataset": str((recipe.get("data") or {}).get("dataset", "")),
                "params": {
                    "study": folder.name,
                    "trial": number,
                    "value": trial["value"],
                    **{name: _dotted(recipe, name) for name in trial["params"]},
                },
                "status": status,
                "created": created or time.time(),
                "started": created,
                "finished": _mtime(trial_dir / METRICS_FILE) or _mtime(trial_dir / HISTORY_FILE),
                "error": errors.get(status),
                "metrics": read_json_or_none(trial_dir / METRICS_FILE),
            }
            run_id = old["id"] if old is not None else _trial_id(studio, path)
            studio.store.put_trial(
                run_id, path=path, study=folder.name, trial=number, run=run, rows=rows
            )
            changed += 1
    return changed


# -- the seeds of repeated runs (lstmkit train --seeds N --out HOME/runs/GROUP) ---------------
SEED_FOLDER = re.compile(r"^seed-(\d+)$")  # repeat.SEED_DIR's folders
CURVE_KEYS = ("accuracy", "loss")  # the validation metrics whose spread per step compare shows


def _figure(value: Any) -> float | None:
    """A finite number as a float, else None."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if math.isfinite(value) else None


def _seed_record(seed_dir: Path, recipe: str) -> dict[str, Any]:
    """The seed's own ``record/<recipe>.json`` (its figure and metric), {} without one."""
    if not recipe or "/" in recipe or recipe.startswith("."):
        return {}
    return read_json_or_none(seed_dir / "record" / f"{recipe}.json") or {}


def seed_folders(folder: Path) -> dict[int, Path]:
    """Seed -> ``folder/seed-<s>`` for each such subfolder with a ``config.json`` (a run)."""
    out = {}
    try:
        children = list(folder.iterdir())
    except OSError:
        return {}
    for child in children:
        match = SEED_FOLDER.match(child.name)
        if match and child.is_dir() and (child / CONFIG_FILE).is_file():
            out[int(match[1])] = child
    return out


def sync_repeats(studio: Studio) -> int:
    """Record the finished seeds of every repeated run under ``HOME/runs`` (a folder with
    ``seed-<s>/`` run folders, as ``lstmkit train RECIPE --seeds N --out HOME/runs/GROUP``
    writes it) as runs named "GROUP seed S": their history rows and metrics, and in ``params``
    the group (``repeat``), the ``seed``, the ``metric`` and the seed's figure (``value``, from
    the group's ``repeat.json``, else the seed's own record; None without either). A seed folder
    without ``metrics.json`` (still training, or failed) or with a broken history is left out;
    a seed already recorded as it is now is left as it is. Returns how many were (re)recorded."""
    if not studio.runs_dir.is_dir():
        return 0
    known = studio.store.trial_runs()
    changed = 0
    for folder in sorted(studio.runs_dir.iterdir()):
        if re.match(RUN_ID_PATTERN, folder.name) or (folder / STUDY_FILE).is_file():
            continue
        seeds = seed_folders(folder)
        if not seeds:
            continue
        summary = read_summary(folder)  # None: missing or broken (the seeds' records then)
        figures = {int(s["seed"]): float(s["value"]) for s in summary["seeds"]} if summary else {}
        for seed, seed_dir in sorted(seeds.items()):
            config = read_json_or_none(seed_dir / CONFIG_FILE)
            metrics = read_json_or_none(seed_dir / METRICS_FILE)
            if config is None or metrics is None:
                continue
            recipe = config.get("recipe")
            recipe = recipe if isinstance(recipe, dict) else {}
            record = _seed_record(seed_dir, str(recipe.get("name", "")))
            value = figures[seed] if seed in figures else _figure(record.get("value"))
            metric = (summary or {}).get("metric") or record.get("metric")
            params = {
                "repeat": folder.name,
                "seed": seed,
                "metric": metric if isinstance(metric, str) else None,
                "value": value,
            }
            path = f"{folder.name}/{seed_dir.name}"
            old = known.get(path)
            if old is not None and old["params"] == params and old["metrics"] == metrics:
                continue
            try:
                rows = read_history(seed_dir)
            except ValueError:  # a history.jsonl that is not JSON lines: not a run to show
                continue
            if any(not isinstance(r, dict) or "step" not in r or "split" not in r for r in rows):
                continue
            created = _mtime(seed_dir / CONFIG_FILE)
            run = {
                "name": f"{folder.name} seed {seed}",
                "recipe": str(recipe.get("name", "")),
                "dataset": str((recipe.get("data") or {}).get("dataset", "")),
                "params": params,
                "status": "finished",
                "created": created or time.time(),
                "started": created,
                "finished": _mtime(seed_dir / METRICS_FILE),
                "error": None,
                "metrics": metrics,
            }
            run_id = old["id"] if old is not None else _trial_id(studio, path)
            studio.store.put_seed(
                run_id, path=path, repeat=folder.name, seed=seed, run=run, rows=rows
            )
            changed += 1
    return changed


def sync_found(studio: Studio) -> int:
    """:func:`sync_studies` and :func:`sync_repeats`: every run found under ``HOME/runs``."""
    return sync_studies(studio) + sync_repeats(studio)


def _stats(values: list[float]) -> SpreadStats | None:
    """:func:`lstmkit.repeat.spread` of at least two figures, else None."""
    return SpreadStats(**spread(values)) if len(values) >= 2 else None


def _group(name: str, seeds: list[dict[str, Any]]) -> RepeatGroup:
    seeds = sorted(seeds, key=lambda r: r["seed"])
    figures = [
        SeedFigure(seed=r["seed"], run_id=r["id"], value=_figure(r["params"].get("value")))
        for r in seeds
    ]
    metrics = [r["params"].get("metric") for r in seeds if r["params"].get("metric")]
    return RepeatGroup(
        name=name,
        recipe=seeds[0]["recipe"] if seeds else "",
        metric=metrics[0] if metrics else None,
        seeds=figures,
        spread=_stats([f.value for f in figures if f.value is not None]),
    )


def repeat_groups(studio: Studio) -> list[RepeatGroup]:
    """Each repeated run the store holds (call :func:`sync_repeats` first), by name: its seeds'
    runs and figures, and the spread of those figures."""
    by_group: dict[str, list[dict[str, Any]]] = {}
    for run in studio.store.list_runs():
        if run.get("repeat") is not None and run.get("seed") is not None:
            by_group.setdefault(run["repeat"], []).append(run)
    return [_group(name, runs) for name, runs in sorted(by_group.items())]


def spread_curves(rows_by_run: list[list[MetricRow]], split: str = "val") -> list[SpreadCurve]:
    """Per step, :func:`lstmkit.repeat.spread` of the runs' ``split`` rows' value of each of
    :data:`CURVE_KEYS` (steps where fewer than two runs have one are left out)."""
    out = []
    for key in CURVE_KEYS:
        at: dict[int, list[float]] = {}
        for rows in rows_by_run:
            seen = {}
            for r in rows:
                value = _figure(r.get(key))
                if r.get("split") == split and value is not None:
                    seen[int(r["step"])] = value  # a replaced row counts once
            for step, value in seen.items():
                at.setdefault(step, []).append(value)
        steps = sorted(s for s, vs in at.items() if len(vs) >= 2)
        if not steps:
            continue
        stats = [spread(at[s]) for s in steps]
        out.append(
            SpreadCurve(
                split=split,
                key=key,
                steps=steps,
                n=[len(at[s]) for s in steps],
                mean=[x["mean"] for x in stats],
                std=[x["std"] for x in stats],
                min=[x["min"] for x in stats],
                max=[x["max"] for x in stats],
            )
        )
    return out


def compare_spread(
    runs: list[dict[str, Any]], rows_by_run: list[list[MetricRow]]
) -> RepeatSpread | None:
    """The spread of compared runs that are two or more seeds of one repeated run: each seed's
    figure, their mean, std, min, max (:func:`lstmkit.repeat.spread`) and the curves' spread;
    None for any other choice of runs."""
    groups = {r.get("repeat") for r in runs}
    if len(runs) < 2 or len(groups) != 1 or None in groups:
        return None
    group = _group(str(runs[0]["repeat"]), runs)
    return RepeatSpread(**group.model_dump(), curves=spread_curves(rows_by_run))
