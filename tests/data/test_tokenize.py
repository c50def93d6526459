"""lstmkit.data.tokenize: word / char / BPE / Unigram tokenizers on real sentences in Korean,
Japanese, Chinese, accented Latin and emoji."""

from __future__ import annotations

import os
import unicodedata
from pathlib import Path

import numpy as np
import pytest

from lstmkit.data.tokenize import TextTokenizer, train_tokenizer

SENTENCES = [
    "오늘은 날씨가 정말 좋아서 공원에 산책을 갔어요.",
    "이 영화는 배우들의 연기가 훌륭하고 감동적이었습니다!",
    "今日はとても良い天気なので、公園を散歩しました。",
    "この映画は本当に素晴らしかったです。",
    "我今天去图书馆借了一本关于机器学习的书。",
    "这部电影的音乐非常动人。",
    "Le café était délicieux, et la crème brûlée aussi.",
    "Ça m'a coûté très cher, mais l'hôtel était génial.",
    "Great movie 😀👍🏽 — my daughter 👩‍💻 loved it!",
    "ｆｕｌｌｗｉｄｔｈ ＡＢＣ １２３",  # NFKC: full-width forms become ASCII
]


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
def test_lossless_kinds_round_trip_every_script(kind: str) -> None:
    tok = train_tokenizer(SENTENCES, kind, vocab_size=400)  # type: ignore[arg-type]
    ids = tok.encode_batch(SENTENCES)
    assert tok.unknown_fraction(ids) == 0.0
    for text, seq in zip(SENTENCES, ids, strict=True):
        assert tok.decode(seq.tolist()) == unicodedata.normalize("NFKC", text)


def test_word_tokens_per_script() -> None:
    tok = train_tokenizer(SENTENCES, "word")
    assert tok.tokenize(SENTENCES[0]) == [
        "오늘은", "날씨가", "정말", "좋아서", "공원에", "산책을", "갔어요", ".",
    ]  # fmt: skip
    # Chinese / Japanese ideographs are one word each (no spaces between words); kana runs stay
    assert tok.tokenize("这部电影") == ["这", "部", "电", "影"]
    assert tok.tokenize("映画は本当に") == ["映", "画", "は", "本", "当", "に"]
    # accents kept, punctuation split off; emoji with skin tone / ZWJ stay one token
    assert tok.tokenize("Ça m'a coûté") == ["Ça", "m", "'", "a", "coûté"]
    assert tok.tokenize("loved 😀👍🏽 👩‍💻!") == ["loved", "😀", "👍🏽", "👩‍💻", "!"]
    assert tok.tokenize("ｆｕｌｌｗｉｄｔｈ") == ["fullwidth"]
    ids = tok.encode_batch(SENTENCES)
    assert tok.unknown_fraction(ids) == 0.0
    assert tok.decode(ids[2].tolist()).replace(" ", "") == SENTENCES[2]


def test_specials_vocab_size_min_frequency_and_train_only() -> None:
    train = ["사과 바나나 사과", "사과 포도", "바나나 사과"]
    tok = train_tokenizer(train, "word", min_frequency=2)
    assert tok.vocab() == {"[PAD]": 0, "[UNK]": 1, "사과": 2, "바나나": 3}  # 포도 seen once
    # a word only in validation text (not in training) reads as [UNK]
    (ids,) = tok.encode_batch(["사과 수박"])
    assert ids.tolist() == [2, 1]
    small = train_tokenizer(SENTENCES, "word", vocab_size=6)
    assert small.vocab_size == 6
    assert train_tokenizer(SENTENCES, "bpe", vocab_size=120).vocab_size == 120


def test_lowercase_is_unicode_aware() -> None:
    tok = train_tokenizer(["Éclair ÇA", "éclair ça"], "word", lowercase=True)
    assert tok.tokenize("ÉCLAIR Ça") == ["éclair", "ça"]
    assert set(tok.vocab()) == {"[PAD]", "[UNK]", "éclair", "ça"}


def test_truncation_save_and_load(tmp_path: Path) -> None:
    tok = train_tokenizer(SENTENCES, "char")
    full = tok.encode_batch([SENTENCES[0]])[0]
    tok.maxlen = 5
    assert tok.encode_batch([SENTENCES[0]])[0].tolist() == full[-5:].tolist()  # 'pre': the end
    tok.truncating = "post"
    assert tok.encode_batch([SENTENCES[0]])[0].tolist() == full[:5].tolist()
    tok.save(tmp_path / "tokenizer.json")
    back = TextTokenizer.load(tmp_path / "tokenizer.json", maxlen=None)
    assert back.kind == "char"
    for a, b in zip(
        back.encode_batch(SENTENCES),
        train_tokenizer(SENTENCES, "char").encode_batch(SENTENCES),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)


