"""The runs of lstmkit studio's API (lstmkit.studio.routes: runs, events, bundles, compare) with
real ``lstmkit train`` subprocesses on a tiny data set: a run from the form's parameters to its
metrics, the live stream, "Use this model", compare; a studio stopped mid-run and started again
(the finished run survives, the interrupted one is marked and resumes from its checkpoint);
cancel; every error path with its status code and message. One file: the tests share the stopped
home, in this order."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from studio_support import TOPICS, add_finished_run, make_client, read_events, wait_for

from lstmkit.studio.diagnose import diagnose


@pytest.fixture(scope="module")
def stopped_home(
    tmp_path_factory: pytest.TempPathFactory, recipes_dir: Path, run_env: dict[str, str]
) -> dict[str, Any]:
    """A studio home after a first studio trained run A to the end and was stopped while run B
    was training (B starts once A trains: A ends well before B could)."""
    home = tmp_path_factory.mktemp("home")
    with make_client(home, recipes_dir, run_env, max_concurrent=2) as client:
        a = client.post(
            "/api/runs",
            json={"recipe": "tiny", "dataset": "reuters", "name": "A", "hidden_size": 12},
        )
        assert a.status_code == 201, a.text
        wait_for(client, a.json()["id"], ("running",), min_rows=1)
        b = client.post("/api/runs", json={"recipe": "slow", "dataset": "reuters", "name": "B"})
        assert b.status_code == 201, b.text
        a_run = wait_for(client, a.json()["id"], ("finished",))
        b_run = wait_for(client, b.json()["id"], ("running",), min_rows=2)
        assert b_run["progress"]["step"] < 20
        assert b_run["progress"]["total_steps"] == 20
        assert b_run["progress"]["eta_s"] >= 0  # the trainer's ETA while it runs
    # leaving the client stops the studio: B gets SIGINT, checkpoints, and is marked interrupted
    return {"home": home, "a": a_run, "b": b_run["id"]}


@pytest.fixture(scope="module")
def client(
    stopped_home: dict[str, Any], recipes_dir: Path, run_env: dict[str, str]
) -> Iterator[TestClient]:
    with make_client(stopped_home["home"], recipes_dir, run_env) as c:
        yield c


def detail(response: Any) -> Any:
    return response.json()["detail"]


# -- the restart -----------------------------------------------------------------------------
def test_restart_keeps_the_finished_run_and_marks_the_interrupted_one(
    client: TestClient, stopped_home: dict[str, Any]
) -> None:
    a_before = stopped_home["a"]
    a = client.get(f"/api/runs/{a_before['id']}").json()
    assert a["status"] == "finished" and a["name"] == "A"
    assert a["metrics"] == a_before["metrics"]
    assert a["rows"] == a_before["rows"]
    assert a["params"]["hidden_size"] == 12 and "hidden_size=12" in a["overrides"]
    assert a["metrics"]["test"]["accuracy"] > 0.6  # three topics: chance is ~0.33
    b = client.get(f"/api/runs/{stopped_home['b']}").json()
    assert b["status"] == "interrupted"
    assert b["resumable"] is True
    assert "resume it from its last checkpoint" in b["error"]
    assert len(b["rows"]) >= 2
    assert client.get("/health").json() == {
        "status": "ok",
        "running": 0,
        "queued": 0,
        "max_concurrent": 1,
    }


def test_resume_continues_from_the_checkpoint(
    client: TestClient, stopped_home: dict[str, Any]
) -> None:
    b_id = stopped_home["b"]
    before = client.get(f"/api/runs/{b_id}").json()
    r = client.post(f"/api/runs/{b_id}/resume")
    assert r.status_code == 202, r.text
    assert r.json()["status"] in ("queued", "running")
    b = wait_for(client, b_id, ("finished",))
    assert b["resumes"] == 1 and b["exit_code"] == 0 and b["error"] is None
    assert b["metrics"]["steps"] == 20
    steps = [(r["step"], r["split"]) for r in b["rows"]]
    assert len(steps) == len(set(steps))  # recomputed rows replaced, not doubled
    assert [s for s, split in steps if split == "train"] == list(range(2, 21, 2))
    assert before["rows"][0]["step"] == 2
    log = client.get(f"/api/runs/{b_id}/log").json()["log"]
    assert log.count(" -m lstmkit train ") == 2 and "--resume" in log
    assert "resumed from" in log
    assert client.post(f"/api/runs/{b_id}/resume").status_code == 409  # finished now


def test_run_rows_and_progress(client: TestClient, stopped_home: dict[str, Any]) -> None:
    a = client.get(f"/api/runs/{stopped_home['a']['id']}").json()
    train = [r for r in a["rows"] if r["split"] == "train"]
    val = [r for r in a["rows"] if r["split"] == "val"]
    # tiny: 240 training examples, batch 16 -> 15 steps per epoch, 2 epochs, evaluate every 5
    assert [r["step"] for r in train] == [5, 10, 15, 20, 25, 30]
    assert [r["step"] for r in val] == [5, 10, 15, 20, 25, 30]
    for row in train:
        assert row["total_steps"] == 30 and row["lr"] == pytest.approx(0.01)
        assert row["grad_norm"] > 0 and row["tokens_per_s"] > 0
        assert set(row["layers"]) >= {"embedding", "head"}
        assert all(v["update_ratio"] > 0 for v in row["layers"].values())
    assert val[-1]["accuracy"] > val[0]["accuracy"]
    assert a["progress"]["step"] == 30 and a["progress"]["total_steps"] == 30
    assert a["progress"]["eta_s"] is None  # finished
    assert a["hints"] == diagnose(a["rows"])  # lstmkit.studio.diagnose on the rows
    after = max(r["seq"] for r in a["rows"]) - 2
    newer = client.get(f"/api/runs/{a['id']}/metrics", params={"after": after}).json()
    assert len(newer) == 2 and all(r["seq"] > after for r in newer)
    log = client.get(f"/api/runs/{a['id']}/log").json()["log"]
    assert "test accuracy" in log and "--set hidden_size=12" in log
    tail = client.get(f"/api/runs/{a['id']}/log", params={"tail_bytes": 10}).json()["log"]
    assert len(tail) == 10 and log.endswith(tail)


def test_events_stream_of_a_finished_run(client: TestClient, stopped_home: dict[str, Any]) -> None:
    run_id = stopped_home["a"]["id"]
    with client.stream("GET", f"/api/runs/{run_id}/events") as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        body = r.read().decode()
    events = read_events(body)
    kinds = [e for e, _ in events]
    assert kinds[0] == "metrics" and kinds[-1] == "end" and "status" in kinds and "log" in kinds
    assert len(events[0][1]["rows"]) == len(stopped_home["a"]["rows"])
    status = next(d for e, d in events if e == "status")
    assert status["hints"] == diagnose(stopped_home["a"]["rows"])
    assert status["status"] == "finished" and status["progress"]["step"] == 30
    # reconnecting after the newest row sends no rows again
    last = max(r["seq"] for r in events[0][1]["rows"])
    with client.stream(
        "GET", f"/api/runs/{run_id}/events", headers={"Last-Event-ID": str(last)}
    ) as r:
        again = read_events(r.read().decode())
    assert "metrics" not in [e for e, _ in again] and again[-1][0] == "end"


def test_use_this_model(client: TestClient, stopped_home: dict[str, Any]) -> None:
    run_id = stopped_home["a"]["id"]
    missing = client.get(f"/models/{run_id}/")
    assert missing.status_code == 404 and "no bundle yet" in detail(missing)
    r = client.post(f"/api/runs/{run_id}/bundle")
    assert r.status_code == 200, r.text
    assert r.json()["url"] == f"/models/{run_id}/"
    assert client.post(f"/api/runs/{run_id}/bundle").json() == r.json()  # idempotent
    assert (stopped_home["home"] / "bundles" / run_id / "bundle.json").is_file()
    assert client.get(f"/api/runs/{run_id}").json()["model_url"] == f"/models/{run_id}/"
    page = client.get(f"/models/{run_id}", follow_redirects=False)
    assert page.status_code == 307 and page.headers["location"] == f"/models/{run_id}/"
    html = client.get(f"/models/{run_id}/")
    assert html.status_code == 200 and 'src="static/app.js"' in html.text
    assert client.get(f"/models/{run_id}/static/app.js").status_code == 200
    info = client.get(f"/models/{run_id}/v1/model").json()
    assert info["labels"] == TOPICS and info["model"]["hidden_size"] == 12
    texts = [" ".join(f"w{i}" for i in range(20 * k, 20 * k + 20)) for k in range(3)]
    got = client.post(f"/models/{run_id}/v1/predict", json={"texts": texts})
    assert got.status_code == 200, got.text
    # each text holds only its topic's words: the trained model reads them right
    assert [p["label"] for p in got.json()["predictions"]] == TOPICS
    inspect = client.post(f"/models/{run_id}/v1/inspect", json={"text": texts[0]})
    assert inspect.status_code == 200 and inspect.json()["cell"] == "lstm"


def test_compare(client: TestClient, stopped_home: dict[str, Any]) -> None:
    a, b = stopped_home["a"]["id"], stopped_home["b"]
    r = client.get("/api/compare", params=[("ids", a), ("ids", b), ("ids", a)])
    assert r.status_code == 200, r.text
    runs = r.json()["runs"]
    assert [x["id"] for x in runs] == [a, b]
    assert runs[0]["values"]["hidden_size"] == 12 and runs[1]["values"]["hidden_size"] == 96
    assert runs[0]["values"]["learn_rate"] == pytest.approx(0.01)
    assert runs[0]["values"]["dropout_keep_prob"] == 1.0
    assert all(x["rows"] for x in runs)
    assert client.get("/api/compare").status_code == 422
    assert client.get("/api/compare", params={"ids": "0badc0de"}).status_code == 404


@pytest.mark.slow  # 6 s; the queue's cancel path is in test_jobs.py with stand-ins
def test_cancel_a_running_and_a_queued_run(client: TestClient) -> None:
    running = client.post(
        "/api/runs", json={"recipe": "slow", "dataset": "reuters", "max_steps": 10_000}
    ).json()
    queued = client.post("/api/runs", json={"recipe": "tiny", "dataset": "reuters"}).json()
    wait_for(client, running["id"], ("running",), min_rows=1)
    assert client.get(f"/api/runs/{queued['id']}").json()["status"] == "queued"  # limit 1
    r = client.post(f"/api/runs/{queued['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] == "cancelled"
    r = client.post(f"/api/runs/{running['id']}/cancel")
    assert r.status_code == 202 and r.json()["status"] in ("cancelling", "cancelled")
    done = wait_for(client, running["id"], ("cancelled",))
    assert done["resumable"] is True and "SIGINT" in done["error"]
    assert "SIGTERM" not in done["error"]  # it checkpointed and stopped within the grace period
    assert done["progress"]["step"] < 10_000
    q = client.get(f"/api/runs/{queued['id']}").json()
    assert q["status"] == "cancelled" and q["started"] is None and q["resumable"] is False
    again = client.post(f"/api/runs/{running['id']}/cancel")
    assert again.status_code == 409 and "only queued or running" in detail(again)


# -- errors ----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("body", "field", "words"),
    [
        ({"hidden_size": 10**9}, "hidden_size", "less than or equal to 1024"),
        ({"hidden_size": 1.5}, "hidden_size", "integer"),
        ({"dropout_keep_prob": 0}, "dropout_keep_prob", "greater than 0"),
        ({"learn_rate": -1}, "learn_rate", "greater than 0"),
        ({"num_layers": 99}, "num_layers", "less than or equal to 8"),
        ({"batch_size": "many"}, "batch_size", "integer"),
        ({"cell": "transformer"}, "cell", "'lstm', 'gru' or 'rnn'"),
        ({"max_sentence_length": 0}, "max_sentence_length", "greater than or equal to 1"),
        ({"recipe": "nope"}, "recipe", "no recipe named 'nope'; choose one of: slow, tiny"),
        ({"recipe": "broken"}, "recipe", "cannot be used"),
        ({"dataset": "cifar"}, "dataset", "unknown dataset 'cifar'"),
        ({"upload_id": "../../etc"}, "upload_id", "pattern"),
        ({"upload_id": "0123456789ab"}, "upload_id", "no upload"),
        ({"gpus": 8}, "gpus", "Extra inputs"),
    ],
)
def test_invalid_fields_are_named(
    client: TestClient, body: dict[str, Any], field: str, words: str
) -> None:
    r = client.post("/api/runs", json={"recipe": "tiny", "dataset": "reuters", **body})
    assert r.status_code == 422, r.text
    errors = detail(r)
    assert errors[0]["loc"] == ["body", field]
    assert words in errors[0]["msg"]


def test_upload_dataset_needs_the_upload(client: TestClient) -> None:
    # an uploaded file trains through `lstmkit train --task text`, which lstmkit always has
    r = client.post("/api/runs", json={"recipe": "tiny", "dataset": "upload"})
    assert r.status_code == 422
    assert detail(r)[0]["loc"] == ["body", "upload_id"]
    assert detail(r)[0]["msg"] == "upload_id is required when the dataset is 'upload'"


def test_unknown_runs(client: TestClient) -> None:
    for method, path in [
        ("GET", "/api/runs/0badc0de"),
        ("GET", "/api/runs/0badc0de/log"),
        ("GET", "/api/runs/0badc0de/metrics"),
        ("GET", "/api/runs/0badc0de/events"),
        ("POST", "/api/runs/0badc0de/cancel"),
        ("POST", "/api/runs/0badc0de/resume"),
        ("POST", "/api/runs/0badc0de/bundle"),
    ]:
        r = client.request(method, path)
        assert r.status_code == 404, (method, path)
        assert detail(r) == "no run '0badc0de'"
    bad = client.get("/api/runs/..%2F..%2Fetc")
    assert bad.status_code in (404, 422)
    assert client.get("/api/runs/NOTHEX12").status_code == 422
    assert client.get("/models/0badc0de/").status_code == 404
    r = client.get("/models/..%2Fruns/")
    assert r.status_code == 404 and "8 hex digits" in detail(r)


def test_conflicts(client: TestClient, stopped_home: dict[str, Any]) -> None:
    a = stopped_home["a"]["id"]
    r = client.post(f"/api/runs/{a}/cancel")
    assert r.status_code == 409 and "is finished" in detail(r)
    r = client.post(f"/api/runs/{a}/resume")
    assert r.status_code == 409 and "only interrupted or cancelled" in detail(r)
    queued = client.post(
        "/api/runs", json={"recipe": "slow", "dataset": "reuters", "max_steps": 10_000}
    ).json()
    r = client.post(f"/api/runs/{queued['id']}/bundle")
    assert r.status_code == 409 and "only a finished run" in detail(r)
    assert client.post(f"/api/runs/{queued['id']}/cancel").status_code == 202
    cancelled = wait_for(client, queued["id"], ("cancelled",))
    if not cancelled["resumable"]:  # cancelled before its first checkpoint
        r = client.post(f"/api/runs/{queued['id']}/resume")
        assert r.status_code == 409 and "before its first checkpoint" in detail(r)


def test_use_this_model_needs_a_text_classifier(
    client: TestClient, stopped_home: dict[str, Any]
) -> None:
    store = client.app.state.studio.store  # type: ignore[attr-defined]
    for run_id, config, words in [
        ("00000a1a", {"task": "language_model"}, "is a language_model model"),
        ("00000a2a", {"task": "classify", "real_valued": True}, "reads real-valued rows"),
    ]:
        add_finished_run(store, run_id)  # a finished run, never queued
        run_dir = stopped_home["home"] / "runs" / run_id
        run_dir.mkdir(parents=True)
        (run_dir / "config.json").write_text(json.dumps(config))
        r = client.post(f"/api/runs/{run_id}/bundle")
        assert r.status_code == 409 and words in detail(r)
        assert not (stopped_home["home"] / "bundles" / run_id).exists()


def test_history_rows_are_json(stopped_home: dict[str, Any]) -> None:
    run_dir = stopped_home["home"] / "runs" / stopped_home["a"]["id"]
    lines = (run_dir / "history.jsonl").read_text().splitlines()
    assert len(lines) == len(stopped_home["a"]["rows"])
    assert all(json.loads(line)["split"] in ("train", "val") for line in lines)


# -- a study's trials (lstmkit tune --out HOME/runs/STUDY) ------------------------------------
def test_a_studys_trials_are_listed_like_runs_and_compare(
    tmp_path: Path,
    recipes_dir: Path,
    run_env: dict[str, str],
    tiny_data: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Two trials of a tiny study in HOME/runs: the list shows both, named by study and trial,
    with the study's values and the trial's own history and metrics; compare takes them; their
    page, log and "Use this model" work; they do not resume; the ids stay across studios."""
    optuna = pytest.importorskip("optuna")
    from lstmkit.tune import Param, tune

    monkeypatch.setenv("LSTMKIT_DATA", str(tiny_data))
    home = tmp_path / "home"
    out = home / "runs" / "lr-search"
    space = [Param("train.lr", 1e-3, 3e-2, log=True), Param("model.hidden_size", choices=(8, 12))]
    tune(str(recipes_dir / "tiny.toml"), trials=2, out=out, space=space)
    study = optuna.load_study(study_name="lstmkit-tune", storage=f"sqlite:///{out / 'study.db'}")
    # beside it, a folder whose study.db is no database and one with an empty one: not listed
    (home / "runs" / "broken").mkdir()
    (home / "runs" / "broken" / "study.db").write_bytes(b"not a database")
    (home / "runs" / "empty").mkdir()
    (home / "runs" / "empty" / "study.db").write_bytes(b"")
    with make_client(home, recipes_dir, run_env) as client:
        listed = client.get("/api/runs")
        assert listed.status_code == 200, listed.text
        trials = sorted(
            (r for r in listed.json() if r["params"].get("study") == "lr-search"),
            key=lambda r: r["params"]["trial"],
        )
        assert [r["name"] for r in trials] == ["lr-search trial 0", "lr-search trial 1"]
        for run, trial in zip(trials, study.get_trials(), strict=True):
            folder = out / f"trial-{trial.number:03d}"
            metrics = json.loads((folder / "metrics.json").read_text())
            assert run["status"] == "finished" and run["resumable"] is False
            assert run["recipe"] == "tiny" and run["dataset"] == "reuters"
            assert run["metrics"] == metrics
            assert run["params"] == {
                "study": "lr-search",
                "trial": trial.number,
                **trial.params,
                "value": trial.value,
            }
            assert metrics["best_val"]["value"] == trial.value
            detail = client.get(f"/api/runs/{run['id']}").json()
            history = [json.loads(x) for x in (folder / "history.jsonl").read_text().splitlines()]
            assert [{k: v for k, v in r.items() if k != "seq"} for r in detail["rows"]] == sorted(
                history, key=lambda r: (r["step"], r["split"])
            )
            assert detail["values"]["learn_rate"] == trial.params["train.lr"]
            assert detail["values"]["hidden_size"] == trial.params["model.hidden_size"]
            assert client.get(f"/api/runs/{run['id']}/log").status_code == 200
        ids = [r["id"] for r in trials]
        assert len(set(ids)) == 2
        # the list again: the same two, once each
        again = [r["id"] for r in client.get("/api/runs").json()]
        assert sorted(again) == sorted(ids)

        compared = client.get("/api/compare", params={"ids": ids})
        assert compared.status_code == 200, compared.text
        got = compared.json()["runs"]
        assert [r["id"] for r in got] == ids
        for run, trial in zip(got, study.get_trials(), strict=True):
            assert run["values"]["learn_rate"] == trial.params["train.lr"]
            val = [r for r in run["rows"] if r["split"] == "val"]
            assert min(r["loss"] for r in val) == pytest.approx(trial.value)

        resumed = client.post(f"/api/runs/{ids[0]}/resume")
        assert resumed.status_code == 409
        assert "trial 0 of the study 'lr-search'" in resumed.json()["detail"]
        model = client.post(f"/api/runs/{ids[1]}/bundle")
        assert model.status_code == 200, model.text
        predicted = client.post(model.json()["api"], json={"texts": ["oil prices rise"]})
        assert predicted.status_code == 200 and predicted.json()["predictions"][0]["label"]
    # a new studio database on the same home: the trials get the same ids, and compare finds
    # them before any list did
    for name in ("studio.sqlite3", "studio.sqlite3-wal", "studio.sqlite3-shm"):
        (home / name).unlink(missing_ok=True)
    with make_client(home, recipes_dir, run_env) as client:
        assert client.get("/api/compare", params={"ids": ids}).status_code == 200
        assert sorted(r["id"] for r in client.get("/api/runs").json()) == sorted(ids)
