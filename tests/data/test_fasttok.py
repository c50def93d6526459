"""lstmkit.data.fasttok: the NumPy word / char path gives exactly the vocabulary, the saved
tokenizer.json and the ids of Hugging Face ``tokenizers`` (``fast=False``), on real sentences in
every script, on every assigned Unicode character, on IMDB reviews, and on the corner cases the
module docstring lists; for 'bpe' the same tokenizer.json (its trainer fed the counted words) and
ids (each distinct word encoded once), for 'unigram' the same ids from a given model and the same
model up to the run-to-run variation of ``tokenizers``' own Unigram trainer."""

from __future__ import annotations

import json
import os
import tarfile
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data import fasttok
from lstmkit.data.tokenize import train_and_encode, train_tokenizer

SENTENCES = [
    "오늘은 날씨가 정말 좋아서 공원에 산책을 갔어요.",
    "이 영화는 배우들의 연기가 훌륭하고 감동적이었습니다!",
    "今日はとても良い天気なので、公園を散歩しました。",
    "この映画は本当に素晴らしかったです。ｶﾞｷﾞﾊﾟ",  # half-width kana: NFKC composes them
    "我今天去图书馆借了一本关于机器学习的书。",
    "这部电影的音乐非常动人。",
    "Le café était délicieux, et la crème brûlée aussi.",
    "Ça m'a coûté très cher, mais l'hôtel était génial.",
    "Great movie 😀👍🏽 — my daughter 👩‍💻 loved it! 🇰🇷🇯🇵",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３ ﬁne ½",
    "ΟΔΟΣ ΣΟΦΟΣ. İstanbul ǅemal ẞ",  # final sigma, dotted I, title-case digraph
    "e\u0301te\u0301 (decomposed accents) and cafe\u0301",
    "Привет, мир! مرحبا بالعالم ١٢٣ हिन्दी भाषा",
    "tabs\tand\x0bcontrols\x1c\x1d\x85 nbsp\xa0here\u2028and\u3000there\r\nnew line\rCR",
    "a literal [UNK] and [PAD] in the text, NUL\x00 too",
    "supercalifragilisticexpialidocious antidisestablishmentarianism 12345678901234567",
    "exactly8 sixteen_bytes_ab seventeen_bytes_ab 한국어한국어 (9 and 18 bytes)",
]


@pytest.fixture(autouse=True)
def _fast_path_for_every_batch(monkeypatch: pytest.MonkeyPatch) -> None:
    """Small 'word' batches normally go to tokenizers (faster there): here every batch takes
    the fast path, so that the comparisons below test it."""
    monkeypatch.setattr(fasttok, "_MIN_FAST_CHARS", 0)


