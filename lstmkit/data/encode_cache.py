"""Train the tokenizer and encode every split once per data set: the encoded ids are cached on disk.

:func:`encode_splits` trains a :mod:`lstmkit.data.tokenize` tokenizer on the ``"train"`` split
and encodes every split. The result (the ``tokenizer.json`` text and each split's ids, not yet
cut to ``maxlen``) is kept in one file, ``<user cache>/encoded/<key>.npz``
(:func:`lstmkit.data.resolve.default_cache_dir`: ``$XDG_CACHE_HOME/lstmkit`` or
``~/.cache/lstmkit``). The next run with the same texts and settings loads it instead of training
and encoding again.

The key is the sha256 of

- the texts of every split, in order (what reaches the tokenizer: so a change of one byte of a
  text, of the column read, the file's encoding, ``data.limit``, the validation fraction or seed
  or of the labels that stratify the split gives another key, and nothing else can change it);
- every tokenizer setting that changes the ids: kind, vocab_size, min_frequency, lowercase,
  character_coverage, and for 'unigram' the thread count (its trainer's model depends on it);
  ``maxlen`` and ``truncating`` do not: the ids are stored whole and cut when loaded;
- the versions of ``tokenizers`` and ``sentencepiece``, the sha256 of ``tokenize.py`` (the code
  that trains and encodes) and :data:`FORMAT_VERSION`.

The entry is written atomically (:func:`lstmkit.files.atomic_write_with`) and holds the sha256 of
its own payload: a truncated or corrupt entry is found on load, logged once and rebuilt, never a
crash (nor is a cache that cannot be written: the run goes on without it). The
:data:`MAX_ENTRIES` most recently used entries are kept. ``LSTMKIT_NO_ENCODE_CACHE=1`` (or
``cache=False``) turns the cache off; clearing it is deleting the ``encoded`` folder.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstmkit.data import tokenize
from lstmkit.data.resolve import default_cache_dir
from lstmkit.data.tokenize import TextTokenizer, TokenizerKind, library_versions, train_tokenizer
from lstmkit.errors import EmptyEncodingError
from lstmkit.files import atomic_write_with

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
NO_CACHE_ENV = "LSTMKIT_NO_ENCODE_CACHE"
MAX_ENTRIES = 8
CacheStatus = Literal["hit", "miss", "rebuilt", "off"]


class SplitEncodingError(EmptyEncodingError):
    """A text of one split of :func:`encode_splits` gives no token: ``split`` names the split,
    ``index`` the text's position in it."""

    def __init__(self, split: str, index: int, text: str) -> None:
        super().__init__(index, text)
        self.args = (f"{split}: {self.args[0]}",)
        self.split = split


@dataclass
class EncodedSplits:
    """What :func:`encode_splits` gives.

    Attributes:
        tokenizer: the trained tokenizer (``maxlen`` and ``truncating`` set).
        ids: split name -> one int64 id array per text, cut to ``maxlen``.
        cache: 'hit' (loaded), 'miss' (trained and saved), 'rebuilt' (the entry was unreadable:
            trained and saved again) or 'off'.
        path: the cache entry (None when the cache is off).
    """

    tokenizer: TextTokenizer
    ids: dict[str, list[np.ndarray]]
    cache: CacheStatus
    path: Path | None


def cache_dir() -> Path:
    """``<user cache>/encoded``: where the entries are (delete it to clear the cache)."""
    return default_cache_dir() / "encoded"


def cache_enabled() -> bool:
    """False when ``LSTMKIT_NO_ENCODE_CACHE`` is set to anything but '' or '0'."""
    return os.environ.get(NO_CACHE_ENV, "") in ("", "0")


