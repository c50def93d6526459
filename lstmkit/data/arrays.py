"""Numeric sequence arrays ``(N, T, F)`` with labels, from ``.npy`` / ``.npz`` files (seed 004's
input: ``LSTM(64, input_shape=(24, 100))``).

``[data.arrays]`` of a recipe (``dataset = "arrays"``)::

    [data.arrays]
    x = "signals.npz"        # .npz: arrays x_key / y_key inside; .npy: x only, labels from y
    y = "labels.npy"         # optional with .npz
    test_split = 0.2         # a seeded, stratified share held out as the test set ...
    test_x = "test.npz"      # ... or a test file of the same form (then test_split is unused)
    standardize = true       # per feature, with the training part's mean and std (seed 001:
                             # "normalise regression data")

Every problem is one :class:`ArraysError` naming the file and what is wrong (shape, dtype, NaN,
label range, length mismatch).
"""

from __future__ import annotations

import zipfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from pydantic import BaseModel, ConfigDict, Field

from lstmkit.errors import ArraysError


class ArraysSource(BaseModel):
    """``[data.arrays]``: where the arrays are and how to split and scale them.

    Attributes:
        x: ``.npz`` (holding ``x_key`` and, without ``y``, ``y_key``) or ``.npy`` of shape
            (N, T, F) (a 2-D (N, T) array is read as F = 1).
        y: ``.npy`` of N integer labels (0..C-1) when ``x`` does not hold them.
        x_key, y_key: array names inside an ``.npz``.
        test_x, test_y: a separate test set of the same form; else ``test_split`` of the data
            (stratified, seeded by ``train.seed``). The training part comes in a seeded random
            order, so ``[data] validation_split`` (its tail) holds every class.
        standardize: scale every feature by the training part's mean and standard deviation.
    """

    model_config = ConfigDict(extra="forbid")

    x: str
    y: str | None = None
    x_key: str = "x"
    y_key: str = "y"
    test_x: str | None = None
    test_y: str | None = None
    test_split: float = Field(0.2, gt=0.0, lt=1.0)
    standardize: bool = True


@dataclass
class Arrays:
    """Training and test arrays (float32 (N, T, F), int64 labels) and the scaling applied."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    mean: np.ndarray | None
    std: np.ndarray | None


# The files of the documented examples, by name: the command that makes each and where it writes
# by default. A recipe that reads one (stacked-seed004) says so when the file is not there yet.
EXAMPLE_FILES = {"digits-ge5.npz": ("python examples/make_digit_arrays.py", "data/digits-ge5.npz")}


def _load(path_text: str, key: str, what: str) -> np.ndarray:
    path = Path(path_text).expanduser()
    if not path.is_file():
        if path.name in EXAMPLE_FILES:
            make, default = EXAMPLE_FILES[path.name]
            out = "" if path == Path(default) else f" --out {path}"
            raise ArraysError(
                f"{what} file {path} does not exist: it is the example's data, make it first with "
                f"`{make}{out}` (or set [data.arrays] {what} to your own (N, T, F) file)"
            )
        raise ArraysError(f"{what} file {path} does not exist")
    try:
        if path.suffix == ".npz":
            with np.load(path, allow_pickle=False) as archive:
                if key not in archive.files:
                    raise ArraysError(
                        f"{path} has no array {key!r}; it holds {', '.join(archive.files) or 'nothing'} "
                        f"(set [data.arrays] {'x_key' if what == 'x' else 'y_key'})"
                    )
                return np.asarray(archive[key])
        if path.suffix == ".npy":
            return np.asarray(np.load(path, allow_pickle=False))
    except (OSError, ValueError, zipfile.BadZipFile) as err:
        if isinstance(err, ArraysError):
            raise
        raise ArraysError(f"{path}: not a readable NumPy file ({err})") from None
    raise ArraysError(f"{path}: expected a .npy or .npz file")


def _read_pair(
    x_path: str, y_path: str | None, source: ArraysSource
) -> tuple[np.ndarray, np.ndarray]:
    x = _load(x_path, source.x_key, "x")
    if y_path is not None:
        y = _load(y_path, source.y_key, "y")
    elif x_path.endswith(".npz"):
        y = _load(x_path, source.y_key, "y")
    else:
        raise ArraysError(
            f"{x_path} is a .npy file: give the labels as [data.arrays] y = 'labels.npy'"
        )
    if x.ndim == 2:
        x = x[:, :, None]
    if x.ndim != 3:
        raise ArraysError(f"{x_path}: x must have shape (N, T, F), got {x.shape}")
    if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
        raise ArraysError(f"{x_path}: x must be real numbers, got dtype {x.dtype}")
    x = x.astype(np.float32)
    bad = ~np.isfinite(x)
    if bad.any():
        n, t, f = (int(i) for i in np.argwhere(bad)[0])
        raise ArraysError(f"{x_path}: x[{n}, {t}, {f}] is {x[n, t, f]} (NaN/inf are not allowed)")
    y = np.asarray(y).reshape(-1) if np.asarray(y).ndim == 2 and np.asarray(y).shape[1] == 1 else y
    if y.ndim != 1 or len(y) != len(x):
        raise ArraysError(
            f"{y_path or x_path}: labels must be one per sequence, shape ({len(x)},), got {y.shape}"
        )
    if not np.issubdtype(y.dtype, np.integer):
        if np.issubdtype(y.dtype, np.floating) and np.all(np.mod(y, 1) == 0):
            y = y.astype(np.int64)
        else:
            raise ArraysError(
                f"{y_path or x_path}: labels must be integers 0..C-1, got dtype {y.dtype}"
            )
    if len(y) and y.min() < 0:
        raise ArraysError(f"{y_path or x_path}: labels must be >= 0, found {int(y.min())}")
    return x, y.astype(np.int64)


def _stratified_split(y: np.ndarray, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        members = rng.permutation(np.flatnonzero(y == c))
        held.append(members[: int(round(len(members) * fraction))])
    test = np.sort(np.concatenate(held))
    # the training part in a seeded random order: a validation split takes its tail, which must
    # not be one class when the file is sorted by label
    train = rng.permutation(np.setdiff1d(np.arange(len(y)), test))
    return train, test


def load_arrays(source: ArraysSource, seed: int = 0) -> Arrays:
    """Read, check, split and (optionally) standardise ``source``'s arrays."""
    x, y = _read_pair(source.x, source.y, source)
    if source.test_x is not None:
        x_test, y_test = _read_pair(source.test_x, source.test_y, source)
        if x_test.shape[1:] != x.shape[1:]:
            raise ArraysError(
                f"{source.test_x}: test sequences have shape {x_test.shape[1:]}, training ones {x.shape[1:]}"
            )
        order = np.random.default_rng(seed).permutation(len(y))  # as in the split below
        x_train, y_train = x[order], y[order]
    else:
        tr, te = _stratified_split(y, source.test_split, seed)
        x_train, y_train, x_test, y_test = x[tr], y[tr], x[te], y[te]
    if len(np.unique(y_train)) < 2:
        raise ArraysError(f"{source.x}: the training labels hold a single class; need at least 2")
    mean = std = None
    if source.standardize:
        mean = x_train.mean(axis=(0, 1), keepdims=True)
        std = x_train.std(axis=(0, 1), keepdims=True)
        std[std == 0] = 1.0
        x_train = (x_train - mean) / std
        x_test = (x_test - mean) / std
    return Arrays(x_train.astype(np.float32), y_train, x_test.astype(np.float32), y_test, mean, std)
