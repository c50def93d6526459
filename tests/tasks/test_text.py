"""Text classification on your own files (lstmkit.owndata): the CLI and recipe routes end to end on
real sentences in Korean, Japanese, Chinese, French and emoji; predict / evaluate / export /
serve of the run; word vectors frozen or fine-tuned; the evaluation report; bad input."""

from __future__ import annotations

import csv
import json
import os
import random
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lstmkit.cli import main
from lstmkit.tasks.text import classification_report

# (positive, negative) sentences per language; labels are Korean words
PAIRS = [
    ("이 영화 정말 좋아요", "이 영화 정말 싫어요"),
    ("배우들의 연기가 좋아요 😀", "배우들의 연기가 싫어요 😡"),
    ("この映画が大好きです", "この映画が大嫌いです"),
    ("我很喜欢这部电影", "我很讨厌这部电影"),
    ("J'adore ce film, très émouvant", "Je déteste ce film, très ennuyeux"),
    ("Great film 😀👍🏽", "Awful film 😡👎"),
]
POS, NEG = "긍정", "부정"


def _rows(n: int, seed: int) -> list[tuple[str, str]]:
    rng = random.Random(seed)
    fillers = ["", "오늘 ", "今日 ", "今天 ", "hier ", "really "]
    out = []
    for _ in range(n):
        pos, neg = rng.choice(PAIRS)
        label = rng.choice([POS, NEG])
        out.append((rng.choice(fillers) + (pos if label == POS else neg), label))
    return out


def _write_csv(path: Path, rows: list[tuple[str, str]]) -> Path:
    with open(path, "w", newline="", encoding="utf-8-sig") as fh:  # with a BOM, as Excel saves
        w = csv.writer(fh, lineterminator="\r\n")
        w.writerow(["review", "감정"])
        w.writerows(rows)
    return path


def _write_jsonl(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "".join(
            json.dumps({"review": t, "감정": lab}, ensure_ascii=False) + "\n" for t, lab in rows
        ),
        encoding="utf-8",
    )
    return path


FAST = [
    "--set",
    "epochs=6",
    "--set",
    "lr=0.02",
    "--set",
    "batch_size=16",
    "--set",
    "hidden_size=16",
]
FAST += ["--set", "embedding_dim=16", "--set", "pooling=mean", "--no-progress"]


@pytest.fixture(scope="module")
def text_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("own")
    train = _write_csv(d / "train.csv", _rows(240, 0))
    test = _write_jsonl(d / "test.jsonl", _rows(60, 1))
    run = d / "run"
    code = main(
        ["train", "--task", "text", "--train", str(train), "--test", str(test)]
        + ["--text-column", "review", "--label-column", "감정", "--out", str(run)]
        + FAST
    )
    assert code == 0
    return run


