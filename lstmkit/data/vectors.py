"""Pretrained word vectors (word2vec, GloVe, fastText) into a model's embedding.

Formats (``fmt="auto"`` tells them apart):

- text with a header line ``COUNT DIM`` then ``word v1 ... vDIM`` per line: word2vec ``.txt``
  (``binary=False``) and fastText ``.vec``;
- text without a header: GloVe (``glove.6B.100d.txt``);
- word2vec binary (``.bin``, gensim's ``binary=True``): header ``COUNT DIM\\n``, then per word
  the UTF-8 word, a space and DIM little-endian float32 (an optional newline after each vector).
  Auto-detection reads ``.bin`` files as binary and everything else as text.

Only the vectors of the words asked for are kept (``keep=``), so a 1 GB file of 2 M words costs
the memory of the vocabulary, not of the file. :func:`embedding_matrix` fills the rows of a
tokenizer's vocabulary: the exact word, else its lower-case form; rows without a vector keep
their initial values (and ``[PAD]`` stays zero). :class:`Coverage` says how many vocabulary
words (and how many training tokens) got a vector.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstmkit.errors import ConfigError, VectorsError

VectorFormat = Literal["auto", "text", "binary"]


@dataclass
class WordVectors:
    """``vectors[i]`` is the vector of ``words[i]`` (float32, shape (N, dim))."""

    words: list[str]
    vectors: np.ndarray
    dim: int
    path: Path
    format: str
    total_words: int  # words in the file (before ``keep`` filtered them)

    def index(self) -> dict[str, int]:
        """word -> row (the first occurrence wins)."""
        out: dict[str, int] = {}
        for i, w in enumerate(self.words):
            out.setdefault(w, i)
        return out


def _parse_header(line: str) -> tuple[int, int] | None:
    parts = line.split()
    if len(parts) == 2 and all(p.isdigit() for p in parts):
        return int(parts[0]), int(parts[1])
    return None


def _wanted(keep: Iterable[str] | None) -> set[str] | None:
    if keep is None:
        return None
    out = set()
    for w in keep:
        out.add(w)
        out.add(w.lower())
    return out


def _load_text(path: Path, keep: set[str] | None, encoding: str) -> WordVectors:
    words: list[str] = []
    rows: list[np.ndarray] = []
    dim: int | None = None
    total = 0
    fmt = "glove"
    try:
        fh = open(path, encoding=encoding, newline="\n")  # noqa: SIM115 (closed by `with` below)
    except FileNotFoundError:
        raise VectorsError(f"word-vector file {path} does not exist") from None
    with fh:
        try:
            for number, line in enumerate(fh, 1):
                if number == 1:
                    header = _parse_header(line)
                    if header is not None:
                        dim, fmt = header[1], "word2vec-text"
                        continue
                parts = line.rstrip("\n").rstrip("\r").rstrip(" ").split(" ")
                if len(parts) == 1 and not parts[0]:
                    continue
                if dim is None:
                    dim = len(parts) - 1
                    if dim < 1:
                        raise VectorsError(f"{path}: line {number}: a word without numbers")
                if len(parts) != dim + 1:
                    raise VectorsError(
                        f"{path}: line {number}: {len(parts) - 1} numbers after the word "
                        f"{parts[0]!r}, expected {dim} (the vector size)"
                    )
                total += 1
                if keep is not None and parts[0] not in keep:
                    continue
                try:
                    rows.append(np.asarray(parts[1:], dtype=np.float32))
                except ValueError:
                    raise VectorsError(
                        f"{path}: line {number}: the vector of {parts[0]!r} holds a value that is "
                        "not a number"
                    ) from None
                words.append(parts[0])
        except UnicodeDecodeError as err:
            raise VectorsError(
                f"{path}: not valid {encoding} text near byte {err.start} ({err.reason}); a "
                "word2vec binary file must end in .bin (or pass format='binary')"
            ) from None
    if dim is None:
        raise VectorsError(f"{path} holds no vectors")
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(words, matrix, dim, path, fmt, total)


def _load_binary(path: Path, keep: set[str] | None) -> WordVectors:
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise VectorsError(f"word-vector file {path} does not exist") from None
    end = data.find(b"\n")
    header = _parse_header(data[:end].decode("ascii", "replace")) if end > 0 else None
    if header is None:
        raise VectorsError(f"{path}: the first line must be 'COUNT DIM' (word2vec binary format)")
    count, dim = header
    pos = end + 1
    size = 4 * dim
    words: list[str] = []
    rows: list[np.ndarray] = []
    for k in range(count):
        while pos < len(data) and data[pos : pos + 1] in (b"\n", b" "):
            pos += 1
        space = data.find(b" ", pos)
        if space < 0 or space + 1 + size > len(data):
            raise VectorsError(
                f"{path}: truncated after {k} of {count} words (word {k + 1} is incomplete)"
            )
        try:
            word = data[pos:space].decode("utf-8")
        except UnicodeDecodeError:
            raise VectorsError(f"{path}: word {k + 1} is not valid UTF-8") from None
        start = space + 1
        if keep is None or word in keep:
            words.append(word)
            rows.append(np.frombuffer(data, dtype="<f4", count=dim, offset=start).copy())
        pos = start + size
    matrix = np.stack(rows) if rows else np.zeros((0, dim), dtype=np.float32)
    return WordVectors(words, matrix, dim, path, "word2vec-binary", count)


def load_vectors(
    path: str | Path,
    *,
    fmt: VectorFormat = "auto",
    keep: Iterable[str] | None = None,
    encoding: str = "utf-8",
) -> WordVectors:
    """Read a word2vec / GloVe / fastText file (see the module docstring).

    Args:
        path: the file.
        fmt: 'auto' (``.bin`` -> binary, else text), 'text' or 'binary'.
        keep: only keep these words (and their lower-case forms); None keeps all.
        encoding: of a text file.
    """
    path = Path(path)
    if fmt == "auto":
        fmt = "binary" if path.suffix.lower() == ".bin" else "text"
    wanted = _wanted(keep)
    if fmt == "binary":
        out = _load_binary(path, wanted)
    elif fmt == "text":
        out = _load_text(path, wanted, encoding)
    else:
        raise ConfigError(f"fmt must be 'auto', 'text' or 'binary', got {fmt!r}")
    bad = ~np.isfinite(out.vectors).all(axis=1)
    if bad.any():
        word = out.words[int(np.flatnonzero(bad)[0])]
        raise VectorsError(f"{path}: the vector of {word!r} holds NaN or infinity")
    return out


@dataclass
class Coverage:
    """How much of a vocabulary the vectors cover.

    Attributes:
        vocab_words: vocabulary entries that could have a vector (specials excluded).
        found: of those, how many got one (``exact`` + ``lowercase`` matches).
        fraction: found / vocab_words.
        token_fraction: share of the training tokens whose id got a vector (None without counts).
        missing_examples: up to 10 frequent words without a vector.
    """

    vocab_words: int
    found: int
    exact: int
    lowercase: int
    fraction: float
    token_fraction: float | None
    dim: int
    path: str
    missing_examples: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form."""
        return dict(self.__dict__)

    def describe(self) -> str:
        """One line for the log."""
        tok = (
            f", {self.token_fraction:.1%} of training tokens"
            if self.token_fraction is not None
            else ""
        )
        return (
            f"word vectors {self.path}: {self.found}/{self.vocab_words} vocabulary words "
            f"({self.fraction:.1%}){tok} have a vector of size {self.dim}"
        )


