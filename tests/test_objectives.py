"""lstmkit.objectives and the Trainer's task-independent parts: regression and language-model
losses and metrics (exact, batch-size independent), per-layer gradient statistics, monitor."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import Tensor, nn
from torch.utils.data import Dataset

from lstmkit.config import TrainConfig
from lstmkit.objectives import (
    IGNORE,
    Classification,
    LanguageModeling,
    Regression,
    add_sums,
)
from lstmkit.train import Trainer, layer_groups


def test_regression_metrics_by_hand() -> None:
    obj = Regression()
    out = torch.tensor([[1.0, 2.0], [3.0, 5.0]])
    tgt = torch.tensor([[1.0, 0.0], [4.0, 5.0]])
    losses = obj.losses(out, tgt)
    assert losses.tolist() == [0.0, 4.0, 1.0, 0.0]
    m = obj.summarise(obj.sums(out, tgt, losses))
    assert m["loss"] == pytest.approx(5 / 4)
    assert m["mae"] == pytest.approx(3 / 4)
    assert m["rmse"] == pytest.approx(math.sqrt(5 / 4))
    assert m["examples"] == 4
    with pytest.raises(ValueError, match=r"output shape \(2, 2\) != target shape \(2,\)"):
        obj.losses(out, tgt[:, 0])


def test_language_modeling_skips_ignored_targets_and_reports_bits() -> None:
    obj = LanguageModeling()
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 5)
    target = torch.tensor([[1, 2, IGNORE], [0, IGNORE, 4]])
    losses = obj.losses(logits, target)
    keep = target != IGNORE
    expected = torch.nn.functional.cross_entropy(logits[keep], target[keep], reduction="none")
    assert torch.allclose(losses, expected)
    m = obj.summarise(obj.sums(logits, target, losses))
    assert m["examples"] == 4
    assert m["loss"] == pytest.approx(float(expected.mean()))
    assert m["bits_per_token"] == pytest.approx(m["loss"] / math.log(2))
    assert m["perplexity"] == pytest.approx(math.exp(m["loss"]))
    correct = (logits[keep].argmax(-1) == target[keep]).double().mean()
    assert m["accuracy"] == pytest.approx(float(correct))


@pytest.mark.parametrize("obj_name", ["classification", "lm", "regression"])
def test_sums_are_batch_independent(obj_name: str) -> None:
    """Metrics of a whole set == metrics of its pieces summed (any batch boundaries)."""
    torch.manual_seed(1)
    if obj_name == "classification":
        obj: Classification | LanguageModeling | Regression = Classification(4)
        out, tgt = torch.randn(10, 4), torch.randint(0, 4, (10,))
    elif obj_name == "lm":
        obj = LanguageModeling()
        out, tgt = torch.randn(10, 6, 7), torch.randint(0, 7, (10, 6))
    else:
        obj = Regression()
        out, tgt = torch.randn(10, 3), torch.randn(10, 3)
    whole = obj.summarise(obj.sums(out, tgt, obj.losses(out, tgt)))
    total = obj.empty()
    for a, b in ((0, 3), (3, 4), (4, 10)):
        total = add_sums(total, obj.sums(out[a:b], tgt[a:b], obj.losses(out[a:b], tgt[a:b])))
    pieces = obj.summarise(total)
    assert pieces.keys() == whole.keys()
    for k in whole:
        assert pieces[k] == pytest.approx(whole[k], rel=1e-12)


class SeriesSet(Dataset[tuple[np.ndarray, np.ndarray]]):
    """y = sum of the last 3 inputs of a random sequence (a real signal to regress)."""

    def __init__(self, n: int, seed: int) -> None:
        rng = np.random.default_rng(seed)
        self.x = rng.normal(size=(n, 8, 1)).astype(np.float32)
        self.y = self.x[:, -3:, 0].sum(1, keepdims=True).astype(np.float32)

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        return self.x[i], self.y[i]


def collate_series(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor, Tensor]:
    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    y = torch.from_numpy(np.stack([b[1] for b in batch]))
    return x, torch.full((len(batch),), x.shape[1], dtype=torch.int64), y


class TinyRegressor(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.rnn = nn.LSTM(1, 16, batch_first=True)
        self.head = nn.Linear(16, 1)

    def forward(self, x: Tensor, lengths: Tensor | None = None) -> Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def test_trainer_regression_learns_and_logs_layer_statistics(tmp_path: Path) -> None:
    torch.manual_seed(0)
    train, valid = SeriesSet(512, 0), SeriesSet(128, 1)
    cfg = TrainConfig(batch_size=32, epochs=12, lr=0.02, evaluate_every=16, seed=0)
    trainer = Trainer(
        TinyRegressor(),
        cfg,
        objective=Regression(),
        collate=collate_series,
        run_dir=tmp_path,
        progress=False,
    )
    lengths = np.full(len(train), 8)
    history = trainer.fit(train, lengths, valid, np.full(len(valid), 8))
    val = [r for r in history if r["split"] == "val"]
    # variance of the target is 3; the model must explain almost all of it
    assert val[0]["loss"] > 0.5
    assert val[-1]["loss"] < 0.1
    assert val[-1]["rmse"] == pytest.approx(math.sqrt(val[-1]["loss"]))
    assert trainer.best["value"] == min(r["loss"] for r in val)  # monitor defaults to val_loss
    row = [r for r in history if r["split"] == "train"][-1]
    assert set(row["layers"]) == {"rnn", "head"}
    for stats in row["layers"].values():
        assert stats["grad_norm"] > 0
        assert 0 < stats["update_ratio"] < 0.5
    total = math.sqrt(sum(s["grad_norm"] ** 2 for s in row["layers"].values()))
    assert row["grad_norm"] == pytest.approx(total, rel=1e-5)
    assert row["total_steps"] == 12 * 16
    assert row["eta_s"] == 0.0  # the last row: nothing left
    header = (tmp_path / "history.csv").read_text().splitlines()[0].split(",")
    assert "layers.head.update_ratio" in header
    first = json.loads((tmp_path / "history.jsonl").read_text().splitlines()[0])
    assert first["eta_s"] > 0


def test_layer_groups_split_at_the_first_index() -> None:
    from lstmkit.models import ClassifierConfig, SequenceClassifier

    model = SequenceClassifier(
        ClassifierConfig(vocab_size=20, embedding_dim=4, hidden_size=5, num_layers=2)
    )
    assert list(layer_groups(model)) == ["embedding", "rnn.cells.0", "rnn.cells.1", "head"]


def test_unknown_monitor_for_the_objective_is_one_clear_error(tmp_path: Path) -> None:
    train = SeriesSet(64, 0)
    trainer = Trainer(
        TinyRegressor(),
        TrainConfig(batch_size=32, epochs=1, monitor="val_accuracy"),
        objective=Regression(),
        collate=collate_series,
        progress=False,
    )
    with pytest.raises(ValueError, match="monitor=val_accuracy: the Regression objective reports"):
        trainer.fit(train, np.full(64, 8), train, np.full(64, 8))
