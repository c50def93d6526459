"""Training hints from history rows: learning rate (update / parameter ratio), overfitting,
exploding gradients; and none for a healthy run."""

from __future__ import annotations

from typing import Any

from lstmkit.studio.diagnose import diagnose


def train_row(step: int, loss: float, ratio: float = 1e-3, grad: float = 1.0) -> dict[str, Any]:
    layers = {
        "embedding": {"grad_norm": grad, "update_ratio": ratio},
        "head": {"grad_norm": grad, "update_ratio": 1e-3},
    }
    return {"step": step, "split": "train", "loss": loss, "grad_norm": grad, "layers": layers}


def val_row(step: int, loss: float) -> dict[str, Any]:
    return {"step": step, "split": "val", "loss": loss, "accuracy": 0.8}


def test_a_healthy_run_has_no_hints() -> None:
    rows = [train_row(s, 1.0 / s) for s in (1, 2, 3, 4)] + [
        val_row(s, 1.1 / s) for s in (1, 2, 3, 4)
    ]
    assert diagnose(rows) == []
    assert diagnose([]) == []


def test_learning_rate_hints() -> None:
    high = diagnose([train_row(5, 0.5, ratio=0.05)])
    assert [h["kind"] for h in high] == ["learning_rate"]
    assert high[0]["text"] == (
        "step 5: updates are over 1e-2 of the weights (embedding 5.0e-02); about 1e-3 is "
        "healthy, so the learning rate may be too high"
    )
    low = diagnose([train_row(5, 0.5, ratio=2e-6)])
    assert "under 1e-5 of the weights (embedding 2.0e-06)" in low[0]["text"]
    assert low[0]["text"].endswith("may be too low")


def test_overfitting() -> None:
    rows = [train_row(s, loss) for s, loss in ((10, 0.6), (20, 0.4), (30, 0.3))]
    rows += [val_row(s, loss) for s, loss in ((10, 0.50), (20, 0.52), (30, 0.55))]
    (hint,) = diagnose(rows)
    assert hint["kind"] == "overfitting"
    assert hint["text"].startswith(
        "validation loss rose from 0.5000 (step 10) to 0.5500 (step 30) while the training loss "
        "fell from 0.6000 to 0.3000"
    )
    # one rise is noise, not a trend (patience 2)
    assert diagnose(rows[:3] + [val_row(10, 0.50), val_row(20, 0.49), val_row(30, 0.55)]) == []
    # both losses rising is not overfitting
    worse = [train_row(s, loss) for s, loss in ((10, 0.3), (20, 0.4), (30, 0.6))]
    assert diagnose(worse + rows[3:]) == []


def test_exploding_gradients() -> None:
    rows = [train_row(s, 0.5, grad=g) for s, g in ((1, 1.0), (2, 1.2), (3, 0.9), (4, 12.5))]
    (hint,) = diagnose(rows)
    assert hint["kind"] == "gradients"
    assert hint["text"].startswith("step 4: the gradient norm jumped to 12.5, 12x its median 1")
    assert diagnose(rows[:3]) == []  # too few rows to have a median
