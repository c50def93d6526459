"""Tokenizers for your own texts, in any script: Hugging Face ``tokenizers``, and ``sentencepiece``
for the Unigram trainer.

Four kinds, all trained on the training split only and saved as ``tokenizer.json`` next to the
weights (``tokenizers``' own JSON format, whatever trained it; nothing pickled):

- ``word``: Unicode NFKC, then words = runs of letters/digits (``\\w``, any script); every other
  visible character (punctuation, an emoji with its modifiers and ZWJ sequence) is a token of its
  own; each Han ideograph is a word of its own (Chinese and Japanese do not separate words with
  spaces; BERT's rule), kana runs stay together. Hangul words stay whole (Korean separates words
  with spaces). ``tokenizers``' ``WordLevelTrainer``.
- ``char``: NFKC, then one token per grapheme cluster (``\\X``: a letter with its combining marks,
  an emoji with skin tone or ZWJ sequence), spaces included; decoding gives the text back.
  ``WordLevelTrainer`` too.
- ``bpe``: subwords, ``tokenizers``' ``BpeTrainer`` on the Metaspace words (SentencePiece-style
  ``▁`` word boundary marks); decoding gives the text back.
- ``unigram``: subwords, trained by ``sentencepiece`` (its Unigram trainer is the field's standard
  for Korean, Japanese and Chinese, and much faster than ``tokenizers``' own: 217 s on the 50k
  IMDB reviews), then converted into a ``tokenizers`` Unigram model with the same normaliser and
  Metaspace pre-tokenizer, so serving loads one ``tokenizer.json`` and encoding is
  ``tokenizers``' batch encoder for every kind (the ids are sentencepiece's own: tested).

A character never seen in training reads as ``[UNK]`` (``unigram``: also a character outside
sentencepiece's ``character_coverage``, see :func:`train_tokenizer`).

Ids: 0 is ``[PAD]`` (the embedding's padding row), 1 is ``[UNK]``; ``vocab_size`` counts both and
is an upper bound for every kind (``bpe`` keeps the ``vocab_size - 2`` most frequent characters as
its alphabet). ``min_frequency`` drops rarer words (``word``, ``char``) or merges (``bpe``);
Unigram has no such setting and refuses one. The vocabularies are deterministic: the trainers
break ties by the token's text, and where ``tokenizers``' BPE alphabet limit would drop one of
several characters of equal count in hash-map order, the alphabet is chosen here first (by count,
then code point) and handed to the trainer.

Threads: ``tokenizers`` runs its trainers and ``encode_batch`` on its Rust thread pool when
``TOKENIZERS_PARALLELISM`` allows it (its documented switch, read on every call): ``threads=1``
turns it off for the call, more turns it on (the pool has ``RAYON_NUM_THREADS`` threads if that is
set, else one per core, fixed by the library at its first parallel call in the process, so
``threads > 1`` means "the pool", not an exact count). A ``TOKENIZERS_PARALLELISM`` set by the user
is left as it is. ``sentencepiece`` trains on exactly ``threads`` threads; its Unigram model
depends on that count (it sums the EM statistics per thread), the other kinds do not.

Encoded ids are cached across runs by :mod:`lstmkit.data.encode_cache`.
"""

from __future__ import annotations

import io
import json
import os
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, nullcontext
from itertools import chain
from operator import attrgetter
from pathlib import Path
from typing import Any, Literal

import numpy as np

from lstmkit.errors import EmptyEncodingError
from lstmkit.extras import needs
from lstmkit.files import atomic_write_text

TokenizerKind = Literal["word", "char", "bpe", "unigram"]
TOKENIZER_KINDS: tuple[str, ...] = ("word", "char", "bpe", "unigram")
PAD = "[PAD]"
UNK = "[UNK]"
SPECIALS = [PAD, UNK]
TOKENIZER_FILE = "tokenizer.json"
PARALLELISM_ENV = "TOKENIZERS_PARALLELISM"
# sentencepiece's advice: 0.9995 for a rich character set (Chinese, Japanese; Korean's Hangul
# syllables too), 1.0 for the others; "rich" here: more distinct characters than this
RICH_CHARACTER_SET = 1000


