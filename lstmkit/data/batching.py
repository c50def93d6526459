"""Length-bucketed batching for variable-length sequences: a batch sampler, collate functions and a
small dataset wrapper.

Padding every sequence of a random batch to the batch's longest one wastes most of the compute on
a long-tailed length distribution such as IMDB's (mean ~230 tokens, a tail past 2000).
`BucketBatchSampler` groups sequences of similar length while keeping batches random:

1. permute all indices with a generator seeded by ``(seed, epoch)``;
2. cut the permutation into chunks of ``batch_size * chunk`` items;
3. sort each chunk by length (a stable sort, so equal lengths keep their random order);
4. cut each sorted chunk into batches of ``batch_size`` and shuffle the order of all batches.

`padding_fraction` measures what that saves. `collate_tokens` / `collate_floats` pad a batch
('post', with 0) to its own longest sequence and return the lengths alongside, and
`SequenceDataset` serves ``(tokens, label)`` pairs with the ``lengths`` the sampler needs::

    ds = SequenceDataset(x_train, y_train)
    sampler = BucketBatchSampler(ds.lengths, 32, seed=0)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens)
    for epoch in range(epochs):
        sampler.set_epoch(epoch)
        for tokens, lengths, labels in loader:
            ...

Nothing here touches a global random state: an epoch's batches are a pure function of
``(seed, epoch)`` and the constructor arguments, so every DDP rank computes the same global
batches, and a run resumed after ``k`` steps continues with ``sampler.iter_from(k)``.
"""

from __future__ import annotations

import operator
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

import numpy as np
import numpy.typing as npt
import torch
from torch import Tensor
from torch.utils.data import Dataset, Sampler

__all__ = [
    "BucketBatchSampler",
    "SequenceDataset",
    "collate_floats",
    "collate_tokens",
    "padding_fraction",
]


def _check_lengths(lengths: Sequence[int] | npt.NDArray[Any], name: str = "lengths") -> np.ndarray:
    """Return ``lengths`` as a 1-D int64 array, or raise a `ValueError` naming what is wrong."""
    arr = np.asarray(lengths)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be a 1-D sequence of integers, got shape {arr.shape}.")
    if arr.size == 0:
        raise ValueError(f"{name} is empty; it needs at least one sequence length.")
    if not np.issubdtype(arr.dtype, np.integer):
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype}.")
    arr = arr.astype(np.int64)
    if (arr < 0).any():
        i = int(np.flatnonzero(arr < 0)[0])
        raise ValueError(f"{name} must be >= 0, but {name}[{i}] is {int(arr[i])}.")
    return arr


def _check_int(value: Any, name: str, low: int, high: int | None = None) -> int:
    """Return ``value`` as an int in ``[low, high)`` (or ``[low, inf)``), else raise."""
    try:
        v = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}.") from None
    if v < low or (high is not None and v >= high):
        valid = f"[{low}, {high})" if high is not None else f">= {low}"
        raise ValueError(f"{name} must be {valid}, got {v}.")
    return v


