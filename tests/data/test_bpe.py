"""lstmkit.data.bpe: the compiled BPE trainer gives tokenizers' BpeTrainer model, merge for merge,
and the compiled encoder gives tokenizers' BPE ids, word for word.

Random corpora over two to six characters force what real text rarely shows: tied counts,
overlapping pairs ("aaa"), min_frequency and vocab_size stops, characters dropped by
limit_alphabet.
(The whole pipeline against tokenizers on real text in every script: tests/data/test_fasttok.py.)
"""

from __future__ import annotations

import json
import os
import tarfile
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from lstmkit.data import bpe
from lstmkit.data.fasttok import fast_path_for
from lstmkit.data.tokenize import train_and_encode, train_tokenizer
from lstmkit.kernels.compiled import CompiledKernelError, build_shared

SPECIALS = ["[PAD]", "[UNK]"]
ALPHABETS = [
    "ab",
    "abc",
    "aab",
    "\u2581ab",
    "ab\u2581c\ud55c\uae00",
    "xyz\u00e9",
    "\u77ed\u3044\u6587",
]


def _hf_model(counts: Counter[str], vocab_size: int, min_frequency: int, limit: int | None) -> dict:
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.CharDelimiterSplit(" ")
    kw = {} if limit is None else {"limit_alphabet": limit}
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        special_tokens=SPECIALS,
        show_progress=False,
        **kw,
    )
    tok.train_from_iterator(((w + " ") * n for w, n in counts.items()), trainer, len(counts))
    model = json.loads(tok.model.__getstate__())
    model["merges"] = [tuple(m) for m in model["merges"]]
    return model


def _tie_at_limit(counts: Counter[str], limit: int | None) -> bool:
    """tokenizers drops characters of equal count past limit_alphabet in a random order (a hash
    map's): such a corpus has no single right answer."""
    freq: Counter[str] = Counter()
    for w, n in counts.items():
        for c in w:
            freq[c] += n
    if limit is None or len(freq) <= limit:
        return False
    v = sorted(freq.values())
    return v[len(v) - limit - 1] == v[len(v) - limit]


@st.composite
def corpora(draw: st.DrawFn) -> tuple[Counter[str], int, int, int | None]:
    alphabet = draw(st.sampled_from(ALPHABETS))
    words = draw(st.lists(st.text(alphabet, min_size=1, max_size=16), min_size=1, max_size=50))
    counts = Counter({w: draw(st.integers(1, 8)) for w in words})
    vocab_size = draw(st.integers(3, 90))
    min_frequency = draw(st.integers(0, 3))
    limit = draw(st.sampled_from([None, 1, 2, 3, 100]))
    return counts, vocab_size, min_frequency, limit


@settings(max_examples=250, deadline=None)
@given(
    corpora(), st.lists(st.text("abcxyz\u2581\u00e9Z\ud55c", min_size=1, max_size=12), max_size=20)
)
def test_trainer_and_encoder_match_tokenizers(
    corpus: tuple[Counter[str], int, int, int | None], unseen: list[str]
) -> None:
    counts, vocab_size, min_frequency, limit = corpus
    assume(not _tie_at_limit(counts, limit))
    want = _hf_model(counts, vocab_size, min_frequency, limit)
    trained = bpe.train(
        [*counts, *unseen],  # unseen, count 0: left out of training
        [*counts.values(), *[0] * len(unseen)],
        vocab_size=vocab_size,
        min_frequency=min_frequency,
        limit_alphabet=limit,
        special_tokens=SPECIALS,
    )
    vocab, merges = trained.vocab, trained.merges
    assert vocab == want["vocab"]
    assert merges == want["merges"]

    from tokenizers import Tokenizer, models, pre_tokenizers

    ref = Tokenizer(models.BPE(want["vocab"], want["merges"], unk_token="[UNK]"))
    ref.pre_tokenizer = pre_tokenizers.CharDelimiterSplit(" ")
    words = [*counts, *unseen]  # unseen: characters outside the vocabulary become [UNK]
    ids, offsets = bpe.Encoder(vocab, merges, "[UNK]").encode(words)
    enc = ref.encode(" ".join(words))
    assert ids.tolist() == enc.ids
    np.testing.assert_array_equal(np.diff(offsets), np.bincount(enc.word_ids, minlength=len(words)))
    # the ids training leaves (exact ones) spliced with the encoder's (the others)
    t_ids, t_offsets = trained.word_ids(len(words), "[UNK]")
    assert t_ids.tolist() == enc.ids and t_offsets.tolist() == offsets.tolist()
    assert not trained.exact[len(counts) :].any()