def _same(kind: str, texts: list[str], **kw: object) -> None:
    """Fast and tokenizers give the same tokenizer.json and the same ids (training texts via
    train_and_encode, and encode_batch on other texts)."""
    ref = train_tokenizer(texts, kind, fast=False, **kw)  # type: ignore[arg-type]
    tok, ids = train_and_encode(texts, kind, maxlen=12, **kw)  # type: ignore[arg-type]
    assert tok._accel is not None and ref._accel is None
    assert tok.tokenizer.to_str() == ref.tokenizer.to_str()
    ref.maxlen = 12
    for a, b in zip(ref.encode_batch(texts), ids, strict=True):
        np.testing.assert_array_equal(a, b)
    ref.maxlen = tok.maxlen = None
    others = [t[::-1] + " ΣΑΣ x" for t in texts]  # unseen words -> [UNK] on both sides
    for a, b in zip(ref.encode_batch(others), tok.encode_batch(others), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("kind", ["word", "char"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_same_as_tokenizers_on_every_script(kind: str, lowercase: bool) -> None:
    _same(kind, SENTENCES * 2 + SENTENCES[:3], lowercase=lowercase)
    _same(kind, SENTENCES, lowercase=lowercase, vocab_size=40, min_frequency=2)


def test_same_tokens_for_assigned_characters() -> None:
    # every 29th assigned character (a full pass takes ~30 s: see the commit message), each between
    # letters, between symbols and doubled, in texts of 24 characters: a text holding a complex
    # character goes to tokenizers whole, the others exercise the fast path with every class
    chars = [
        chr(c)
        for c in range(0x20, 0x110000, 29)
        if unicodedata.category(chr(c)) not in ("Cn", "Cs", "Co")
    ]
    texts = [
        " ".join(f"a{c}b!{c}!{c}{c}" for c in chars[i : i + 24]) for i in range(0, len(chars), 24)
    ]
    for kind in ("word", "char"):
        ref = train_tokenizer(texts, kind, vocab_size=10_000_000, fast=False)  # type: ignore[arg-type]
        tok, ids = train_and_encode(texts, kind, vocab_size=10_000_000)  # type: ignore[arg-type]
        assert tok._accel is not None
        assert len(tok._accel.normalize(texts)[1]) < len(texts) / 5  # most on the fast path
        assert tok.vocab() == ref.vocab()
        for a, b in zip(ref.encode_batch(texts), ids, strict=True):
            np.testing.assert_array_equal(a, b)


def test_python_nfkc_is_tokenizers_nfkc_where_it_is_used() -> None:
    from tokenizers import normalizers

    accel = train_tokenizer(["a"], "word")._accel
    assert accel is not None
    chars = [
        chr(c) for c in range(0x20, 0x110000) if unicodedata.category(chr(c)) not in ("Cn", "Cs")
    ]
    accel._learn_nfkc(chars)
    safe = [c for c in chars if accel._nfkc_same[c]]
    # tokenizers' tables are older than Python's: e.g. U+32FF SQUARE ERA NAME REIWA (Unicode
    # 12.1) is left alone by tokenizers, Python gives '令和'; such texts use tokenizers' NFKC
    assert "\u32ff" not in safe and len(chars) - len(safe) < 1000
    assert all(
        accel._nfkc_same[c]
        == (unicodedata.normalize("NFKC", c) == normalizers.NFKC().normalize_str(c))
        for c in chars[::50]
        if not unicodedata.combining(c)
    )
    for sep in ("", "\u0301"):
        text = sep.join(safe)
        assert unicodedata.normalize("NFKC", text) == normalizers.NFKC().normalize_str(text)
    texts = ["Reiwa ㋿ era", "ꟲ modifier ｃ"]
    for kind in ("word", "char"):
        ref = train_tokenizer(texts, kind, fast=False)  # type: ignore[arg-type]
        tok, ids = train_and_encode(texts, kind)  # type: ignore[arg-type]
        assert tok.vocab() == ref.vocab()
        assert [i.tolist() for i in ids] == [i.tolist() for i in ref.encode_batch(texts)]


IMDB = Path(os.environ.get("LSTMKIT_DATA", "/nonexistent")) / "aclImdb_v1_text.tar.gz"


def _imdb_reviews(n: int) -> list[str]:
    texts: list[str] = []
    with tarfile.open(IMDB, "r:gz") as tar:
        for member in tar:
            parts = member.name.split("/")
            if member.isfile() and len(parts) == 4 and parts[2] in ("pos", "neg"):
                fh = tar.extractfile(member)
                assert fh is not None
                texts.append(fh.read().decode("utf-8"))
                if len(texts) == n:
                    break
    return texts


@pytest.mark.skipif(not IMDB.exists(), reason="LSTMKIT_DATA has no aclImdb_v1_text.tar.gz")
def test_same_as_tokenizers_on_imdb_reviews() -> None:
    texts = _imdb_reviews(600)
    assert sum(not t.isascii() for t in texts) > 50  # accented names, curly quotes, '…'
    _same("word", texts, vocab_size=3000, lowercase=True, min_frequency=2)
    _same("char", texts, vocab_size=120)
    _same("bpe", texts[:300], vocab_size=1500, lowercase=True)
    _unigram_same(texts[:60], vocab_size=800)  # its trainer is slow: fewer reviews


# Metaspace corner cases: leading, trailing and repeated spaces, a literal "▁", other whitespace
# (inside words for Metaspace), NFKC giving a space (NBSP, ideographic space), a text NFKC empties
SUBWORD_CASES = [
    "  leading and  double   spaces ",
    "a\u2581b \u2581c\u2581\u2581d \u2581",
    "\ttab\nnew line \r\n and\x0bmore",
    "nbsp\xa0here\u3000there",
    " ",
    "x",
]


@pytest.mark.parametrize("lowercase", [False, True])
def test_bpe_same_as_tokenizers_on_every_script(lowercase: bool) -> None:
    texts = SENTENCES * 2 + SENTENCES[:3] + SUBWORD_CASES
    _same("bpe", texts, lowercase=lowercase, vocab_size=500)
    _same("bpe", texts, lowercase=lowercase, vocab_size=400, min_frequency=2)


def _unigram_same(texts: list[str], **kw: object) -> None:
    """Unigram: ``tokenizers``' own trainer gives a slightly different model from run to run
    (it sums floats in hash-map order, and the characters it adds at the end are ordered by a
    hash map too), so the fast path cannot equal one of its runs byte for byte: it must give the
    same pieces with the same scores (the characters' scores as a set), and, for a given model,
    exactly the ids ``tokenizers`` gives."""
    from lstmkit.data.tokenize import TextTokenizer

    ref = train_tokenizer(texts, "unigram", fast=False, **kw)  # type: ignore[arg-type]
    tok, ids = train_and_encode(texts, "unigram", **kw)  # type: ignore[arg-type]
    assert tok._accel is not None and ref._accel is None
    want = dict(json.loads(ref.tokenizer.to_str())["model"]["vocab"])
    got = dict(json.loads(tok.tokenizer.to_str())["model"]["vocab"])
    assert got.keys() == want.keys()
    longer = [p for p in want if len(p) > 1]
    assert len(longer) > 50
    np.testing.assert_allclose([got[p] for p in longer], [want[p] for p in longer], rtol=1e-9)
    singles = [p for p in want if len(p) == 1]
    np.testing.assert_allclose(
        sorted(got[p] for p in singles), sorted(want[p] for p in singles), rtol=1e-9
    )
    same_model = TextTokenizer(tok.tokenizer, "unigram", fast=False)
    for a, b in zip(same_model.encode_batch(texts), ids, strict=True):
        np.testing.assert_array_equal(a, b)
    others = [t[::-1] + " ΣΑΣ x" for t in texts]  # unseen words, unknown characters
    for a, b in zip(same_model.encode_batch(others), tok.encode_batch(others), strict=True):
        np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("lowercase", [False, True])
def test_unigram_same_as_tokenizers_on_every_script(lowercase: bool) -> None:
    _unigram_same(SENTENCES * 3 + SUBWORD_CASES, lowercase=lowercase, vocab_size=700)


def test_subword_shares_and_threads_give_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"{s} {i % 97}  word{i % 13} " for i in range(60) for s in SENTENCES + SUBWORD_CASES]
    ref = train_tokenizer(texts, "bpe", fast=False, vocab_size=600)
    want = ref.encode_batch(texts)
    monkeypatch.setattr(fasttok, "_SHARE_CHARS", 5000)  # ~20 shares
    for threads in (1, 2):
        tok, ids = train_and_encode(texts, "bpe", vocab_size=600, threads=threads)
        assert tok.tokenizer.to_str() == ref.tokenizer.to_str()
        for a, b in zip(want, ids, strict=True):
            np.testing.assert_array_equal(a, b)


def test_subword_empty_texts() -> None:
    tok = train_tokenizer(SENTENCES, "bpe", vocab_size=300)
    with pytest.raises(ValueError, match="text 1 gives no token"):
        tok.encode_batch(["좋아요", ""])
    assert tok.encode_batch([]) == []
    empty = train_tokenizer(["", ""], "bpe", vocab_size=300)
    assert empty.vocab() == train_tokenizer(["", ""], "bpe", vocab_size=300, fast=False).vocab()


def test_shares_and_threads_give_the_same_codes(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = [f"{s} {i % 97} word{i % 13}" for i in range(300) for s in SENTENCES]  # 5,100
    one, ids1 = train_and_encode(texts, "word", lowercase=True)  # one share
    monkeypatch.setattr(fasttok, "_SHARE_CHARS", 5000)  # ~50 shares
    _, ids_shared = train_and_encode(texts, "word", lowercase=True)
    two, ids2 = train_and_encode(texts, "word", lowercase=True, threads=2)
    for a, b in zip(ids1, ids_shared, strict=True):
        np.testing.assert_array_equal(a, b)
    char_one = train_tokenizer(texts, "char", fast=False)
    char, char_ids = train_and_encode(texts, "char", threads=2)
    assert char.vocab() == char_one.vocab()
    for a, b in zip(char_one.encode_batch(texts), char_ids, strict=True):
        np.testing.assert_array_equal(a, b)
    assert two._accel is not None and two._accel.threads == 2
    assert one.vocab() == two.vocab()
    for a, b in zip(ids1, ids2, strict=True):
        np.testing.assert_array_equal(a, b)
    for a, b in zip(two.encode_batch(texts[::-1]), ids1[::-1], strict=True):
        np.testing.assert_array_equal(a, b)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        train_tokenizer(texts, "word", threads=0)


def test_small_batches_go_to_tokenizers_with_the_same_ids(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fasttok, "_MIN_FAST_CHARS", 4096)
    tok = train_tokenizer(SENTENCES, "word")
    assert tok._accel is not None
    calls: list[int] = []
    split = tok._accel.split
    monkeypatch.setattr(tok._accel, "split", lambda texts: calls.append(len(texts)) or split(texts))
    small = tok.encode_batch(SENTENCES[:2])  # < _MIN_FAST_CHARS characters: tokenizers
    assert calls == []
    monkeypatch.setattr(fasttok, "_MIN_FAST_CHARS", 0)
    assert [a.tolist() for a in tok.encode_batch(SENTENCES[:2])] == [a.tolist() for a in small]
    assert calls == [2]


def test_empty_texts_and_batches() -> None:
    tok = train_tokenizer(SENTENCES, "word")
    with pytest.raises(ValueError, match="text 1 gives no token"):
        tok.encode_batch(["좋아요", " \u3000\n"])
    assert tok.encode_batch([]) == []
    assert train_tokenizer([], "word").vocab() == {"[PAD]": 0, "[UNK]": 1}
    only_long = train_tokenizer(["한국어한국어 한국어한국어"], "word")  # 18-byte tokens only
    assert only_long.vocab() == {"[PAD]": 0, "[UNK]": 1, "한국어한국어": 2}


def test_a_key_collision_is_grouped_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    texts = ["abcdefghij abcdefghik abcdefghij", "sixteen_bytes_ab sixteen_bytes_ac"]
    want = train_tokenizer(texts, "word", fast=False).vocab()
    zero = np.uint64(0)
    for name in ("_K0", "_K1", "_K2"):  # every 8..16-byte token gets the same key
        monkeypatch.setattr(fasttok, name, zero)
    tok, ids = train_and_encode(texts, "word")
    assert tok.vocab() == want
    assert [i.tolist() for i in ids] == [[2, 3, 2], [4, 5]]


def test_shares_merge_short_mid_and_long_tokens_exactly(monkeypatch: pytest.MonkeyPatch) -> None:
    # every share holds short (< 8 bytes), mid (8..16, all given one key) and long (> 16) tokens,
    # some of them in several shares, some in one only: merged, the vocabulary, the counts and
    # the ids are those of tokenizers itself
    texts = [
        f"w{i % 7} abcdefghi{i % 5} x{i} 한국어한국어{i % 3} sixteen_bytes_{i % 4:02d} "
        f"a_long_token_of_many_bytes_{i % 6} unique_long_token_number_{i}"
        for i in range(400)
    ]
    ref = train_tokenizer(texts, "word", fast=False, vocab_size=5000)
    want = ref.encode_batch(texts)
    monkeypatch.setattr(fasttok, "_SHARE_CHARS", 1000)  # ~45 shares
    for name in ("_K0", "_K1", "_K2"):
        monkeypatch.setattr(fasttok, name, np.uint64(0))
    for threads in (1, 2):
        tok, ids = train_and_encode(texts, "word", vocab_size=5000, threads=threads)
        assert tok.tokenizer.to_str() == ref.tokenizer.to_str()
        assert len(tok.vocab()) == 2 + 7 + 5 + 400 + 3 + 4 + 6 + 400
        for a, b in zip(want, ids, strict=True):
            np.testing.assert_array_equal(a, b)


def test_group_matches_unique_in_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(0)
    key = rng.integers(0, 3000, 20000).astype(np.uint64) * np.uint64(0x10000000001)
    for multipliers in (fasttok._MULTIPLIERS, fasttok._MULTIPLIERS[:1], []):
        monkeypatch.setattr(fasttok, "_MULTIPLIERS", multipliers)
        first, inverse = fasttok._group(key)
        assert len(first) == len(np.unique(key))
        np.testing.assert_array_equal(key[first][inverse], key)


def test_other_configurations_use_tokenizers() -> None:
    from tokenizers import pre_tokenizers

    tok = train_tokenizer(SENTENCES, "word")
    assert fasttok.fast_path_for(tok.tokenizer, "bpe") is None  # a WordLevel model
    tok.tokenizer.pre_tokenizer = pre_tokenizers.Whitespace()
    assert fasttok.fast_path_for(tok.tokenizer, "word") is None
    bpe = train_tokenizer(SENTENCES, "bpe", vocab_size=300)
    assert bpe._accel is not None
    assert fasttok.fast_path_for(bpe.tokenizer, "unigram") is None  # a BPE model
    bpe.tokenizer.pre_tokenizer = pre_tokenizers.Metaspace(prepend_scheme="first")
    assert fasttok.fast_path_for(bpe.tokenizer, "bpe") is None
    assert train_tokenizer(SENTENCES, "bpe", vocab_size=300, fast=False)._accel is None
