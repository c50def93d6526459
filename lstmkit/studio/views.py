"""How the API shows a stored run (:class:`~lstmkit.studio.schemas.RunOut`): its progress from
the newest metric rows, whether it resumes or has a model, the form fields' values of the recipe
it trains (its ``config.json``), the end of its log. The routes of runs, their live stream,
compare and "Use this model" read runs through these."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from lstmkit.config import Recipe
from lstmkit.runs import CONFIG_FILE, has_checkpoint, read_json_or_none
from lstmkit.studio.deps import Studio
from lstmkit.studio.jobs import LOG_NAME
from lstmkit.studio.params import recipe_values
from lstmkit.studio.schemas import MetricRow, Progress, RunOut

_HIDDEN = ("pid", "resume", "task_args")  # the studio's own bookkeeping: no pids or paths
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


def public_run(studio: Studio, run: dict[str, Any], rows: list[MetricRow] | None = None) -> RunOut:
    """A run as the API shows it; with ``rows``, its progress too."""
    run_dir = studio.runs_dir / run["id"]
    bundle = studio.bundles_dir / run["id"] / "bundle.json"
    return RunOut(
        **{k: v for k, v in run.items() if k not in _HIDDEN},
        resumable=run["status"] in ("interrupted", "cancelled") and has_checkpoint(run_dir),
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


def log_tail(studio: Studio, run_id: str, max_bytes: int) -> str:
    """The last ``max_bytes`` of the run's ``train.log`` ("" before it has one)."""
    path = studio.runs_dir / run_id / LOG_NAME
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        return ""
    with open(path, "rb") as fh:
        fh.seek(max(0, size - max_bytes))
        return fh.read().decode("utf-8", errors="replace")