@contextmanager
def parallelism(threads: int) -> Iterator[None]:
    """Run the ``tokenizers`` calls inside on one thread (``threads=1``) or on its thread pool
    (more), through its ``TOKENIZERS_PARALLELISM`` switch; restored afterwards. A value the user
    set is left alone."""
    if threads < 1:
        raise ValueError(f"threads must be >= 1, got {threads}")
    if PARALLELISM_ENV in os.environ:
        yield
        return
    os.environ[PARALLELISM_ENV] = "true" if threads > 1 else "false"
    try:
        yield
    finally:
        os.environ.pop(PARALLELISM_ENV, None)


def library_versions() -> dict[str, str]:
    """The versions of the libraries that train and apply the tokenizers (they key the cache)."""
    import tokenizers

    try:
        import sentencepiece
    except ImportError:  # the text extra: only the unigram tokenizer's training needs it
        return {"tokenizers": tokenizers.__version__, "sentencepiece": "not installed"}
    return {"tokenizers": tokenizers.__version__, "sentencepiece": sentencepiece.__version__}


def train_tokenizer(
    texts: Iterable[str],
    kind: TokenizerKind = "word",
    *,
    vocab_size: int = 20000,
    min_frequency: int = 1,
    lowercase: bool = False,
    threads: int = 1,
    character_coverage: float | None = None,
) -> TextTokenizer:
    """Learn a ``kind`` tokenizer from ``texts`` (give the training split only).

    Args:
        texts: the training texts.
        kind: 'word' | 'char' | 'bpe' | 'unigram' (see the module docstring).
        vocab_size: at most this many ids, ``[PAD]`` and ``[UNK]`` included.
        min_frequency: keep a word / character / merge seen at least this often (not 'unigram').
        lowercase: lower-case after NFKC (Unicode-aware; scripts without case are unchanged).
        threads: 1 = one thread; more = ``tokenizers``' thread pool, and this many
            ``sentencepiece`` training threads ('unigram').
        character_coverage: 'unigram' only: the share of the training characters (by count)
            that get a piece of their own; the rarest others read as ``[UNK]``. None:
            sentencepiece's advice, 0.9995 when the texts hold more than
            :data:`RICH_CHARACTER_SET` distinct characters (Chinese, Japanese, Korean), else 1.0
            (every character).
    """
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
    if character_coverage is not None and not 0.98 <= character_coverage <= 1.0:
        raise ValueError(
            f"character_coverage must be in [0.98, 1] (sentencepiece's range), got "
            f"{character_coverage}"
        )
    texts = texts if isinstance(texts, Sequence) else list(texts)
    with parallelism(threads):
        try:
            if kind in ("word", "char"):
                tok = _train_word_level(texts, kind, vocab_size, min_frequency, lowercase)
            elif kind == "bpe":
                tok = _train_bpe(texts, vocab_size, min_frequency, lowercase)
            else:
                tok = _train_unigram(texts, vocab_size, lowercase, threads, character_coverage)
        except ValueError:
            raise
        except Exception as err:  # tokenizers raises plain Exception
            raise ValueError(
                f"cannot train the {kind} tokenizer (vocab_size {vocab_size}): {err}"
            ) from None
    if tok.token_to_id(PAD) != 0 or tok.token_to_id(UNK) != 1:  # the trainers put specials first
        raise RuntimeError("the trainer did not give [PAD] id 0 and [UNK] id 1")
    return TextTokenizer(tok, kind)


def _normalizer(lowercase: bool) -> Any:
    from tokenizers import normalizers

    norm: list[Any] = [normalizers.NFKC()] + ([normalizers.Lowercase()] if lowercase else [])
    return normalizers.Sequence(norm)


