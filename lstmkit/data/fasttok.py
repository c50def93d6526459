"""Word- and character-level tokenization in NumPy that gives exactly the ids of the Hugging Face
tokenizer it stands in for, an order of magnitude faster on large corpora; for the subword kinds
(BPE, Unigram) the same word split, so that the subword model runs once per distinct word.

Why: ``tokenizers`` spends about 1 µs per token in its Rust pipeline (a ``NormalizedString`` with
alignment tracking per split, an ``Encoding`` per text); on one thread, counting the words of the
50,000 IMDB reviews (13M tokens) took 15 s and encoding them 22 s. Here the texts are normalised
in Python (ASCII text is unchanged by NFKC; other text goes through :func:`unicodedata.normalize`),
joined, and cut into tokens in a few vectorised passes over their UTF-8 bytes
(``benchmarks/data_pipeline.py``).

How the ids stay identical to ``tokenizers`` (tests/data/test_fasttok.py checks it on real
sentences in every script, on every assigned Unicode character, and on IMDB rows):

- Only the exact configurations :func:`lstmkit.data.tokenize.train_tokenizer` builds are
  accelerated (normalizer NFKC [+ Lowercase]; the word ``Split`` regex or the ``\\X`` split and a
  WordLevel model, or the Metaspace pre-tokenizer and a BPE / Unigram model; the two special
  tokens); :func:`fast_path_for` returns None for anything else and the caller uses
  ``tokenizers`` itself.
- Normalisation: NFKC of a character assigned in Python's Unicode version is the same in every
  later version (Unicode's normalisation stability policy); a text holding a character Python does
  not know is handed to ``tokenizers`` whole. Lower-casing uses ``tokenizers``' own per-character
  mapping (its ``Lowercase`` maps each character alone: final sigma stays 'σ', unlike
  :meth:`str.lower`), read from it once per distinct character.
- Character classes are read from the ``tokenizers`` pre-tokenizer itself, once per distinct
  character, by tokenizing it between letters, between symbols and doubled: a word character, a
  one-character token (a symbol, an ideograph), a space, or "complex". Complex characters change
  the tokens around them (combining marks, ZWJ, variation selectors, emoji modifiers, regional
  indicators, prepended marks; for ``char`` also CR, which joins a following LF); a text holding
  one is handed to ``tokenizers`` whole. So is, when encoding, a text holding the literal text of a
  special token (``[PAD]``, ``[UNK]``), which ``tokenizers`` matches before normalisation.
- Subwords (``bpe``, ``unigram``): ``tokenizers`` applies the model to each word the Metaspace
  pre-tokenizer cuts (a word is "▁" plus the characters up to the next space or "▁"; a text that
  does not start with one gets a "▁"), one word at a time. Here the words are cut and grouped in
  one compiled pass (:func:`lstmkit.data.bpe.metaspace_words`), each distinct word is encoded
  once, and the ids of every text are gathered from those (:meth:`FastTokenizer.ids`,
  :func:`lstmkit.data.bpe.gather_ids`). BPE is trained and encoded by :mod:`lstmkit.data.bpe`
  (``tokenizers``' model and ids, compiled; the training texts' words keep the ids training left
  them, which are the encoder's). Unigram: its trainer only sees how often each word occurs
  (``UnigramTrainer`` counts the pre-tokenized words, then learns from the counts):
  :func:`train_from_counts` gives it the counted words, each word repeated as often as it
  occurs, with no normaliser to run (``tokenizers``' Unigram trainer differs from itself run to
  run in the last bits of its scores, so the model is the same up to that); the distinct words
  are encoded by one ``tokenizers`` call.
- Token identity ('word'): a token of at most 16 bytes is its two 8-byte words plus its length (exact);
  tokens are grouped by a 64-bit mix of those, and every token is then compared with its group's
  first member, so a hash collision is detected (and resolved by an exact sort), never ignored.
  Longer tokens are grouped by a Python dict. Tokens are grouped within each share of the texts
  (whose arrays stay in the CPU caches), then the distinct tokens of all shares are grouped again
  by the same keys, so that each name is decoded once.
"""

from __future__ import annotations

import itertools
import json
import re
import unicodedata
from collections import Counter
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np

from lstmkit.data import bpe

WORD_PATTERN = r"\p{Han}|[\w&&[^\p{Han}]]+|(?=[^\w\s])\X"
CHAR_PATTERN = r"\X"
SUBWORD_KINDS = ("bpe", "unigram")
METASPACE = bpe.METASPACE  # "▁", the word-boundary mark of the Metaspace pre-tokenizer
_SUBWORD_MODELS = {"bpe": "BPE", "unigram": "Unigram"}

# the BPE model's options lstmkit.data.bpe.Encoder reproduces (train_tokenizer's)
_BPE_OPTIONS = {
    "dropout": None,
    "unk_token": "[UNK]",
    "continuing_subword_prefix": None,
    "end_of_word_suffix": None,
    "fuse_unk": False,
    "byte_fallback": False,
    "ignore_merges": False,
}

SPACE, WORD, SINGLE, COMPLEX = 0, 1, 2, 3
_MIN_FAST_CHARS = 4096  # 'word' batches of fewer characters: tokenizers is faster (see encode)
_SHARE_CHARS = 1 << 22  # 'word': texts are cut into tokens in shares of about 4M characters