def test_bad_settings_and_texts() -> None:
    with pytest.raises(ValueError, match="min_frequency does not apply to the unigram"):
        train_tokenizer(SENTENCES, "unigram", min_frequency=2)
    with pytest.raises(ValueError, match="tokenizer must be one of"):
        train_tokenizer(SENTENCES, "sentencepiece")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="raise vocab_size or use tokenizer 'bpe'"):
        train_tokenizer(SENTENCES, "unigram", vocab_size=60)
    with pytest.raises(ValueError, match="vocab_size must be at least 3"):
        train_tokenizer(SENTENCES, "word", vocab_size=2)
    tok = train_tokenizer(SENTENCES, "word")
    with pytest.raises(ValueError, match="text 1 gives no token"):
        tok.encode_batch(["좋아요", "   "])
    with pytest.raises(ValueError, match="cannot read tokenizer"):
        TextTokenizer.load(Path(__file__))


# -- ported from the tests of the hand-written tokenizer, through the public API ---------------
MORE = [
    "この映画は本当に素晴らしかったです。ｶﾞｷﾞﾊﾟ",  # half-width kana: NFKC composes them
    "ΟΔΟΣ ΣΟΦΟΣ. İstanbul ǅemal ẞ",  # final sigma, dotted I, title-case digraph
    "e\u0301te\u0301 (decomposed accents) and cafe\u0301",
    "Привет, мир! مرحبا بالعالم ١٢٣ हिन्दी भाषा",
    "Great movie 😀👍🏽 — my daughter 👩‍💻 loved it! 🇰🇷🇯🇵",
]
# Metaspace corner cases: leading, trailing and repeated spaces, a literal "▁", other whitespace
# (inside words for Metaspace), NFKC giving a space (NBSP, ideographic space)
SUBWORD_CASES = [
    "  leading and  double   spaces ",
    "a\u2581b \u2581c\u2581\u2581d \u2581",
    "\ttab\nnew line \r\n and\x0bmore",
    "nbsp\xa0here\u3000there",
    "x",
]
KINDS = ["word", "char", "bpe", "unigram"]


@pytest.mark.parametrize("kind", KINDS)
def test_unknown_characters_read_as_unk(kind: str) -> None:
    tok = train_tokenizer(SENTENCES + MORE, kind, vocab_size=600)  # type: ignore[arg-type]
    (ids,) = tok.encode_batch(["Ж 🦄"])  # neither character is in the training texts
    # each character is one [UNK] (id 1); the space is a token of its own, or the "▁" mark
    assert [i for i in ids.tolist() if tok.id_to_token(i) not in (" ", "\u2581")] == [1, 1]
    assert tok.unknown_fraction(tok.encode_batch(SENTENCES + MORE)) == 0.0


@pytest.mark.parametrize("kind", ["char", "bpe", "unigram"])
@pytest.mark.parametrize("lowercase", [False, True])
def test_more_scripts_and_spaces_round_trip(kind: str, lowercase: bool) -> None:
    texts = SENTENCES + MORE + SUBWORD_CASES
    tok = train_tokenizer(texts, kind, vocab_size=700, lowercase=lowercase)  # type: ignore[arg-type]
    norm = tok.tokenizer.normalizer
    for text, seq in zip(texts, tok.encode_batch(texts), strict=True):
        want = norm.normalize_str(text)
        got = tok.decode(seq.tolist())
        if kind == "char":
            assert got == want
        else:  # Metaspace decoding drops the one leading space it added or found, and reads
            # a literal "▁" (its own mark) as a space
            want = want.replace("\u2581", " ")
            assert got == (want[1:] if want.startswith(" ") else want)


_DIGESTS = """
import json, sys
sys.path.insert(0, sys.argv[1])
from test_tokenize import _digests
print(json.dumps(_digests()))
"""


def _digests() -> dict[str, str]:
    """sha256 of the tokenizer.json of every kind (and of 120 ids, a BPE alphabet cut short)."""
    import hashlib

    texts = SENTENCES * 3 + MORE + SUBWORD_CASES
    cases = [(kind, 500) for kind in KINDS] + [(kind, 120) for kind in ("word", "char", "bpe")]
    return {
        f"{kind}-{size}": hashlib.sha256(
            train_tokenizer(texts, kind, vocab_size=size).tokenizer.to_str().encode()  # type: ignore[arg-type]
        ).hexdigest()
        for kind, size in cases
    }


def test_vocabularies_are_the_same_in_every_process() -> None:
    # tokenizers' hash maps are seeded per process: a tie broken in hash-map order shows as a
    # different tokenizer.json from one process to the next (plain BpeTrainer at vocab_size
    # 120 on these texts: 4 different files in 4 processes)
    import json
    import subprocess
    import sys

    other = subprocess.run(
        [sys.executable, "-c", _DIGESTS, str(Path(__file__).parent)],
        check=True,
        capture_output=True,
        text=True,
    )
    assert json.loads(other.stdout) == _digests()


