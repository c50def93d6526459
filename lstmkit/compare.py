"""``lstmkit compare RECIPE --cells rnn lstm gru``: the same recipe with each cell type (seed 003's
SimpleRNN vs LSTM vs GRU), one table and one figure.

Each cell trains through :func:`lstmkit.experiment.run_recipe` into ``OUT/<cell>/`` (a normal run
directory). Then:

- ``OUT/comparison.json`` (and ``--record DIR``: ``DIR/compare-<recipe>.json``): per cell the
  test accuracy, loss, parameters, seconds per epoch and in all, with the command and commit;
- ``OUT/comparison.png`` (and ``--figure FILE``): validation loss and accuracy per epoch,
  the cells overlaid;
- ``OUT/comparison.md`` (and ``--markdown FILE``): the table in Markdown, generated from the
  JSON (docs/compare-cells.md is written this way).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Any

from lstmkit.config import load_recipe
from lstmkit.errors import ConfigError
from lstmkit.experiment import quick_overrides, run_recipe
from lstmkit.files import atomic_write_text
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.plots import pyplot, save_png
from lstmkit.runs import git_commit, machine, read_history, read_run_config

CELL_NAMES = {"rnn": "SimpleRNN", "lstm": "LSTM", "gru": "GRU"}


def _epoch_seconds(history: list[dict[str, Any]]) -> float:
    rows = [r for r in history if r["split"] == "train" and "elapsed_s" in r]
    if not rows:
        return float("nan")
    epochs = max(1, max(int(r["epoch"]) for r in rows))
    return float(rows[-1]["elapsed_s"]) / epochs


def compare_cells(
    recipe_path: Path,
    cells: list[str],
    out: Path,
    *,
    overrides: list[str] | None = None,
    quick: bool = False,
    record: Path | None = None,
    figure: Path | None = None,
    markdown: Path | None = None,
    progress: bool = False,
    command: str = "",
) -> dict[str, Any]:
    """Train ``recipe_path`` once per cell type into ``out/<cell>``; write the comparison."""
    bad = [c for c in cells if c not in CELL_NAMES]
    if bad or not cells:
        raise ConfigError(f"--cells takes some of {', '.join(CELL_NAMES)}, got {cells or 'none'}")
    if quick and record is not None:
        raise ConfigError("--quick runs claim no accuracy: drop --record")
    extra = list(overrides or [])
    base, _ = load_recipe(recipe_path, extra)
    if base.task not in ("classify", "text"):
        raise ConfigError(
            f"{recipe_path}: compare takes a classification recipe, got task {base.task!r}"
        )
    if quick:
        extra += quick_overrides(base)
    rows = []
    start = time.perf_counter()
    for cell in cells:
        recipe, raw = load_recipe(recipe_path, [*extra, f"model.cell={cell}"])
        run_dir = out / cell
        metrics = run_recipe(recipe, raw, run_dir, progress=progress, command=command)
        history = read_history(run_dir)
        config = read_run_config(run_dir)
        rows.append(
            {
                "cell": cell,
                "name": CELL_NAMES[cell],
                "test_accuracy": metrics["test"]["accuracy"],
                "test_loss": metrics["test"]["loss"],
                "params": _count_params(config),
                "seconds_per_epoch": _epoch_seconds(history),
                "seconds": metrics["seconds"],
                "history": [
                    {k: r[k] for k in ("step", "epoch", "loss", "accuracy") if k in r}
                    for r in history
                    if r["split"] == "val"
                ],
            }
        )
    result = {
        "comparison": "cells",
        "of_recipe": base.name,
        "quick": quick,
        "cells": rows,
        "seconds": time.perf_counter() - start,
        "commit": git_commit(),
        "command": command,
        "machine": machine(),
        "seed_figure": base.seed_figure,
    }
    out.mkdir(parents=True, exist_ok=True)
    text = json.dumps(result, indent=2) + "\n"
    atomic_write_text(out / "comparison.json", text)
    if record is not None:
        record.mkdir(parents=True, exist_ok=True)
        atomic_write_text(record / f"compare-{base.name}.json", text)
    plot_comparison(result, out / "comparison.png")
    if figure is not None:
        figure.parent.mkdir(parents=True, exist_ok=True)
        plot_comparison(result, figure)
    atomic_write_text(out / "comparison.md", comparison_markdown(result, "comparison.png"))
    if markdown is not None:
        markdown.parent.mkdir(parents=True, exist_ok=True)
        target = figure if figure is not None else out / "comparison.png"
        link = os.path.relpath(target.resolve(), markdown.resolve().parent)
        atomic_write_text(markdown, comparison_markdown(result, link))
    return result


def _count_params(config: dict[str, Any]) -> int:
    model = SequenceClassifier(ClassifierConfig.model_validate(config["model"]))
    return sum(p.numel() for p in model.parameters())


def comparison_markdown(result: dict[str, Any], figure: str) -> str:
    """The comparison as a Markdown section: a table and the figure."""
    head = (
        f"# SimpleRNN vs LSTM vs GRU on `{result['of_recipe']}`\n\n"
        "Generated by `lstmkit compare` from its JSON (nothing typed by hand).\n\n"
        f"Command: `{result['command']}` — commit `{str(result['commit'])[:8]}`, "
        f"{result['machine']}{' (quick mode: no accuracy claimed)' if result['quick'] else ''}.\n\n"
    )
    seed = result.get("seed_figure")
    lines = [
        "| cell | test accuracy | test loss | parameters | seconds / epoch | minutes in all |",
        "| --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in result["cells"]:
        lines.append(
            f"| {r['name']} | {r['test_accuracy']:.4f} | {r['test_loss']:.4f} | {r['params']:,} | "
            f"{r['seconds_per_epoch']:.1f} | {r['seconds'] / 60:.1f} |"
        )
    tail = f"\n\nThe note's LSTM figure: {seed:.4f}.\n" if seed is not None else "\n"
    return head + "\n".join(lines) + tail + f"\n![validation curves]({figure})\n"


def plot_comparison(result: dict[str, Any], path: Path) -> None:
    """Validation loss and accuracy against epochs, one line per cell (PNG)."""
    plt = pyplot()

    fig, axes = plt.subplots(1, 2, figsize=(11, 4))
    for r in result["cells"]:
        rows = r["history"]
        epochs = [h["epoch"] for h in rows]
        axes[0].plot(epochs, [h["loss"] for h in rows], "o-", label=r["name"], markersize=3)
        axes[1].plot(epochs, [h["accuracy"] for h in rows], "o-", label=r["name"], markersize=3)
    for ax, name in zip(axes, ("validation loss", "validation accuracy"), strict=True):
        ax.set_xlabel("epoch")
        ax.set_ylabel(name)
        ax.set_title(f"{result['of_recipe']}: {name}")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.tight_layout()
    save_png(fig, path)
