"""Hints from a run's history rows, as a training UI gives them (seed 001: watch training to tune
the learning rate and spot overfitting).

- **Update / parameter ratio** (the Trainer's per-layer ``update_ratio``: ``||step|| /
  ||weights||``): DL4J's training UI and Karpathy's notes put a healthy ratio near 1e-3 (log10 about
  -3). Far above (> 1e-2) the learning rate is likely too high; far below (< 1e-5) too low.
- **Overfitting**: the validation loss rose at the last ``patience`` evaluations while the
  training loss fell.
- **Exploding gradients**: the newest global gradient norm is over 10 times the median of the
  earlier ones.
"""

from __future__ import annotations

import statistics
from typing import Any

RATIO_HIGH = 1e-2
RATIO_LOW = 1e-5
GRAD_JUMP = 10.0


def diagnose(rows: list[dict[str, Any]], patience: int = 2) -> list[dict[str, str]]:
    """Hints (``{"kind", "text"}``) for the history ``rows`` (train and val rows by step)."""
    train = sorted((r for r in rows if r.get("split") == "train"), key=lambda r: r["step"])
    val = sorted((r for r in rows if r.get("split") == "val"), key=lambda r: r["step"])
    hints: list[dict[str, str]] = []
    if train and isinstance(train[-1].get("layers"), dict):
        last = train[-1]
        high = {
            n: v["update_ratio"]
            for n, v in last["layers"].items()
            if v.get("update_ratio", 0) > RATIO_HIGH
        }
        low = {
            n: v["update_ratio"]
            for n, v in last["layers"].items()
            if 0 < v.get("update_ratio", 0) < RATIO_LOW
        }
        if high:
            names = ", ".join(f"{n} {r:.1e}" for n, r in high.items())
            hints.append(
                {
                    "kind": "learning_rate",
                    "text": f"step {last['step']}: updates are over 1e-2 of the weights ({names}); "
                    "about 1e-3 is healthy, so the learning rate may be too high",
                }
            )
        if low:
            names = ", ".join(f"{n} {r:.1e}" for n, r in low.items())
            hints.append(
                {
                    "kind": "learning_rate",
                    "text": f"step {last['step']}: updates are under 1e-5 of the weights ({names}); "
                    "about 1e-3 is healthy, so the learning rate may be too low",
                }
            )
    if len(val) > patience:
        recent = val[-(patience + 1) :]
        rising = all(b["loss"] > a["loss"] for a, b in zip(recent, recent[1:], strict=False))
        train_at = {r["step"]: r["loss"] for r in train}
        first, now = recent[0]["step"], recent[-1]["step"]
        falling = first in train_at and now in train_at and train_at[now] < train_at[first]
        if rising and falling:
            hints.append(
                {
                    "kind": "overfitting",
                    "text": f"validation loss rose from {recent[0]['loss']:.4f} (step {first}) to "
                    f"{recent[-1]['loss']:.4f} (step {now}) while the training loss fell from "
                    f"{train_at[first]:.4f} to {train_at[now]:.4f}: the model is starting to "
                    "overfit (early stopping, more dropout or a smaller model)",
                }
            )
    norms = [r["grad_norm"] for r in train if isinstance(r.get("grad_norm"), int | float)]
    if len(norms) >= 4:
        typical = statistics.median(norms[:-1])
        if typical > 0 and norms[-1] > GRAD_JUMP * typical:
            hints.append(
                {
                    "kind": "gradients",
                    "text": f"step {train[-1]['step']}: the gradient norm jumped to "
                    f"{norms[-1]:.3g}, {norms[-1] / typical:.0f}x its median {typical:.3g}; "
                    "gradient clipping (train.clip_norm) or a lower learning rate steadies it",
                }
            )
    return hints
