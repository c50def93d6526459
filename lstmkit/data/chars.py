"""Character-level language-model data: a character vocabulary and consecutive-chunk streams for
truncated backpropagation through time (TBPTT) with the hidden state carried across chunks.

The text is cut into ``streams`` equal parts laid side by side; batch ``k`` holds chunk ``k`` of
every stream, so row ``b`` of batch ``k + 1`` continues exactly where row ``b`` of batch ``k``
stopped, and a model handed the state the previous batch ended with (as
:class:`lstmkit.train.Trainer` does for a language model) sees one unbroken text per row::

    text   a b c d e f g h i j k l m n o p q r s t u v w x    (24 chars, 2 streams, bptt 3)
    row 0  a b c | d e f | g h i | j k l          inputs; targets are shifted by one
    row 1  m n o | p q r | s t u | v w x
           batch 0  batch 1 ...

In a distributed job rank ``r`` of ``W`` takes the streams ``r, r + W, ...`` (the streams must
divide evenly), so every rank continues its own rows.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from lstmkit.errors import ConfigError, DataError, InputError
from lstmkit.files import atomic_write_text


@dataclass(frozen=True)
class CharVocabulary:
    """Characters <-> ids 0..V-1 (sorted by code point, so the numbering is deterministic)."""

    chars: tuple[str, ...]

    @classmethod
    def from_text(cls, text: str) -> CharVocabulary:
        """Every distinct character of ``text``."""
        if not text:
            raise DataError("cannot build a character vocabulary from an empty text")
        return cls(tuple(sorted(set(text))))

    @property
    def size(self) -> int:
        """Number of characters V."""
        return len(self.chars)

    def encode(self, text: str) -> np.ndarray:
        """int64 ids of ``text``; an unknown character is one error naming it and its position."""
        index = {c: i for i, c in enumerate(self.chars)}
        try:
            return np.fromiter((index[c] for c in text), dtype=np.int64, count=len(text))
        except KeyError as err:
            pos = next(i for i, c in enumerate(text) if c not in index)
            known = "".join(self.chars).replace("\n", "\\n")
            raise InputError(
                f"character {err.args[0]!r} at position {pos} is not in the model's vocabulary "
                f"of {self.size} characters: {known!r}"
            ) from None

    def decode(self, ids: Any) -> str:
        """Text of a sequence of ids."""
        return "".join(self.chars[int(i)] for i in ids)

    def save(self, path: Path) -> None:
        """JSON ``{"chars": [...]}``, written atomically."""
        atomic_write_text(path, json.dumps({"chars": list(self.chars)}, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> CharVocabulary:
        """Read what :meth:`save` wrote."""
        try:
            chars = json.loads(path.read_text(encoding="utf-8"))["chars"]
        except (OSError, json.JSONDecodeError, KeyError, TypeError) as err:
            raise DataError(f"cannot read character vocabulary {path}: {err}") from None
        if not isinstance(chars, list) or not all(
            isinstance(c, str) and len(c) == 1 for c in chars
        ):
            raise DataError(f"{path}: 'chars' must be a list of single characters")
        return cls(tuple(chars))


def split_text(text: str, valid: float, test: float) -> tuple[str, str, str]:
    """Contiguous train / validation / test parts: the first ``1 - valid - test`` of the text,
    then ``valid``, then ``test`` (no shuffling: a language model's validation text must be
    text it never saw)."""
    if not (0 <= valid < 1 and 0 <= test < 1 and valid + test < 1):
        raise ConfigError(
            f"valid ({valid}) and test ({test}) fractions must be in [0, 1) and sum < 1"
        )
    n = len(text)
    a = int(round(n * (1 - valid - test)))
    b = int(round(n * (1 - test)))
    return text[:a], text[a:b], text[b:]


class StreamDataset(Dataset[tuple[np.ndarray, np.ndarray]]):
    """Consecutive chunks of ``streams`` parallel rows of ``ids`` (see the module docstring).

    ``ds[k * streams + b]`` is ``(inputs, targets)`` of chunk ``k`` of row ``b``: int64 arrays of
    length ``bptt``, targets shifted by one character.
    """

    def __init__(self, ids: np.ndarray, streams: int, bptt: int) -> None:
        if streams < 1 or bptt < 1:
            raise ConfigError(f"streams and bptt must be >= 1, got {streams} and {bptt}")
        per_row = len(ids) // streams
        if per_row < bptt + 1:
            raise DataError(
                f"{len(ids)} tokens are too few for {streams} streams of at least bptt + 1 = "
                f"{bptt + 1} tokens; use fewer streams (batch size) or a shorter bptt"
            )
        self.streams = streams
        self.bptt = bptt
        self.rows = np.ascontiguousarray(np.asarray(ids, dtype=np.int64)[: streams * per_row])
        self.rows = self.rows.reshape(streams, per_row)
        self.chunks = (per_row - 1) // bptt
        self._lengths = np.full(self.chunks * streams, bptt, dtype=np.int64)

    @property
    def lengths(self) -> np.ndarray:
        """Every item is ``bptt`` long."""
        return self._lengths

    @property
    def tokens(self) -> int:
        """Number of predicted tokens per epoch."""
        return self.chunks * self.streams * self.bptt

    def __len__(self) -> int:
        return self.chunks * self.streams

    def __getitem__(self, index: int) -> tuple[np.ndarray, np.ndarray]:
        k, b = divmod(index, self.streams)
        if not 0 <= k < self.chunks:
            raise IndexError(f"index {index} out of range for {len(self)} chunks")
        start = k * self.bptt
        row = self.rows[b]
        return row[start : start + self.bptt], row[start + 1 : start + self.bptt + 1]

    def batch_sampler(
        self, batch_size: int = 0, *, num_replicas: int = 1, rank: int = 0
    ) -> StreamBatchSampler:
        """The batches (chunk ``k`` of this rank's rows, in order). ``batch_size`` is ignored:
        the number of streams fixed at construction is the batch size."""
        if self.streams % num_replicas:
            raise ConfigError(
                f"{self.streams} streams cannot be split evenly across {num_replicas} processes"
            )
        return StreamBatchSampler(self.streams, self.chunks, num_replicas, rank)


class StreamBatchSampler:
    """Batch ``k`` = chunk ``k`` of the rows ``rank, rank + W, ...``; same order every epoch
    (the carried state needs consecutive chunks). Same interface as BucketBatchSampler."""

    def __init__(self, streams: int, chunks: int, num_replicas: int = 1, rank: int = 0) -> None:
        self.rows = list(range(rank, streams, num_replicas))
        self.streams = streams
        self.chunks = chunks

    def set_epoch(self, epoch: int) -> None:
        """Nothing changes between epochs (kept for the sampler interface)."""

    def __len__(self) -> int:
        return self.chunks

    def iter_from(self, start: int) -> Iterator[list[int]]:
        """Batches ``start, start + 1, ...`` (resuming mid-epoch)."""
        for k in range(start, self.chunks):
            yield [k * self.streams + b for b in self.rows]

    def __iter__(self) -> Iterator[list[int]]:
        return self.iter_from(0)


def collate_stream(batch: list[tuple[np.ndarray, np.ndarray]]) -> tuple[Tensor, Tensor, Tensor]:
    """``(inputs (B, T), lengths (B,), targets (B, T))``, all int64."""
    x = torch.from_numpy(np.stack([b[0] for b in batch]))
    y = torch.from_numpy(np.stack([b[1] for b in batch]))
    return x, torch.full((x.shape[0],), x.shape[1], dtype=torch.int64), y
