"""lstmkit.data.imdb_texts: the rule that built imdb.npz, applied to the archive's texts."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.imdb_texts import (
    ARCHIVE,
    encode_review,
    iter_reviews,
    load_imdb_unlabelled,
    review_words,
)
from lstmkit.data.resolve import ENV_VAR

MIRROR = Path(os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[3] / "shared" / "data")


def test_review_words_rule() -> None:
    text = "It's GREAT!<br /><br />'Quoted' words, rock'n'roll -- 10/10 ''"
    assert review_words(text) == [
        "it's",
        "great",
        "br",
        "br",
        "quoted",
        "words",
        "rock'n'roll",
        "10",
        "10",
    ]


def test_encode_review_keras_conventions() -> None:
    index = {"the": 1, "film": 2, "rare": 40}
    text = "The film, the RARE film; unknownword"
    # rank + 3, start char 1; unknown words dropped
    assert encode_review(text, index).tolist() == [1, 4, 5, 4, 43, 5]
    # num_words: ids >= 10 become the OOV char, or are dropped without one
    assert encode_review(text, index, num_words=10).tolist() == [1, 4, 5, 4, 2, 5]
    assert encode_review(text, index, num_words=10, oov_char=None).tolist() == [1, 4, 5, 4, 5]
    assert encode_review(text, index, start_char=None, index_from=0).tolist() == [1, 2, 1, 40, 2]


def test_rule_reproduces_imdb_npz(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first 300 test/neg reviews of the archive, tokenised here, are rows of imdb.npz."""
    if not (MIRROR / ARCHIVE).is_file() or not (MIRROR / "imdb.npz").is_file():
        pytest.skip(f"{ARCHIVE} or imdb.npz absent from {MIRROR}; set {ENV_VAR}")
    from lstmkit.data.keras_datasets import get_word_index

    monkeypatch.setenv(ENV_VAR, str(MIRROR))
    with np.load(MIRROR / "imdb.npz", allow_pickle=True) as z:
        rows = {tuple(int(i) for i in s) for s in z["x_test"]}
    index = get_word_index("imdb")
    seen = 0
    for _, text in iter_reviews(MIRROR / ARCHIVE, "aclImdb/test/neg/"):
        ids = encode_review(text, index, start_char=None, index_from=0)
        assert tuple(ids.tolist()) in rows
        seen += 1
        if seen == 300:
            break
    assert seen == 300


def _archive(path: Path, files: dict[str, bytes]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_load_unlabelled_reads_only_unsup(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(
        "lstmkit.data.imdb_texts.get_word_index", lambda _: {"the": 1, "film": 2, "rare": 40}
    )
    archive = _archive(
        tmp_path / ARCHIVE,
        {
            "aclImdb/train/pos/0_9.txt": b"the film",
            "aclImdb/train/unsup/0_0.txt": b"The rare film",
            "aclImdb/train/unsup/1_0.txt": b"film<br />the",
            "aclImdb/train/urls_unsup.txt": b"http://example.invalid",
        },
    )
    assert [s.tolist() for s in load_imdb_unlabelled(archive=archive)] == [[1, 4, 43, 5], [1, 5, 4]]
    assert [s.tolist() for s in load_imdb_unlabelled(10, archive=archive, limit=1)] == [
        [1, 4, 2, 5]
    ]
    with pytest.raises(ValueError, match="limit must be >= 1"):
        load_imdb_unlabelled(archive=archive, limit=0)


def test_load_unlabelled_errors_name_the_archive(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr("lstmkit.data.imdb_texts.get_word_index", lambda _: {"the": 1})
    empty = _archive(tmp_path / "empty.tar.gz", {"aclImdb/train/pos/0_9.txt": b"the"})
    with pytest.raises(
        ValueError, match=r"empty\.tar\.gz holds no reviews under aclImdb/train/unsup/"
    ):
        load_imdb_unlabelled(archive=empty)
    bad = _archive(tmp_path / "bad.tar.gz", {"aclImdb/train/unsup/0_0.txt": b"\xff\xfe the"})
    with pytest.raises(
        ValueError, match=r"bad\.tar\.gz: aclImdb/train/unsup/0_0\.txt is not UTF-8"
    ):
        load_imdb_unlabelled(archive=bad)
