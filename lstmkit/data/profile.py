"""What a collection of texts looks like, for choosing a tokenizer: scripts, spaces, lengths.

:func:`profile_texts` reads a sample of the texts (at most ``max_chars`` characters, whole texts,
spread over the collection) and counts the letters of each writing system by Unicode block
(:data:`SCRIPTS`), the share of spaces, the text lengths, and -- for space-separated scripts -- how
many words of a held-out tenth of the sample a word vocabulary of ``vocab_size`` words from the
other nine tenths would miss. :attr:`TextProfile.family` sums this up:

- ``"syllabic"``: mostly Hangul, kana or Han characters, each one a syllable or a morpheme
  (Korean, Japanese, Chinese); characters are meaningful units.
- ``"unspaced"``: an alphabetic script written without spaces between words (Thai, Lao, Khmer,
  Myanmar, Tibetan); words are not marked and characters are too small to mean much.
- ``"spaced"``: alphabets that separate words with spaces (Latin, Cyrillic, Greek, Arabic,
  Hebrew, Devanagari, ...).

No text is changed and nothing is written.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

# (name, first code point, last code point): the letters counted per script
SCRIPTS: tuple[tuple[str, int, int], ...] = (
    ("latin", 0x0041, 0x024F),
    ("greek", 0x0370, 0x03FF),
    ("cyrillic", 0x0400, 0x052F),
    ("armenian", 0x0530, 0x058F),
    ("hebrew", 0x0590, 0x05FF),
    ("arabic", 0x0600, 0x06FF),
    ("devanagari", 0x0900, 0x097F),
    ("bengali", 0x0980, 0x09FF),
    ("tamil", 0x0B80, 0x0BFF),
    ("thai", 0x0E00, 0x0E7F),
    ("lao", 0x0E80, 0x0EFF),
    ("tibetan", 0x0F00, 0x0FFF),
    ("myanmar", 0x1000, 0x109F),
    ("georgian", 0x10A0, 0x10FF),
    ("hangul", 0x1100, 0x11FF),
    ("khmer", 0x1780, 0x17FF),
    ("hangul", 0x3130, 0x318F),
    ("kana", 0x3040, 0x30FF),
    ("han", 0x3400, 0x4DBF),
    ("han", 0x4E00, 0x9FFF),
    ("hangul", 0xAC00, 0xD7A3),
    ("han", 0xF900, 0xFAFF),
    ("kana", 0xFF66, 0xFF9F),
)
SYLLABIC = frozenset({"hangul", "kana", "han"})
UNSPACED = frozenset({"thai", "lao", "khmer", "myanmar", "tibetan"})
_WORD = re.compile(r"\w+")


@dataclass(frozen=True)
class TextProfile:
    """A sample's facts (see the module docstring).

    Attributes:
        texts: texts in the collection. sampled: texts read.
        scripts: share of the sample's letters per script (largest first; letters outside
            :data:`SCRIPTS` count as "other").
        main_script: the largest. family: "syllabic" | "unspaced" | "spaced".
        space_share: spaces per character.
        mean_chars, p95_chars: text length in characters.
        word_unknown_rate: share of held-out words outside the vocabulary of the most frequent
            ``vocab_size`` words (None when the sample is too small to tell).
    """

    texts: int
    sampled: int
    scripts: dict[str, float]
    main_script: str
    family: str
    space_share: float
    mean_chars: float
    p95_chars: float
    word_unknown_rate: float | None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready (the run's ``config.json``). Every field, as it is."""
        return asdict(self)

    def describe(self) -> str:
        """One line for the log."""
        top = ", ".join(f"{k} {v:.0%}" for k, v in list(self.scripts.items())[:3])
        unk = (
            f", held-out word unknown rate {self.word_unknown_rate:.1%}"
            if self.word_unknown_rate is not None
            else ""
        )
        return (
            f"texts: {self.texts} records, mean {self.mean_chars:.0f} characters; letters: {top} "
            f"({self.family}); spaces {self.space_share:.1%} of characters{unk}"
        )


def _sample(texts: Sequence[str], max_chars: int) -> list[str]:
    """Whole texts spread evenly over the collection, about ``max_chars`` characters in all."""
    n = len(texts)
    if n == 0:
        return []
    mean = max(1.0, float(np.mean([len(texts[i]) for i in range(0, n, max(1, n // 1000))])))
    want = max(1, min(n, int(max_chars / mean)))
    idx = np.linspace(0, n - 1, want).round().astype(np.int64)
    return [texts[int(i)] for i in np.unique(idx)]


def profile_texts(
    texts: Sequence[str],
    *,
    max_chars: int = 2_000_000,
    word_chars: int = 12_000_000,
    vocab_size: int = 20000,
) -> TextProfile:
    """The :class:`TextProfile` of ``texts``: scripts from a sample of about ``max_chars``
    characters, the held-out word unknown rate from one of about ``word_chars`` (a vocabulary
    learned from few texts misses more words than the run's will, so this sample is larger)."""
    sample = _sample(texts, max_chars)
    joined = "\n".join(sample)
    codes = np.frombuffer(joined.encode("utf-32-le"), dtype=np.uint32)
    counts: Counter[str] = Counter()
    counted = 0
    for name, lo, hi in SCRIPTS:
        k = int(np.count_nonzero((codes >= lo) & (codes <= hi)))
        if k:
            counts[name] += k
            counted += k
    letters = sum(1 for ch in joined if ch.isalpha()) if len(joined) < 200_000 else None
    if letters is None:  # large samples: letters outside the table, estimated from a slice
        part = joined[:200_000]
        part_codes = codes[: len(part)]
        inside = sum(
            int(np.count_nonzero((part_codes >= lo) & (part_codes <= hi))) for _, lo, hi in SCRIPTS
        )
        alpha = sum(1 for ch in part if ch.isalpha())
        letters = counted + max(0, alpha - inside) * len(joined) // max(1, len(part))
    other = max(0, letters - counted)
    if other:
        counts["other"] += other
    total = max(1, sum(counts.values()))
    scripts = {k: v / total for k, v in counts.most_common()}
    main = next(iter(scripts), "other")
    syllabic = sum(v for k, v in scripts.items() if k in SYLLABIC)
    unspaced = sum(v for k, v in scripts.items() if k in UNSPACED)
    if syllabic >= 0.5:
        family = "syllabic"
    elif unspaced >= 0.5:
        family = "unspaced"
    else:
        family = "spaced"
    lengths = np.array([len(t) for t in sample], dtype=np.float64) if sample else np.zeros(1)
    unknown = None
    words = _sample(texts, word_chars) if family == "spaced" else []
    if len(words) >= 20:
        cut = len(words) - max(1, len(words) // 10)
        vocab = Counter(w for t in words[:cut] for w in _WORD.findall(t))
        keep = {w for w, _ in vocab.most_common(vocab_size)}
        held = [w for t in words[cut:] for w in _WORD.findall(t)]
        if held:
            unknown = sum(w not in keep for w in held) / len(held)
    return TextProfile(
        texts=len(texts),
        sampled=len(sample),
        scripts=scripts,
        main_script=main,
        family=family,
        space_share=joined.count(" ") / max(1, len(joined)),
        mean_chars=float(lengths.mean()),
        p95_chars=float(np.percentile(lengths, 95)),
        word_unknown_rate=unknown,
    )