def test_tokenizers_own_example() -> None:
    """tokenizers' own trainer test: min_frequency 2 leaves three merges, 're', 'are', 'is'."""
    counts = Counter(
        {"roses": 1, "are": 2, "red": 1, "voilets": 1, "blue": 1, "BERT": 1, "is": 2, "big": 1}
    )
    counts.update({"and": 1, "so": 1, "GPT-2": 1})
    trained = bpe.train(
        list(counts),
        list(counts.values()),
        vocab_size=30000,
        min_frequency=2,
        limit_alphabet=None,
        special_tokens=[],
    )
    vocab, merges = trained.vocab, trained.merges
    assert merges == [("r", "e"), ("a", "re"), ("i", "s")]
    assert [t for t, _ in sorted(vocab.items(), key=lambda kv: kv[1])][-4:] == [
        "v",
        "re",
        "are",
        "is",
    ]
    assert vocab["-"] == 0 and len(vocab) == 25  # the alphabet in code-point order, then merges


def test_merge_into_an_existing_token_reuses_its_id() -> None:
    """A merge whose result is already a token (here a special token's text) takes that token's
    id and does not grow the vocabulary, as in tokenizers."""
    counts = Counter({"abab": 3, "abc": 2, "cab": 1})
    specials = ["[PAD]", "ab"]
    trained = bpe.train(
        list(counts),
        list(counts.values()),
        vocab_size=100,
        min_frequency=0,
        limit_alphabet=None,
        special_tokens=specials,
    )
    vocab, merges = trained.vocab, trained.merges
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE(unk_token="[PAD]"))
    tok.pre_tokenizer = pre_tokenizers.CharDelimiterSplit(" ")
    trainer = trainers.BpeTrainer(vocab_size=100, special_tokens=specials, show_progress=False)
    tok.train_from_iterator(((w + " ") * n for w, n in counts.items()), trainer, len(counts))
    want = json.loads(tok.model.__getstate__())
    assert vocab == want["vocab"] and merges == [tuple(m) for m in want["merges"]]
    assert merges[0] == ("a", "b") and vocab["ab"] == 1  # 9 times; the special's id
    assert len(vocab) == len(specials) + 3 + len(merges) - 1


def test_pipeline_matches_tokenizers_trainer() -> None:
    """train_tokenizer('bpe') gives the same tokenizer.json through the compiled trainer as
    through tokenizers' own, and its ids come from the compiled encoder."""
    texts = [
        "The movie was great, great fun!",
        "한국어 문장도 잘 됩니다. 정말 좋아요!",
        "日本語の文も大丈夫です。",
        "Ça marche très bien, naïve café — 😀👍🏽",
        "aaa aaaa aaaaa abab ababab",
    ] * 3
    # 19: limit_alphabet 17 drops the rarer characters, with no tie at the cut
    for vocab_size, min_frequency in [(120, 1), (60, 2), (19, 1)]:
        fast, ids = train_and_encode(
            texts, "bpe", vocab_size=vocab_size, min_frequency=min_frequency
        )
        ref = train_tokenizer(
            texts, "bpe", vocab_size=vocab_size, min_frequency=min_frequency, fast=False
        )
        assert fast.tokenizer.to_str() == ref.tokenizer.to_str()
        assert [a.tolist() for a in ids] == [a.tolist() for a in ref.encode_batch(texts)]
    accel = fast_path_for(fast.tokenizer, "bpe")
    assert accel is not None and accel._bpe_encoder().unk_id == 1


def test_training_ids_are_exact_unless_a_character_was_dropped() -> None:
    """limit_alphabet 3 keeps a, b, c: 'abz' lost its 'z' in training, so its ids come from the
    encoder ('z' is [UNK]); the others keep the ids training left."""
    words, counts = ["abc", "abab", "abz", "ca"], [5, 4, 1, 2]
    trained = bpe.train(
        words, counts, vocab_size=50, min_frequency=0, limit_alphabet=3, special_tokens=SPECIALS
    )
    assert trained.exact.tolist() == [True, True, False, True]
    assert "z" not in trained.vocab
    ids, offsets = trained.word_ids(4, "[UNK]")
    want_ids, want_offsets = bpe.Encoder(trained.vocab, trained.merges, "[UNK]").encode(words)
    assert ids.tolist() == want_ids.tolist() and offsets.tolist() == want_offsets.tolist()
    abz = ids[offsets[2] : offsets[3]].tolist()
    assert abz == [trained.vocab["ab"], 1]  # 'ab', then [UNK] for 'z'
    # a merge into an existing token (a special's text): no training ids are trusted
    reused = bpe.train(
        ["abab", "abc"], [3, 2], vocab_size=50, min_frequency=0, limit_alphabet=None,
        special_tokens=["[PAD]", "ab"],
    )  # fmt: skip
    assert not reused.exact.any()