def embedding_matrix(
    vocab: Mapping[str, int],
    vectors: WordVectors,
    initial: np.ndarray,
    *,
    skip: Sequence[str] = ("[PAD]", "[UNK]"),
    token_counts: np.ndarray | None = None,
) -> tuple[np.ndarray, Coverage]:
    """``initial`` (V, dim) with the rows of vocabulary words replaced by their vectors.

    A word matches exactly, else by its lower-case form. ``token_counts[i]`` (how often id i
    occurs in the training data) adds the token-weighted coverage.
    """
    if initial.shape[1] != vectors.dim:
        raise VectorsError(
            f"{vectors.path}: vectors have size {vectors.dim} but the embedding has "
            f"{initial.shape[1]}; set model.embedding_dim = {vectors.dim}"
        )
    out = np.array(initial, dtype=np.float32, copy=True)
    index = vectors.index()
    lower: dict[str, int] = {}
    for w, i in index.items():
        lower.setdefault(w.lower(), i)
    has = np.zeros(len(out), dtype=bool)
    exact = low = 0
    candidates = 0
    for word, i in vocab.items():
        if word in skip or i >= len(out):
            continue
        candidates += 1
        row = index.get(word)
        if row is not None:
            exact += 1
        else:
            row = lower.get(word.lower())
            if row is not None:
                low += 1
        if row is not None:
            out[i] = vectors.vectors[row]
            has[i] = True
    token_fraction = None
    missing: list[str] = []
    inverse = {i: w for w, i in vocab.items()}
    if token_counts is not None:
        counts = np.asarray(token_counts, dtype=np.float64)[: len(out)]
        total = counts.sum()
        token_fraction = float(counts[has[: len(counts)]].sum() / total) if total else 0.0
        order = np.argsort(-counts, kind="stable")
        missing = [
            inverse[int(i)]
            for i in order
            if not has[int(i)] and inverse.get(int(i)) not in (None, *skip) and counts[i] > 0
        ][:10]
    found = exact + low
    cov = Coverage(
        candidates,
        found,
        exact,
        low,
        found / candidates if candidates else 0.0,
        token_fraction,
        vectors.dim,
        str(vectors.path),
        missing,
    )
    return out, cov
