"""Small finished runs of every task that lstmkit serves beyond classifiers, trained in seconds
(a few steps: the numbers need not be good, only the same whichever way they are asked for):
one monthly series with a driver column, a quarterly panel with a series embedding, and a
character language model. Each function returns the run directory."""

from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

from lstmkit.cli import main
from lstmkit.config import recipe_from_dict
from lstmkit.experiment import run_recipe


def monthly_csv(path: Path, n: int = 120, seed: int = 0) -> Path:
    """A seasonal monthly series ``month, sales, driver`` (period 12)."""
    rng = np.random.default_rng(seed)
    t = np.arange(n)
    driver = np.sin(2 * np.pi * t / 12)
    y = 20 + 5 * driver + rng.normal(0, 0.3, n)
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["month", "sales", "driver"])
        for i in range(n):
            w.writerow([f"{2000 + i // 12}-{i % 12 + 1:02d}", f"{y[i]:.4f}", f"{driver[i]:.4f}"])
    return path


def panel_csv(path: Path, series: int = 3, n: int = 40, seed: int = 0) -> Path:
    """``series`` quarterly series ``unique_id, ds, y`` of ``n`` points each."""
    rng = np.random.default_rng(seed)
    season = np.array([1.0, -0.5, 0.8, -1.3])
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["unique_id", "ds", "y"])
        for k in range(series):
            level = rng.uniform(20, 500)
            t = np.arange(n)
            y = level + 0.1 * level * season[t % 4] + rng.normal(0, 0.02 * level, n)
            for i in range(n):
                w.writerow([f"S{k}", f"{1990 + i // 4}-{3 * (i % 4) + 3:02d}-01", f"{y[i]:.4f}"])
    return path


def forecast_run(root: Path) -> Path:
    """A single-series forecasting run (lookback 24, horizon 3, the 0.1/0.5/0.9 band)."""
    data = monthly_csv(root / "sales.csv")
    run = root / "sales-run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "sales"]
    args += ["--features", "driver", "--time-column", "month", "--horizon", "3"]
    args += ["--lookback", "24", "--set", "train.max_steps=5", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def panel_run(root: Path) -> Path:
    """A panel run of three quarterly series with a series embedding (lookback 12, horizon 4)."""
    data = panel_csv(root / "panel.csv")
    run = root / "panel-run"
    args = ["train", "--task", "forecast", "--train", str(data), "--target", "y"]
    args += ["--time-column", "ds", "--horizon", "4", "--lookback", "12", "--baseline", "none"]
    args += ["--set", "data.series.embedding_dim=2", "--set", "data.series.members=1"]
    args += ["--set", "train.max_steps=3", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    return run


def language_model_run(root: Path) -> Path:
    """A character language model of a short periodic text."""
    text = root / "verse.txt"
    text.write_text("the cat sat on the mat. " * 60, encoding="utf-8")
    recipe = {
        "name": "tiny-lm",
        "task": "language_model",
        "data": {
            "dataset": "chars",
            "chars": {"file": str(text), "bptt": 16, "valid_fraction": 0.1, "test_fraction": 0.1},
        },
        "model": {"embedding_dim": 8, "hidden_size": 16},
        "train": {"lr": 0.01, "batch_size": 8, "eval_batch_size": 4, "epochs": 1},
    }
    run = root / "lm-run"
    run_recipe(recipe_from_dict(recipe), {}, run, progress=False)
    return run
