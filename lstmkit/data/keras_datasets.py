"""Keras-compatible loaders for the IMDB, Reuters and MNIST datasets, plus `pad_sequences`.

The loaders read the Keras ``.npz`` layout (found through `lstmkit.data.resolve`) and return what
``keras.datasets.<name>.load_data`` returns for the same file and arguments: the same shuffle
(``np.random.RandomState(seed)``), the same ``start_char`` / ``index_from`` / ``oov_char`` /
``skip_top`` / ``num_words`` / ``maxlen`` rules, the same train/test split. They do it with
vectorised NumPy on one flat array instead of Python loops over every token, so Keras is not
needed at run time. Two deliberate differences, both only in corner cases:

- ``x`` is always a 1-D object array of lists. Keras builds it with ``np.array(lists,
  dtype=object)``, which turns into a 2-D array when every kept sequence has the same length.
- Errors Keras leaves to Python (``max()`` of nothing, a ``test_split`` outside ``[0, 1]``) are
  raised here as a `ValueError` that names the argument.

`pad_sequences` is a port of ``keras.utils.pad_sequences`` (Keras 3, Apache-2.0) with the same
defaults, results and errors.
"""

from __future__ import annotations

import io
import itertools
import json
import pickle
import zipfile
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import IO, Any, Literal

import numpy as np
import numpy.typing as npt

from lstmkit.data.resolve import resolve
from lstmkit.errors import ConfigError, DataError

__all__ = [
    "decode",
    "get_word_index",
    "load_imdb",
    "load_mnist",
    "load_reuters",
    "pad_sequences",
]

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]

# --- reading the .npz files without arbitrary unpickling --------------------------------------
#
# IMDB and Reuters store ragged sequences as ``dtype=object`` arrays, which ``.npy`` can only hold
# as a pickle stream, so ``np.load(allow_pickle=False)`` refuses them. Instead of
# ``np.load(allow_pickle=True)`` (which would run any code a tampered file carries), object members
# are unpickled with a restricted unpickler that can only rebuild NumPy arrays; the lists and ints
# inside are plain pickle opcodes that need no globals. Numeric members are read with pickling off.

_ARRAY_GLOBALS = frozenset(
    {
        ("numpy", "ndarray"),
        ("numpy", "dtype"),
        ("numpy.core.multiarray", "_reconstruct"),  # files written by numpy < 2
        ("numpy._core.multiarray", "_reconstruct"),  # files written by numpy >= 2
    }
)


class _ArrayUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) in _ARRAY_GLOBALS:
            return super().find_class(module, name)
        raise pickle.UnpicklingError(
            f"Refusing to unpickle {module}.{name} from a dataset file; only NumPy arrays are "
            "allowed, so the file is corrupted or was tampered with."
        )


def _read_npy(fp: IO[bytes], where: str) -> np.ndarray:
    version = np.lib.format.read_magic(fp)
    if version == (1, 0):
        _, _, dtype = np.lib.format.read_array_header_1_0(fp)
    elif version == (2, 0):
        _, _, dtype = np.lib.format.read_array_header_2_0(fp)
    else:
        raise DataError(f"{where} is a .npy version {version}; expected version 1.0 or 2.0.")
    if not dtype.hasobject:
        fp.seek(0)
        return np.lib.format.read_array(fp, allow_pickle=False)
    array = _ArrayUnpickler(fp).load()
    if not isinstance(array, np.ndarray):
        raise DataError(f"{where} holds a {type(array).__name__}, expected a NumPy array.")
    return array


def _load_npz(path: Path) -> dict[str, np.ndarray]:
    """Read every ``.npy`` member of the archive at `path` (see the note above)."""
    arrays: dict[str, np.ndarray] = {}
    with zipfile.ZipFile(path) as archive:
        for member in archive.namelist():
            if member.endswith(".npy"):
                fp = io.BytesIO(archive.read(member))  # read_array needs a seekable stream
                arrays[member.removesuffix(".npy")] = _read_npy(fp, f"{path}:{member}")
    return arrays


