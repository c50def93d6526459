"""The public training API: ``lstmkit.fit`` / ``lstmkit.Trainer`` train a module of one's own
(not one of lstmkit's models) with evaluation, early stopping, checkpoints and exact resume after
an interrupt; a model that returns its own loss; bad calls are one clear error; ``lstmkit.LSTM``
inside a PyTorch Lightning module is a drop-in for ``torch.nn.LSTM``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import Tensor, nn

import lstmkit
from lstmkit.errors import ConfigError


class Tagger(nn.Module):
    """A user's module: torch's GRU, dropout and a head; (B, T, 4) -> logits (B, 2)."""

    def __init__(self, seed: int) -> None:
        super().__init__()
        torch.manual_seed(seed)
        self.rnn = nn.GRU(4, 12, batch_first=True)
        self.drop = nn.Dropout(0.3)
        self.head = nn.Linear(12, 2)

    def forward(self, x: Tensor) -> Tensor:
        out, _ = self.rnn(x)  # (B, T, 12)
        return self.head(self.drop(out[:, -1]))


def pairs(n: int, seed: int) -> list[tuple[Tensor, int]]:
    """Label 1 iff the first feature's sum over the first three steps is positive: the model
    must carry it across the nine steps after it."""
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 12, 4, generator=g)
    y = (x[:, :3, 0].sum(1) > 0).long()
    return [(x[i], int(y[i])) for i in range(n)]


OPTIONS: dict[str, Any] = {"batch_size": 16, "epochs": 4, "lr": 0.02, "evaluate_every": 5}


class StopAt(lstmkit.Tracker):
    """Ctrl-C at the training row of ``step`` (as a user's interrupt there would)."""

    def __init__(self, step: int) -> None:
        self.step = step

    def log_row(self, row: dict[str, Any]) -> None:
        if row["split"] == "train" and row["step"] == self.step:
            raise KeyboardInterrupt


def test_fit_trains_a_users_module_and_resumes_it_exactly_after_an_interrupt(
    tmp_path: Path,
) -> None:
    train, valid = pairs(320, 0), pairs(96, 1)
    full = lstmkit.fit(
        Tagger(0), train, valid, num_classes=2, run_dir=tmp_path / "full", progress=False, **OPTIONS
    )
    assert full.step == 80
    val = [r for r in full.history if r["split"] == "val"]
    assert val[-1]["accuracy"] >= 0.7 > val[0]["accuracy"] and val[-1]["loss"] < val[0]["loss"]
    assert full.best["value"] == max(r["accuracy"] for r in val)
    assert (tmp_path / "full" / "best.safetensors").is_file()
    assert (tmp_path / "full" / "checkpoints").is_dir()

    with pytest.raises(KeyboardInterrupt):
        lstmkit.fit(
            Tagger(0),
            train,
            valid,
            num_classes=2,
            run_dir=tmp_path / "part",
            progress=False,
            callbacks=[StopAt(35)],
            **OPTIONS,
        )
    # another initialisation: everything must come from the checkpoint the interrupt wrote
    resumed = lstmkit.fit(
        Tagger(123),
        train,
        valid,
        num_classes=2,
        run_dir=tmp_path / "part",
        progress=False,
        resume=True,
        **OPTIONS,
    )
    assert resumed.step == full.step
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert float((a - b).abs().max()) <= 1e-6, name
    full_val = {r["step"]: r["loss"] for r in full.history if r["split"] == "val"}
    res_val = {r["step"]: r["loss"] for r in resumed.history if r["split"] == "val"}
    # the interrupt came at step 35's training row, before its validation
    assert 35 in full_val and set(res_val) == set(full_val) - {35}
    for step, loss in res_val.items():
        assert abs(full_val[step] - loss) <= 1e-6, step
    rows = [json.loads(x) for x in (tmp_path / "part" / "history.jsonl").read_text().splitlines()]
    assert rows == resumed.history


def test_early_stopping_restores_the_best_weights_of_a_users_module(tmp_path: Path) -> None:
    train, valid = pairs(320, 0), pairs(96, 1)
    trainer = lstmkit.fit(
        Tagger(0),
        train,
        valid,
        num_classes=2,
        run_dir=tmp_path / "run",
        progress=False,
        **{**OPTIONS, "epochs": 30, "early_stopping": 2, "lr": 0.05},
    )
    assert trainer.step < 30 * 20  # stopped early
    evaluated = trainer.evaluate(valid)
    assert evaluated["accuracy"] == trainer.best["value"]


class SelfSupervised(nn.Module):
    """Returns its own loss: predict the next step's features (a batch of (B, T, 4) tensors)."""

    def __init__(self) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.rnn = lstmkit.LSTM(4, 16, return_state=False)
        self.out = nn.Linear(16, 4)

    def forward(self, x: Tensor) -> Tensor:
        pred = self.out(self.rnn(x[:, :-1]))  # (B, T-1, 4)
        return (pred - x[:, 1:]).pow(2).mean()


def waves(n: int) -> list[Tensor]:
    t = torch.arange(16).float()
    phase = torch.linspace(0, 3, n)[:, None, None]
    freq = torch.tensor([0.3, 0.5, 0.7, 0.9])
    return list(torch.sin(t[None, :, None] * freq + phase))  # n x (16, 4)


def test_fit_a_model_that_returns_its_loss(tmp_path: Path) -> None:
    data = waves(96)
    trainer = lstmkit.fit(
        SelfSupervised(),
        data[:64],
        data[64:],
        objective="loss",
        run_dir=tmp_path / "run",
        progress=False,
        batch_size=16,
        epochs=15,
        lr=0.02,
    )
    val = [r for r in trainer.history if r["split"] == "val"]
    assert set(val[0]) >= {"loss", "step"} and "accuracy" not in val[0]
    assert val[-1]["loss"] < 0.5 * val[0]["loss"]
    assert trainer.monitor == "loss" and trainer.best["value"] == min(r["loss"] for r in val)


def test_bad_calls_are_one_clear_error(tmp_path: Path) -> None:
    data = pairs(8, 0)
    with pytest.raises(ConfigError, match='give num_classes .classification., objective="loss"'):
        lstmkit.fit(Tagger(0), data)
    with pytest.raises(ConfigError, match=r"lstmkit.fit: lr: Input should be greater than 0"):
        lstmkit.fit(Tagger(0), data, num_classes=2, lr=-1.0)
    with pytest.raises(ConfigError, match=r"lstmkit.fit: epoch: Extra inputs are not permitted"):
        lstmkit.fit(Tagger(0), data, num_classes=2, epoch=3)
    with pytest.raises(
        ConfigError, match=r"objective: expected an Objective or \"loss\", got 'mse'"
    ):
        lstmkit.fit(Tagger(0), data, objective="mse")
    with pytest.raises(ValueError, match=r"expected dataset items \(input, target\), got a Tensor"):
        lstmkit.fit(Tagger(0), [x for x, _ in data], num_classes=2, progress=False)


# -- PyTorch Lightning ----------------------------------------------------------------------
def test_lstmkit_lstm_is_a_drop_in_for_torch_lstm_inside_lightning(tmp_path: Path) -> None:
    """The same LightningModule with torch.nn.LSTM and with lstmkit.LSTM (its own per-step loop,
    not torch's fused op), the weights copied across: the same outputs, and the same weights after
    three of Lightning's optimizer steps."""
    pl = pytest.importorskip("pytorch_lightning")
    from lstmkit.interop import load_torch_state_dict

    class Regressor(pl.LightningModule):
        def __init__(self, rnn: nn.Module) -> None:
            super().__init__()
            self.rnn = rnn
            self.head = nn.Linear(10, 1)

        def forward(self, x: Tensor) -> Tensor:
            out, (h, c) = self.rnn(x)  # (B, T, H), ((L, B, H), (L, B, H)): the same contract
            return self.head(out[:, -1] + h[-1] + c[-1])[:, 0]

        def training_step(self, batch: Any, batch_idx: int) -> Tensor:
            x, y = batch
            return nn.functional.mse_loss(self(x), y)

        def configure_optimizers(self) -> torch.optim.Optimizer:
            return torch.optim.SGD(self.parameters(), lr=0.1)

    torch.manual_seed(0)
    theirs = Regressor(nn.LSTM(3, 10, num_layers=2, batch_first=True)).double()
    ours = Regressor(lstmkit.LSTM(3, 10, num_layers=2, impl="loop")).double()
    load_torch_state_dict(ours.rnn, theirs.rnn.state_dict())
    ours.head.load_state_dict(theirs.head.state_dict())
    x = torch.randn(24, 7, 3, dtype=torch.float64)
    y = x.sum((1, 2))
    with torch.no_grad():
        assert float((ours(x) - theirs(x)).abs().max()) <= 1e-10

    loader = torch.utils.data.DataLoader(list(zip(x, y, strict=True)), batch_size=8)
    for module in (theirs, ours):
        pl.Trainer(
            max_steps=3,
            accelerator="cpu",
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            default_root_dir=tmp_path,
        ).fit(module, loader)
    with torch.no_grad():
        assert float((ours(x) - theirs(x)).abs().max()) <= 1e-10
    torch_again = {k: v for k, v in theirs.rnn.state_dict().items()}
    from lstmkit.interop import to_torch_state_dict

    for key, value in to_torch_state_dict(ours.rnn).items():
        assert float((value - torch_again[key]).abs().max()) <= 1e-10, key
