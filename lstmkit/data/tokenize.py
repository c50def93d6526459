"""Tokenizers for your own texts, in any script, built on Hugging Face ``tokenizers``.

Four kinds, all trained on the training split only and saved as ``tokenizer.json`` next to the
weights (the library's own JSON format; nothing pickled):

- ``word``: Unicode NFKC, then words = runs of letters/digits (``\\w``, any script); every other
  visible character (punctuation, an emoji with its modifiers and ZWJ sequence) is a token of its
  own; each Han ideograph is a word of its own (Chinese and Japanese do not separate words with
  spaces; BERT's rule), kana runs stay together. Hangul words stay whole (Korean separates words
  with spaces).
- ``char``: NFKC, then one token per grapheme cluster (``\\X``: a letter with its combining marks,
  an emoji with skin tone or ZWJ sequence), spaces included; decoding gives the text back.
- ``bpe`` / ``unigram``: subwords learnt from the training texts (SentencePiece-style ``▁`` word
  boundary marks), decoding gives the text back; a character never seen in training reads as
  ``[UNK]``.

Speed: ``word`` and ``char`` are counted and encoded by :mod:`lstmkit.data.fasttok` (NumPy over
the UTF-8 bytes of all texts; the same vocabulary, ``tokenizer.json`` and ids as ``tokenizers``,
tested), and :func:`train_and_encode` cuts the training texts once for both; ``fast=False`` uses
``tokenizers`` throughout. ``bpe`` learns and encodes with :mod:`lstmkit.data.bpe` (compiled;
``tokenizers``' ``BpeTrainer`` model and BPE ids, tested), ``unigram`` with ``tokenizers``' own
trainer fed the words that fasttok counted (the same model up to that trainer's own run-to-run
variation); both encode each distinct word once (the same ids as ``tokenizers``).

Ids: 0 is ``[PAD]`` (the embedding's padding row), 1 is ``[UNK]``; ``vocab_size`` counts both.
``vocab_size`` is an upper bound for every kind (``bpe`` keeps the ``vocab_size - 2`` most frequent
characters as its alphabet). ``min_frequency`` drops rarer words (``word``, ``char``) or merges
(``bpe``); Unigram has no such setting and refuses one.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstmkit.data import bpe
from lstmkit.data.fasttok import Batch, FastTokenizer, fast_path_for, train_from_counts
from lstmkit.errors import EmptyEncodingError
from lstmkit.files import atomic_write_text

TokenizerKind = Literal["word", "char", "bpe", "unigram"]
TOKENIZER_KINDS: tuple[str, ...] = ("word", "char", "bpe", "unigram")
PAD = "[PAD]"
UNK = "[UNK]"
SPECIALS = [PAD, UNK]
TOKENIZER_FILE = "tokenizer.json"


def train_tokenizer(
    texts: Iterable[str],
    kind: TokenizerKind = "word",
    *,
    vocab_size: int = 20000,
    min_frequency: int = 1,
    lowercase: bool = False,
    fast: bool = True,
    threads: int = 1,
) -> TextTokenizer:
    """Learn a ``kind`` tokenizer from ``texts`` (give the training split only).

    Args:
        texts: the training texts.
        kind: 'word' | 'char' | 'bpe' | 'unigram' (see the module docstring).
        vocab_size: at most this many ids, ``[PAD]`` and ``[UNK]`` included.
        min_frequency: keep a word / character / merge seen at least this often (not 'unigram').
        lowercase: lower-case after NFKC (Unicode-aware; scripts without case are unchanged).
        fast: for 'word' and 'char', count the tokens with :mod:`lstmkit.data.fasttok` (the
            same vocabulary as the ``tokenizers`` trainer, ~10x faster) and encode with it
            too; for 'bpe' and 'unigram', cut the texts into words with it and encode each
            distinct word once ('bpe': trained and encoded by :mod:`lstmkit.data.bpe`, the
            same model and ids; 'unigram': ``tokenizers``' trainer on the word counts);
            False: ``tokenizers``' own trainer and encoder throughout (the reference the fast
            path is tested against).
        threads: with ``fast``, 'word' cuts large batches into words on this many threads
            ('bpe' and 'unigram': one compiled pass).
    """
    return _train(texts, kind, vocab_size, min_frequency, lowercase, fast, threads)[0]


def _train(
    texts: Iterable[str],
    kind: TokenizerKind,
    vocab_size: int,
    min_frequency: int,
    lowercase: bool,
    fast: bool,
    threads: int = 1,
) -> tuple[TextTokenizer, Batch | None]:
    from tokenizers import Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers

    if kind not in TOKENIZER_KINDS:
        raise ValueError(f"tokenizer must be one of {', '.join(TOKENIZER_KINDS)}, got {kind!r}")
    if vocab_size < len(SPECIALS) + 1:
        raise ValueError(f"vocab_size must be at least {len(SPECIALS) + 1}, got {vocab_size}")
    if min_frequency < 1:
        raise ValueError(f"min_frequency must be >= 1, got {min_frequency}")
    if kind == "unigram" and min_frequency != 1:
        raise ValueError(
            "min_frequency does not apply to the unigram tokenizer (it prunes by likelihood); "
            "leave it at 1 or use tokenizer 'bpe'"
        )
    limit_alphabet = vocab_size - len(SPECIALS)  # bpe (see below)
    norm: list[Any] = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    tok: Tokenizer
    trainer: Any
    if kind in ("word", "char"):
        tok = Tokenizer(models.WordLevel(unk_token=UNK))
        trainer = trainers.WordLevelTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            special_tokens=SPECIALS,
            show_progress=False,
        )
        if kind == "word":
            # one regex, the pieces it matches are the words (invert=True; whitespace between
            # them is dropped): a Han ideograph alone (Chinese / Japanese kanji: no spaces between
            # words, BERT's rule), a run of other word characters (any script: Hangul, kana,
            # Latin with accents, digits), or one grapheme cluster that starts with a symbol
            # (punctuation, an emoji with its skin tone / ZWJ sequence). One pass is ~1.5x
            # faster than BertNormalizer + WhitespaceSplit + Split (benchmarks/data_pipeline.py).
            tok.pre_tokenizer = pre_tokenizers.Split(
                Regex(r"\p{Han}|[\w&&[^\p{Han}]]+|(?=[^\w\s])\X"), "removed", invert=True
            )
            # no decoder: decoding joins the words with single spaces
        else:
            tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\X"), "isolated")
            tok.decoder = decoders.Fuse()
    else:
        if kind == "bpe":
            tok = Tokenizer(models.BPE(unk_token=UNK))
            # limit_alphabet: the BPE trainer keeps every character it sees even past vocab_size
            # (a Chinese or Japanese corpus has thousands); keep the most frequent ones so that
            # vocab_size is a real upper bound, the rarest characters read as [UNK]
            trainer = trainers.BpeTrainer(
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                limit_alphabet=limit_alphabet,
                special_tokens=SPECIALS,
                show_progress=False,
            )
        else:
            tok = Tokenizer(models.Unigram())
            trainer = trainers.UnigramTrainer(
                vocab_size=vocab_size, special_tokens=SPECIALS, unk_token=UNK, show_progress=False
            )
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
    tok.normalizer = normalizers.Sequence(norm)
    accel = fast_path_for(tok, kind, threads) if fast else None
    batch = None
    if accel is not None:
        batch = accel.split(texts if isinstance(texts, Sequence) else list(texts))
        if kind in ("word", "char"):
            vocab = word_level_vocab(accel.count(batch), vocab_size, min_frequency)
            tok.model = models.WordLevel(vocab, unk_token=UNK)
            tok.add_special_tokens(SPECIALS)
            return TextTokenizer(tok, kind, fast=True, threads=threads), batch
    try:
        if batch is not None and accel is not None and kind == "bpe":
            # the compiled trainer: tokenizers' BpeTrainer's model from the word counts
            trained = bpe.train(
                *accel.word_counts(batch),
                vocab_size=vocab_size,
                min_frequency=min_frequency,
                limit_alphabet=limit_alphabet,
                special_tokens=SPECIALS,
            )
            tok.model = models.BPE(trained.vocab, trained.merges, unk_token=UNK)
            tok.add_special_tokens(SPECIALS)
            # the training texts' words as training left them (the same ids as encoding)
            batch.word_ids = trained.word_ids(len(batch.tokens.names), UNK)
        elif batch is not None and accel is not None:  # unigram: the trainer gets the counts
            train_from_counts(tok, trainer, accel.count(batch))
        else:
            tok.train_from_iterator(texts, trainer)
    except Exception as err:  # tokenizers raises plain Exception
        hint = (
            "; the unigram tokenizer needs every character of the training texts in its "
            "vocabulary: raise vocab_size or use tokenizer 'bpe'"
            if "not large enough" in str(err)
            else ""
        )
        raise ValueError(
            f"cannot train the {kind} tokenizer (vocab_size {vocab_size}): {err}{hint}"
        ) from None
    if tok.token_to_id(PAD) != 0 or tok.token_to_id(UNK) != 1:  # the trainers put specials first
        raise RuntimeError("tokenizers did not give [PAD] id 0 and [UNK] id 1")
    return TextTokenizer(tok, kind, fast=fast, threads=threads), batch


def train_and_encode(
    texts: Sequence[str],
    kind: TokenizerKind = "word",
    *,
    vocab_size: int = 20000,
    min_frequency: int = 1,
    lowercase: bool = False,
    maxlen: int | None = None,
    truncating: str = "pre",
    fast: bool = True,
    threads: int = 1,
) -> tuple[TextTokenizer, list[np.ndarray]]:
    """:func:`train_tokenizer` on ``texts``, then ``encode_batch(texts)`` with ``maxlen`` and
    ``truncating`` set: the same tokenizer and ids, but the texts are cut into words (tokens
    for 'word' / 'char') once, for both; 'word' on ``threads`` threads (for large batches)."""
    tok, batch = _train(texts, kind, vocab_size, min_frequency, lowercase, fast, threads)
    tok.maxlen, tok.truncating = maxlen, truncating
    if batch is not None and tok._accel is not None:
        return tok, tok._cut(tok._accel.ids(batch), texts)
    return tok, tok.encode_batch(texts)


def word_level_vocab(
    counts: Mapping[str, int], vocab_size: int, min_frequency: int
) -> dict[str, int]:
    """token -> id as ``tokenizers``' WordLevelTrainer builds it: ``[PAD]``, ``[UNK]``, then the
    tokens seen at least ``min_frequency`` times, most frequent first, ties in code-point order
    (Rust's string order), ``vocab_size`` ids in all."""
    keep = vocab_size - len(SPECIALS)
    items = [(w, n) for w, n in counts.items() if n >= min_frequency]
    if len(items) > keep > 0:  # only the tokens that can make it need sorting
        freq = np.fromiter((n for _, n in items), dtype=np.int64, count=len(items))
        cut = np.partition(freq, len(items) - keep)[len(items) - keep]  # keep-th largest
        items = [(w, n) for w, n in items if n >= cut]
    ranked = sorted(items, key=lambda kv: (-kv[1], kv[0]))
    words = SPECIALS + [w for w, _ in ranked]
    return {w: i for i, w in enumerate(words[:vocab_size])}


class TextTokenizer:
    """A trained tokenizer plus how to cut its output: ``encode_batch(texts) -> id arrays``.

    Attributes:
        tokenizer: the ``tokenizers.Tokenizer``.
        kind: 'word' | 'char' | 'bpe' | 'unigram'.
        maxlen: keep at most this many ids per text (None: all).
        truncating: 'pre' keeps the last ``maxlen`` ids (Keras' default), 'post' the first.
        fast: encode with :mod:`lstmkit.data.fasttok` (the same ids as ``tokenizers``, faster
            on large batches); False: ``tokenizers`` only.
        threads: with ``fast``, 'word' cuts large batches into words on this many threads
            ('bpe' and 'unigram': one compiled pass).
    """

    pad_id = 0
    unk_id = 1

    def __init__(
        self,
        tokenizer: object,
        kind: str,
        maxlen: int | None = None,
        truncating: str = "pre",
        fast: bool = True,
        threads: int = 1,
    ) -> None:
        if truncating not in ("pre", "post"):
            raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.maxlen = maxlen
        self.truncating = truncating
        self.fast = fast
        self._accel: FastTokenizer | None = None
        if fast:
            self._accel = fast_path_for(tokenizer, kind, threads)

    @property
    def vocab_size(self) -> int:
        """Number of ids, specials included (the embedding needs this many rows)."""
        return int(self.tokenizer.get_vocab_size())  # type: ignore[attr-defined]

    def vocab(self) -> dict[str, int]:
        """token -> id."""
        return dict(self.tokenizer.get_vocab())  # type: ignore[attr-defined]

    def tokenize(self, text: str) -> list[str]:
        """The tokens of ``text`` (no truncation)."""
        return list(self.tokenizer.encode(text).tokens)  # type: ignore[attr-defined]

    def decode(self, ids: Sequence[int]) -> str:
        """Text of ``ids`` ([PAD] / [UNK] dropped). Exact for 'char', 'bpe' and 'unigram' on
        NFKC text made of known characters; 'word' joins the words with single spaces."""
        return str(self.tokenizer.decode(list(ids)))  # type: ignore[attr-defined]

    def id_to_token(self, i: int) -> str:
        """The token of id ``i`` ('[UNK]' for an unknown id)."""
        tok = self.tokenizer.id_to_token(int(i))  # type: ignore[attr-defined]
        return UNK if tok is None else str(tok)

    def encode_batch(self, texts: Sequence[str]) -> list[np.ndarray]:
        """int64 id arrays, cut to ``maxlen`` on the ``truncating`` side
        (:mod:`lstmkit.data.fasttok` when ``fast``, else ``tokenizers``).

        A text that gives no token at all (only spaces or characters NFKC removes) raises
        :class:`EmptyEncodingError` (a ValueError) naming its index.
        """
        all_ids: list[np.ndarray]
        if self._accel is not None:
            all_ids = self._accel.encode(texts)
        else:
            encodings = self.tokenizer.encode_batch_fast(list(texts))  # type: ignore[attr-defined]
            all_ids = [np.asarray(enc.ids, dtype=np.int64) for enc in encodings]
        return self._cut(all_ids, texts)

    def _cut(self, all_ids: list[np.ndarray], texts: Sequence[str]) -> list[np.ndarray]:
        out: list[np.ndarray] = []
        for i, ids in enumerate(all_ids):
            if ids.size == 0:
                raise EmptyEncodingError(i, texts[i])
            if self.maxlen and ids.size > self.maxlen:
                ids = ids[-self.maxlen :] if self.truncating == "pre" else ids[: self.maxlen]
            out.append(ids)
        return out

    def unknown_fraction(self, seqs: Sequence[np.ndarray]) -> float:
        """Share of ids that are [UNK] in ``seqs`` (out-of-vocabulary rate)."""
        total = sum(int(s.size) for s in seqs)
        unk = sum(int((s == self.unk_id).sum()) for s in seqs)
        return unk / total if total else 0.0

    def save(self, path: Path) -> None:
        """Write ``tokenizer.json`` (the library's format plus our ``lstmkit`` section with the
        kind), atomically."""
        payload = json.loads(self.tokenizer.to_str())  # type: ignore[attr-defined]
        payload["lstmkit"] = {"kind": self.kind}
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path, maxlen: int | None = None, truncating: str = "pre") -> TextTokenizer:
        """Read what :meth:`save` wrote; ValueError naming the file if it is unreadable."""
        from tokenizers import Tokenizer

        try:
            payload = json.loads(Path(path).read_text(encoding="utf-8"))
            kind = str(payload.pop("lstmkit", {}).get("kind", "word"))
            tok = Tokenizer.from_str(json.dumps(payload))
        except FileNotFoundError:
            raise ValueError(f"{path} is missing") from None
        except Exception as err:  # OSError, JSON errors, and tokenizers' own (plain Exception)
            raise ValueError(f"cannot read tokenizer {path}: {err}") from None
        return cls(tok, kind, maxlen, truncating)