def _members(path: Path, arrays: Mapping[str, np.ndarray], *keys: str) -> list[np.ndarray]:
    missing = [k for k in keys if k not in arrays]
    if missing:
        raise DataError(
            f"{path} lacks the array(s) {', '.join(missing)}; a Keras-layout file has "
            f"{', '.join(keys)}."
        )
    return [arrays[k] for k in keys]


# --- ragged sequences as (flat, lengths) ----------------------------------------------------


def _flatten(seqs: Iterable[Sequence[int]], count: int) -> tuple[np.ndarray, np.ndarray]:
    """Lists of ints -> (all tokens in one int64 array, length of each list)."""
    seqs = list(seqs)
    lengths = np.fromiter(map(len, seqs), dtype=np.int64, count=count)
    flat = np.fromiter(
        itertools.chain.from_iterable(seqs), dtype=np.int64, count=int(lengths.sum())
    )
    return flat, lengths


def _unflatten(flat: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(flat, lengths) -> 1-D object array of lists of Python ints."""
    tokens = flat.tolist()
    ends = np.cumsum(lengths).tolist()
    out = np.empty(len(ends), dtype=object)
    start = 0
    for i, end in enumerate(ends):
        out[i] = tokens[start:end]
        start = end
    return out


def _mark_start(
    flat: np.ndarray, lengths: np.ndarray, start_char: int | None, index_from: int
) -> tuple[np.ndarray, np.ndarray]:
    """Shift word ranks by `index_from` and put `start_char` (if any) before each sequence."""
    flat = flat + index_from
    if start_char is None:
        return flat, lengths
    starts = np.cumsum(lengths) - lengths
    return np.insert(flat, starts, start_char), lengths + 1


def _drop_long(
    flat: np.ndarray, lengths: np.ndarray, labels: np.ndarray, maxlen: int | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Keep sequences strictly shorter than `maxlen` (Keras' ``remove_long_seq``)."""
    if not maxlen:  # Keras tests truthiness: maxlen=0 means "no limit" too.
        return flat, lengths, labels
    keep = lengths < maxlen
    return flat[np.repeat(keep, lengths)], lengths[keep], labels[keep]


def _limit_vocab(
    flat: np.ndarray,
    lengths: np.ndarray,
    *,
    num_words: int | None,
    skip_top: int,
    oov_char: int | None,
) -> tuple[np.ndarray, np.ndarray]:
    """Replace (or drop, when `oov_char` is None) ids outside ``[skip_top, num_words)``."""
    if not num_words:
        if not flat.size:
            raise DataError(
                "No token is left to size the vocabulary from (every sequence was filtered "
                "out); pass num_words, or a larger maxlen."
            )
        # As in Keras: the largest id itself falls outside [skip_top, num_words) and becomes OOV.
        num_words = int(flat.max())
    valid = (flat >= skip_top) & (flat < num_words)
    if oov_char is not None:
        return np.where(valid, flat, oov_char), lengths
    owner = np.repeat(np.arange(len(lengths)), lengths)
    return flat[valid], np.bincount(owner[valid], minlength=len(lengths)).astype(np.int64)


def _shuffle(
    x: np.ndarray, y: np.ndarray, rng: np.random.RandomState
) -> tuple[np.ndarray, np.ndarray]:
    indices = np.arange(len(x))
    rng.shuffle(indices)
    return x[indices], y[indices]


# --- public loaders ---------------------------------------------------------------------------


def load_imdb(
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> Split:
    """Load IMDB sentiment reviews as ``(x_train, y_train), (x_test, y_test)``, like Keras.

    Same arguments and results as ``keras.datasets.imdb.load_data`` on the same ``imdb.npz``
    (found with ``resolve("imdb.npz")``). Word ids are frequency ranks shifted by `index_from`;
    0 is padding, `start_char` opens each review, `oov_char` replaces ids outside
    ``[skip_top, num_words)`` (or they are dropped when `oov_char` is None).

    Args:
        num_words: keep ids below this; None keeps all but the single largest id (as Keras does).
        skip_top: ids below this become `oov_char`.
        maxlen: drop reviews whose length (with `start_char`) is ``>= maxlen``; None keeps all.
        seed: seed of the ``RandomState`` that shuffles train, then test.
        start_char: id put at the start of each review, or None for none.
        oov_char: id for out-of-range words, or None to drop them.
        index_from: offset added to every word rank.

    Returns:
        ``x_*``: 1-D object arrays of lists of ints; ``y_*``: int64 arrays of 0/1 labels.
    """
    path = resolve("imdb.npz")
    xa, ya, xb, yb = _members(path, _load_npz(path), "x_train", "y_train", "x_test", "y_test")
    rng = np.random.RandomState(seed)
    parts = []
    for x, y in (_shuffle(xa, ya, rng), _shuffle(xb, yb, rng)):
        flat, lengths = _mark_start(*_flatten(x, len(x)), start_char, index_from)
        parts.append(_drop_long(flat, lengths, y, maxlen))
    (flat_a, len_a, y_a), (flat_b, len_b, y_b) = parts
    if maxlen and (not len(len_a) or not len(len_b)):
        raise DataError(
            f"After filtering for sequences shorter than maxlen={maxlen}, no sequence was kept. "
            "Increase maxlen."
        )
    flat, lengths = _limit_vocab(
        np.concatenate([flat_a, flat_b]),
        np.concatenate([len_a, len_b]),
        num_words=num_words,
        skip_top=skip_top,
        oov_char=oov_char,
    )
    xs = _unflatten(flat, lengths)
    n = len(len_a)
    return (xs[:n], y_a), (xs[n:], y_b)


def load_reuters(
    num_words: int | None = None,
    skip_top: int = 0,
    maxlen: int | None = None,
    test_split: float = 0.2,
    seed: int = 113,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> Split:
    """Load Reuters newswires as ``(x_train, y_train), (x_test, y_test)``, like Keras.

    Same arguments and results as ``keras.datasets.reuters.load_data`` on the same
    ``reuters.npz``: one shuffle of all newswires with ``RandomState(seed)``, the id rules of
    `load_imdb`, then the first ``int(n * (1 - test_split))`` are the training set. Label ``i``
    is topic ``i``; the rebuilt offline mirror numbers topics alphabetically and lists their
    names in ``reuters_topics.json`` (Keras' own file uses Keras' order).

    Args:
        num_words: keep ids below this; None keeps all but the single largest id (as Keras does).
        skip_top: ids below this become `oov_char`.
        maxlen: drop newswires whose length (with `start_char`) is ``>= maxlen``.
        test_split: fraction of newswires for the test set, in ``[0, 1]``.
        seed: seed of the shuffle.
        start_char: id put at the start of each newswire, or None for none.
        oov_char: id for out-of-range words, or None to drop them.
        index_from: offset added to every word rank.

    Returns:
        ``x_*``: 1-D object arrays of lists of ints; ``y_*``: int64 arrays of topic ids.
    """
    if not 0.0 <= test_split <= 1.0:
        raise ConfigError(f"test_split must be between 0 and 1, got {test_split}.")
    path = resolve("reuters.npz")
    x, y = _members(path, _load_npz(path), "x", "y")
    x, y = _shuffle(x, y, np.random.RandomState(seed))
    flat, lengths = _mark_start(*_flatten(x, len(x)), start_char, index_from)
    flat, lengths, y = _drop_long(flat, lengths, y, maxlen)
    flat, lengths = _limit_vocab(
        flat, lengths, num_words=num_words, skip_top=skip_top, oov_char=oov_char
    )
    xs = _unflatten(flat, lengths)
    n = int(len(xs) * (1 - test_split))
    return (xs[:n], y[:n]), (xs[n:], y[n:])


def load_mnist() -> Split:
    """Load MNIST as ``(x_train, y_train), (x_test, y_test)``, like ``keras.datasets.mnist``.

    Returns:
        ``x_*``: uint8 arrays of shape ``(N, 28, 28)`` (60000 train, 10000 test), pixels 0..255;
        ``y_*``: uint8 digit labels of shape ``(N,)``.
    """
    path = resolve("mnist.npz")
    with np.load(path, allow_pickle=False) as f:
        x_train, y_train, x_test, y_test = _members(
            path, f, "x_train", "y_train", "x_test", "y_test"
        )
    return (x_train, y_train), (x_test, y_test)


def get_word_index(dataset: Literal["imdb", "reuters"] = "imdb") -> dict[str, int]:
    """Return the ``word -> rank`` mapping of `dataset` (rank 1 is the most frequent word).

    In the loaded sequences, a word's id is ``rank + index_from``.
    """
    if dataset not in ("imdb", "reuters"):
        raise ConfigError(f"dataset must be 'imdb' or 'reuters', got {dataset!r}.")
    with resolve(f"{dataset}_word_index.json").open(encoding="utf-8") as f:
        index: dict[str, int] = json.load(f)
    return index


def decode(seq: Iterable[int], word_index: Mapping[str, int], index_from: int = 3) -> str:
    """Turn a sequence of ids back into space-separated words; ids with no word become ``?``.

    `word_index` is the ``word -> rank`` mapping of `get_word_index`; the id of a word is
    ``rank + index_from``, so padding, start and OOV ids (below `index_from`) decode to ``?``.
    The inverse mapping is rebuilt on each call (about 10 ms for IMDB's 88k words); in a loop
    over many sequences, invert `word_index` once yourself.
    """
    words = {rank + index_from: word for word, rank in word_index.items()}
    return " ".join(words.get(int(i), "?") for i in seq)


def pad_sequences(
    sequences: Sequence[Any],
    maxlen: int | None = None,
    dtype: npt.DTypeLike = "int32",
    padding: str = "pre",
    truncating: str = "pre",
    value: float | str = 0.0,
) -> np.ndarray:
    """Pad (and truncate) sequences into one array of shape ``(len(sequences), maxlen, ...)``.

    Same semantics, defaults and errors as ``keras.utils.pad_sequences`` (Keras 3): `maxlen`
    defaults to the longest sequence; shorter sequences are filled with `value` before
    (``padding="pre"``) or after (``"post"``) their items; longer ones lose items at the start
    (``truncating="pre"``) or the end (``"post"``). Items may themselves be arrays: their shape
    is taken from the first non-empty sequence and must be the same in all. Pass
    ``dtype=object`` to pad with a string `value`.

    Returns:
        A NumPy array of `dtype`.
    """
    if not hasattr(sequences, "__len__"):
        raise ValueError("`sequences` must be iterable.")
    num_samples = len(sequences)

    lengths = []
    sample_shape: tuple[int, ...] = ()
    found_first = False
    # The item shape comes from the first non-empty sequence; the loop below checks the others.
    for x in sequences:
        try:
            lengths.append(len(x))
            if not found_first and len(x):
                sample_shape = np.asarray(x).shape[1:]
                found_first = True
        except TypeError as e:
            raise ValueError(
                f"`sequences` must be a list of iterables. Found non-iterable: {x}"
            ) from e

    if maxlen is None:
        maxlen = int(np.max(lengths))

    is_dtype_str = np.issubdtype(dtype, np.str_) or np.issubdtype(dtype, np.bytes_)
    if isinstance(value, str) and dtype is not object and not is_dtype_str:
        raise ValueError(
            f"`dtype` {dtype} is not compatible with `value`'s type: {type(value)}\n"
            "You should set `dtype=object` for variable length strings."
        )

    out = np.full((num_samples, maxlen) + sample_shape, value, dtype=dtype)
    for idx, s in enumerate(sequences):
        if not len(s):
            continue
        if truncating == "pre":
            trunc = s[-maxlen:]  # note: maxlen=0 keeps everything here, as in Keras
        elif truncating == "post":
            trunc = s[:maxlen]
        else:
            raise ValueError(f'Truncating type "{truncating}" not understood')

        trunc = np.asarray(trunc, dtype=dtype)
        if trunc.shape[1:] != sample_shape:
            raise ValueError(
                f"Shape of sample {trunc.shape[1:]} of sequence at position {idx} is different "
                f"from expected shape {sample_shape}"
            )

        if padding == "post":
            out[idx, : len(trunc)] = trunc
        elif padding == "pre":
            out[idx, -len(trunc) :] = trunc
        else:
            raise ValueError(f'Padding type "{padding}" not understood')
    return out
