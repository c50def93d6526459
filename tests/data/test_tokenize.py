"""lstmkit.data.tokenize: word / char / BPE / Unigram tokenizers on real sentences in Korean,
Japanese, Chinese, accented Latin and emoji."""

from __future__ import annotations

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