def _train_word_level(
    texts: Sequence[str], kind: str, vocab_size: int, min_frequency: int, lowercase: bool
) -> Any:
    from tokenizers import Regex, Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.WordLevel(unk_token=UNK))
    tok.normalizer = _normalizer(lowercase)
    if kind == "word":
        # one regex, the pieces it matches are the words (invert=True; whitespace between them
        # is dropped): a Han ideograph alone (Chinese / Japanese kanji: no spaces between words,
        # BERT's rule), a run of other word characters (any script: Hangul, kana, Latin with
        # accents, digits), or one grapheme cluster that starts with a symbol (punctuation, an
        # emoji with its skin tone / ZWJ sequence). No decoder: decoding joins words with spaces.
        tok.pre_tokenizer = pre_tokenizers.Split(
            Regex(r"\p{Han}|[\w&&[^\p{Han}]]+|(?=[^\w\s])\X"), "removed", invert=True
        )
    else:
        tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"\X"), "isolated")
        tok.decoder = decoders.Fuse()
    # ties of count are broken by the token's text (the trainer sorts (count desc, token))
    trainer = trainers.WordLevelTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIALS,
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer, length=len(texts))
    return tok


def _train_bpe(texts: Sequence[str], vocab_size: int, min_frequency: int, lowercase: bool) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    def train(alphabet: list[str] | None) -> Any:
        tok = Tokenizer(models.BPE(unk_token=UNK))
        tok.normalizer = _normalizer(lowercase)
        tok.pre_tokenizer = pre_tokenizers.Metaspace()
        tok.decoder = decoders.Metaspace()
        # limit_alphabet: the trainer keeps every character it sees even past vocab_size (a
        # Chinese or Japanese corpus has thousands); keep the most frequent ones so that
        # vocab_size is a real upper bound, the rarest characters read as [UNK]
        trainer = trainers.BpeTrainer(
            vocab_size=vocab_size,
            min_frequency=min_frequency,
            limit_alphabet=limit if alphabet is None else len(alphabet),
            initial_alphabet=alphabet or [],
            special_tokens=SPECIALS,
            show_progress=False,
        )
        tok.train_from_iterator(texts, trainer, length=len(texts))
        return tok

    limit = vocab_size - len(SPECIALS)
    tok = train(None)
    alphabet_size = sum(len(t) == 1 for t in tok.get_vocab())
    if alphabet_size < limit:
        return tok  # every character kept: the limit dropped none
    # The limit was reached: the trainer drops the rarest characters, but among characters of
    # equal count in hash-map order (another choice in each process). Choose them here (count,
    # then code point) and give them as its initial alphabet, which it keeps whole.
    counts: Counter[str] = Counter()
    norm, pre = tok.normalizer, tok.pre_tokenizer
    for text in texts:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(text)):
            counts.update(word)
    kept = sorted(counts.items(), key=lambda kv: (-kv[1], ord(kv[0])))[:limit]
    return train(sorted(c for c, _ in kept))


def _training_sentence(text: str, normalizer: Any, lowercase: bool) -> str:
    """``text`` as the tokenizers pipeline sees it before Metaspace: normalised (NFKC, lower
    case), with the leading space Metaspace's ``prepend_scheme="always"`` adds unless the text
    starts with one (sentencepiece's own ``add_dummy_prefix`` adds it always)."""
    if text.isascii():  # NFKC leaves ASCII as it is (most texts of most corpora)
        text = text.lower() if lowercase else text
    else:
        text = normalizer.normalize_str(text)
    return text if text.startswith((" ", "\u2581")) else " " + text