class BucketBatchSampler(Sampler[list[int]]):
    """Batch sampler that groups sequences of similar length, shuffled per epoch, DDP-aware.

    Args:
        lengths: length of every sequence in the dataset (``lengths[i]`` for index ``i``); >= 0.
        batch_size: size of a *global* batch (summed over all replicas); >= ``num_replicas``.
        shuffle: shuffle per epoch. ``False`` gives a fixed order for evaluation: indices in
            order, or with ``bucketing`` sorted by length globally (stable), batches in order.
        bucketing: sort within chunks of ``batch_size * chunk`` random items before batching, so a
            batch holds similar lengths. Without it, batches are cut straight from the permutation.
        chunk: how many batches one sorting chunk spans (>= 1). Larger chunks pad less and are
            less random; ``chunk`` large enough to cover the dataset sorts it globally.
        seed: base seed (>= 0); epoch ``e`` uses ``np.random.default_rng([seed, e])``.
        drop_last: drop the final short global batch (the one batch with fewer than
            ``batch_size`` items, if the dataset size is not a multiple of it).
        num_replicas: number of DDP processes sharing each global batch (>= 1).
        rank: this process's rank, in ``[0, num_replicas)``.

    Every rank computes the same global batches and yields ``batch[rank::num_replicas]`` of each,
    so the ranks' parts of a batch differ in size by at most one item and together form the
    global batch. A global batch with fewer than ``num_replicas`` items (only the final short one
    can be) is dropped on every rank, so all ranks yield the same number of batches and no rank
    waits on a collective forever. With ``num_replicas == 1`` and ``drop_last=False`` every index
    appears exactly once per epoch.

    Call `set_epoch` before each epoch (as with ``DistributedSampler``); `iter_from` resumes an
    epoch mid-way.
    """

    def __init__(
        self,
        lengths: Sequence[int] | npt.NDArray[Any],
        batch_size: int,
        *,
        shuffle: bool = True,
        bucketing: bool = True,
        chunk: int = 50,
        seed: int = 0,
        drop_last: bool = False,
        num_replicas: int = 1,
        rank: int = 0,
    ) -> None:
        super().__init__()
        self._lengths = _check_lengths(lengths)
        self._lengths.flags.writeable = False
        self.num_replicas = _check_int(num_replicas, "num_replicas", 1)
        self.batch_size = _check_int(batch_size, "batch_size", 1)
        if self.batch_size < self.num_replicas:
            raise ValueError(
                f"batch_size (the global batch) must be >= num_replicas={self.num_replicas} so "
                f"every rank gets at least one item, got {self.batch_size}."
            )
        self.chunk = _check_int(chunk, "chunk", 1)
        self.rank = _check_int(rank, "rank", 0, self.num_replicas)
        self.seed = _check_int(seed, "seed", 0)
        self.shuffle = bool(shuffle)
        self.bucketing = bool(bucketing)
        self.drop_last = bool(drop_last)
        self._epoch = 0

    @property
    def lengths(self) -> np.ndarray:
        """The sequence lengths (read-only int64 array)."""
        return self._lengths

    @property
    def epoch(self) -> int:
        """The epoch whose batches `__iter__` yields."""
        return self._epoch

    def set_epoch(self, epoch: int) -> None:
        """Select the epoch (>= 0) whose ordering the next iteration yields."""
        self._epoch = _check_int(epoch, "epoch", 0)

    def __len__(self) -> int:
        """Number of batches this rank yields in one epoch (the same on every rank)."""
        n = len(self._lengths)
        full, rest = divmod(n, self.batch_size)
        keep_rest = rest > 0 and not self.drop_last and rest >= self.num_replicas
        return full + int(keep_rest)

    def global_batches(self) -> list[list[int]]:
        """The current epoch's global batches (before splitting over ranks, after dropping)."""
        n = len(self._lengths)
        bs = self.batch_size
        rng = np.random.default_rng([self.seed, self._epoch])
        order = rng.permutation(n) if self.shuffle else np.arange(n)
        if self.bucketing:
            span = n if not self.shuffle else bs * self.chunk
            parts = []
            for start in range(0, n, span):
                piece = order[start : start + span]
                parts.append(piece[np.argsort(self._lengths[piece], kind="stable")])
            order = np.concatenate(parts)
        # ``span`` is a multiple of ``bs`` (or covers everything), so only the last batch is short.
        batches = [order[i : i + bs].tolist() for i in range(0, n, bs)]
        if (
            batches[-1]
            and len(batches[-1]) < bs
            and (self.drop_last or len(batches[-1]) < self.num_replicas)
        ):
            batches.pop()
        if self.shuffle and self.bucketing:
            batches = [batches[i] for i in rng.permutation(len(batches))]
        return batches

    def iter_from(self, start: int) -> Iterator[list[int]]:
        """Yield this rank's part of the epoch's batches from batch index ``start`` on.

        ``start`` is in ``[0, len(self)]``; ``list(iter_from(k)) == list(iter(self))[k:]``, so a
        run interrupted after ``k`` steps of an epoch resumes exactly where it stopped.
        """
        start = _check_int(start, "start", 0, len(self) + 1)
        batches = self.global_batches()
        r, world = self.rank, self.num_replicas
        return (batch[r::world] for batch in batches[start:])

    def __iter__(self) -> Iterator[list[int]]:
        """Yield this rank's part of every batch of the current epoch."""
        return self.iter_from(0)


def padding_fraction(
    lengths: Sequence[int] | npt.NDArray[Any], batches: Iterable[Sequence[int]]
) -> float:
    """Fraction of cells that are padding when each batch is padded to its longest sequence.

    ``lengths[i]`` is the length of sequence ``i``; ``batches`` are lists of indices (what
    `BucketBatchSampler` yields). Returns 0.0 when there are no cells at all.
    """
    lens = _check_lengths(lengths)
    cells = 0
    used = 0
    for batch in batches:
        b = lens[np.asarray(batch, dtype=np.int64)]
        if b.size:
            cells += int(b.max()) * b.size
            used += int(b.sum())
    return 0.0 if cells == 0 else (cells - used) / cells


def _check_batch(batch: Sequence[tuple[Any, Any]]) -> tuple[list[np.ndarray], Tensor]:
    """Split ``batch`` into arrays and an int64 label tensor; reject empty batches / sequences."""
    if len(batch) == 0:
        raise ValueError("batch is empty; collate needs at least one (sequence, label) pair.")
    seqs: list[np.ndarray] = []
    labels: list[int] = []
    for i, item in enumerate(batch):
        seq, label = item
        arr = np.asarray(seq)
        if arr.ndim == 0 or arr.shape[0] == 0:
            raise ValueError(
                f"sequence {i} in the batch is empty; every sequence needs at least one token."
            )
        try:
            labels.append(operator.index(label))
        except TypeError:
            raise TypeError(
                f"label {i} in the batch must be an integer, got {type(label).__name__}."
            ) from None
        seqs.append(arr)
    return seqs, torch.tensor(labels, dtype=torch.int64)