def test_train_writes_a_complete_run_and_learns(text_run: Path) -> None:
    for name in ("config.json", "tokenizer.json", "model.safetensors", "metrics.json"):
        assert (text_run / name).is_file(), name
    assert (text_run / "confusion.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    config = json.loads((text_run / "config.json").read_text(encoding="utf-8"))
    assert config["labels"] == [POS, NEG]  # sorted, the names kept
    balance = config["text"]["class_balance"]
    assert set(balance) == {"train", "valid", "test"}
    assert balance["train"]["total"] + balance["valid"]["total"] == 240
    assert balance["valid"]["total"] == 24  # stratified 10 %
    report = json.loads((text_run / "evaluation.json").read_text(encoding="utf-8"))
    assert report["split"] == "test" and report["examples"] == 60
    assert report["accuracy"] >= 0.95, report
    assert set(report["per_class"]) == {POS, NEG}
    cm = np.array(report["confusion_matrix"])
    assert cm.sum() == 60
    assert report["per_class"][POS]["support"] == int(cm[0].sum())
    assert report["per_class"][POS]["recall"] == pytest.approx(cm[0, 0] / cm[0].sum())


def test_predict_evaluate_export_and_serve_the_run(
    text_run: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from fastapi.testclient import TestClient

    from lstmkit.bundle import load
    from lstmkit.serve import create_app

    capsys.readouterr()
    assert main(["predict", str(text_run), "我很喜欢这部电影", "Je déteste ce film"]) == 0
    lines = [json.loads(x) for x in capsys.readouterr().out.splitlines()]
    assert [x["label"] for x in lines] == [POS, NEG]
    assert main(["evaluate", str(text_run)]) == 0
    again = json.loads(capsys.readouterr().out)
    first = json.loads((text_run / "evaluation.json").read_text(encoding="utf-8"))
    assert again["accuracy"] == first["accuracy"]
    assert again["confusion_matrix"] == first["confusion_matrix"]
    bundle = tmp_path / "bundle"
    assert main(["export", str(text_run), "--bundle", str(bundle)]) == 0
    assert (bundle / "tokenizer.json").is_file()
    pred = load(bundle)
    assert pred.metadata["tokenizer"] == "char"  # mostly Hangul, kana and Han: chosen by script
    direct = load(text_run).predict(["배우들의 연기가 싫어요 😡"])
    assert pred.predict(["배우들의 연기가 싫어요 😡"]) == direct
    with TestClient(create_app(bundle)) as client:
        info = client.get("/v1/model").json()
        assert (info["labels"], info["tokenizer"]) == ([POS, NEG], "char")
        r = client.post("/v1/predict", json={"texts": ["この映画が大好きです"]})
        assert r.status_code == 200, r.text
        assert r.json()["predictions"][0]["label"] == POS
        r = client.post("/v1/inspect", json={"text": "この映画が大好きです"})
        assert r.status_code == 200, r.text
        # ideographs one word each, kana runs kept together
        assert r.json()["tokens"] == list("この映画が大好きです")  # char tokens


def test_recipe_route_with_bpe(tmp_path: Path) -> None:
    neutral = [(t, "중립") for t in ("그냥 그래요", "普通です", "还可以", "Bof, ça va")] * 5
    train = _write_jsonl(tmp_path / "train.jsonl", _rows(80, 2) + neutral)  # three classes
    recipe = tmp_path / "mine.toml"
    recipe.write_text(
        f"""name = "mine"
[data]
dataset = "text"
maxlen = 40
[data.text]
train = "{train}"
text_column = "review"
label_column = "감정"
tokenizer = "bpe"
vocab_size = 150
[model]
hidden_size = 8
embedding_dim = 8
[train]
epochs = 1
""",
        encoding="utf-8",
    )
    run = tmp_path / "run"
    assert main(["train", str(recipe), "--out", str(run), "--no-progress"]) == 0
    tok = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))
    assert tok["model"]["type"] == "BPE" and tok["lstmkit"]["kind"] == "bpe"
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    assert config["recipe"]["data"]["text"]["vocab_size"] == 150
    assert config["model"]["vocab_size"] <= 150
    assert config["labels"] == [POS, NEG, "중립"] and config["model"]["num_classes"] == 3
    report = json.loads((run / "evaluation.json").read_text(encoding="utf-8"))
    assert report["split"] == "valid" and report["examples"] == 10  # 10 % of each class
    assert report["per_class"]["중립"]["support"] == 2
    assert np.array(report["confusion_matrix"]).shape == (3, 3)


