"""The loaders and pad_sequences give exactly what Keras 3 gives on the same files."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmkit.data.keras_datasets import (
    decode,
    get_word_index,
    load_imdb,
    load_mnist,
    load_reuters,
    pad_sequences,
)
from lstmkit.data.resolve import ENV_VAR

os.environ.setdefault("KERAS_BACKEND", "torch")
keras = pytest.importorskip("keras")
keras_imdb = pytest.importorskip("keras.src.datasets.imdb")
keras_reuters = pytest.importorskip("keras.src.datasets.reuters")
keras_mnist = pytest.importorskip("keras.src.datasets.mnist")

# The offline mirror (.ci/run points LSTMKIT_DATA at it); fall back to its place next to the repo.
MIRROR = Path(os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[3] / "shared" / "data")
FILES = (
    "imdb.npz",
    "imdb_word_index.json",
    "reuters.npz",
    "reuters_word_index.json",
    "mnist.npz",
)

Split = tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]


@pytest.fixture
def mirror(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """Point both lstmkit and Keras at the local files; never touch the network."""
    missing = [name for name in FILES if not (MIRROR / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} absent from {MIRROR}; set {ENV_VAR} to the data mirror")
    monkeypatch.setenv(ENV_VAR, str(MIRROR))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))

    def local_get_file(fname: str, *args: Any, **kwargs: Any) -> str:
        # Keras' get_file would check the canonical hash, which the rebuilt mirror doesn't have.
        return str(MIRROR / fname)

    for module in (keras_imdb, keras_reuters, keras_mnist):
        monkeypatch.setattr(module, "get_file", local_get_file)
    return MIRROR


def assert_same_split(ours: Split, theirs: Split) -> None:
    for (x, y), (kx, ky) in zip(ours, theirs, strict=True):
        assert x.dtype == kx.dtype == object
        assert x.shape == kx.shape and x.ndim == 1
        assert x.tolist() == kx.tolist()  # every sequence, every id
        assert type(x[0][0]) is type(kx[0][0]) is int
        assert y.dtype == ky.dtype
        np.testing.assert_array_equal(y, ky)


@pytest.mark.usefixtures("mirror")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"num_words": 10000},
        {"skip_top": 20, "maxlen": 200},
        {"index_from": 2, "seed": 7},
    ],
    ids=["num_words", "skip_top-maxlen", "index_from-seed"],
)
def test_imdb_matches_keras(kwargs: dict[str, Any]) -> None:
    ours = load_imdb(**kwargs)
    assert_same_split(ours, keras.datasets.imdb.load_data(**kwargs))
    (x_train, y_train), (x_test, _) = ours
    if "maxlen" in kwargs:
        assert max(map(len, x_train)) < kwargs["maxlen"]
        assert len(x_train) < 25000
    else:
        assert len(x_train) == len(x_test) == 25000
    assert set(np.unique(y_train).tolist()) == {0, 1}


@pytest.mark.usefixtures("mirror")
@pytest.mark.parametrize(
    "kwargs",
    [
        {"test_split": 0.2},
        {"test_split": 0.3, "num_words": 1000, "skip_top": 10},
        {"maxlen": 100, "start_char": None, "oov_char": None, "num_words": 500, "index_from": 0},
    ],
    ids=["split0.2", "split0.3-vocab", "no-start-no-oov"],
)
def test_reuters_matches_keras(kwargs: dict[str, Any]) -> None:
    ours = load_reuters(**kwargs)
    assert_same_split(ours, keras.datasets.reuters.load_data(**kwargs))
    (x_train, _), (x_test, _) = ours
    split = kwargs.get("test_split", 0.2)
    assert len(x_train) == int((len(x_train) + len(x_test)) * (1 - split))
    if kwargs.get("num_words"):
        assert max(max(x) for x in x_train) < kwargs["num_words"]


def test_reuters_rejects_bad_test_split() -> None:
    with pytest.raises(ValueError, match="test_split must be between 0 and 1, got 1.5"):
        load_reuters(test_split=1.5)


@pytest.mark.usefixtures("mirror")
def test_imdb_maxlen_too_small_is_a_clear_error() -> None:
    with pytest.raises(ValueError, match="maxlen=2"):
        load_imdb(maxlen=2)


@pytest.mark.usefixtures("mirror")
def test_mnist_matches_keras() -> None:
    ours = load_mnist()
    theirs = keras.datasets.mnist.load_data()
    for a, b in zip((*ours[0], *ours[1]), (*theirs[0], *theirs[1]), strict=True):
        assert a.dtype == b.dtype == np.uint8
        np.testing.assert_array_equal(a, b)
    (x_train, y_train), (x_test, y_test) = ours
    assert x_train.shape == (60000, 28, 28) and x_test.shape == (10000, 28, 28)
    assert y_train[:10].tolist() == [5, 0, 4, 1, 9, 2, 1, 3, 1, 4]
    assert y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
    assert abs(float(x_train.mean()) - 33.3184) < 1e-3


@pytest.mark.usefixtures("mirror")
@pytest.mark.parametrize("dataset", ["imdb", "reuters"])
def test_word_index_matches_keras(dataset: str) -> None:
    ours = get_word_index(dataset)  # type: ignore[arg-type]
    theirs = getattr(keras.datasets, dataset).get_word_index()
    assert ours == theirs
    assert min(ours.values()) == 1 and max(ours.values()) == len(ours)
    if dataset == "imdb":
        assert len(ours) == 88584 and ours["the"] == 1


def test_word_index_rejects_unknown_dataset() -> None:
    with pytest.raises(ValueError, match="dataset must be 'imdb' or 'reuters', got 'mnist'"):
        get_word_index("mnist")  # type: ignore[arg-type]


@pytest.mark.usefixtures("mirror")
def test_decode_round_trip() -> None:
    word_index = get_word_index("reuters")
    (x_train, _), _ = load_reuters(num_words=2000)
    seq = x_train[0]
    words = decode(seq, word_index).split(" ")
    assert len(words) == len(seq)
    assert words[0] == "?"  # start_char
    for token, word in zip(seq, words, strict=True):
        if token >= 3:  # real word ids map back to their word
            assert word_index[word] + 3 == token
        else:  # padding / start / OOV
            assert word == "?"


def test_decode_small_index() -> None:
    index = {"the": 1, "cat": 2}
    assert decode([1, 4, 5, 2, 99], index) == "? the cat ? ?"
    assert decode(np.array([3, 4]), index, index_from=2) == "the cat"


def test_load_refuses_code_in_npz(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A pathlib object needs a global other than numpy's array rebuilders: a stand-in for a
    # malicious pickle gadget. allow_pickle=True would happily load it.
    bad = np.empty(1, dtype=object)
    bad[0] = Path("/")
    np.savez(tmp_path / "reuters.npz", x=bad, y=np.zeros(1, dtype=np.int64))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(Exception, match=r"Refusing to unpickle pathlib\..*Path"):
        load_reuters()


def test_load_names_missing_arrays(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    np.savez(tmp_path / "reuters.npz", x=np.zeros(3))
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    with pytest.raises(ValueError, match=r"reuters\.npz lacks the array\(s\) y"):
        load_reuters()


# --- pad_sequences ---------------------------------------------------------------------------

SEQS = [[1], [2, 3], [4, 5, 6], [], [7, 8, 9, 10, 11]]


def _same_result(call: Callable[..., np.ndarray], *args: Any, **kwargs: Any) -> None:
    ours = call(*args, **kwargs)
    theirs = keras.utils.pad_sequences(*args, **kwargs)
    assert ours.dtype == theirs.dtype
    assert ours.shape == theirs.shape
    np.testing.assert_array_equal(ours, theirs)


@pytest.mark.parametrize("padding", ["pre", "post"])
@pytest.mark.parametrize("truncating", ["pre", "post"])
@pytest.mark.parametrize("maxlen", [None, 1, 3, 8])
def test_pad_sequences_matches_keras(padding: str, truncating: str, maxlen: int | None) -> None:
    _same_result(pad_sequences, SEQS, maxlen=maxlen, padding=padding, truncating=truncating)


@pytest.mark.parametrize(
    "kwargs",
    [
        {"value": -1},
        {"value": 9.5, "dtype": "float32"},
        {"dtype": "int64", "maxlen": 4},
        {"dtype": "float64", "value": np.nan, "padding": "post"},
        {"dtype": object, "value": "<pad>"},
        {"dtype": "<U5", "value": "-"},
    ],
)
def test_pad_sequences_value_and_dtype(kwargs: dict[str, Any]) -> None:
    _same_result(pad_sequences, SEQS, **kwargs)


def test_pad_sequences_defaults_and_inputs() -> None:
    out = pad_sequences([[1], [2, 3], [4, 5, 6]])
    assert out.dtype == np.int32
    assert out.tolist() == [[0, 0, 1], [0, 2, 3], [4, 5, 6]]
    rng = np.random.default_rng(0)
    ragged = [rng.integers(0, 100, size=rng.integers(0, 20)) for _ in range(50)]  # arrays
    _same_result(pad_sequences, ragged, maxlen=12, truncating="post")
    vectors = [np.ones((n, 3)) * n for n in (2, 0, 5)]  # items with a shape of their own
    _same_result(pad_sequences, vectors, dtype="float32")
    _same_result(pad_sequences, [["a", "bb"], ["c"]], dtype=object, value="")


@pytest.mark.parametrize(
    ("args", "kwargs"),
    [
        ((SEQS,), {"padding": "middle"}),
        ((SEQS,), {"truncating": "middle", "maxlen": 2}),
        ((SEQS,), {"value": "x"}),  # a string value needs dtype=object
        (([[1], 5],), {}),  # non-iterable sequence
        (([np.ones((2, 3)), np.ones((2, 4))],), {}),  # inconsistent item shape
        ((5,), {}),  # not a sequence at all
        (([],), {}),  # nothing to take the length from
    ],
)
def test_pad_sequences_errors_match_keras(args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError) as theirs:
        keras.utils.pad_sequences(*args, **kwargs)
    with pytest.raises(type(theirs.value)):
        pad_sequences(*args, **kwargs)