_K0 = np.uint64(0x9E3779B97F4A7C15)  # odd 64-bit constants for the token-key mix
_K1 = np.uint64(0xC2B2AE3D27D4EB4F)
_K2 = np.uint64(0x165667B19E3779F9)
# for a token of n <= 16 bytes: the bytes of its first and of its second 8-byte word
_MASK0 = np.array([(1 << (8 * min(n, 8))) - 1 for n in range(17)], dtype=np.uint64)
_MASK1 = np.array([(1 << (8 * min(max(n - 8, 0), 8))) - 1 for n in range(17)], dtype=np.uint64)
# odd multipliers for the rounds of _group (the first 64 bits of the fractional parts of
# square roots of primes, made odd)
_MULTIPLIERS = [np.uint64(int((p**0.5 % 1) * 2**64) | 1) for p in (2, 3, 5, 7, 11, 13, 17, 19)]


@dataclass
class Tokens:
    """Tokens of a batch of texts as codes.

    Attributes:
        names: the token string of each code (``names[codes[k]]`` is token ``k``).
        counts: number of tokens of each text.
        parts: the codes in text order, in pieces ``(renumber, local)``: the codes of a piece are
            ``renumber[local]`` (``local`` itself where ``renumber`` is None). A piece's
            ``renumber`` never maps two local codes to one code (see :func:`_merge_cuts`), so
            the pieces are counted and looked up without joining them (:attr:`codes` joins).
    """

    names: list[str]
    counts: np.ndarray
    parts: list[tuple[np.ndarray | None, np.ndarray]]

    @property
    def codes(self) -> np.ndarray:
        """One integer per token, in text order; equal codes are equal tokens."""
        return _gather_parts(self.parts, None)

    def per_code(self) -> np.ndarray:
        """How often each code occurs."""
        out = np.zeros(len(self.names), dtype=np.int64)
        for renumber, local in self.parts:
            if renumber is None:
                out += np.bincount(local, minlength=len(self.names))
            else:  # renumber is one-to-one: a plain scatter adds each count once
                out[renumber] += np.bincount(local, minlength=renumber.size)
        return out


def _gather_parts(
    parts: Sequence[tuple[np.ndarray | None, np.ndarray]], table: np.ndarray | None
) -> np.ndarray:
    """``table[codes]`` (``codes`` where ``table`` is None) for the codes held in ``parts``."""
    if len(parts) == 1 and parts[0][0] is None:  # 'char' (int32), subwords (int64): one piece
        local = parts[0][1]
        return local.astype(np.int64, copy=False) if table is None else table[local]
    out = np.empty(sum(local.size for _, local in parts), dtype=np.int64)
    at = 0
    for renumber, local in parts:
        lookup = table
        if renumber is not None:
            lookup = renumber if table is None else table[renumber]
        piece = out[at : at + local.size]
        if lookup is None:
            piece[:] = local
        else:  # mode="clip": np.take writes into `out` unbuffered
            np.take(lookup, local, out=piece, mode="clip")
        at += local.size
    return out


def fast_path_for(tokenizer: Any, kind: str, threads: int = 1) -> FastTokenizer | None:
    """A :class:`FastTokenizer` for a ``tokenizers.Tokenizer`` configured exactly as
    ``train_tokenizer`` configures a tokenizer of that ``kind``, else None. ``threads``: 'word'
    cuts large batches into words on that many threads ('bpe' and 'unigram' cut them in one
    compiled pass, :func:`lstmkit.data.bpe.metaspace_words`)."""
    if kind not in ("word", "char", *SUBWORD_KINDS) or tokenizer.normalizer is None:
        return None
    if tokenizer.pre_tokenizer is None or tokenizer.post_processor is not None:
        return None
    norm = json.loads(tokenizer.normalizer.__getstate__())
    pre = json.loads(tokenizer.pre_tokenizer.__getstate__())
    steps = [n.get("type") for n in norm.get("normalizers", [])]
    if norm.get("type") != "Sequence" or steps not in (["NFKC"], ["NFKC", "Lowercase"]):
        return None
    if kind in SUBWORD_KINDS:
        model = json.loads(tokenizer.model.__getstate__())
        want_pre = {
            "type": "Metaspace",
            "replacement": METASPACE,
            "prepend_scheme": "always",
            "split": True,
        }
        if pre != want_pre or model.get("type") != _SUBWORD_MODELS[kind]:
            return None
        if kind == "bpe" and {k: v for k, v in model.items() if k in _BPE_OPTIONS} != _BPE_OPTIONS:
            return None  # lstmkit.data.bpe encodes the options train_tokenizer sets only
        return FastTokenizer(tokenizer, kind, steps == ["NFKC", "Lowercase"], threads)
    want = ("Removed", True, WORD_PATTERN) if kind == "word" else ("Isolated", False, CHAR_PATTERN)
    got = (pre.get("behavior"), pre.get("invert"), pre.get("pattern", {}).get("Regex"))
    if pre.get("type") != "Split" or got != want:
        return None
    return FastTokenizer(tokenizer, kind, steps == ["NFKC", "Lowercase"], threads)


