"""Defaults chosen from the data for ``lstmkit train --task text`` (lstmkit.tasks.text_defaults,
lstmkit.data.profile) and the classic baseline every text run measures beside its model
(lstmkit.baselines.text): the rules, the user's settings kept, the run's records, the default
model beating TF-IDF + logistic regression where word order matters, and bad input."""

from __future__ import annotations

import csv
import json
import random
from pathlib import Path

import numpy as np
import pytest

from lstmkit.baselines.text import tfidf_logistic
from lstmkit.cli import main
from lstmkit.data.profile import profile_texts
from lstmkit.errors import BaselineError
from lstmkit.tasks.defaults import Choice, apply_choices, given_keys
from lstmkit.tasks.text_defaults import choose_tokenizer, text_choices

# -- a tiny Korean CSV where the label is the clause after "but" -------------------------------
POS = ["정말 재미있었다", "최고의 영화", "연기가 훌륭했다", "감동적인 이야기", "음악이 좋았다"]
NEG = ["너무 지루했다", "최악의 영화", "연기가 어색했다", "시간이 아까웠다", "결말이 별로였다"]
FILL = [
    "오늘",
    "어제",
    "친구와",
    "극장에서",
    "처음에는",
    "솔직히",
    "주말에",
    "집에서",
    "그냥",
    "다시",
]
BUT = ["하지만", "그런데", "그러나"]


def _reviews(n: int, seed: int) -> list[tuple[str, int]]:
    """Every review holds one positive and one negative phrase, each between filler words; the
    label is the phrase after the "but": a bag of n-grams sees the same features either way."""
    r = random.Random(seed)
    out = []
    for _ in range(n):
        label = r.randint(0, 1)
        a, b = (r.choice(NEG), r.choice(POS)) if label else (r.choice(POS), r.choice(NEG))
        f = lambda: r.choice(FILL)  # noqa: E731
        out.append((f"{f()} {a} {f()} {r.choice(BUT)} {f()} {b} {f()}", label))
    return out