def _train_unigram(
    texts: Sequence[str],
    vocab_size: int,
    lowercase: bool,
    threads: int,
    character_coverage: float | None,
) -> Any:
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers

    with needs("text", "the unigram tokenizer"):
        import sentencepiece as spm

    normalizer = _normalizer(lowercase)
    sentences = [_training_sentence(t, normalizer, lowercase) for t in texts]
    sentences = [s for s in sentences if s.strip()]
    if not sentences:
        raise ValueError("cannot train the unigram tokenizer: the training texts are all empty")
    if character_coverage is None:
        distinct = set().union(*map(set, sentences))
        character_coverage = 0.9995 if len(distinct) > RICH_CHARACTER_SET else 1.0
    proto = io.BytesIO()
    options: dict[str, Any] = dict(
        sentence_iterator=iter(sentences),
        model_writer=proto,
        model_type="unigram",
        vocab_size=vocab_size,
        hard_vocab_limit=False,  # vocab_size is an upper bound (a small corpus has fewer pieces)
        character_coverage=character_coverage,
        # the texts come normalised as tokenizers does it, the space prefix added: sentencepiece
        # must not change them, so that its model fits the tokenizers pipeline it is moved into
        normalization_rule_name="identity",
        add_dummy_prefix=False,
        remove_extra_whitespaces=False,
        split_by_whitespace=True,  # pieces never span a "▁": Metaspace's words
        byte_fallback=False,
        pad_id=0,
        pad_piece=PAD,
        unk_id=1,
        unk_piece=UNK,
        bos_id=-1,
        eos_id=-1,
        num_threads=threads,
        max_sentence_length=max(len(s.encode("utf-8")) for s in sentences) + 1,
        minloglevel=2,  # its progress log goes to stderr otherwise
    )
    try:
        spm.SentencePieceTrainer.Train(**options)
    except RuntimeError as err:
        # "Vocabulary size is smaller than required_chars. 60 vs 149": 147 characters + 2 specials
        need = re.search(r"required_chars\. \d+ vs (\d+)", str(err))
        if need is None:
            raise ValueError(
                f"cannot train the unigram tokenizer (vocab_size {vocab_size}): {err}"
            ) from None
        raise ValueError(
            f"cannot train the unigram tokenizer: it needs a piece for each of the "
            f"{int(need.group(1)) - len(SPECIALS)} characters it keeps (character_coverage "
            f"{character_coverage}) and the {len(SPECIALS)} specials, more than vocab_size "
            f"{vocab_size}; raise vocab_size or use tokenizer 'bpe'"
        ) from None
    sp = spm.SentencePieceProcessor(model_proto=proto.getvalue())
    vocab = [(sp.id_to_piece(i), sp.get_score(i)) for i in range(sp.get_piece_size())]
    tok = Tokenizer(models.Unigram(vocab, unk_id=1, byte_fallback=False))
    tok.normalizer = normalizer
    tok.pre_tokenizer = pre_tokenizers.Metaspace()
    tok.decoder = decoders.Metaspace()
    tok.add_special_tokens(SPECIALS)
    return tok


def train_and_encode(
    texts: Sequence[str],
    kind: TokenizerKind = "word",
    *,
    vocab_size: int = 20000,
    min_frequency: int = 1,
    lowercase: bool = False,
    maxlen: int | None = None,
    truncating: str = "pre",
    threads: int = 1,
    character_coverage: float | None = None,
) -> tuple[TextTokenizer, list[np.ndarray]]:
    """:func:`train_tokenizer` on ``texts``, then ``encode_batch(texts)`` with ``maxlen`` and
    ``truncating`` set. :func:`lstmkit.data.encode_cache.encode_splits` does the same for every
    split and caches the result."""
    tok = train_tokenizer(
        texts,
        kind,
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        lowercase=lowercase,
        threads=threads,
        character_coverage=character_coverage,
    )
    tok.maxlen, tok.truncating = maxlen, truncating
    return tok, tok.encode_batch(texts, threads=threads)