def train_from_counts(tokenizer: Any, trainer: Any, counts: Mapping[str, int]) -> None:
    """Train ``tokenizer``'s model with ``trainer`` (a ``BpeTrainer`` / ``UnigramTrainer``) on
    pre-tokenized words and how often each occurs, exactly as ``train_from_iterator`` would on
    texts that give those counts: these trainers count the words their tokenizer's normaliser and
    pre-tokenizer give, then learn from the counts alone. Here the trainer gets each word repeated
    ``count`` times, separated by spaces, with no normaliser and a split at spaces (a word of
    ``counts`` must hold no space: the Metaspace pre-tokenizer never gives one). The tokenizer's
    normaliser and pre-tokenizer are put back afterwards, also when training fails."""
    from tokenizers import pre_tokenizers

    normalizer, pre_tokenizer = tokenizer.normalizer, tokenizer.pre_tokenizer
    tokenizer.normalizer = None
    tokenizer.pre_tokenizer = pre_tokenizers.CharDelimiterSplit(" ")
    try:
        tokenizer.train_from_iterator(
            ((word + " ") * n for word, n in counts.items() if n > 0), trainer, len(counts)
        )
    finally:
        tokenizer.normalizer, tokenizer.pre_tokenizer = normalizer, pre_tokenizer