def _csv(path: Path, rows: list[tuple[str, int]] | list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8") as fh:
        w = csv.writer(fh)
        w.writerow(["review", "label"])
        w.writerows(rows)
    return path


@pytest.fixture(scope="module")
def korean_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("korean")
    train = _csv(d / "train.csv", _reviews(800, 0))
    test = _csv(d / "test.csv", _reviews(300, 1))
    run = d / "run"
    argv = ["train", "--task", "text", "--train", str(train), "--test", str(test)]
    assert main([*argv, "--text-column", "review", "--out", str(run), "--no-progress"]) == 0
    return run


def test_the_defaults_beat_the_baseline_where_word_order_matters(korean_run: Path) -> None:
    ev = json.loads((korean_run / "evaluation.json").read_text(encoding="utf-8"))
    base = ev["baseline"]
    assert base["name"] == "tfidf-logreg"
    # the same features in either order: TF-IDF + LR is near chance, the BiLSTM reads the order
    assert base["test_accuracy"] < 0.65
    assert ev["accuracy"] >= 0.9
    assert ev["accuracy"] >= base["test_accuracy"] + 0.25
    assert base["model_wins_on_validation"] is True
    assert "the model beats the baseline on validation" in base["verdict"]
    metrics = json.loads((korean_run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["evaluation"]["baseline"]["test_accuracy"] == base["test_accuracy"]
    assert metrics["baseline"]["C"] in (1.0, 4.0, 16.0)


def test_the_run_records_each_choice_and_the_recipe_that_ran(korean_run: Path) -> None:
    config = json.loads((korean_run / "config.json").read_text(encoding="utf-8"))
    chosen = {c["key"]: c for c in config["defaults"]}
    assert chosen["data.text.tokenizer"]["value"] == "char"
    assert "hangul" in chosen["data.text.tokenizer"]["reason"]
    assert config["recipe"]["data"]["text"]["tokenizer"] == "char"
    assert config["recipe"]["train"]["monitor"] == "val_loss"
    assert config["recipe"]["train"]["early_stopping"] == 4
    assert config["recipe"]["model"]["bidirectional"] is True
    assert config["recipe"]["model"]["hidden_size"] == chosen["model.hidden_size"]["value"] == 32
    assert config["text"]["profile"]["family"] == "syllabic"
    # the keys the user gave are not "chosen"
    assert "data.text.text_column" not in chosen and "data.text.train" not in chosen


def test_given_settings_are_kept_and_nothing_else_changes(tmp_path: Path) -> None:
    train = _csv(tmp_path / "train.csv", _reviews(200, 2))
    run = tmp_path / "run"
    argv = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    argv += ["--tokenizer", "word", "--set", "model.hidden_size=8", "--baseline", "none"]
    argv += ["--max-minutes", "0.5", "--set", "train.epochs=1", "--out", str(run), "--no-progress"]
    assert main(argv) == 0
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    chosen = {c["key"] for c in config["defaults"]}
    r = config["recipe"]
    assert r["data"]["text"]["tokenizer"] == "word" and "data.text.tokenizer" not in chosen
    assert r["model"]["hidden_size"] == 8 and "model.hidden_size" not in chosen
    assert r["train"]["max_minutes"] == 0.5 and "train.max_minutes" not in chosen
    assert r["train"]["epochs"] == 1 and "train.epochs" not in chosen
    assert r["data"]["text"]["vocab_size"] == 2000  # chosen for the word tokenizer and the size
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    assert metrics["baseline"] is None and metrics["evaluation"]["baseline"] is None


def test_given_keys_and_apply_choices() -> None:
    from lstmkit.config import Recipe

    raw = {"name": "x", "data": {"dataset": "imdb", "maxlen": 80}, "model": {"hidden_size": 9}}
    assert given_keys(raw) == {"data.maxlen", "model.hidden_size"}
    recipe = Recipe.model_validate(raw)
    choices = [Choice("model.hidden_size", 64, "a"), Choice("train.lr", 0.01, "b")]
    out, applied = apply_choices(recipe, choices, given_keys(raw))
    assert out.model.hidden_size == 9 and out.train.lr == 0.01
    assert [c.key for c in applied] == ["train.lr"]
    same, none = apply_choices(recipe, choices, None)  # a recipe built in code: nothing chosen
    assert same is recipe and none == []


# -- the rules ---------------------------------------------------------------------------------
def _words(n: int, seed: int, vocab: int) -> list[str]:
    r = np.random.default_rng(seed)
    ranks = r.zipf(1.3, size=(n, 30)) % vocab
    return [" ".join(f"w{k}" for k in row) for row in ranks]


@pytest.mark.parametrize(
    ("texts", "family", "script", "tokenizer"),
    [
        (["이 영화 정말 좋아요", "배우들의 연기가 싫어요"] * 20, "syllabic", "hangul", "char"),
        (["この映画が大好きです", "我很喜欢这部电影"] * 20, "syllabic", "kana", "char"),
        (["หนังเรื่องนี้สนุกมาก", "ไม่ชอบเลย"] * 20, "unspaced", "thai", "unigram"),
        (["a great film, I loved it", "an awful film, I hated it"] * 20, "spaced", "latin", "word"),
        (["Отличный фильм, мне понравился"] * 40, "spaced", "cyrillic", "word"),
    ],
)
def test_tokenizer_by_script(texts: list[str], family: str, script: str, tokenizer: str) -> None:
    p = profile_texts(texts)
    assert p.family == family
    if script != "kana":
        assert p.main_script == script
    assert choose_tokenizer(p)[0] == tokenizer


def test_a_spaced_language_with_too_many_word_forms_gets_subwords() -> None:
    # 30-word texts from a heavy-tailed vocabulary of 200k forms: a 20k-word vocabulary misses
    # many held-out words (as for Korean eojeols, Finnish or Turkish words)
    p = profile_texts(_words(3000, 0, 200_000))
    assert p.family == "spaced" and p.word_unknown_rate is not None
    assert p.word_unknown_rate > 0.05
    kind, reason = choose_tokenizer(p)
    assert kind == "unigram" and "misses" in reason
    few = profile_texts(_words(3000, 0, 500))
    assert few.word_unknown_rate is not None and few.word_unknown_rate < 0.01
    assert choose_tokenizer(few)[0] == "word"


def test_model_size_grows_with_the_data() -> None:
    p = profile_texts(["a great film"] * 40)
    sizes = []
    for n in (500, 5000, 90_000):
        c = {x.key: x.value for x in text_choices(p, n, 2)}
        sizes.append((c["model.embedding_dim"], c["model.hidden_size"]))
        assert c["train.evaluate_every"] == max(1, -(-n // c["train.batch_size"]) // 3)
        assert c["train.monitor"] == "val_loss" and c["train.max_minutes"] == 8.0
    assert sizes == [(32, 32), (64, 64), (64, 128)]


# -- the baseline ------------------------------------------------------------------------------
def test_baseline_fits_many_classes_and_scores_every_split() -> None:
    r = random.Random(0)
    topics = {0: "football goal match", 1: "stock market price", 2: "rain cloud weather"}

    def rows(n: int) -> tuple[list[str], np.ndarray]:
        ys = [r.randrange(3) for _ in range(n)]
        return [f"{r.choice(topics[y].split())} news today" for y in ys], np.array(ys)

    base = tfidf_logistic(rows(120), rows(40), rows(40), 3)
    assert base.valid["accuracy"] == 1.0 and base.test is not None
    assert base.test["accuracy"] == 1.0 and base.test["macro_f1"] == 1.0
    assert set(base.tried) == {"1", "4", "16"} and base.C in (1.0, 4.0, 16.0)


def test_baseline_that_cannot_be_fitted_is_one_clear_error() -> None:
    y = np.array([0, 1, 0, 1])
    # no word and no character n-gram in any text (char_wb reads words only)
    with pytest.raises(BaselineError, match="no word or character n-gram.*--baseline none"):
        tfidf_logistic(([" ", "  ", " ", "   "], y), ([" "], np.array([0])), None, 2)
    with pytest.raises(BaselineError, match="two classes"):
        tfidf_logistic((["a b", "c d"], np.array([1, 1])), (["a"], np.array([1])), None, 2)


def test_cli_a_baseline_that_cannot_be_fitted_names_the_way_out(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import sys

    monkeypatch.setitem(sys.modules, "sklearn.linear_model", None)  # scikit-learn unusable
    train = _csv(tmp_path / "train.csv", _reviews(60, 3))
    argv = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    assert main([*argv, "--out", str(tmp_path / "run"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "TF-IDF baseline needs scikit-learn" in err and "--baseline none" in err
    assert "Traceback" not in err
    assert not (tmp_path / "run").exists()  # nothing written
    assert (
        main(
            [
                *argv,
                "--baseline",
                "none",
                "--out",
                str(tmp_path / "run"),
                "--no-progress",
                "--set",
                "train.epochs=1",
            ]
        )
        == 0
    )


def test_cli_a_tokenizer_that_cannot_read_the_script_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    r = random.Random(0)
    syll = ["กา", "นี", "สุ", "มา", "ชอ", "ดี", "ไม", "เล", "รู", "ห้"]
    rows = [("".join(r.choice(syll) for _ in range(8)), str(i % 2)) for i in range(200)]
    train = _csv(tmp_path / "train.csv", rows)
    argv = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    argv += ["--tokenizer", "word", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert "tokenizer 'word' cannot read these texts (thai script, unspaced)" in err
    assert "--tokenizer char or unigram" in err and "Traceback" not in err
    assert not (tmp_path / "run").exists()