def collate_tokens(
    batch: Sequence[tuple[Sequence[int] | npt.NDArray[Any], int]],
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad token sequences 'post' with 0 to the batch's longest one.

    Returns ``(tokens, lengths, labels)``: int64 tensors of shapes ``(B, T)``, ``(B,)``, ``(B,)``
    where ``T = max(lengths)``. Every sequence must be 1-D, non-empty and hold integers.
    """
    seqs, labels = _check_batch(batch)
    for i, arr in enumerate(seqs):
        if arr.ndim != 1:
            raise ValueError(f"sequence {i} in the batch must be 1-D, got shape {arr.shape}.")
        if not np.issubdtype(arr.dtype, np.integer):
            raise ValueError(f"sequence {i} in the batch must hold integers, got {arr.dtype}.")
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    tokens = np.zeros((len(seqs), int(lengths.max())), dtype=np.int64)
    for i, arr in enumerate(seqs):
        tokens[i, : len(arr)] = arr
    return torch.from_numpy(tokens), torch.from_numpy(lengths), labels


def collate_floats(
    batch: Sequence[tuple[npt.NDArray[Any], int]],
) -> tuple[Tensor, Tensor, Tensor]:
    """Pad real-valued sequences (arrays of shape ``(T_i, F)``) 'post' with 0.

    Returns ``(x, lengths, labels)``: ``x`` float32 ``(B, T, F)`` with ``T = max(lengths)``,
    ``lengths`` and ``labels`` int64 ``(B,)``. All sequences must share ``F`` and be non-empty.
    """
    seqs, labels = _check_batch(batch)
    features = None
    for i, arr in enumerate(seqs):
        if arr.ndim != 2:
            raise ValueError(
                f"sequence {i} in the batch must be 2-D (time, features), got shape {arr.shape}."
            )
        if features is None:
            features = arr.shape[1]
        elif arr.shape[1] != features:
            raise ValueError(
                f"sequence {i} in the batch has {arr.shape[1]} features, but sequence 0 has "
                f"{features}; all sequences in a batch need the same feature size."
            )
    assert features is not None
    lengths = np.array([len(s) for s in seqs], dtype=np.int64)
    x = np.zeros((len(seqs), int(lengths.max()), features), dtype=np.float32)
    for i, arr in enumerate(seqs):
        x[i, : len(arr)] = arr
    return torch.from_numpy(x), torch.from_numpy(lengths), labels


class SequenceDataset(Dataset[tuple[np.ndarray, int]]):
    """Sequences with integer labels: ``ds[i]`` is ``(array, int)``.

    ``x`` is any indexable collection of sequences (lists, arrays, the object arrays the
    Keras-style loaders return); ``y`` holds one integer label per sequence. Token sequences
    (``real_valued=False``) come out as 1-D int64 arrays, real-valued ones (``real_valued=True``,
    e.g. MNIST rows or ``(N, T, F)`` arrays) as ``(T, F)`` float32 arrays; items are converted on
    access, not copied up front.
    """

    def __init__(
        self,
        x: Sequence[Sequence[int] | npt.NDArray[Any]] | npt.NDArray[Any],
        y: Sequence[int] | npt.NDArray[Any],
        *,
        real_valued: bool = False,
    ) -> None:
        self.real_valued = real_valued
        if len(x) != len(y):
            raise ValueError(
                f"x and y must have the same length, got len(x)={len(x)} and len(y)={len(y)}."
            )
        labels = np.asarray(y)
        if labels.ndim != 1:
            raise ValueError(f"y must be 1-D (one label per sequence), got shape {labels.shape}.")
        if labels.size and not np.issubdtype(labels.dtype, np.integer):
            raise ValueError(f"y must hold integer labels, got dtype {labels.dtype}.")
        self._x = x
        self._y = labels.astype(np.int64)
        self._lengths = np.fromiter((len(s) for s in x), dtype=np.int64, count=len(x))
        self._lengths.flags.writeable = False

    @property
    def lengths(self) -> np.ndarray:
        """Length of every sequence (read-only int64 array), e.g. for `BucketBatchSampler`."""
        return self._lengths

    def __len__(self) -> int:
        """Number of sequences."""
        return len(self._lengths)

    def __getitem__(self, index: int) -> tuple[np.ndarray, int]:
        """Return sequence ``index`` (1-D int64, or (T, F) float32 when real-valued) and its
        label as an int."""
        if self.real_valued:
            arr = np.asarray(self._x[index], dtype=np.float32)
            if arr.ndim != 2:
                raise ValueError(
                    f"real-valued sequence {index} must be 2-D (steps, features), got shape {arr.shape}."
                )
            return arr, int(self._y[index])
        seq = np.asarray(self._x[index], dtype=np.int64)
        if seq.ndim != 1:
            raise ValueError(f"sequence {index} must be 1-D, got shape {seq.shape}.")
        return seq, int(self._y[index])