class TextTokenizer:
    """A trained tokenizer plus how to cut its output: ``encode_batch(texts) -> id arrays``.

    Attributes:
        tokenizer: the ``tokenizers.Tokenizer``.
        kind: 'word' | 'char' | 'bpe' | 'unigram'.
        maxlen: keep at most this many ids per text (None: all).
        truncating: 'pre' keeps the last ``maxlen`` ids (Keras' default), 'post' the first.
    """

    pad_id = 0
    unk_id = 1

    def __init__(
        self,
        tokenizer: object,
        kind: str,
        maxlen: int | None = None,
        truncating: str = "pre",
    ) -> None:
        if truncating not in ("pre", "post"):
            raise ValueError(f"truncating must be 'pre' or 'post', got {truncating!r}")
        self.tokenizer = tokenizer
        self.kind = kind
        self.maxlen = maxlen
        self.truncating = truncating

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

    def encode_full(
        self, texts: Sequence[str], threads: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """All ids of ``texts``, not cut: ``(ids, offsets)``, text ``i`` is
        ``ids[offsets[i]:offsets[i + 1]]`` (int64; ``tokenizers``' ``encode_batch_fast``).
        ``threads``: see :func:`parallelism`; None leaves ``tokenizers``' setting alone (serving:
        the environment is not touched while other threads may read it).

        A text that gives no token at all (only spaces or characters NFKC removes) raises
        :class:`EmptyEncodingError` (a ValueError) naming its index.
        """
        with parallelism(threads) if threads is not None else nullcontext():
            encodings = self.tokenizer.encode_batch_fast(list(texts))  # type: ignore[attr-defined]
        lengths = np.fromiter((len(e) for e in encodings), dtype=np.int64, count=len(encodings))
        empty = np.flatnonzero(lengths == 0)
        if empty.size:
            i = int(empty[0])
            raise EmptyEncodingError(i, texts[i])
        offsets = np.zeros(len(encodings) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        ids = np.fromiter(  # e.ids (a Python list per text) is most of this cost
            chain.from_iterable(map(attrgetter("ids"), encodings)),
            dtype=np.int64,
            count=int(offsets[-1]),
        )
        return ids, offsets

    def cut(self, ids: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
        """One array per text out of :meth:`encode_full`'s ``(ids, offsets)`` (views of
        ``ids``), cut to ``maxlen`` on the ``truncating`` side."""
        starts, ends = offsets[:-1], offsets[1:]
        if self.maxlen:
            if self.truncating == "pre":
                starts = np.maximum(starts, ends - self.maxlen)
            else:
                ends = np.minimum(ends, starts + self.maxlen)
        return [ids[a:b] for a, b in zip(starts.tolist(), ends.tolist(), strict=True)]

    def encode_batch(self, texts: Sequence[str], threads: int | None = None) -> list[np.ndarray]:
        """int64 id arrays, cut to ``maxlen`` on the ``truncating`` side (``tokenizers``'
        batch encoder; see :meth:`encode_full`)."""
        return self.cut(*self.encode_full(texts, threads))

    def unknown_fraction(self, seqs: Sequence[np.ndarray]) -> float:
        """Share of ids that are [UNK] in ``seqs`` (out-of-vocabulary rate)."""
        total = sum(int(s.size) for s in seqs)
        unk = sum(int((s == self.unk_id).sum()) for s in seqs)
        return unk / total if total else 0.0

    def to_json(self) -> str:
        """What :meth:`save` writes: the library's format plus our ``lstmkit`` section (the
        kind)."""
        payload = json.loads(self.tokenizer.to_str())  # type: ignore[attr-defined]
        payload["lstmkit"] = {"kind": self.kind}
        return json.dumps(payload, ensure_ascii=False)

    @classmethod
    def from_json(
        cls, text: str, maxlen: int | None = None, truncating: str = "pre"
    ) -> TextTokenizer:
        """Read what :meth:`to_json` wrote (ValueError if it is not a tokenizer)."""
        from tokenizers import Tokenizer

        try:
            payload = json.loads(text)
            kind = str(payload.pop("lstmkit", {}).get("kind", "word"))
            tok = Tokenizer.from_str(json.dumps(payload))
        except Exception as err:  # JSON errors, and tokenizers' own (plain Exception)
            raise ValueError(str(err)) from None
        return cls(tok, kind, maxlen, truncating)

    def save(self, path: Path) -> None:
        """Write ``tokenizer.json`` (:meth:`to_json`), atomically."""
        atomic_write_text(path, self.to_json())

    @classmethod
    def load(cls, path: Path, maxlen: int | None = None, truncating: str = "pre") -> TextTokenizer:
        """Read what :meth:`save` wrote; ValueError naming the file if it is unreadable."""
        try:
            text = Path(path).read_text(encoding="utf-8")
        except FileNotFoundError:
            raise ValueError(f"{path} is missing") from None
        except (OSError, UnicodeDecodeError) as err:
            raise ValueError(f"cannot read tokenizer {path}: {err}") from None
        try:
            return cls.from_json(text, maxlen, truncating)
        except ValueError as err:
            raise ValueError(f"cannot read tokenizer {path}: {err}") from None