def cache_key(splits: Mapping[str, Sequence[str]], settings: Mapping[str, Any]) -> str:
    """The hex sha256 that names the entry of ``splits`` encoded with ``settings`` (see the
    module docstring)."""
    h = hashlib.sha256()
    header = {
        "format": FORMAT_VERSION,
        "settings": dict(settings),
        "versions": library_versions(),
        "code": hashlib.sha256(Path(tokenize.__file__).read_bytes()).hexdigest(),
        "splits": [[name, len(texts)] for name, texts in splits.items()],
    }
    h.update(json.dumps(header, sort_keys=True).encode("utf-8"))
    for texts in splits.values():
        # the lengths and the concatenation together give back every text, unambiguously
        h.update(np.fromiter(map(len, texts), dtype=np.int64, count=len(texts)).tobytes())
        h.update("".join(texts).encode("utf-8", "surrogatepass"))
    return h.hexdigest()


def encode_splits(
    splits: Mapping[str, Sequence[str]],
    kind: TokenizerKind = "word",
    *,
    vocab_size: int = 20000,
    min_frequency: int = 1,
    lowercase: bool = False,
    character_coverage: float | None = None,
    maxlen: int | None = None,
    truncating: str = "pre",
    threads: int = 1,
    cache: bool | None = None,
) -> EncodedSplits:
    """Train a ``kind`` tokenizer on ``splits["train"]`` and encode every split, or load both
    from the cache (see the module docstring). The settings are those of
    :func:`lstmkit.data.tokenize.train_tokenizer`; ``maxlen`` / ``truncating`` cut the ids.

    ``cache``: None = on unless ``LSTMKIT_NO_ENCODE_CACHE`` is set; False = off. Logs one line:
    hit, miss, rebuilt or off. A text that gives no token raises :class:`SplitEncodingError`
    (an :class:`EmptyEncodingError` naming the split and the index); ValueError for bad
    settings.
    """
    if "train" not in splits:
        raise ValueError(f"splits must hold a 'train' split, got {', '.join(splits) or 'none'}")
    if truncating not in ("pre", "post"):
        raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
    settings: dict[str, Any] = {
        "kind": kind,
        "vocab_size": vocab_size,
        "min_frequency": min_frequency,
        "lowercase": lowercase,
        "character_coverage": character_coverage,
        # sentencepiece sums its EM statistics per thread: the unigram model depends on it
        "threads": threads if kind == "unigram" else None,
    }
    start = time.perf_counter()
    use = cache_enabled() if cache is None else cache
    path = None
    status: CacheStatus = "off"
    if use:
        path = cache_dir() / f"{cache_key(splits, settings)}.npz"
        status = "miss"
        if path.exists():
            try:
                tok, full = _load(path, splits)
            except Exception as err:  # zip / npy / JSON errors, a wrong hash: rebuild it
                logger.warning(
                    "encoded ids: cache entry %s is unreadable (%s: %s); rebuilding it",
                    path,
                    type(err).__name__,
                    err,
                )
                status = "rebuilt"
            else:
                _touch(path)
                tok.maxlen, tok.truncating = maxlen, truncating
                logger.info(
                    "encoded ids: cache hit, %s (%d texts, %.2f s)",
                    path,
                    sum(map(len, splits.values())),
                    time.perf_counter() - start,
                )
                return EncodedSplits(tok, _cut(tok, full), "hit", path)
    tok = train_tokenizer(
        splits["train"],
        kind,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        threads=threads,
        character_coverage=character_coverage,
    )
    tok.maxlen, tok.truncating = maxlen, truncating
    full = {}
    for name, texts in splits.items():
        try:
            full[name] = tok.encode_full(texts, threads)
        except EmptyEncodingError as err:
            raise SplitEncodingError(name, err.index, texts[err.index]) from None
    seconds = time.perf_counter() - start
    if path is None:
        logger.info(
            "encoded ids: cache off (%s=1); trained the %s tokenizer and encoded in %.1f s",
            NO_CACHE_ENV,
            kind,
            seconds,
        )
    else:
        saved = _save(path, tok, full)
        logger.info(
            "encoded ids: cache %s; trained the %s tokenizer and encoded %d texts in %.1f s%s",
            status,
            kind,
            sum(map(len, splits.values())),
            seconds,
            f", saved {path}" if saved else "",
        )
    return EncodedSplits(tok, _cut(tok, full), status, path)


