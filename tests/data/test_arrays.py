"""lstmkit.data.arrays: (N, T, F) arrays with labels from .npy/.npz -- checks, split, scaling --
and seed 004's stacked classifier over them (shapes, and it learns a real signal)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.config import TrainConfig
from lstmkit.data.arrays import ArraysError, ArraysSource, load_arrays
from lstmkit.data.batching import SequenceDataset, collate_floats
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.train import Trainer


def signal(n: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Label 1 iff feature 0 summed over the last 4 of 12 steps is positive."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 12, 3)).astype(np.float32) * 5 + 2
    y = ((x[:, -4:, 0] - 2).sum(1) > 0).astype(np.int64)
    return x, y


def test_npz_round_trip_split_and_standardize(tmp_path: Path) -> None:
    x, y = signal(200, 0)
    np.savez(tmp_path / "a.npz", x=x, y=y)
    data = load_arrays(ArraysSource(x=str(tmp_path / "a.npz"), test_split=0.25))
    assert data.x_train.shape == (150, 12, 3) and data.x_test.shape == (50, 12, 3)
    # stratified: both parts keep the class balance (within one example)
    assert abs(data.y_test.mean() - y.mean()) < 0.03
    # scaled with the training part's statistics only
    assert np.allclose(data.x_train.mean(axis=(0, 1)), 0, atol=1e-5)
    assert np.allclose(data.x_train.std(axis=(0, 1)), 1, atol=1e-4)
    assert data.mean is not None and not np.allclose(data.x_test.mean(axis=(0, 1)), 0, atol=1e-3)
    np.save(tmp_path / "x.npy", x[:, :, 0])  # 2-D: one feature
    np.save(tmp_path / "y.npy", y.astype(np.float64))
    one = load_arrays(
        ArraysSource(x=str(tmp_path / "x.npy"), y=str(tmp_path / "y.npy"), standardize=False)
    )
    assert one.x_train.shape[1:] == (12, 1) and one.y_train.dtype == np.int64


@pytest.mark.parametrize(
    ("files", "source", "message"),
    [
        ({}, {"x": "missing.npz"}, "x file .*missing.npz does not exist"),
        ({"a.npz": {"inputs": 1}}, {"x": "a.npz"}, "has no array 'x'; it holds inputs .*x_key"),
        ({"a.npz": {"x": (5, 4), "y": (5,)}}, {"x": "a.npz", "x_key": "x"}, None),
        (
            {"a.npz": {"x": (5,), "y": (5,)}},
            {"x": "a.npz"},
            r"x must have shape \(N, T, F\), got \(5,\)",
        ),
        ({"a.npz": {"x": "nan", "y": (6,)}}, {"x": "a.npz"}, r"x\[1, 2, 0\] is nan"),
        (
            {"a.npz": {"x": (5, 4, 2), "y": (4,)}},
            {"x": "a.npz"},
            r"one per sequence, shape \(5,\), got \(4,\)",
        ),
        (
            {"a.npz": {"x": (5, 4, 2), "y": "float"}},
            {"x": "a.npz"},
            "labels must be integers 0..C-1",
        ),
        ({"a.npz": {"x": (6, 4, 2), "y": "one"}}, {"x": "a.npz"}, "single class"),
        ({"x.npy": (6, 4, 2)}, {"x": "x.npy"}, "is a .npy file: give the labels"),
        ({"a.txt": None}, {"x": "a.txt"}, "expected a .npy or .npz file"),
    ],
)
def test_bad_arrays_give_one_clear_error(
    tmp_path: Path, files: dict[str, object], source: dict[str, str], message: str | None
) -> None:
    for name, spec in files.items():
        path = tmp_path / name
        if spec is None:
            path.write_text("hello")
        elif isinstance(spec, tuple):
            np.save(path, np.zeros(spec))
        else:
            assert isinstance(spec, dict)
            arrays = {}
            for key, value in spec.items():
                if value == "nan":
                    arr = np.zeros((6, 3, 2))
                    arr[1, 2, 0] = np.nan
                elif value == "float":
                    arr = np.linspace(0, 1, 5)
                elif value == "one":
                    arr = np.ones(6, dtype=np.int64)
                elif isinstance(value, tuple):
                    arr = np.arange(np.prod(value)).reshape(value) % 2
                else:
                    arr = np.zeros(3)
                arrays[key] = arr
            np.savez(path, **arrays)  # type: ignore[arg-type]
    src = {k: str(tmp_path / v) if k == "x" else v for k, v in source.items()}
    if message is None:  # a 2-D x is one feature per step: accepted
        assert load_arrays(ArraysSource(**src)).x_train.shape[2] == 1  # type: ignore[arg-type]
        return
    with pytest.raises(ArraysError, match=message):
        load_arrays(ArraysSource(**src))  # type: ignore[arg-type]


def test_seed004_stack_shapes_and_it_learns_a_real_signal() -> None:
    torch.manual_seed(0)
    cfg = ClassifierConfig(
        vocab_size=None,
        input_size=3,
        layer_sizes=[64, 32],
        dense_sizes=[16],
        output_dropout=0.5,
    )
    model = SequenceClassifier(cfg)
    assert [type(m).__name__ for m in (model.rnn, *model.more_rnn)] == ["LSTM", "LSTM"]
    assert model.rnn.hidden_size == 64 and model.more_rnn[0].hidden_size == 32  # type: ignore[union-attr]
    assert model.dense[0].in_features == 32 and model.head.in_features == 16
    assert model(torch.zeros(5, 12, 3)).shape == (5, 1)
    x, y = signal(1200, 1)
    xt, yt = signal(400, 2)
    train = SequenceDataset(list((x - 2) / 5), y, real_valued=True)
    test = SequenceDataset(list((xt - 2) / 5), yt, real_valued=True)
    trainer = Trainer(
        model,
        TrainConfig(batch_size=32, epochs=6, lr=3e-3),
        num_classes=2,
        collate=collate_floats,
        progress=False,
    )
    trainer.fit(train, train.lengths)
    assert trainer.evaluate(test, test.lengths)["accuracy"] >= 0.9


def test_validation_tail_of_a_label_sorted_file_holds_both_classes(tmp_path: Path) -> None:
    x, y = signal(300, 3)
    order = np.argsort(y, kind="stable")  # a file sorted by label
    np.savez(tmp_path / "sorted.npz", x=x[order], y=y[order])
    data = load_arrays(ArraysSource(x=str(tmp_path / "sorted.npz")), seed=0)
    tail = data.y_train[-len(data.y_train) // 5 :]
    assert 0.2 < tail.mean() < 0.8


def test_the_stacked_recipe_without_its_example_file_says_how_to_make_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """``lstmkit train stacked-seed004`` before ``examples/make_digit_arrays.py`` was run: exit 2
    and one line naming the file and the command that makes it, no traceback."""
    from lstmkit.cli import main

    monkeypatch.chdir(tmp_path)  # no data/digits-ge5.npz here
    assert main(["train", "stacked-seed004", "--quick", "--out", "run", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err == (
        "lstmkit train: error: x file data/digits-ge5.npz does not exist: it is the example's "
        "data, make it first with `python examples/make_digit_arrays.py` (or set [data.arrays] x "
        "to your own (N, T, F) file)\n"
    )
    elsewhere = tmp_path / "mine" / "digits-ge5.npz"
    setting = f'data.arrays.x="{elsewhere}"'
    args = ["train", "stacked-seed004", "--quick", "--out", "run", "--set", setting]
    assert main(args) == 2
    assert f"`python examples/make_digit_arrays.py --out {elsewhere}`" in capsys.readouterr().err
    with pytest.raises(ArraysError, match=r"^x file .*other\.npz does not exist$"):
        load_arrays(ArraysSource(x=str(tmp_path / "other.npz")))