def test_quick_keeps_the_first_records_of_each_class(tmp_path: Path) -> None:
    rows = sorted(_rows(300, 5), key=lambda r: r[1])  # a file sorted by label: all 긍정 first
    train = _write_csv(tmp_path / "train.csv", rows)
    run = tmp_path / "run"
    args = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    args += ["--label-column", "감정", "--quick", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    balance = config["text"]["class_balance"]
    assert balance["train"]["counts"] == {POS: 58, NEG: 58}  # 64 per class, 6 held out
    assert balance["valid"]["counts"] == {POS: 6, NEG: 6}
    assert json.loads((run / "metrics.json").read_text())["steps"] == 2


@pytest.mark.parametrize(("flag", "want"), [([], None), (["--set", "train.num_threads=1"], 1)])
def test_the_tokenizer_gets_the_training_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, flag: list[str], want: int | None
) -> None:
    # without train.num_threads the tokenizer runs on torch's thread count (the cores training
    # will use); with it, on that many
    import torch

    import lstmkit.tasks.text as owndata

    seen: list[int] = []
    prepare = owndata.prepare_text

    def spy(*args: object, threads: int = 1, **kwargs: object) -> object:
        seen.append(threads)
        return prepare(*args, threads=threads, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(owndata, "prepare_text", spy)
    monkeypatch.setattr(torch, "get_num_threads", lambda: 3)  # not OMP_NUM_THREADS' 1
    train = _write_csv(tmp_path / "train.csv", _rows(60, 3))
    args = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    args += ["--label-column", "감정", "--quick", "--out", str(tmp_path / "run"), "--no-progress"]
    assert main(args + flag) == 0
    assert seen == [want or 3]


def _glove(path: Path, words: list[str], dim: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    vecs = {w: rng.normal(size=dim).astype(np.float32) for w in words}
    path.write_text(
        "".join(w + " " + " ".join(repr(float(x)) for x in v) + "\n" for w, v in vecs.items()),
        encoding="utf-8",
    )
    return vecs


@pytest.mark.parametrize("freeze", [True, False])
def test_word_vectors_frozen_or_fine_tuned(tmp_path: Path, freeze: bool) -> None:
    train = _write_csv(tmp_path / "train.csv", _rows(60, 3))
    vecs = _glove(tmp_path / "glove.txt", ["좋아요", "싫어요", "film", "영화", "absent"], 6, 0)
    run = tmp_path / "run"
    args = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    args += ["--label-column", "감정", "--vectors", str(tmp_path / "glove.txt"), "--out", str(run)]
    args += ["--set", "epochs=2", "--set", "lr=0.05", "--no-progress"]
    assert main(args + (["--freeze-vectors"] if freeze else [])) == 0
    config = json.loads((run / "config.json").read_text(encoding="utf-8"))
    cov = config["text"]["vectors"]
    tok_vocab = json.loads((run / "tokenizer.json").read_text(encoding="utf-8"))["model"]["vocab"]
    expected_found = sum(w in tok_vocab for w in vecs)
    assert cov["found"] == expected_found == 4  # 'absent' is not in the training texts
    assert cov["vocab_words"] == len(tok_vocab) - 2
    assert config["model"]["embedding_dim"] == 6
    emb = load_file(str(run / "model.safetensors"))["embedding.weight"]
    for word in ("좋아요", "싫어요", "영화"):
        row = emb[tok_vocab[word]]
        if freeze:
            np.testing.assert_array_equal(row, vecs[word])
        else:
            assert np.abs(row - vecs[word]).max() > 1e-4  # trained away from the file's vector


def test_word2vec_pretraining_on_your_texts(tmp_path: Path) -> None:
    """--set pretrain.method=word2vec trains vectors on the training texts only; the run's
    metrics say what it did, like an IMDB run's."""
    train = _write_csv(tmp_path / "train.csv", _rows(60, 3))
    run = tmp_path / "run"
    args = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    args += ["--label-column", "감정", "--out", str(run), "--set", "epochs=1", "--no-progress"]
    args += ["--set", "pretrain.method=word2vec", "--set", "pretrain.min_count=1"]
    args += ["--set", "train.num_threads=1"]
    assert main(args) == 0
    facts = json.loads((run / "metrics.json").read_text(encoding="utf-8"))["pretrain"]
    assert facts["unlabelled_reviews"] == 0
    assert facts["sentences"] == 54  # the training records, not the 6 held out for validation
    assert facts["kept_ids"] >= 10


def test_classification_report_by_hand() -> None:
    cm = np.array([[5, 1, 0], [2, 2, 0], [0, 0, 0]])
    r = classification_report(cm, ["a", "b", "c"])
    assert r["accuracy"] == pytest.approx(7 / 10)
    assert r["per_class"]["a"] == {
        "precision": pytest.approx(5 / 7),
        "recall": pytest.approx(5 / 6),
        "f1": pytest.approx(2 * (5 / 7) * (5 / 6) / (5 / 7 + 5 / 6)),
        "support": 6,
    }
    assert r["per_class"]["b"]["precision"] == pytest.approx(2 / 3)
    assert r["per_class"]["b"]["recall"] == pytest.approx(0.5)
    f1_b = 2 * (2 / 3) * 0.5 / (2 / 3 + 0.5)
    assert r["macro_f1"] == pytest.approx((r["per_class"]["a"]["f1"] + f1_b) / 2)  # c absent


def test_bad_input_is_one_error_and_nothing_is_written(
    tmp_path: Path, text_run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    train = _write_csv(tmp_path / "train.csv", _rows(40, 4))
    test = tmp_path / "test.csv"
    test.write_text("review,감정\n좋아요,긍정\n몰라요,중립\n", encoding="utf-8")
    base = ["train", "--task", "text", "--train", str(train), "--text-column", "review"]
    base += ["--label-column", "감정", "--no-progress"]
    out = tmp_path / "new-run"
    capsys.readouterr()
    assert main(base + ["--test", str(test), "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"{test}: line 3, column '감정': label '중립' does not occur" in err
    assert not out.exists()  # checked before anything was written
    assert main(base + ["--text-column", "body", "--out", str(out)]) == 2
    assert "no column 'body' in the header" in capsys.readouterr().err
    assert main(base + ["--text-column", "감정", "--out", str(out)]) == 2
    assert "the text column and the label column are both '감정'" in capsys.readouterr().err
    # an existing run is never overwritten
    before = (text_run / "model.safetensors").read_bytes()
    assert main(base + ["--out", str(text_run)]) == 2
    assert "already holds a run" in capsys.readouterr().err
    assert (text_run / "model.safetensors").read_bytes() == before
    # flags without --task, and a forecast flag with --task text
    assert main(["train", "--train", str(train)]) == 2
    assert "add --task text or --task forecast" in capsys.readouterr().err
    assert main(base + ["--lookback", "5"]) == 2
    assert "--lookback: not used by --task text" in capsys.readouterr().err


@pytest.mark.slow
@pytest.mark.skipif(
    not (Path(os.environ.get("LSTMKIT_DATA", "/nonexistent")) / "aclImdb_v1_text.tar.gz").exists(),
    reason="LSTMKIT_DATA does not point at a directory with aclImdb_v1_text.tar.gz",
)
def test_real_imdb_reviews_from_csv(tmp_path: Path) -> None:
    """The 50k IMDB reviews as CSV files, one epoch: the own-data path learns real text."""
    root = Path(__file__).resolve().parents[2]
    subprocess.run(
        [
            sys.executable,
            str(root / "benchmarks" / "data_pipeline.py"),
            "--write-csv",
            str(tmp_path),
        ],
        check=True,
    )
    run = tmp_path / "run"
    args = ["train", "--task", "text", "--train", str(tmp_path / "train.csv")]
    args += ["--test", str(tmp_path / "test.csv"), "--text-column", "review"]
    args += ["--label-column", "sentiment", "--vocab-size", "10000", "--maxlen", "300"]
    args += ["--lowercase", "--set", "epochs=1", "--out", str(run), "--no-progress"]
    assert main(args) == 0
    report = json.loads((run / "evaluation.json").read_text(encoding="utf-8"))
    assert report["examples"] == 25000
    assert report["accuracy"] > 0.78, report["accuracy"]
