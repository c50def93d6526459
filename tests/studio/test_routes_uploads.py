"""Uploads (the own-data path): size limit, checks naming the row at fault, storage only inside
the studio's home under a name of the studio's choosing; a run on an uploaded CSV trains through
``lstmkit train --task text`` and its model predicts."""

from __future__ import annotations

import csv
import io
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from studio_support import TOPICS, wait_for

from lstmkit.studio import create_studio_app
from lstmkit.studio.uploads import UploadError, check_table


def topic_csv(n: int = 200, seed: int = 0) -> bytes:
    """Texts of the toy topics' words (as the tiny Reuters data), a header, a 'topic' label."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(["review", "topic"])
    for _ in range(n):
        k = rng.randrange(3)
        words = [
            f"w{rng.randrange(20 * k, 20 * k + 20)}"
            if rng.random() < 0.7
            else f"w{rng.randrange(60)}"
            for _ in range(rng.randrange(8, 30))
        ]
        writer.writerow([" ".join(words), TOPICS[k]])
    return out.getvalue().encode()


@pytest.fixture(scope="module")
def home(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("upload-home")


@pytest.fixture(scope="module")
def client(home: Path, recipes: Path, run_env: dict[str, str]) -> Iterator[TestClient]:
    (home / "uploads").mkdir()
    (home / "uploads" / ".0123456789ab.part").write_bytes(b"text,la")  # a crash mid-upload
    app = create_studio_app(
        home, recipes_dir=recipes, env=run_env, poll_s=0.05, max_upload_bytes=20_000
    )
    with TestClient(app) as c:
        yield c


def upload(client: TestClient, name: str, data: bytes) -> Any:
    return client.post("/api/uploads", params={"filename": name}, content=data)


def test_a_valid_csv_is_stored_under_its_id(client: TestClient, home: Path) -> None:
    r = upload(client, "../../etc/reviews.csv", b"text,label\nfine film,pos\nbad film,neg\n")
    assert r.status_code == 201, r.text
    meta = r.json()
    assert meta["columns"] == ["text", "label"] and meta["rows"] == 2 and meta["format"] == "csv"
    assert meta["filename"] == "reviews.csv"  # a label only
    # only the new file: the part of an upload cut off by a crash was removed at start-up
    assert [p.name for p in (home / "uploads").iterdir()] == [f"{meta['id']}.csv"]
    assert not (home.parent / "etc").exists()
    assert client.get("/api/uploads").json()[0]["id"] == meta["id"]


@pytest.mark.parametrize(
    ("name", "data", "words"),
    [
        ("a.txt", b"x", "unknown file type '.txt'; upload a .csv, .tsv or .jsonl file"),
        ("a.csv", b"text,label\nok,1\nnot,ok,3\n", "row 3: 3 values, the header names 2 columns"),
        ("a.csv", b"text,label\nonly one,1\n", "1 data row(s); at least 2 are needed"),
        ("a.csv", b"text,text\na,b\nc,d\n", "column names must be unique"),
        ("a.csv", b"\xff\xfetext\n", "is not UTF-8"),
        ("a.tsv", b"text\tlabel\na\t1\nb\n", "row 3: 1 values"),
        ("a.jsonl", b'{"text": "a", "label": 1}\n[1, 2]\n', "line 2: expected a JSON object"),
        ("a.jsonl", b'{"text": "a"}\n{"text": "b", "x": 1}\n', "line 2: columns"),
        ("a.jsonl", b'{"text": "a"}\n{"text": \n', "line 2: not JSON"),
        ("a.jsonl", b'{"text": {"a": 1}}\n{"text": "b"}\n', "holds a dict"),
    ],
)
def test_invalid_files_are_refused_with_the_row(
    client: TestClient, home: Path, name: str, data: bytes, words: str
) -> None:
    before = sorted(p.name for p in (home / "uploads").iterdir())
    r = upload(client, name, data)
    assert r.status_code == 422, r.text
    assert words in r.json()["detail"]
    assert sorted(p.name for p in (home / "uploads").iterdir()) == before  # nothing left behind


def test_the_size_limit(client: TestClient, home: Path) -> None:
    before = sorted(p.name for p in (home / "uploads").iterdir())
    r = upload(client, "big.csv", b"text,label\n" + b"word,1\n" * 5000)
    assert r.status_code == 413
    assert "upload limit is 20000" in r.json()["detail"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is counted while streaming
        yield b"text,label\n"
        for _ in range(100):
            yield b"word,1\n" * 50

    r = client.post("/api/uploads", params={"filename": "big.csv"}, content=chunks())
    assert r.status_code == 413 and "larger than the upload limit" in r.json()["detail"]
    assert sorted(p.name for p in (home / "uploads").iterdir()) == before


def test_check_table_counts_quoted_newlines() -> None:
    data = b'text,label\n"two\nlines",1\nplain,0\n'
    assert check_table(data, "csv", "x.csv") == (["text", "label"], 2)
    with pytest.raises(UploadError, match="the first line must name the columns"):
        check_table(b"\n\n", "csv", "x.csv")


def test_a_run_on_an_uploaded_csv_is_checked(client: TestClient) -> None:
    meta = upload(client, "topics.csv", topic_csv()).json()
    body = {
        "recipe": "tiny",
        "dataset": "upload",
        "upload_id": meta["id"],
        "text_column": "review",
        "label_column": "nope",
    }
    r = client.post("/api/runs", json=body)
    assert r.status_code == 422
    assert r.json()["detail"][0]["loc"] == ["body", "label_column"]
    assert "no column 'nope'; its columns are review, topic" in r.json()["detail"][0]["msg"]
    r = client.post("/api/runs", json={**body, "label_column": "review"})
    assert r.json()["detail"][0]["msg"] == "the label column must differ from the text column"
    r = client.post("/api/runs", json={**body, "label_column": "topic", "vocab_size": 2})
    assert r.json()["detail"][0]["loc"] == ["body", "vocab_size"]
    r = client.post("/api/runs", json={**body, "label_column": "topic", "validation_split": 0})
    assert r.json()["detail"][0]["loc"] == ["body", "validation_split"]
    r = client.post("/api/runs", json={**body, "upload_id": None, "label_column": "topic"})
    assert r.json()["detail"][0]["loc"] == ["body", "upload_id"]


@pytest.mark.slow  # 8 s: a real run through lstmkit train --task text
def test_a_run_on_an_uploaded_csv(client: TestClient) -> None:
    meta = upload(client, "topics.csv", topic_csv()).json()
    body = {
        "recipe": "tiny",
        "dataset": "upload",
        "upload_id": meta["id"],
        "text_column": "review",
        "label_column": "topic",
        "name": "own",
    }
    r = client.post("/api/runs", json=body)
    assert r.status_code == 201, r.text
    run = wait_for(client, r.json()["id"], ("finished", "failed"))
    assert run["status"] == "finished", run["error"]
    # the tiny recipe's model and training came along as --set values
    assert (
        "model.hidden_size=8" in run["overrides"] and "train.evaluate_every=5" in run["overrides"]
    )
    assert run["metrics"]["evaluation"]["accuracy"] > 0.6
    assert {r["split"] for r in run["rows"]} == {"train", "val"}
    model = client.post(f"/api/runs/{run['id']}/bundle").json()["url"]
    texts = [" ".join(f"w{i}" for i in range(20 * k, 20 * k + 20)) for k in range(3)]
    got = client.post(model + "v1/predict", json={"texts": texts})
    assert got.status_code == 200, got.text
    assert [p["label"] for p in got.json()["predictions"]] == TOPICS