def test_bpe_alphabet_limit_keeps_the_most_frequent_characters() -> None:
    # 118 ids for characters, far fewer than the texts hold, many of them seen once: tokenizers
    # would drop characters of equal count in hash-map order; the alphabet is chosen by count,
    # then code point, and is the same in every process
    texts = SENTENCES + MORE
    tok = train_tokenizer(texts, "bpe", vocab_size=120)
    counts: dict[str, int] = {}
    norm, pre = tok.tokenizer.normalizer, tok.tokenizer.pre_tokenizer
    for text in texts:
        for word, _ in pre.pre_tokenize_str(norm.normalize_str(text)):
            for c in word:
                counts[c] = counts.get(c, 0) + 1
    want = sorted(counts, key=lambda c: (-counts[c], ord(c)))[:118]
    vocab = tok.vocab()
    assert len(vocab) == 120 and sorted(t for t in vocab if len(t) == 1) == sorted(want)
    assert [vocab[c] for c in sorted(want)] == list(range(2, 120))  # in code-point order


def test_threads_give_the_same_ids_and_restore_the_switch(monkeypatch: pytest.MonkeyPatch) -> None:
    from lstmkit.data.tokenize import PARALLELISM_ENV, parallelism, train_and_encode

    monkeypatch.delenv(PARALLELISM_ENV, raising=False)
    texts = [f"{s} {i % 97} word{i % 13}" for i in range(50) for s in SENTENCES + MORE]
    for kind in ("word", "char", "bpe"):
        one, ids1 = train_and_encode(texts, kind, vocab_size=800, threads=1)  # type: ignore[arg-type]
        two, ids2 = train_and_encode(texts, kind, vocab_size=800, threads=2)  # type: ignore[arg-type]
        assert one.tokenizer.to_str() == two.tokenizer.to_str()
        assert [a.tolist() for a in ids1] == [b.tolist() for b in ids2]
    assert PARALLELISM_ENV not in os.environ
    with parallelism(1):
        assert os.environ[PARALLELISM_ENV] == "false"
    with parallelism(2):
        assert os.environ[PARALLELISM_ENV] == "true"
    assert PARALLELISM_ENV not in os.environ
    monkeypatch.setenv(PARALLELISM_ENV, "true")  # the user's own setting wins
    with parallelism(1):
        assert os.environ[PARALLELISM_ENV] == "true"
    with pytest.raises(ValueError, match="threads must be >= 1"):
        train_tokenizer(texts, "word", threads=0)


@pytest.mark.parametrize("kind", KINDS)
def test_empty_texts_and_batches(kind: str) -> None:
    tok = train_tokenizer(SENTENCES, kind, vocab_size=400)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="text 1 gives no token"):
        tok.encode_batch(["좋아요", ""])
    assert tok.encode_batch([]) == []
    ids, offsets = tok.encode_full([])
    assert ids.shape == (0,) and offsets.tolist() == [0]


def test_training_on_no_text() -> None:
    assert train_tokenizer([], "word").vocab() == {"[PAD]": 0, "[UNK]": 1}
    assert train_tokenizer(["", " "], "bpe").vocab() == {"[PAD]": 0, "[UNK]": 1, "▁": 2}
    with pytest.raises(ValueError, match="the training texts are all empty"):
        train_tokenizer(["", "  "], "unigram")


# -- unigram: sentencepiece's trainer, tokenizers' encoder ------------------------------------
JAPANESE = [
    "この映画は本当に素晴らしかったです。",
    "俳優の演技がとても自然で、最後まで目が離せませんでした。",
    "ストーリーが長すぎて、途中で少し退屈しました。",
    "音楽と映像の美しさに感動しました。もう一度見たいです。",
    "子供と一緒に見ましたが、二人とも楽しめました！",
    "期待していたほど面白くなかったのが残念です。",
    "監督の前作よりもずっと良い作品だと思います。",
    "字幕の翻訳が分かりにくいところがありました。",
    "週末に映画館で見て、友達にも勧めました。",
    "アクションシーンは迫力があったけれど、話は単純でした。",
    "東京の街並みがきれいに撮られていて、旅行に行きたくなった。",
    "ラストシーンで思わず泣いてしまいました。",
]


