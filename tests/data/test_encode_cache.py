"""lstmkit.data.encode_cache: a hit gives the tokenizer and ids of a miss; any setting or byte of
the texts that changes the ids misses; a corrupt entry is rebuilt; the cache can be turned off."""

from __future__ import annotations

import csv
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from lstmkit.data import encode_cache
from lstmkit.data.encode_cache import (
    MAX_ENTRIES,
    NO_CACHE_ENV,
    EncodedSplits,
    SplitEncodingError,
    cache_dir,
    encode_splits,
)
from lstmkit.data.text import read_labelled_texts

TRAIN = [
    "오늘은 날씨가 정말 좋아서 공원에 산책을 갔어요.",
    "この映画は本当に素晴らしかったです。",
    "我今天去图书馆借了一本关于机器学习的书。",
    "Le café était délicieux, et la crème brûlée aussi.",
    "Great movie 😀👍🏽 — my daughter 👩‍💻 loved it!",
] * 4
VALID = ["이 영화는 배우들의 연기가 훌륭하고 감동적이었습니다!", "Ça m'a coûté très cher."]
TEST = ["这部电影的音乐非常动人。", "unseen words: zebra 🦄"]
SPLITS = {"train": TRAIN, "valid": VALID, "test": TEST}
SETTINGS: dict[str, Any] = {"kind": "bpe", "vocab_size": 300, "maxlen": 12}


@pytest.fixture(autouse=True)
def _cache_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "cache"))
    monkeypatch.delenv(NO_CACHE_ENV, raising=False)
    return tmp_path / "cache" / "lstmkit" / "encoded"


def _same(a: EncodedSplits, b: EncodedSplits) -> None:
    assert a.tokenizer.to_json() == b.tokenizer.to_json()
    assert a.tokenizer.kind == b.tokenizer.kind and a.tokenizer.maxlen == b.tokenizer.maxlen
    assert a.ids.keys() == b.ids.keys()
    for name in a.ids:
        assert len(a.ids[name]) == len(b.ids[name])
        for x, y in zip(a.ids[name], b.ids[name], strict=True):
            assert x.dtype == y.dtype == np.int64
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("kind", ["word", "char", "bpe", "unigram"])
def test_a_hit_gives_the_tokenizer_and_ids_of_a_miss(
    kind: str, _cache_in_tmp: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger=encode_cache.__name__)
    miss = encode_splits(SPLITS, kind, vocab_size=400, maxlen=8)  # type: ignore[arg-type]
    assert miss.cache == "miss" and miss.path is not None and miss.path.parent == _cache_in_tmp
    assert cache_dir() == _cache_in_tmp
    hit = encode_splits(SPLITS, kind, vocab_size=400, maxlen=8)  # type: ignore[arg-type]
    assert hit.cache == "hit" and hit.path == miss.path
    _same(miss, hit)
    assert max(len(s) for s in hit.ids["train"]) == 8
    # the same as training and encoding without the cache
    off = encode_splits(SPLITS, kind, vocab_size=400, maxlen=8, cache=False)  # type: ignore[arg-type]
    assert off.cache == "off" and off.path is None
    _same(off, hit)
    lines = [r.getMessage() for r in caplog.records]
    assert sum("encoded ids: cache miss" in m for m in lines) == 1
    assert sum("encoded ids: cache hit" in m for m in lines) == 1
    assert sum("encoded ids: cache off" in m for m in lines) == 1


def test_maxlen_and_truncating_cut_the_stored_ids() -> None:
    full = encode_splits(SPLITS, "char", vocab_size=400)
    for maxlen, truncating in ((5, "pre"), (5, "post"), (None, "pre")):
        got = encode_splits(SPLITS, "char", vocab_size=400, maxlen=maxlen, truncating=truncating)
        assert got.cache == "hit"
        for whole, cut in zip(full.ids["valid"], got.ids["valid"], strict=True):
            want = whole if maxlen is None else whole[-5:] if truncating == "pre" else whole[:5]
            np.testing.assert_array_equal(cut, want)


@pytest.mark.parametrize(
    "change",
    [
        {"kind": "word"},
        {"kind": "unigram"},
        {"vocab_size": 301},
        {"min_frequency": 2},
        {"lowercase": True},
        {"splits": {"train": TRAIN, "valid": VALID}},  # no test split
        {"splits": {"train": TRAIN[:-1], "valid": VALID, "test": TEST}},  # limit
        {"splits": {"train": TRAIN, "valid": VALID[::-1], "test": TEST}},  # another split
        {"splits": {"train": [*TRAIN[:-1], TRAIN[-1] + "!"], "valid": VALID, "test": TEST}},
        {"splits": {"train": TRAIN, "valid": VALID, "test": ["这部电影的音乐非常动人", TEST[1]]}},
    ],
)
def test_any_change_that_changes_the_ids_misses(change: dict[str, Any]) -> None:
    assert encode_splits(SPLITS, **SETTINGS).cache == "miss"
    assert encode_splits(SPLITS, **SETTINGS).cache == "hit"
    settings = {**SETTINGS, **change}
    splits = settings.pop("splits", SPLITS)
    assert encode_splits(splits, **settings).cache == "miss"