def test_metaspace_words_and_gather() -> None:
    """Every space starts a word; texts keep their words; ids are gathered per word."""
    texts = [" the cat  the", "", " \u00e9t\u00e9 the", " the"]
    data = "".join(texts).encode("utf-8")
    sizes = np.array([len(t.encode("utf-8")) for t in texts])
    names, codes, per_text = bpe.metaspace_words(data, sizes)
    assert names == ["\u2581the", "\u2581cat", "\u2581", "\u2581\u00e9t\u00e9"]
    assert codes.tolist() == [0, 1, 2, 0, 3, 0, 0] and per_text.tolist() == [4, 0, 2, 1]
    ids = np.array([10, 11, 20, 30, 40, 41, 42])  # word c: ids[offsets[c]:offsets[c + 1]]
    offsets = np.array([0, 2, 3, 4, 7])
    flat, ends = bpe.gather_ids(codes, per_text, ids, offsets)
    assert flat.tolist() == [10, 11, 20, 30, 10, 11, 40, 41, 42, 10, 11, 10, 11]
    assert ends.tolist() == [6, 6, 11, 13]


def test_fast_path_refuses_other_bpe_options() -> None:
    """A BPE model with an option the compiled encoder does not reproduce goes to tokenizers."""
    from tokenizers import models

    tok = train_tokenizer(["abc abd abe"] * 3, "bpe", vocab_size=20).tokenizer
    assert fast_path_for(tok, "bpe") is not None
    model = json.loads(tok.model.__getstate__())
    tok.model = models.BPE(
        model["vocab"], [tuple(m) for m in model["merges"]], unk_token="[UNK]", fuse_unk=True
    )
    assert fast_path_for(tok, "bpe") is None


def test_bad_input() -> None:
    kw: dict = {"vocab_size": 10, "min_frequency": 0, "limit_alphabet": None, "special_tokens": []}
    with pytest.raises(ValueError, match="a word count is negative: 'ab': -1"):
        bpe.train(["ab"], [-1], **kw)
    with pytest.raises(ValueError, match="2 words but 1 counts"):
        bpe.train(["ab", "c"], [1], **kw)

    # a word of count 0 is left out; a word given twice counts twice
    def model(words: list[str], counts: list[int]) -> tuple:
        trained = bpe.train(words, counts, **kw)
        return trained.vocab, trained.merges

    assert model(["ab", "cd"], [2, 0]) == model(["ab"], [2])
    assert model(["ab", "ab", "bc"], [2, 2, 3]) == model(["ab", "bc"], [4, 3])
    with pytest.raises(ValueError, match="text_bytes sum to 3, data has 4"):
        bpe.metaspace_words(b" abc", np.array([3]))
    with pytest.raises(ValueError, match="does not start with a space"):
        bpe.metaspace_words(b"ab c", np.array([4]))
    with pytest.raises(ValueError, match="a code outside the distinct words"):
        bpe.gather_ids(np.array([2]), np.array([1]), np.array([5, 6]), np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="'\\[UNK\\]' is not in the vocabulary"):
        bpe.Encoder({"a": 0}, [], "[UNK]")
    with pytest.raises(ValueError, match=r"merge 0 \('a', 'b'\): 'ab' is not in the vocabulary"):
        bpe.Encoder({"[UNK]": 0, "a": 1, "b": 2}, [("a", "b")], "[UNK]")
    ids, offsets = bpe.Encoder({"[UNK]": 0}, [], "[UNK]").encode([])
    assert ids.size == 0 and offsets.tolist() == [0]


def test_missing_compiler_is_one_clear_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CXX", str(tmp_path / "no-such-g++"))
    with pytest.raises(CompiledKernelError, match=r"cannot run the C\+\+ compiler .*set CXX"):
        build_shared(
            "bpe",
            bpe.SOURCE,
            compiler_env="CXX",
            compiler="g++",
            flags=bpe.CXXFLAGS,
            cache_dir=tmp_path,
        )
    assert not list(tmp_path.glob("*.so"))


IMDB = Path(os.environ.get("LSTMKIT_DATA", "/nonexistent")) / "aclImdb_v1_text.tar.gz"


@pytest.mark.slow
@pytest.mark.skipif(not IMDB.exists(), reason="LSTMKIT_DATA has no aclImdb_v1_text.tar.gz")
def test_imdb_50k_same_model_and_ids() -> None:
    """All 50,000 labelled IMDB reviews: the same tokenizer.json and ids as tokenizers alone."""
    texts = []
    with tarfile.open(IMDB, "r:gz") as tar:
        for m in tar:
            parts = m.name.split("/")
            if (
                m.isfile()
                and len(parts) == 4
                and parts[1] in ("train", "test")
                and parts[2] in ("pos", "neg")
            ):
                f = tar.extractfile(m)
                assert f is not None
                texts.append(f.read().decode("utf-8"))
    assert len(texts) == 50000
    fast, ids = train_and_encode(texts, "bpe", vocab_size=10000)
    ref = train_tokenizer(texts, "bpe", vocab_size=10000, fast=False)
    assert fast.tokenizer.to_str() == ref.tokenizer.to_str()
    for a, b in zip(ref.encode_batch(texts), ids, strict=True):
        np.testing.assert_array_equal(a, b)
