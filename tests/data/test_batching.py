"""BucketBatchSampler, padding_fraction, the collate functions and SequenceDataset."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from torch.utils.data import DataLoader

from lstmkit.data import (
    BucketBatchSampler,
    SequenceDataset,
    collate_floats,
    collate_tokens,
    padding_fraction,
)


def imdb_like_lengths(n: int = 25_000, seed: int = 1) -> np.ndarray:
    """Lognormal lengths shaped like IMDB's train split: mean ~236, median ~193, max ~2400.

    The real split has mean 238.6, median 178, max 2494 and std(log length) 0.64 (the sigma here).
    """
    sigma = 0.64
    rng = np.random.default_rng(seed)
    lengths = rng.lognormal(np.log(238.0) - sigma**2 / 2, sigma, n)
    return np.maximum(1, np.round(lengths)).astype(np.int64)


def flat(batches: list[list[int]]) -> list[int]:
    return [i for b in batches for i in b]


# --- the permutation invariant -------------------------------------------------------------------


@pytest.mark.parametrize("bucketing", [True, False])
@pytest.mark.parametrize("shuffle", [True, False])
def test_every_index_once_per_epoch(bucketing: bool, shuffle: bool) -> None:
    lengths = np.random.default_rng(0).integers(1, 100, size=1003)
    sampler = BucketBatchSampler(lengths, 32, bucketing=bucketing, shuffle=shuffle, chunk=4)
    for epoch in range(3):
        sampler.set_epoch(epoch)
        batches = list(sampler)
        assert len(batches) == len(sampler) == 32  # 31 full batches + one of 11
        assert sorted(flat(batches)) == list(range(1003))
        assert sorted(len(b) for b in batches) == [11] + [32] * 31
        assert all(isinstance(i, int) for i in flat(batches))


def test_drop_last_drops_the_short_batch() -> None:
    lengths = np.arange(1, 1004)
    sampler = BucketBatchSampler(lengths, 32, drop_last=True, chunk=4)
    batches = list(sampler)
    assert len(batches) == len(sampler) == 31
    assert all(len(b) == 32 for b in batches)
    assert len(set(flat(batches))) == 31 * 32
    # An exact multiple has no short batch to drop.
    assert len(BucketBatchSampler(np.ones(64, dtype=int), 32, drop_last=True)) == 2


def test_shuffle_false_is_fixed_order() -> None:
    lengths = [5, 3, 9, 3, 1, 7, 3]
    plain = BucketBatchSampler(lengths, 3, shuffle=False, bucketing=False)
    assert list(plain) == [[0, 1, 2], [3, 4, 5], [6]]
    bucketed = BucketBatchSampler(lengths, 3, shuffle=False)
    # Sorted by length globally, ties by index: 4(1), 1(3), 3(3), 6(3), 0(5), 5(7), 2(9).
    assert list(bucketed) == [[4, 1, 3], [6, 0, 5], [2]]
    bucketed.set_epoch(5)
    assert list(bucketed) == [[4, 1, 3], [6, 0, 5], [2]]


def test_chunks_are_sorted_and_batches_are_similar_in_length() -> None:
    lengths = np.random.default_rng(3).integers(1, 1000, size=640)
    sampler = BucketBatchSampler(lengths, 16, chunk=40)  # one chunk spans all 640 items
    batches = list(sampler)
    # With a single chunk the batches partition the globally sorted order: no overlap in range.
    spans = sorted((int(lengths[b].min()), int(lengths[b].max())) for b in batches)
    assert all(hi <= nxt_lo for (_, hi), (nxt_lo, _) in zip(spans, spans[1:], strict=False))
    # But the batch order is shuffled.
    maxes = [int(lengths[b].max()) for b in batches]
    assert maxes != sorted(maxes)


# --- determinism ---------------------------------------------------------------------------------


def test_same_seed_and_epoch_same_batches() -> None:
    lengths = imdb_like_lengths(2000)
    a = BucketBatchSampler(lengths, 32, seed=7)
    b = BucketBatchSampler(lengths, 32, seed=7)
    a.set_epoch(3)
    b.set_epoch(3)
    first = list(a)
    assert first == list(b)
    assert sorted(flat(first)) == list(range(2000)) and first != sorted(first)
    second = list(a)  # iterating again gives the same epoch: the sampler keeps no RNG state
    assert second == first
    # Unaffected by the global RNGs: the same batches after reseeding them, and after drawing.
    np.random.seed(123)
    torch.manual_seed(123)
    assert list(a) == first
    np.random.random(10)
    torch.rand(10)
    assert list(b) == first


def test_different_epoch_or_seed_changes_order() -> None:
    lengths = imdb_like_lengths(2000)
    sampler = BucketBatchSampler(lengths, 32, seed=7)
    epoch0 = list(sampler)
    sampler.set_epoch(1)
    epoch1 = list(sampler)
    assert epoch0 != epoch1
    assert sorted(flat(epoch0)) == sorted(flat(epoch1)) == list(range(2000))
    assert list(BucketBatchSampler(lengths, 32, seed=8)) != epoch0
    for bucketing in (True, False):
        s = BucketBatchSampler(lengths, 32, bucketing=bucketing)
        first = list(s)
        s.set_epoch(1)
        assert list(s) != first


# --- padding -------------------------------------------------------------------------------------


def test_bucketing_cuts_padding_on_imdb_like_lengths() -> None:
    lengths = imdb_like_lengths()
    assert 225 < lengths.mean() < 250 and 170 < np.median(lengths) < 200 and lengths.max() > 2000

    def frac(**kw: Any) -> float:
        return padding_fraction(lengths, list(BucketBatchSampler(lengths, 32, **kw)))

    random_batches = frac(bucketing=False)
    bucketed = frac()  # chunk=50
    big_chunks = frac(chunk=100)
    sorted_globally = frac(shuffle=False)
    # Measured: 0.694 / 0.094 / 0.053 / 0.006 (the real IMDB train split: 0.697 / 0.067 / 0.038).
    assert random_batches > 0.6
    assert bucketed < 0.12
    assert bucketed < random_batches / 5
    assert big_chunks < 0.07
    assert sorted_globally < 0.01


def test_padding_fraction_values() -> None:
    lengths = [1, 2, 3, 4]
    assert padding_fraction(lengths, [[0, 1, 2, 3]]) == pytest.approx(6 / 16)
    assert padding_fraction(lengths, [[0, 1], [2, 3]]) == pytest.approx(2 / 12)
    assert padding_fraction(lengths, [[0], [1], [2], [3]]) == 0.0
    assert padding_fraction(lengths, []) == 0.0
    assert padding_fraction([0, 0], [[0, 1]]) == 0.0


# --- resume --------------------------------------------------------------------------------------


@pytest.mark.parametrize("num_replicas,rank", [(1, 0), (3, 2)])
def test_iter_from_resumes_exactly(num_replicas: int, rank: int) -> None:
    lengths = imdb_like_lengths(1000)
    sampler = BucketBatchSampler(lengths, 30, num_replicas=num_replicas, rank=rank, seed=4)
    sampler.set_epoch(2)
    full = list(sampler)
    for k in (0, 1, 7, len(full) - 1, len(full)):
        assert list(sampler.iter_from(k)) == full[k:]
    with pytest.raises(ValueError, match=r"start must be \[0, 35\)"):
        sampler.iter_from(35)
    with pytest.raises(ValueError, match="start"):
        sampler.iter_from(-1)


# --- distributed ---------------------------------------------------------------------------------


def reassemble(parts: list[list[int]]) -> list[int]:
    """Inverse of ``[batch[r::R] for r in range(R)]``."""
    world = len(parts)
    out: list[int] = [0] * sum(len(p) for p in parts)
    for r, p in enumerate(parts):
        out[r::world] = p
    return out


@pytest.mark.parametrize("bucketing", [True, False])
def test_ranks_split_the_global_batches(bucketing: bool) -> None:
    lengths = imdb_like_lengths(1001)
    single = BucketBatchSampler(lengths, 32, bucketing=bucketing, seed=5)
    ranks = [
        BucketBatchSampler(lengths, 32, bucketing=bucketing, seed=5, num_replicas=2, rank=r)
        for r in range(2)
    ]
    for s in (single, *ranks):
        s.set_epoch(1)
    global_batches = list(single)
    per_rank = [list(s) for s in ranks]
    assert len(per_rank[0]) == len(per_rank[1]) == len(ranks[0]) == len(global_batches) == 32
    for step, (p0, p1) in enumerate(zip(*per_rank, strict=True)):
        assert abs(len(p0) - len(p1)) <= 1
        assert not set(p0) & set(p1)
        assert reassemble([p0, p1]) == global_batches[step]
    assert sorted(flat(per_rank[0]) + flat(per_rank[1])) == list(range(1001))


def test_global_batch_smaller_than_world_is_dropped_on_every_rank() -> None:
    # 4 * 32 + 2: the final global batch has 2 items, fewer than the 4 replicas.
    lengths = np.arange(1, 131)
    ranks = [BucketBatchSampler(lengths, 32, num_replicas=4, rank=r) for r in range(4)]
    assert [len(s) for s in ranks] == [4, 4, 4, 4]
    per_rank = [list(s) for s in ranks]
    assert all(len(p) == 4 and all(len(b) == 8 for b in p) for p in per_rank)
    seen = flat([i for p in per_rank for i in p])
    assert len(seen) == len(set(seen)) == 128
    # With 3 leftover items and 3 replicas the short batch is kept: one item per rank.
    ranks3 = [BucketBatchSampler(np.arange(1, 34), 30, num_replicas=3, rank=r) for r in range(3)]
    assert [len(s) for s in ranks3] == [2, 2, 2]
    assert sorted(flat([i for s in ranks3 for i in s])) == list(range(33))


@settings(max_examples=150, deadline=None)
@given(
    lengths=st.lists(st.integers(0, 60), min_size=1, max_size=150),
    batch_size=st.integers(1, 17),
    num_replicas=st.integers(1, 4),
    chunk=st.integers(1, 5),
    shuffle=st.booleans(),
    bucketing=st.booleans(),
    drop_last=st.booleans(),
    epoch=st.integers(0, 3),
)
def test_permutation_invariant_property(
    lengths: list[int],
    batch_size: int,
    num_replicas: int,
    chunk: int,
    shuffle: bool,
    bucketing: bool,
    drop_last: bool,
    epoch: int,
) -> None:
    batch_size = max(batch_size, num_replicas)
    n = len(lengths)
    kw: dict[str, Any] = dict(
        shuffle=shuffle, bucketing=bucketing, chunk=chunk, seed=epoch, drop_last=drop_last
    )
    samplers = [
        BucketBatchSampler(lengths, batch_size, num_replicas=num_replicas, rank=r, **kw)
        for r in range(num_replicas)
    ]
    for s in samplers:
        s.set_epoch(epoch)
    per_rank = [list(s) for s in samplers]
    n_batches = len(samplers[0])
    assert all(len(p) == n_batches == len(s) for p, s in zip(per_rank, samplers, strict=True))

    rest = n % batch_size
    dropped = rest if rest and (drop_last or rest < num_replicas) else 0
    seen = [i for p in per_rank for b in p for i in b]
    assert len(seen) == len(set(seen)) == n - dropped
    assert set(seen) <= set(range(n))
    assert n_batches == -(-(n - dropped) // batch_size)
    for step in range(n_batches):
        parts = [p[step] for p in per_rank]
        assert all(len(part) >= 1 for part in parts)
        assert max(map(len, parts)) - min(map(len, parts)) <= 1
        assert sum(map(len, parts)) <= batch_size
    if num_replicas == 1 and not drop_last:
        assert sorted(seen) == list(range(n))


# --- validation ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args,kwargs,message",
    [
        (([1, 2], 0), {}, r"batch_size must be >= 1, got 0"),
        (([1, 2], 2), {"chunk": 0}, r"chunk must be >= 1, got 0"),
        (([1, 2], 2), {"num_replicas": 2, "rank": 2}, r"rank must be \[0, 2\), got 2"),
        (([1, 2], 2), {"rank": -1}, r"rank must be \[0, 1\), got -1"),
        (([1, 2], 2), {"num_replicas": 0}, r"num_replicas must be >= 1"),
        (([1, 2], 2), {"num_replicas": 3}, r"batch_size .* must be >= num_replicas=3"),
        (([1, 2], 2), {"seed": -1}, r"seed must be >= 0"),
        (([], 2), {}, r"lengths is empty"),
        (([3, -1, 2], 2), {}, r"lengths must be >= 0, but lengths\[1\] is -1"),
        (([1.5, 2.0], 2), {}, r"lengths must hold integers"),
        (([[1, 2]], 2), {}, r"lengths must be a 1-D"),
    ],
)
def test_sampler_errors(args: tuple, kwargs: dict, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        BucketBatchSampler(*args, **kwargs)


def test_set_epoch_and_type_errors() -> None:
    sampler = BucketBatchSampler([1, 2, 3], 2)
    with pytest.raises(ValueError, match="epoch must be >= 0"):
        sampler.set_epoch(-1)
    with pytest.raises(TypeError, match="batch_size must be an integer"):
        BucketBatchSampler([1, 2], 2.0)  # type: ignore[arg-type]
    sampler.set_epoch(np.int64(4))  # type: ignore[arg-type]
    assert sampler.epoch == 4


# --- collate -------------------------------------------------------------------------------------


def test_collate_tokens_pads_post_with_zero() -> None:
    batch: list[Any] = [([5, 6, 7], 1), (np.array([8], dtype=np.int32), 0), ((9, 10), np.int64(2))]
    tokens, lengths, labels = collate_tokens(batch)
    assert tokens.dtype == lengths.dtype == labels.dtype == torch.int64
    assert tokens.shape == (3, 3)
    assert tokens.tolist() == [[5, 6, 7], [8, 0, 0], [9, 10, 0]]
    assert lengths.tolist() == [3, 1, 2]
    assert labels.tolist() == [1, 0, 2]


def test_collate_tokens_errors() -> None:
    with pytest.raises(
        ValueError,
        match="sequence 3 in the batch is empty; every sequence needs at least one token",
    ):
        collate_tokens([([1], 0), ([2], 0), ([3], 0), ([], 1)])
    with pytest.raises(ValueError, match="batch is empty"):
        collate_tokens([])
    with pytest.raises(ValueError, match="sequence 1 in the batch must hold integers"):
        collate_tokens([([1], 0), (np.array([0.5]), 0)])
    with pytest.raises(ValueError, match="sequence 0 in the batch must be 1-D"):
        collate_tokens([(np.ones((2, 2), dtype=int), 0)])
    with pytest.raises(TypeError, match="label 0 in the batch must be an integer"):
        collate_tokens([([1], 0.5)])  # type: ignore[list-item]


def test_collate_floats() -> None:
    a = np.arange(6, dtype=np.float64).reshape(3, 2)
    b = np.full((1, 2), -1.0)
    x, lengths, labels = collate_floats([(a, 4), (b, 5)])
    assert x.dtype == torch.float32 and x.shape == (2, 3, 2)
    assert lengths.tolist() == [3, 1] and labels.tolist() == [4, 5]
    assert x[0].tolist() == a.tolist()
    assert x[1].tolist() == [[-1.0, -1.0], [0.0, 0.0], [0.0, 0.0]]
    with pytest.raises(ValueError, match="sequence 1 in the batch is empty"):
        collate_floats([(a, 0), (np.zeros((0, 2)), 1)])
    with pytest.raises(ValueError, match="sequence 1 in the batch has 3 features"):
        collate_floats([(a, 0), (np.zeros((2, 3)), 1)])
    with pytest.raises(ValueError, match=r"must be 2-D \(time, features\)"):
        collate_floats([(np.zeros(3), 0)])


# --- dataset -------------------------------------------------------------------------------------


def test_sequence_dataset() -> None:
    x = np.empty(3, dtype=object)
    x[:] = [[1, 2, 3], [4], [5, 6]]
    ds = SequenceDataset(x, np.array([0, 1, 0], dtype=np.uint8))
    assert len(ds) == 3
    assert ds.lengths.tolist() == [3, 1, 2] and ds.lengths.dtype == np.int64
    with pytest.raises(ValueError):
        ds.lengths[0] = 9
    seq, label = ds[1]
    assert seq.dtype == np.int64 and seq.tolist() == [4]
    assert type(label) is int and label == 1
    with pytest.raises(ValueError, match=r"len\(x\)=3 and len\(y\)=2"):
        SequenceDataset(x, [0, 1])
    with pytest.raises(ValueError, match="y must hold integer labels"):
        SequenceDataset([[1]], [0.5])  # type: ignore[list-item]


def test_dataloader_end_to_end() -> None:
    rng = np.random.default_rng(0)
    x = [rng.integers(1, 50, size=int(n)).tolist() for n in rng.integers(1, 40, size=101)]
    y = rng.integers(0, 2, size=101)
    ds = SequenceDataset(x, y)
    sampler = BucketBatchSampler(ds.lengths, 8, chunk=3, seed=2)
    loader = DataLoader(ds, batch_sampler=sampler, collate_fn=collate_tokens)
    seen = 0
    for indices, (tokens, lengths, labels) in zip(sampler, loader, strict=True):
        assert tokens.shape == (len(indices), int(ds.lengths[indices].max()))
        assert lengths.tolist() == ds.lengths[indices].tolist()
        assert labels.tolist() == y[indices].tolist()
        for row, i in zip(tokens.tolist(), indices, strict=True):
            assert row[: len(x[i])] == x[i] and not any(row[len(x[i]) :])
        seen += len(indices)
    assert seen == 101