def test_character_coverage_and_unigram_threads_are_in_the_key() -> None:
    unigram: dict[str, Any] = {"kind": "unigram", "vocab_size": 400}
    assert encode_splits(SPLITS, **unigram).cache == "miss"
    assert encode_splits(SPLITS, **unigram, character_coverage=0.99).cache == "miss"
    # sentencepiece's model depends on its thread count; tokenizers' trainers do not
    assert encode_splits(SPLITS, **unigram, threads=2).cache == "miss"
    assert encode_splits(SPLITS, **unigram, threads=2).cache == "hit"
    assert encode_splits(SPLITS, **SETTINGS, threads=1).cache == "miss"
    assert encode_splits(SPLITS, **SETTINGS, threads=2).cache == "hit"


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["review", "label"])
        writer.writerows(rows)
    return path


def test_one_byte_of_the_data_file_misses(tmp_path: Path) -> None:
    path = _write_csv(tmp_path / "train.csv", [(t, str(i % 2)) for i, t in enumerate(TRAIN)])

    def run() -> EncodedSplits:
        data = read_labelled_texts(path, "review", "label")
        return encode_splits({"train": data.texts}, **SETTINGS)

    first = run()
    assert (first.cache, run().cache) == ("miss", "hit")
    raw = path.read_bytes()
    at = raw.index("공원에".encode())
    path.write_bytes(raw[:at] + "공윈에".encode() + raw[at + len("공원에".encode()) :])
    again = run()
    assert again.cache == "miss" and again.path != first.path
    # a byte that no text reads (the label column) does not change the ids: still a hit
    relabelled = raw.replace(b",0\r\n", b",2\r\n", 1)
    assert relabelled != raw
    path.write_bytes(relabelled)
    assert run().cache == "hit"


@pytest.mark.parametrize("damage", ["truncate", "flip", "garbage", "empty", "other_entry"])
def test_a_corrupt_entry_is_rebuilt(damage: str, caplog: pytest.LogCaptureFixture) -> None:
    good = encode_splits(SPLITS, **SETTINGS)
    assert good.path is not None
    raw = good.path.read_bytes()
    if damage == "truncate":
        good.path.write_bytes(raw[: len(raw) // 2])
    elif damage == "flip":  # one byte inside the stored ids: the zip is whole, the hash is not
        data = bytearray(raw)
        at = raw.index(b"ids.train") + 300
        data[at] ^= 0xFF
        good.path.write_bytes(bytes(data))
    elif damage == "garbage":
        good.path.write_bytes(b"not a cache entry")
    elif damage == "empty":
        good.path.write_bytes(b"")
    else:  # a valid entry of other splits under this name
        other = encode_splits({"train": TRAIN}, **SETTINGS)
        assert other.path is not None
        good.path.write_bytes(other.path.read_bytes())
    caplog.set_level(logging.INFO, logger=encode_cache.__name__)
    rebuilt = encode_splits(SPLITS, **SETTINGS)
    assert rebuilt.cache == "rebuilt"
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert len(warnings) == 1 and "is unreadable" in warnings[0].getMessage()
    _same(good, rebuilt)
    assert encode_splits(SPLITS, **SETTINGS).cache == "hit"


def test_turned_off_by_the_environment(
    _cache_in_tmp: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(NO_CACHE_ENV, "1")
    got = encode_splits(SPLITS, **SETTINGS)
    assert got.cache == "off" and got.path is None and not _cache_in_tmp.exists()
    monkeypatch.setenv(NO_CACHE_ENV, "0")
    assert encode_splits(SPLITS, **SETTINGS).cache == "miss"


def test_a_cache_that_cannot_be_written_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("a file where the cache folder would be")
    monkeypatch.setenv("XDG_CACHE_HOME", str(blocker))
    caplog.set_level(logging.INFO, logger=encode_cache.__name__)
    got = encode_splits(SPLITS, **SETTINGS)
    assert got.cache == "miss" and len(got.ids["train"]) == len(TRAIN)
    assert any("cannot write the cache entry" in r.getMessage() for r in caplog.records)


def test_only_the_most_recently_used_entries_are_kept(_cache_in_tmp: Path) -> None:
    paths = []
    for i in range(MAX_ENTRIES):
        got = encode_splits({"train": [*TRAIN, f"text {i}"]}, "word")
        assert got.path is not None
        os.utime(got.path, (1000 + i, 1000 + i))  # an order the file system's clock cannot blur
        paths.append(got.path)
    assert encode_splits({"train": [*TRAIN, "text 0"]}, "word").cache == "hit"  # used last
    for more in ("one more", "two more"):
        encode_splits({"train": [*TRAIN, more]}, "word")
    kept = set(_cache_in_tmp.glob("*.npz"))
    assert len(kept) == MAX_ENTRIES
    assert paths[0] in kept and paths[1] not in kept and paths[2] not in kept


def test_an_empty_text_names_its_split() -> None:
    with pytest.raises(SplitEncodingError, match="valid: text 1 gives no token") as err:
        encode_splits({"train": TRAIN, "valid": ["좋아요", ""]}, **SETTINGS)
    assert (err.value.split, err.value.index) == ("valid", 1)
    assert isinstance(err.value, ValueError)
    with pytest.raises(ValueError, match="must hold a 'train' split"):
        encode_splits({"valid": VALID}, **SETTINGS)
