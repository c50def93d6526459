"""The word vocabulary of the Keras IMDB / Reuters data sets, to read raw text the way
``imdb.npz`` / ``reuters.npz`` were built: :func:`imdb_words` splits a review into words, and
:class:`Vocabulary` maps them to the loaders' ids (rank + ``index_from``; 1 start, 2 OOV).

A run on a Keras data set saves its vocabulary as ``vocab.json`` next to the weights, so
``lstmkit predict`` and ``lstmkit serve`` can read new reviews (JSON, never pickled).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

from lstmkit.data.keras_datasets import get_word_index
from lstmkit.errors import DataError
from lstmkit.files import atomic_write_text

TOKEN = re.compile(r"[a-z0-9']+")
# the same words as TOKEN's runs with their outer apostrophes stripped (empty ones dropped), found
# in one pass: a run from its first to its last letter or digit (a fifth faster per review,
# the serving path tokenises every request; tests/test_experiment.py checks the equality)
WORD = re.compile(r"[a-z0-9](?:[a-z0-9']*[a-z0-9])?")


def imdb_words(text: str) -> list[str]:
    """Tokenise a review exactly as ``imdb.npz`` was built: lower-case, ``<br />`` read as the
    word ``br``, runs of ``[a-z0-9']`` with outer apostrophes stripped."""
    return WORD.findall(text.lower().replace("<br />", " br "))


@dataclass
class Vocabulary:
    """word -> id as the Keras loaders number them (rank + index_from; 1 start, 2 OOV)."""

    word_to_id: dict[str, int]
    start_char: int = 1
    oov_char: int = 2
    skip_top: int = 0

    def encode(self, text: str, maxlen: int | None = None) -> list[int]:
        """Token ids of ``text`` (start marker first; unknown or rare words -> OOV). With
        ``maxlen`` the last ``maxlen`` ids are kept (Keras' truncating='pre')."""
        ids = [self.start_char] + [self.word_to_id.get(w, self.oov_char) for w in imdb_words(text)]
        if self.skip_top:  # Keras replaces every id below skip_top, the start marker included
            ids = [i if i >= self.skip_top else self.oov_char for i in ids]
        return ids[-maxlen:] if maxlen else ids

    def save(self, path: Path) -> None:
        """JSON, keys sorted (deterministic), written atomically."""
        payload = {
            "start_char": self.start_char,
            "oov_char": self.oov_char,
            "skip_top": self.skip_top,
            "word_to_id": dict(sorted(self.word_to_id.items())),
        }
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read what :meth:`save` wrote."""
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                payload["word_to_id"],
                payload["start_char"],
                payload["oov_char"],
                payload["skip_top"],
            )
        except (OSError, json.JSONDecodeError, KeyError) as err:
            raise DataError(f"cannot read vocabulary {path}: {err}") from None

    @classmethod
    def from_keras(
        cls, dataset: str, num_words: int | None, index_from: int, skip_top: int = 0
    ) -> Vocabulary:
        """The vocabulary of ``load_imdb/load_reuters(num_words, skip_top, index_from)``: ids in
        ``[skip_top, num_words)`` are kept, the rest read as OOV, as Keras' loaders do."""
        index = get_word_index(dataset)  # type: ignore[arg-type]
        limit = num_words or (max(index.values()) + index_from + 1)
        words = {w: r + index_from for w, r in index.items() if skip_top <= r + index_from < limit}
        return cls(words, skip_top=skip_top)