def _sentencepiece_ids(tok: TextTokenizer, texts: list[str], proto: bytes) -> list[list[int]]:
    """sentencepiece's own encoding of ``texts``, normalised as the tokenizers pipeline does
    (NFKC and lower case, then Metaspace's leading space: the model was trained on that)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=proto)
    norm = tok.tokenizer.normalizer
    prepared = []
    for text in texts:
        text = norm.normalize_str(text)
        prepared.append(text if text.startswith((" ", "\u2581")) else " " + text)
    return [list(ids) for ids in sp.encode(prepared)]


def _train_keeping_proto(
    monkeypatch: pytest.MonkeyPatch, texts: list[str], **kw: object
) -> tuple[TextTokenizer, bytes]:
    import sentencepiece as spm

    protos: list[bytes] = []
    train = spm.SentencePieceTrainer.Train

    def keep(**options: object) -> None:
        train(**options)
        protos.append(options["model_writer"].getvalue())  # type: ignore[attr-defined]

    monkeypatch.setattr(spm.SentencePieceTrainer, "Train", keep)
    tok = train_tokenizer(texts, "unigram", **kw)  # type: ignore[arg-type]
    return tok, protos[0]


def _agreement(tok: TextTokenizer, proto: bytes, texts: list[str]) -> float:
    """Share of ``texts`` whose ids equal sentencepiece's; every other text must be a tie: the
    same pieces in another order, the same total score (Viterbi paths of equal likelihood, where
    the two libraries break the tie differently)."""
    import sentencepiece as spm

    sp = spm.SentencePieceProcessor(model_proto=proto)
    ours = [a.tolist() for a in tok.encode_batch(texts)]
    theirs = _sentencepiece_ids(tok, texts, proto)
    same = 0
    for a, b in zip(ours, theirs, strict=True):
        if a == b:
            same += 1
            continue
        assert sorted(a) == sorted(b)
        assert sum(sp.get_score(i) for i in a) == pytest.approx(sum(sp.get_score(i) for i in b))
    return same / len(texts)


@pytest.mark.parametrize("lowercase", [False, True])
def test_unigram_ids_are_sentencepieces_on_every_script(
    monkeypatch: pytest.MonkeyPatch, lowercase: bool
) -> None:
    texts = JAPANESE * 2 + SENTENCES * 2 + MORE + SUBWORD_CASES
    tok, proto = _train_keeping_proto(monkeypatch, texts, vocab_size=700, lowercase=lowercase)
    assert tok.vocab_size <= 700 and tok.tokenizer.to_str().count('"Unigram"') == 1
    unseen = [t[::-1] + " ΣΑΣ x" for t in texts]  # unseen words and characters
    assert _agreement(tok, proto, texts + unseen) == 1.0


KOREAN = Path(os.environ.get("LSTMKIT_DATA", "/nonexistent")) / "korean-reviews" / "train.csv"


@pytest.mark.skipif(not KOREAN.exists(), reason="LSTMKIT_DATA has no korean-reviews/train.csv")
def test_unigram_ids_are_sentencepieces_on_korean_reviews(monkeypatch: pytest.MonkeyPatch) -> None:
    import csv
    import itertools

    with open(KOREAN, encoding="utf-8", newline="") as fh:
        reviews = [row["review"] for row in itertools.islice(csv.DictReader(fh), 6000)]
    reviews = [r for r in reviews if r.strip()]
    tok, proto = _train_keeping_proto(monkeypatch, reviews[:4000], vocab_size=3000)
    # more than RICH_CHARACTER_SET distinct characters: sentencepiece's 0.9995 coverage, the
    # rarest characters read as [UNK] even in the training texts
    assert 0.0 < tok.unknown_fraction(tok.encode_batch(reviews[:4000])) < 0.001
    # measured: 1,994 of the 2,000 held-out reviews (99.7 %) get exactly sentencepiece's ids,
    # the other 6 are ties ('..' + '...' against '...' + '..'); training texts: 0.085 % [UNK]
    assert _agreement(tok, proto, reviews[4000:]) > 0.99


def test_unigram_model_is_the_same_for_the_same_thread_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    texts = JAPANESE * 3 + SENTENCES * 3
    for threads in (1, 2):
        a = train_tokenizer(texts, "unigram", vocab_size=500, threads=threads)
        b = train_tokenizer(texts, "unigram", vocab_size=500, threads=threads)
        assert a.tokenizer.to_str() == b.tokenizer.to_str()


def test_unigram_character_coverage() -> None:
    texts = SENTENCES * 3
    full = train_tokenizer(texts, "unigram", vocab_size=600)  # < 1000 characters: 1.0
    assert full.unknown_fraction(full.encode_batch(texts)) == 0.0
    some = train_tokenizer(texts, "unigram", vocab_size=600, character_coverage=0.98)
    assert 0.0 < some.unknown_fraction(some.encode_batch(texts)) <= 0.02
    with pytest.raises(ValueError, match=r"character_coverage must be in \[0.98, 1\]"):
        train_tokenizer(texts, "unigram", character_coverage=0.9)
