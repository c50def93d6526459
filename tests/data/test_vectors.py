"""lstmkit.data.vectors: word2vec text / GloVe / fastText .vec / word2vec binary files written by the
test, the embedding matrix and its coverage."""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.vectors import VectorsError, embedding_matrix, load_vectors

WORDS = ["사과", "banana", "Café", "東京", "😀"]
VECS = np.arange(len(WORDS) * 3, dtype=np.float32).reshape(len(WORDS), 3) / 7 - 0.5


def _text_lines() -> list[str]:
    return [w + " " + " ".join(repr(float(x)) for x in v) for w, v in zip(WORDS, VECS, strict=True)]


def write_word2vec_text(path: Path) -> Path:
    path.write_text(f"{len(WORDS)} 3\n" + "\n".join(_text_lines()) + "\n", encoding="utf-8")
    return path


def write_glove(path: Path) -> Path:
    path.write_text("\n".join(_text_lines()) + "\n", encoding="utf-8")
    return path


def write_word2vec_binary(path: Path) -> Path:
    out = bytearray(f"{len(WORDS)} 3\n".encode())
    for w, v in zip(WORDS, VECS, strict=True):
        out += w.encode("utf-8") + b" " + struct.pack("<3f", *v.tolist()) + b"\n"
    path.write_bytes(bytes(out))
    return path


@pytest.mark.parametrize(
    "writer,name,fmt",
    [
        (write_word2vec_text, "w2v.txt", "word2vec-text"),
        (write_word2vec_text, "cc.ko.vec", "word2vec-text"),  # fastText's .vec: same layout
        (write_glove, "glove.txt", "glove"),
        (write_word2vec_binary, "w2v.bin", "word2vec-binary"),
    ],
)
def test_every_format_reads_the_same_vectors(tmp_path: Path, writer, name: str, fmt: str) -> None:  # type: ignore[no-untyped-def]
    vec = load_vectors(writer(tmp_path / name))
    assert vec.format == fmt
    assert vec.words == WORDS and vec.dim == 3 and vec.total_words == len(WORDS)
    np.testing.assert_array_equal(vec.vectors, VECS)  # float32 exactly
    # only the words asked for (and their lower-case forms) are kept: 'BANANA' keeps 'banana'
    kept = load_vectors(tmp_path / name, keep=["BANANA", "東京", "café"])
    assert kept.words == ["banana", "東京"] and kept.total_words == len(WORDS)
    np.testing.assert_array_equal(kept.vectors, VECS[[1, 3]])


def test_embedding_matrix_coverage(tmp_path: Path) -> None:
    vec = load_vectors(write_glove(tmp_path / "g.txt"))
    vocab = {"[PAD]": 0, "[UNK]": 1, "사과": 2, "café": 3, "東京": 4, "없음": 5}
    initial = np.full((6, 3), 9.0, dtype=np.float32)
    counts = np.array([0, 5, 10, 1, 4, 5])
    matrix, cov = embedding_matrix(vocab, vec, initial, token_counts=counts)
    np.testing.assert_array_equal(matrix[2], VECS[0])
    np.testing.assert_array_equal(matrix[4], VECS[3])
    # 'café' has no exact match; its lower-case form matches the file's 'Café'
    np.testing.assert_array_equal(matrix[3], VECS[2])
    np.testing.assert_array_equal(matrix[[0, 1, 5]], initial[[0, 1, 5]])  # specials, unknown
    assert (cov.vocab_words, cov.found, cov.exact, cov.lowercase) == (4, 3, 2, 1)
    assert cov.fraction == 0.75
    assert cov.token_fraction == pytest.approx(15 / 25)
    assert cov.missing_examples == ["없음"]
    # upper-case vocabulary words find lower-case file words the same way
    vocab2 = {"[PAD]": 0, "[UNK]": 1, "BANANA": 2}
    matrix2, cov2 = embedding_matrix(vocab2, vec, np.zeros((3, 3), np.float32))
    assert (cov2.found, cov2.lowercase) == (1, 1)
    np.testing.assert_array_equal(matrix2[2], VECS[1])
    with pytest.raises(VectorsError, match="set model.embedding_dim = 3"):
        embedding_matrix(vocab, vec, np.zeros((6, 4), np.float32))


def test_bad_vector_files(tmp_path: Path) -> None:
    bad = tmp_path / "bad.txt"
    bad.write_text("a 1 2 3\nb 1 2\n", encoding="utf-8")
    with pytest.raises(
        VectorsError, match=r"bad.txt: line 2: 2 numbers after the word 'b', expected 3"
    ):
        load_vectors(bad)
    bad.write_text("a 1 2 3\nb 1 x 3\n", encoding="utf-8")
    with pytest.raises(VectorsError, match=r"line 2: the vector of 'b' holds a value that is not"):
        load_vectors(bad)
    bad.write_text("a 1 nan 3\n", encoding="utf-8")
    with pytest.raises(VectorsError, match="'a' holds NaN or infinity"):
        load_vectors(bad)
    binary = write_word2vec_binary(tmp_path / "w.bin")
    binary.write_bytes(binary.read_bytes()[:-10])
    with pytest.raises(VectorsError, match=r"truncated after 4 of 5 words"):
        load_vectors(binary)
    with pytest.raises(VectorsError, match="does not exist"):
        load_vectors(tmp_path / "none.vec")
    with pytest.raises(VectorsError, match="not valid utf-8"):
        load_vectors(binary, fmt="text")
