"""IMDB review texts as token ids in ``imdb.npz``'s vocabulary.

The labelled reviews come ready-made in ``imdb.npz``; the 50,000 UNLABELLED reviews
(``aclImdb/train/unsup``) exist only as text, in ``aclImdb_v1_text.tar.gz``. They are what
semi-supervised pretraining reads (Dai & Le 2015 pretrain on the training texts plus these).
:func:`load_imdb_unlabelled` turns them into id sequences with exactly the rule that built
``imdb.npz`` from the same archive (the data folder's README):

    text lower-cased, ``<br />`` read as the word ``br``, tokens are runs of ``[a-z0-9']`` with
    outer apostrophes stripped, each mapped to its rank in the Keras word index; words absent
    from the index are dropped.

and then Keras' ``load_data`` conventions (``start_char``, ``oov_char``, ``index_from``,
``num_words``), so an unlabelled review and a labelled one with the same words get the same ids.
A test checks the rule reproduces ``imdb.npz``'s labelled training sequences.
"""

from __future__ import annotations

import re
import tarfile
from collections.abc import Iterator, Mapping
from pathlib import Path

import numpy as np

from lstmkit.data.keras_datasets import get_word_index
from lstmkit.data.resolve import resolve
from lstmkit.errors import ConfigError, DataError

ARCHIVE = "aclImdb_v1_text.tar.gz"
UNLABELLED = "aclImdb/train/unsup/"
_TOKEN = re.compile(r"[a-z0-9']+")


def review_words(text: str) -> list[str]:
    """The words of one review under ``imdb.npz``'s rule (module docstring)."""
    words = (w.strip("'") for w in _TOKEN.findall(text.lower().replace("<br />", " br ")))
    return [w for w in words if w]


def encode_review(
    text: str,
    word_index: Mapping[str, int],
    *,
    num_words: int | None = None,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
) -> np.ndarray:
    """One review's ids with Keras' ``load_data`` conventions: ``rank + index_from``,
    ``start_char`` first, ids ``>= num_words`` replaced by ``oov_char`` (dropped when it is None).
    """
    ids = [start_char] if start_char is not None else []
    for word in review_words(text):
        rank = word_index.get(word)
        if rank is None:
            continue
        i = rank + index_from
        if num_words is not None and i >= num_words:
            if oov_char is None:
                continue
            i = oov_char
        ids.append(i)
    return np.asarray(ids, dtype=np.int64)


def iter_reviews(archive: Path, prefix: str) -> Iterator[tuple[str, str]]:
    """``(member name, text)`` of every review file under ``prefix`` in the archive, in archive
    order (one pass over the gzip stream)."""
    with tarfile.open(archive, "r:gz") as tar:
        for member in tar:
            if member.isfile() and member.name.startswith(prefix) and member.name.endswith(".txt"):
                fp = tar.extractfile(member)
                if fp is None:  # pragma: no cover - isfile() members always have data
                    continue
                try:
                    text = fp.read().decode("utf-8")
                except UnicodeDecodeError as err:
                    raise DataError(f"{archive}: {member.name} is not UTF-8 text ({err})") from err
                yield member.name, text


def load_imdb_unlabelled(
    num_words: int | None = None,
    *,
    limit: int | None = None,
    start_char: int | None = 1,
    oov_char: int | None = 2,
    index_from: int = 3,
    archive: Path | None = None,
) -> list[np.ndarray]:
    """The 50,000 unlabelled IMDB reviews as id sequences in ``imdb.npz``'s vocabulary
    (``load_imdb``'s arguments mean the same here); ``limit`` keeps the first N reviews.

    The archive is found like every data file (``LSTMKIT_DATA``, the user cache, or a download
    with a sha256 check); ``archive`` names one directly.
    """
    if limit is not None and limit < 1:
        raise ConfigError(f"limit must be >= 1 (or None for all 50,000 reviews), got {limit}")
    path = archive if archive is not None else resolve(ARCHIVE)
    word_index = get_word_index("imdb")
    out: list[np.ndarray] = []
    for _, text in iter_reviews(path, UNLABELLED):
        out.append(
            encode_review(
                text,
                word_index,
                num_words=num_words,
                start_char=start_char,
                oov_char=oov_char,
                index_from=index_from,
            )
        )
        if limit is not None and len(out) >= limit:
            break
    if not out:
        raise DataError(f"{path} holds no reviews under {UNLABELLED}; is it the aclImdb archive?")
    return out