def _distinct_chars(texts: Sequence[str]) -> list[str]:
    """The distinct characters of ``texts`` (one vectorised pass over their code points)."""
    if not texts:
        return []
    cps = np.frombuffer("".join(texts).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    return [chr(c) for c in np.flatnonzero(np.bincount(cps))]


def _char_class(pieces: Any, c: str, kind: str) -> int:
    """How the pre-tokenizer treats ``c``, read from the pre-tokenizer itself."""

    def toks(s: str) -> list[str]:
        return [p for p, _ in pieces(s)]

    between_letters, between_symbols, doubled = toks(f"a{c}a"), toks(f"!{c}!"), toks(c + c)
    if kind in SUBWORD_KINDS:  # Metaspace: a space or "▁" starts a word, all else is inside one
        m = METASPACE
        if between_letters == [f"{m}a{c}a"] and doubled == [m + c + c] and c not in (" ", m):
            return WORD
        if between_letters == [m + "a", m + "a"] and doubled == [m, m] and c in (" ", m):
            return SPACE
        return COMPLEX
    if kind == "char":
        alone = between_letters == ["a", c, "a"] and between_symbols == ["!", c, "!"]
        return SINGLE if alone and doubled == [c, c] and toks(c + "\n") == [c, "\n"] else COMPLEX
    if between_letters == [f"a{c}a"] and between_symbols == ["!", c, "!"] and doubled == [c + c]:
        return WORD
    if between_letters == ["a", c, "a"] and between_symbols == ["!", c, "!"] and doubled == [c, c]:
        return SINGLE
    if between_letters == ["a", "a"] and between_symbols == ["!", "!"] and doubled == []:
        return SPACE
    return COMPLEX


@dataclass
class Batch:
    """A batch of texts cut into tokens: the texts the fast path handles (``fast``, their tokens
    in ``tokens``) and those ``tokenizers`` handles whole (``slow``)."""

    texts: Sequence[str]
    fast: list[int]
    slow: list[int]
    tokens: Tokens
    # subwords: the model's ids of each distinct token, when already known (``(ids, offsets)``:
    # token k's are ids[offsets[k]:offsets[k + 1]]; the BPE trainer leaves them)
    word_ids: tuple[np.ndarray, np.ndarray] | None = None


class FastTokenizer:
    """Counting and encoding for a word / char / bpe / unigram ``tokenizers.Tokenizer`` (see the
    module docstring); build it with :func:`fast_path_for`. Per-character facts read from the
    tokenizer are kept on the instance (they never change for one tokenizer)."""

    def __init__(self, tokenizer: Any, kind: str, lowercase: bool, threads: int = 1) -> None:
        from tokenizers import normalizers

        if threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")
        self.threads = threads
        self.tokenizer = tokenizer
        self.kind = kind
        self.lowercase = lowercase
        self._pieces = tokenizer.pre_tokenizer.pre_tokenize_str
        self._hf_lower = normalizers.Lowercase().normalize_str
        self._hf_nfkc = normalizers.NFKC().normalize_str
        self._nfkc_same: dict[str, bool] = {}
        self._class: dict[str, int] = {}
        self._lower: dict[int, str] = {}  # tokenizers' lower case of each character seen
        self._lower_differs: set[str] = {"\u03a3"}  # str.lower() differs (Σ: final sigma)
        self._learn([chr(i) for i in range(128)])
        if any(self._class[chr(i)] == COMPLEX for i in range(128) if chr(i) != "\r"):
            raise RuntimeError("tokenizers splits an ASCII character in an unexpected way")
        lut = np.full(256, WORD, dtype=np.uint8)  # bytes >= 0x80: inside a word (see _word_cut)
        for i in range(128):
            lut[i] = min(self._class[chr(i)], SINGLE)  # \r (char): its texts go to tokenizers
        self._byte_class = lut
        self._lookup_cache: tuple[int, np.ndarray, dict[str, int]] | None = None
        self._bpe_cache: tuple[int, bpe.Encoder] | None = None
        self._patterns: tuple[int, re.Pattern[str] | None, re.Pattern[str] | None] | None = None

    # -- characters -------------------------------------------------------------------------

    def _learn(self, chars: Sequence[str]) -> None:
        for c in chars:
            if c not in self._class:
                self._class[c] = _char_class(self._pieces, c, self.kind)

    def _learn_nfkc(self, chars: Sequence[str]) -> None:
        # Python's NFKC of a text of these characters equals tokenizers' when each one alone
        # gives the same, and a combining mark is old enough (Unicode 3.2) for both to know its
        # combining class (canonical reordering); no new composition is ever added to NFKC.
        # One call for all: NFKC never makes or moves a "\n", so "\n" keeps them apart.
        new = [c for c in chars if c not in self._nfkc_same and c != "\n"]
        if not new:
            return
        joined = "\n".join(new)
        ours = unicodedata.normalize("NFKC", joined).split("\n")
        theirs = self._hf_nfkc(joined).split("\n")
        for c, a, b in zip(new, ours, theirs, strict=True):
            self._nfkc_same[c] = a == b and (
                unicodedata.combining(c) == 0 or unicodedata.ucd_3_2_0.category(c) != "Cn"
            )

    def _learn_lower(self, chars: Sequence[str]) -> None:
        for c in chars:
            if ord(c) not in self._lower:
                low = self._lower[ord(c)] = self._hf_lower(c)
                if low != c.lower():
                    self._lower_differs.add(c)

    def _any_of(self, chars: Sequence[str]) -> re.Pattern[str] | None:
        return re.compile("[" + "".join(map(re.escape, chars)) + "]") if chars else None

    def normalize(self, texts: Sequence[str]) -> tuple[list[str], list[int]]:
        """``(normalised texts, indices of texts that must go through tokenizers whole)``; a
        text in the second list keeps its original in the first."""
        out = [t.lower() for t in texts] if self.lowercase else list(texts)
        slow: set[int] = set()
        others: list[int] = []
        cr_complex = self._class["\r"] == COMPLEX  # char: CR LF is one token
        for i, t in enumerate(texts):
            if not t.isascii():
                others.append(i)
            elif cr_complex and "\r" in t:
                slow.add(i)
        if others:
            raw = _distinct_chars([texts[i] for i in others])
            # a character Python's Unicode tables lack: tokenizers handles the text whole
            lacking = [c for c in raw if unicodedata.category(c) in ("Cn", "Cs")]
            raw = [c for c in raw if unicodedata.category(c) not in ("Cn", "Cs")]
            unknown = self._any_of(lacking)
            if unknown is not None:
                slow.update(i for i in others if unknown.search(texts[i]))
            others = [i for i in others if i not in slow]
            # a character whose NFKC may differ between Python's and tokenizers' Unicode
            # versions: tokenizers' NFKC for that text
            self._learn_nfkc(raw)
            newer = self._any_of([c for c in raw if not self._nfkc_same.get(c, c == "\n")])
            norm = [
                self._hf_nfkc(texts[i])
                if newer is not None and newer.search(texts[i])
                else unicodedata.normalize("NFKC", texts[i])
                for i in others
            ]
            # a text NFKC leaves alone (returned as is) has no character beyond `raw`
            changed = [t for i, t in zip(others, norm, strict=True) if t is not texts[i]]
            chars = sorted(set(raw) | set(_distinct_chars(changed)))
            if self.lowercase:
                self._learn_lower(chars)
                differs = self._any_of([c for c in chars if c in self._lower_differs])
                norm = [
                    t.translate(self._lower)
                    if differs is not None and differs.search(t)
                    else t.lower()
                    for t in norm
                ]
                chars = sorted({ch for c in chars for ch in self._lower[ord(c)]})
            self._learn(chars)
            bad = self._any_of([c for c in chars if self._class[c] == COMPLEX])
            for i, t in zip(others, norm, strict=True):
                if bad is not None and bad.search(t):
                    slow.add(i)
                else:
                    out[i] = t
        for i in slow:
            out[i] = texts[i]
        return out, sorted(slow)

    # -- tokens -----------------------------------------------------------------------------

    def split(self, texts: Sequence[str]) -> Batch:
        """Normalise ``texts`` and cut those the fast path handles into tokens."""
        norm, slow = self.normalize(texts)
        if slow:
            slow_set = set(slow)
            fast = [i for i in range(len(texts)) if i not in slow_set]
            norm = [norm[i] for i in fast]
        else:
            fast = list(range(len(texts)))
        if self.kind == "char":  # few passes over the code points: one piece is faster
            return Batch(texts, fast, slow, self._char_tokens(norm))
        if self.kind in SUBWORD_KINDS:  # one compiled pass (lstmkit.data.bpe)
            return Batch(texts, fast, slow, self._subword_tokens(norm))
        cut = self._word_cut
        # shares of about _SHARE_CHARS characters: the byte-level passes then run on arrays
        # that stay in the CPU caches; NumPy releases the GIL in its loops, so with `threads`
        # the shares run side by side. The tokens of all shares are then grouped at once (one
        # hashing pass over all their keys; a name is decoded once, not once per share).
        size = np.cumsum(np.fromiter(map(len, norm), dtype=np.int64, count=len(norm)))
        total = int(size[-1]) if size.size else 0
        bounds = np.searchsorted(size, np.arange(1, total // _SHARE_CHARS + 1) * _SHARE_CHARS)
        bounds = np.unique(np.concatenate(([0], bounds, [len(norm)])))
        chunks = [norm[x:y] for x, y in itertools.pairwise(bounds.tolist())] or [norm]
        self._word_patterns()  # built once, before the threads read it
        if self.threads > 1 and len(chunks) > 1:
            with ThreadPoolExecutor(min(self.threads, len(chunks))) as pool:
                cuts = list(pool.map(cut, chunks))
        else:
            cuts = [cut(chunk) for chunk in chunks]
        parts, names = _merge_cuts(cuts)
        counts = np.concatenate([c.counts for c in cuts])
        return Batch(texts, fast, slow, Tokens(names, counts, parts))

    def _char_tokens(self, texts: Sequence[str]) -> Tokens:
        counts = np.fromiter(map(len, texts), dtype=np.int64, count=len(texts))
        cps = np.frombuffer("".join(texts).encode("utf-32-le"), dtype=np.uint32)
        present = np.flatnonzero(np.bincount(cps)) if cps.size else np.zeros(0, np.int64)
        code_of = np.zeros(int(present[-1]) + 1 if present.size else 1, dtype=np.int32)
        code_of[present] = np.arange(present.size)
        return Tokens([chr(c) for c in present], counts, [(None, code_of[cps])])

    def _subword_tokens(self, texts: Sequence[str]) -> Tokens:
        # Metaspace: every " " and "▁" starts a word, and so does the start of a text (a "▁" is
        # put there unless one is); the words of all texts are then the pieces of their
        # concatenation that start at a space, each space written as the "▁" it stands for
        parts = [
            t if t[:1] in (" ", METASPACE) or not t else " " + t
            for t in (t.replace(METASPACE, " ") if METASPACE in t else t for t in texts)
        ]
        sizes = np.fromiter(
            (len(t) if t.isascii() else len(t.encode("utf-8")) for t in parts),
            dtype=np.int64,
            count=len(parts),
        )
        names, codes, counts = bpe.metaspace_words("".join(parts).encode("utf-8"), sizes)
        return Tokens(names, counts, [(None, codes)])

    def _word_patterns(self) -> tuple[re.Pattern[str] | None, re.Pattern[str] | None]:
        """The non-ASCII one-character tokens and spaces known so far, as two regexes."""
        if self._patterns is None or self._patterns[0] != len(self._class):
            singles = [c for c, k in self._class.items() if k == SINGLE and ord(c) >= 128]
            spaces = [c for c, k in self._class.items() if k == SPACE and ord(c) >= 128]
            self._patterns = (len(self._class), self._any_of(singles), self._any_of(spaces))
        return self._patterns[1], self._patterns[2]

    def _word_cut(self, texts: Sequence[str]) -> _Cut:
        # non-ASCII one-character tokens get spaces around them and non-ASCII spaces become
        # " ", so that below every byte >= 0x80 belongs to a run of word bytes
        if not texts:
            return _cut_keys(bytes(16), _EMPTY, _EMPTY, _EMPTY)
        single_re, space_re = self._word_patterns()
        parts = list(texts)
        for i, t in enumerate(parts):
            if not t.isascii():
                if space_re is not None:
                    t = space_re.sub(" ", t)
                if single_re is not None:
                    t = single_re.sub(r" \g<0> ", t)
                parts[i] = t
        # the texts joined by NUL, which then counts as a space, when no text holds a NUL;
        # else by LF (a space), and the byte size of each text tells where it starts
        joined = "\x00".join(parts)
        nul_free = joined.count("\x00") == len(parts) - 1
        if not nul_free:
            joined = "\n".join(parts)
        data = joined.encode("utf-8") + b"\n" + bytes(16)  # 16 zeros: see _cut_keys
        b = np.frombuffer(data, dtype=np.uint8, count=len(data) - 16)
        lut = self._byte_class.copy()
        lut[0] = SPACE if nul_free else lut[0]
        cls = lut[b]
        word = cls == WORD
        cont = word[1:] & word[:-1]  # byte k+1 continues the word of byte k
        np.logical_not(cont, out=cont)
        start = cls != SPACE
        end = start.copy()
        start[1:] &= cont
        end[:-1] &= cont
        starts = np.flatnonzero(start)
        lengths = np.flatnonzero(end) + 1 - starts
        row_starts = np.zeros(len(parts), dtype=np.int64)
        if nul_free:
            row_starts[1:] = np.flatnonzero(b == 0) + 1
        else:
            sizes = np.fromiter(
                (len(t) if t.isascii() else len(t.encode("utf-8")) for t in parts[:-1]),
                dtype=np.int64,
                count=len(parts) - 1,
            )
            np.cumsum(sizes + 1, out=row_starts[1:])
        counts = np.diff(np.append(np.searchsorted(starts, row_starts), starts.size))
        return _cut_keys(data, starts, lengths, counts)

    # -- public -----------------------------------------------------------------------------

    def count(self, batch: Batch) -> Counter[str]:
        """How often each token occurs in the batch (what the WordLevel trainer counts)."""
        toks = batch.tokens
        per_code = toks.per_code()
        counts: Counter[str] = Counter(
            {toks.names[c]: int(per_code[c]) for c in np.flatnonzero(per_code)}
        )
        counts.update(self._slow_counts(batch))
        return counts

    def word_counts(self, batch: Batch) -> tuple[list[str], np.ndarray]:
        """:meth:`count` as ``(tokens, counts)`` (the same tokens and counts; no dict is built
        for the tokens of the fast texts, and a token may have count 0)."""
        toks = batch.tokens
        names, counts = list(toks.names), toks.per_code()
        slow = self._slow_counts(batch)
        if slow:
            index = {n: i for i, n in enumerate(names)}
            new = [n for n in slow if n not in index]
            names += new
            counts = np.concatenate([counts, np.zeros(len(new), dtype=np.int64)])
            index.update((n, len(toks.names) + k) for k, n in enumerate(new))
            for name, n in slow.items():
                counts[index[name]] += n
        return names, counts

    def _slow_counts(self, batch: Batch) -> Counter[str]:
        """The tokens of the texts ``tokenizers`` cuts itself (``batch.slow``), counted."""
        counts: Counter[str] = Counter()
        normalize = self.tokenizer.normalizer.normalize_str
        for i in batch.slow:
            counts.update(p for p, _ in self._pieces(normalize(batch.texts[i])))
        return counts

    def _lookup(self) -> tuple[np.ndarray, dict[str, int]]:
        size = self.tokenizer.get_vocab_size()
        if self._lookup_cache is None or self._lookup_cache[0] != size:
            vocab = self.tokenizer.get_vocab()  # builds a new dict: once per vocabulary
            unk = vocab["[UNK]"]
            single = np.full(0x110000 if self.kind == "char" else 1, unk, dtype=np.int64)
            if self.kind == "char":
                for tok, i in vocab.items():
                    if len(tok) == 1:
                        single[ord(tok)] = i
            self._lookup_cache = (size, single, vocab)
        return self._lookup_cache[1], self._lookup_cache[2]

    def _bpe_encoder(self) -> bpe.Encoder:
        size = self.tokenizer.get_vocab_size()
        if self._bpe_cache is None or self._bpe_cache[0] != size:
            model = json.loads(self.tokenizer.model.__getstate__())
            merges = [m if isinstance(m, list) else m.split(" ", 1) for m in model["merges"]]
            encoder = bpe.Encoder(model["vocab"], [(a, b) for a, b in merges], model["unk_token"])
            self._bpe_cache = (size, encoder)
        return self._bpe_cache[1]

    def _subword_ids(self, names: list[str]) -> tuple[np.ndarray, np.ndarray]:
        """``(ids, offsets)``: the model's ids of word ``k`` of ``names`` are
        ``ids[offsets[k] : offsets[k + 1]]``. BPE: :class:`lstmkit.data.bpe.Encoder` (compiled;
        the same ids). Unigram: one ``tokenizers`` call for all words: a tokenizer with the
        trained model alone (no normaliser, no special tokens) and a split at spaces encodes
        them joined by spaces; ``word_ids`` tells which word each id belongs to."""
        from tokenizers import Tokenizer, pre_tokenizers

        offsets = np.zeros(len(names) + 1, dtype=np.int64)
        if not names:
            return np.zeros(0, np.int64), offsets
        if self.kind == "bpe":
            return self._bpe_encoder().encode(names)
        bare = Tokenizer(self.tokenizer.model)
        bare.pre_tokenizer = pre_tokenizers.CharDelimiterSplit(" ")
        enc = bare.encode(" ".join(names))
        ids = np.asarray(enc.ids, dtype=np.int64)
        words = np.asarray(enc.word_ids, dtype=np.int64)
        np.cumsum(np.bincount(words, minlength=len(names)), out=offsets[1:])
        return ids, offsets

    def ids(self, batch: Batch) -> list[np.ndarray]:
        """int64 ids of every text of the batch, exactly as ``tokenizers`` encodes them."""
        toks = batch.tokens
        if self.kind in SUBWORD_KINDS:
            # every word's ids, gathered from those of its distinct word
            if batch.word_ids is not None:
                word_ids, offsets = batch.word_ids
            else:
                word_ids, offsets = self._subword_ids(toks.names)
            flat, ends = bpe.gather_ids(toks.codes, toks.counts, word_ids, offsets)
            cuts = ends[:-1]
        else:
            single, vocab = self._lookup()
            unk = vocab["[UNK]"]
            if self.kind == "char":
                cps = np.fromiter(map(ord, toks.names), dtype=np.int64, count=len(toks.names))
                ids_of = single[cps]
            else:
                get = vocab.get
                ids_of = np.fromiter((get(n, unk) for n in toks.names), np.int64, len(toks.names))
            flat = _gather_parts(toks.parts, ids_of)
            cuts = np.cumsum(toks.counts)[:-1]
        # each text's ids as a view of `flat` (slices: np.split takes ~2 us a piece)
        bounds = [0, *np.asarray(cuts).tolist(), flat.size]
        pieces = [flat[a:b] for a, b in itertools.pairwise(bounds)] if batch.fast else []
        if len(pieces) == len(batch.texts):
            out = pieces
        else:
            out = [np.zeros(0, np.int64)] * len(batch.texts)
            for i, ids in zip(batch.fast, pieces, strict=True):
                out[i] = ids
        # tokenizers matches the special tokens' text before normalising: those texts go to it
        slow = sorted(
            set(batch.slow) | {i for i, t in enumerate(batch.texts) if "[UNK]" in t or "[PAD]" in t}
        )
        if slow:
            encodings = self.tokenizer.encode_batch_fast([batch.texts[i] for i in slow])
            for i, enc in zip(slow, encodings, strict=True):
                out[i] = np.asarray(enc.ids, dtype=np.int64)
        return out

    def encode(self, texts: Sequence[str]) -> list[np.ndarray]:
        """int64 ids of every text, exactly as ``tokenizers`` encodes them (no truncation).
        A small 'word' / 'bpe' / 'unigram' batch (under ``_MIN_FAST_CHARS`` characters, e.g. one
        request to the server) goes to ``tokenizers`` directly: the same ids, sooner than the
        vectorised passes ('word': one 500-character review: 0.09 ms there, 0.23 ms here; 8
        reviews: 5.5 ms, 2.8 ms)."""
        if self.kind != "char" and sum(map(len, texts)) < _MIN_FAST_CHARS:
            encodings = self.tokenizer.encode_batch_fast(list(texts))
            return [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        return self.ids(self.split(texts))


@dataclass
class _Cut:
    """The tokens of a share of texts, grouped within the share (:func:`_cut_keys`): ``codes``
    numbers the distinct tokens of the share, short ones (under 8 bytes) first, then the mid
    ones (8 to 16 bytes), then the long ones. Each distinct token is kept as its key (short: the
    exact 64-bit ``key``; mid: its two 8-byte words ``w0``, ``w1`` and its length; long: its
    text) and where it is in ``data`` (``start``, ``length``), so that the shares can be merged
    without decoding a token twice (:func:`_merge_cuts`)."""

    data: bytes
    counts: np.ndarray  # tokens of each text
    codes: np.ndarray  # one per token, in text order
    key: np.ndarray  # short distinct tokens
    short_start: np.ndarray
    short_len: np.ndarray
    w0: np.ndarray  # mid distinct tokens
    w1: np.ndarray
    mid_start: np.ndarray
    mid_len: np.ndarray
    long_names: list[str]


_EMPTY = np.zeros(0, dtype=np.int64)
_EMPTY_KEYS = np.zeros(0, dtype=np.uint64)


def _cut_keys(data: bytes, starts: np.ndarray, lengths: np.ndarray, counts: np.ndarray) -> _Cut:
    """The tokens ``data[s : s + n]`` (``data`` ends in 16 zero bytes) grouped (see the module
    docstring); the hashing runs on one share at a time, whose arrays stay in the CPU caches."""
    codes = np.empty(starts.size, dtype=np.int64)
    if starts.size == 0:
        e, z = _EMPTY, _EMPTY_KEYS
        return _Cut(data, counts, codes, z, e, e, z, z, e, e, [])
    # element k of `words` is the 8 bytes from byte k on (little-endian); data ends in 16 zeros
    words = np.ndarray((len(data) - 7,), dtype="<u8", buffer=data, offset=0, strides=(1,))
    # up to 7 bytes: the bytes and the length in one exact 64-bit key
    short = lengths < 8
    every = bool(short.all())
    s, n = (starts, lengths) if every else (starts[short], lengths[short])
    key = words[s] & _MASK0[n]
    key |= n.astype(np.uint64) << np.uint64(56)
    first, inverse = _group(key)
    key, short_start, short_len = key[first], s[first], n[first]
    if every:
        e, z = _EMPTY, _EMPTY_KEYS
        return _Cut(data, counts, inverse, key, short_start, short_len, z, z, e, e, [])
    codes[short] = inverse
    groups = first.size
    # 8 to 16 bytes: a 64-bit mix of both words and the length, checked against the group's
    # first member (a collision is then grouped exactly)
    mid = ~short & (lengths <= 16)
    w0 = w1 = _EMPTY_KEYS
    mid_start = mid_len = _EMPTY
    if mid.any():
        s, n = starts[mid], lengths[mid]
        w0, w1, first, inverse = _group_mid(words[s], words[s + 8] & _MASK1[n], n)
        codes[mid] = inverse + groups
        mid_start, mid_len = s[first], n[first]
        groups += first.size
    long = lengths > 16
    long_names: list[str] = []
    if long.any():  # rare: a Python dict
        index: dict[str, int] = {}
        long_codes = []
        for a, m in zip(starts[long].tolist(), lengths[long].tolist(), strict=True):
            name = data[a : a + m].decode("utf-8")
            code = index.get(name)
            if code is None:
                code = index[name] = groups + len(long_names)
                long_names.append(name)
            long_codes.append(code)
        codes[long] = long_codes
    return _Cut(
        data, counts, codes, key, short_start, short_len, w0, w1, mid_start, mid_len, long_names
    )


def _group_mid(
    w0: np.ndarray, w1: np.ndarray, n: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """``(w0, w1 of each group, first member of each group, group of each element)`` for the
    tokens of 8 to 16 bytes given by their two 8-byte words and their length: grouped by a
    64-bit mix of the three, then checked against each group's first member (a collision is
    then grouped exactly, by a sort)."""
    key = w0 * _K0
    key ^= w1 * _K1
    key ^= n.astype(np.uint64) * _K2
    first, inverse = _group(key)
    if not (
        np.array_equal(w0[first][inverse], w0)
        and np.array_equal(w1[first][inverse], w1)
        and np.array_equal(n[first][inverse], n)
    ):
        exact = np.stack([w0, w1, n.astype(np.uint64)], axis=1)
        _, first, inverse = np.unique(exact, axis=0, return_index=True, return_inverse=True)
        inverse = inverse.reshape(-1)
    return w0[first], w1[first], first, inverse


def _merge_cuts(
    cuts: Sequence[_Cut],
) -> tuple[list[tuple[np.ndarray | None, np.ndarray]], list[str]]:
    """The codes (:attr:`Tokens.parts`: a piece per cut) and names of the tokens of ``cuts``:
    the distinct tokens of all shares grouped again by their keys (a few hundred thousand, not
    every token), each name decoded once."""
    names: list[str] = []
    pieces = np.arange(len(cuts))

    def cat(parts: list[np.ndarray]) -> np.ndarray:
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    def decode(piece: np.ndarray, starts: np.ndarray, lengths: np.ndarray) -> list[str]:
        datas = [c.data for c in cuts]
        return [
            datas[p][a : a + m].decode("utf-8")
            for p, a, m in zip(piece.tolist(), starts.tolist(), lengths.tolist(), strict=True)
        ]

    # short: the key is exact
    key = cat([c.key for c in cuts])
    piece = np.repeat(pieces, [c.key.size for c in cuts])
    first, short_code = _group(key)
    names += decode(piece[first], cat([c.short_start for c in cuts])[first],
                    cat([c.short_len for c in cuts])[first])  # fmt: skip
    # mid
    mid_len = cat([c.mid_len for c in cuts])
    mid_code = _EMPTY
    if mid_len.size:
        piece = np.repeat(pieces, [c.mid_len.size for c in cuts])
        w0, w1 = cat([c.w0 for c in cuts]), cat([c.w1 for c in cuts])
        _, _, first, mid_code = _group_mid(w0, w1, mid_len)
        mid_code = mid_code + len(names)
        names += decode(piece[first], cat([c.mid_start for c in cuts])[first], mid_len[first])
    # long: by name
    index: dict[str, int] = {}
    long_code = []
    for c in cuts:
        for name in c.long_names:
            code = index.get(name)
            if code is None:
                code = index[name] = len(names)
                names.append(name)
            long_code.append(code)
    # each share's renumbering: its short, mid and long distinct tokens in that order (one to
    # one: the distinct tokens of a share are distinct tokens of the batch)
    parts: list[tuple[np.ndarray | None, np.ndarray]] = []
    ks = ms = ls = 0
    for c in cuts:
        a, b, d = c.key.size, c.mid_len.size, len(c.long_names)
        renumber = np.concatenate(
            (
                short_code[ks : ks + a],
                mid_code[ms : ms + b],
                np.asarray(long_code[ls : ls + d], np.int64),
            )
        )
        ks, ms, ls = ks + a, ms + b, ls + d
        parts.append((renumber, c.codes))
    return parts, names


def _group(key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """``(index of one member of each group, group of each element)`` for the equal values of
    ``key``: hashing into a table of at most 2^20 slots, one key wins each slot (the last one
    written there), the others go to the next round with another multiplier. No sort: a few
    passes over ``key`` in the first round, far fewer elements in the next ones."""
    inverse = np.empty(key.size, dtype=np.int64)
    firsts: list[np.ndarray] = [np.zeros(0, dtype=np.int64)]
    todo: np.ndarray | None = None  # None: every element (the first round)
    groups = 0
    for mult in _MULTIPLIERS:
        k = key if todo is None else key[todo]
        if k.size == 0:
            break
        # the first round: a table of about n/8 slots (a share of ~800k tokens holds ~20k
        # distinct ones; a table that stays in the CPU caches is 2-3x faster than one slot per
        # token); the later ones, on the keys that lost a slot: about 2 slots per key
        bits = int(k.size).bit_length() + (-3 if todo is None else 1)
        bits = min(20, max(8, bits))
        slot = k * mult
        slot >>= np.uint64(64 - bits)
        slot = slot.view(np.int64)
        owner = np.full(1 << bits, -1, dtype=np.int64)
        owner[slot] = np.arange(k.size)  # one of the writers of each slot owns it
        used = owner >= 0
        winner = np.zeros(1 << bits, dtype=np.uint64)
        winner[used] = k[owner[used]]
        won = winner[slot] == k
        gid = np.cumsum(used) - 1 + groups
        positions = owner[used] if todo is None else todo[owner[used]]
        firsts.append(positions)
        if todo is None:
            inverse[:] = gid[slot]
            todo = np.flatnonzero(~won)
        else:
            inverse[todo[won]] = gid[slot[won]]
            todo = todo[~won]
        groups += positions.size
    if todo is None:
        todo = np.arange(key.size)
    if todo.size:  # not reached in practice: finish with a sort
        order = np.argsort(key[todo])
        ordered = key[todo][order]
        new = np.empty(todo.size, dtype=bool)
        new[0] = True
        np.not_equal(ordered[1:], ordered[:-1], out=new[1:])
        inverse[todo[order]] = np.cumsum(new) - 1 + groups
        firsts.append(todo[order][new])
    return np.concatenate(firsts), inverse
