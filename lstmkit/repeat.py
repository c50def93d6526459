"""Repeated runs: one recipe over several seeds, with the spread of its figure.

``lstmkit train RECIPE --seeds 5 [--jobs 2] [--record]`` trains the recipe with the seeds
``seed, seed + 1, ..., seed + 4`` (``seed`` = the recipe's ``train.seed``) into
``OUT/seed-<s>/`` -- one after another, or in ``--jobs`` processes at once, the machine's cores
shared between them (each process gets ``cores // jobs`` torch threads) -- and summarises the
figure each run records: every seed's value, the mean, the sample standard deviation
(``ddof = 1``), min and max. With ``--record`` the summary is ``results/<recipe>.json``: the
usual record (its ``value`` is the mean, which the README table shows as mean ± std) plus
``"seeds"`` (each run's seed and figure), ``"mean"``, ``"std"``, ``"min"``, ``"max"``.
"""

from __future__ import annotations

import json
import math
import os
import statistics
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

from lstmkit.config import Recipe, apply_overrides, recipe_from_dict
from lstmkit.errors import ConfigError
from lstmkit.files import atomic_write_text
from lstmkit.runs import git_commit, machine, portable_command

MAX_SEEDS = 100
SUMMARY_FILE = "repeat.json"  # OUT/repeat.json: the summary of a repeated run
SEED_DIR = "seed-{seed}"  # OUT/seed-<s>/: one seed's run directory


def seed_list(first: int, count: int) -> list[int]:
    """``first .. first + count - 1``; ``count`` in [2, MAX_SEEDS] (one seed is a plain run)."""
    if not 2 <= count <= MAX_SEEDS:
        raise ConfigError(f"--seeds must be between 2 and {MAX_SEEDS}, got {count}")
    return list(range(first, first + count))


def spread(values: list[float]) -> dict[str, float]:
    """Mean, sample standard deviation (ddof 1), min and max of at least two figures."""
    return {
        "mean": statistics.fmean(values),
        "std": statistics.stdev(values),
        "min": min(values),
        "max": max(values),
    }


def _one_seed(
    raw: dict[str, Any], seed: int, run_dir: str, threads: int, progress: bool
) -> dict[str, Any]:
    """Train one seed (in this process or a worker); returns its record's figure."""
    import torch

    from lstmkit.experiment import run_recipe

    if threads:
        torch.set_num_threads(threads)
    seeded = apply_overrides(raw, [f"train.seed={seed}"])
    recipe = recipe_from_dict(seeded, f"seed {seed}")
    out = Path(run_dir)
    record = out / "record"
    metrics = run_recipe(recipe, seeded, out, record=record, progress=progress)
    result = json.loads((record / f"{recipe.name}.json").read_text())
    return {
        "seed": seed,
        "value": result["value"],
        "metric": result["metric"],
        "seconds": metrics["seconds"],
        "run_dir": str(out),
        "result": result,
    }


def repeat_recipe(
    recipe: Recipe,
    raw: dict[str, Any],
    out: Path,
    seeds: int,
    *,
    jobs: int = 1,
    record: Path | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` once per seed (see the module docstring); returns the summary (also
    ``OUT/repeat.json``, and ``record/<recipe>.json`` with ``record``)."""
    if jobs < 1:
        raise ConfigError(f"--jobs must be at least 1, got {jobs}")
    chosen = seed_list(recipe.train.seed, seeds)
    for s in chosen:
        if (out / f"seed-{s}").exists():
            raise ConfigError(
                f"{out / f'seed-{s}'} already exists; choose another --out for a repeated run"
            )
    out.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    commit = git_commit()
    jobs = min(jobs, len(chosen))
    threads = max(1, (os.cpu_count() or 1) // jobs) if jobs > 1 else 0
    runs: list[dict[str, Any]]
    if jobs == 1:
        runs = [_one_seed(raw, s, str(out / f"seed-{s}"), 0, progress) for s in chosen]
    else:
        with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
            futures = [
                pool.submit(_one_seed, raw, s, str(out / f"seed-{s}"), threads, False)
                for s in chosen
            ]
            runs = [f.result() for f in futures]
    values = [float(r["value"]) for r in runs]
    if any(not math.isfinite(v) for v in values):
        raise ConfigError(f"a seed's figure is not a number: {values}")
    summary: dict[str, Any] = {
        "recipe": recipe.name,
        "metric": runs[0]["metric"],
        "seeds": [{"seed": r["seed"], "value": r["value"], "seconds": r["seconds"]} for r in runs],
        **spread(values),
        "jobs": jobs,
        "seconds": time.perf_counter() - start,
    }
    atomic_write_text(out / SUMMARY_FILE, json.dumps(summary, indent=2) + "\n")
    if record is not None:
        first = runs[0]["result"]
        result = {
            **first,
            "value": summary["mean"],
            "seeds": summary["seeds"],
            "mean": summary["mean"],
            "std": summary["std"],
            "min": summary["min"],
            "max": summary["max"],
            "seconds": summary["seconds"],
            "commit": commit,
            "command": portable_command(command or f"lstmkit train {recipe.name} --seeds {seeds}"),
            "machine": machine(),
        }
        record.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record / f"{recipe.name}.json", json.dumps(result, indent=2) + "\n")
    return summary


def read_summary(out: Path) -> dict[str, Any] | None:
    """``OUT/repeat.json`` as :func:`repeat_recipe` wrote it: ``recipe``, ``metric`` and
    ``seeds`` (each ``{"seed": int, "value": float, ...}``, seeds distinct, figures finite), the
    rest as written; None when it is missing, not JSON, or not of that shape."""
    try:
        payload = json.loads((out / SUMMARY_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(payload, dict) or not isinstance(payload.get("seeds"), list):
        return None
    seeds = payload["seeds"]
    for s in seeds:
        if not isinstance(s, dict):
            return None
        seed, value = s.get("seed"), s.get("value")
        if not isinstance(seed, int) or isinstance(seed, bool):
            return None
        if not isinstance(value, int | float) or isinstance(value, bool):
            return None
        if not math.isfinite(value):
            return None
    if len({s["seed"] for s in seeds}) != len(seeds):
        return None
    if not isinstance(payload.get("metric"), str) or not isinstance(payload.get("recipe"), str):
        return None
    return payload


def summary_line(summary: dict[str, Any], out: Path) -> str:
    """``imdb-seed003: test_accuracy over 5 seeds 0.8612 ± 0.0031 (min 0.857, max 0.865) -> OUT``."""
    vals = ", ".join(f"{s['value']:.4f}" for s in summary["seeds"])
    return (
        f"{summary['recipe']}: {summary['metric']} over {len(summary['seeds'])} seeds "
        f"{summary['mean']:.4f} ± {summary['std']:.4f} (min {summary['min']:.4f}, max "
        f"{summary['max']:.4f}; {vals}) ({summary['seconds'] / 60:.1f} min) -> {out}"
    )