def _cut(
    tok: TextTokenizer, full: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> dict[str, list[np.ndarray]]:
    return {name: tok.cut(ids, offsets) for name, (ids, offsets) in full.items()}


def _payload_hash(arrays: Mapping[str, np.ndarray]) -> str:
    h = hashlib.sha256()
    for name in sorted(arrays):
        h.update(name.encode("utf-8"))
        h.update(np.ascontiguousarray(arrays[name]).tobytes())
    return h.hexdigest()


def _save(
    path: Path, tok: TextTokenizer, full: Mapping[str, tuple[np.ndarray, np.ndarray]]
) -> bool:
    """Write the entry atomically; False (and one warning) if it cannot be written."""
    dtype = np.int32 if tok.vocab_size < 2**31 else np.int64
    arrays: dict[str, np.ndarray] = {
        "tokenizer": np.frombuffer(tok.to_json().encode("utf-8"), dtype=np.uint8)
    }
    for name, (ids, offsets) in full.items():
        arrays[f"ids.{name}"] = ids.astype(dtype)
        arrays[f"offsets.{name}"] = offsets
    meta = {
        "format": FORMAT_VERSION,
        "splits": list(full),
        "sha256": _payload_hash(arrays),
        "versions": library_versions(),
    }
    arrays["meta"] = np.frombuffer(json.dumps(meta).encode("utf-8"), dtype=np.uint8)

    def write(tmp: Path) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, **arrays)  # type: ignore[arg-type]

    try:
        atomic_write_with(path, write)
        _prune(path.parent)
    except OSError as err:
        logger.warning(
            "encoded ids: cannot write the cache entry %s (%s); going on without", path, err
        )
        return False
    return True


def _load(
    path: Path, splits: Mapping[str, Sequence[str]]
) -> tuple[TextTokenizer, dict[str, tuple[np.ndarray, np.ndarray]]]:
    """The entry at ``path``; raises (anything) if it is not whole and right."""
    with np.load(path, allow_pickle=False) as npz:
        arrays = {name: npz[name] for name in npz.files}
    meta = json.loads(arrays.pop("meta").tobytes().decode("utf-8"))
    if meta.get("format") != FORMAT_VERSION or meta.get("splits") != list(splits):
        raise ValueError(f"format {meta.get('format')} with splits {meta.get('splits')}")
    if _payload_hash(arrays) != meta.get("sha256"):
        raise ValueError("its sha256 is not the one it was written with")
    tok = TextTokenizer.from_json(arrays["tokenizer"].tobytes().decode("utf-8"))
    full = {}
    for name, texts in splits.items():
        ids, offsets = arrays[f"ids.{name}"].astype(np.int64), arrays[f"offsets.{name}"]
        if offsets.shape != (len(texts) + 1,) or offsets[-1] != ids.size:
            raise ValueError(f"split {name!r} does not hold {len(texts)} texts")
        full[name] = (ids, offsets)
    return tok, full


def _touch(path: Path) -> None:
    with contextlib.suppress(OSError):  # another process may have pruned it meanwhile
        os.utime(path)  # most recently used: kept by _prune


def _prune(folder: Path) -> None:
    """Keep the :data:`MAX_ENTRIES` most recently used entries (another process may remove
    some at the same time: a file that is gone is skipped)."""
    used: list[tuple[float, Path]] = []
    for entry in folder.glob("*.npz"):
        with contextlib.suppress(OSError):
            used.append((entry.stat().st_mtime, entry))
    for _, old in sorted(used, reverse=True)[MAX_ENTRIES:]:
        with contextlib.suppress(OSError):
            old.unlink()
            logger.info("encoded ids: removed the least recently used cache entry %s", old)
