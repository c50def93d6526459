"""lstmkit.serve.app and lstmkit.serve.routes: the FastAPI app on a tiny bundle (no data set):
predictions, model info, health, every error path with its status code and message, token auth,
the CLI."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from fastapi.testclient import TestClient

from lstmkit.bundle import BundleError, export_bundle, load
from lstmkit.checkpoint import model_state, save_tensors
from lstmkit.cli import main
from lstmkit.config import Recipe
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.serve import create_app

TEXTS = ["a good film", "bad plot, boring acting " * 5, "fun", "great great great film"]


def make_bundle(root: Path) -> Path:
    """Export a run directory of a tiny untrained model (as run_recipe writes it) as a bundle."""
    torch.manual_seed(0)
    net = SequenceClassifier(ClassifierConfig(vocab_size=50, embedding_dim=8, hidden_size=8))
    run = root / "run"
    run.mkdir(parents=True)
    save_tensors(model_state(net), run / "model.safetensors")
    config = {
        "recipe": Recipe().model_dump(),
        "raw": {},
        "model": net.config.to_dict(),
        "task": "classify",
        "real_valued": False,
        "labels": ["negative", "positive"],
    }
    (run / "config.json").write_text(json.dumps(config))
    words = ["good", "bad", "film", "plot", "great", "boring", "acting", "fun"]
    Vocabulary({w: i + 4 for i, w in enumerate(words)}).save(run / "vocab.json")
    (run / "metrics.json").write_text(json.dumps({"test": {"accuracy": 0.5}}))
    return export_bundle(run, root / "bundle")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("serve"))


@pytest.fixture(scope="module")
def client(bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(bundle, max_texts=8, max_chars=500)) as c:
        yield c


def detail(response: Any) -> str:
    return json.dumps(response.json()["detail"])


def test_predict_in_input_order(client: TestClient, bundle: Path) -> None:
    r = client.post("/v1/predict", json={"texts": TEXTS})
    assert r.status_code == 200, r.text
    predictions = r.json()["predictions"]
    expected = load(bundle).predict(TEXTS)
    assert len(predictions) == len(TEXTS)
    for got, want in zip(predictions, expected, strict=True):
        assert got["label"] == want["label"]
        assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)
        assert set(got["scores"]) == {"negative", "positive"}
    single = client.post("/v1/predict", json={"texts": [TEXTS[1]]}).json()["predictions"][0]
    assert single["scores"] == pytest.approx(predictions[1]["scores"], abs=1e-6)


def test_inference_runs_off_the_event_loop(bundle: Path) -> None:
    app = create_app(bundle)
    threads: list[int] = []
    with TestClient(app) as c:
        predictor = app.state.serving.predictor
        original = predictor.predict

        def spy(texts: list[str]) -> list[dict[str, Any]]:
            threads.append(threading.get_ident())
            return original(texts)

        predictor.predict = spy
        loop_thread = c.portal.call(threading.get_ident) if c.portal else None
        assert c.post("/v1/predict", json={"texts": ["good"]}).status_code == 200
    assert threads and loop_thread is not None and threads[0] != loop_thread


def test_model_info_health_docs(client: TestClient) -> None:
    info = client.get("/v1/model").json()
    assert info["labels"] == ["negative", "positive"]
    assert info["model"]["vocab_size"] == 50
    assert info["model"]["cell"] == "lstm"
    assert info["task"] == "classify"
    assert info["maxlen"] == Recipe().data.maxlen
    assert info["metrics"] == {"test": {"accuracy": 0.5}}
    assert info["bundle"]["format"] == "lstmkit-bundle"
    assert info["bundle"]["version"] == 1
    assert info["max_texts"] == 8 and info["max_chars"] == 500
    assert client.get("/health").json() == {"status": "ok"}
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/predict", "/v1/model", "/health"} <= set(paths)


def test_too_many_texts_or_characters_is_413(client: TestClient) -> None:
    r = client.post("/v1/predict", json={"texts": ["good"] * 9})
    assert r.status_code == 413
    assert r.json()["detail"] == "too many texts: 9 in one request, at most 8"
    r = client.post("/v1/predict", json={"texts": ["good " * 60, "film " * 60]})
    assert r.status_code == 413
    assert r.json()["detail"] == "too many characters: 600 in one request, at most 500"
    r = client.post(
        "/v1/predict",
        content=json.dumps({"texts": ["x" * 10_000]}),
        headers={"content-type": "application/json"},
    )
    assert r.status_code == 413
    assert "request body too large" in r.json()["detail"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ('{"texts": ["good"', "JSON decode error"),
        ('["good"]', "valid dictionary"),
        ("{}", "Field required"),
        ('{"texts": "good film"}', "valid list"),
        ('{"texts": ["good", 3]}', "valid string"),
        ('{"texts": []}', "at least 1 item"),
        ('{"texts": ["good"], "extra": 1}', "Extra inputs are not permitted"),
        ('{"texts": ["good", "   \\n"]}', "texts[1] is empty or whitespace-only"),
        ('{"texts": [""]}', "texts[0] is empty or whitespace-only"),
        # blank to Python but not to ECMA's \\s (and the reverse): schema and server agree
        ('{"texts": ["\\u001e"]}', "texts[0] is empty or whitespace-only"),
        ('{"texts": ["\\ufeff "]}', "texts[0] is empty or whitespace-only"),
    ],
)
def test_bad_requests_are_422(client: TestClient, body: str, needle: str) -> None:
    r = client.post("/v1/predict", content=body, headers={"content-type": "application/json"})
    assert r.status_code == 422, r.text
    assert needle in detail(r)


def test_token(bundle: Path) -> None:
    with TestClient(create_app(bundle, token="s3cret")) as c:
        for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": "s3cret"}):
            for method, path in (("post", "/v1/predict"), ("get", "/v1/model")):
                r = c.request(method, path, json={"texts": ["good"]}, headers=headers)
                assert r.status_code == 401, (headers, path)
                assert "missing or wrong token" in r.json()["detail"]
                assert r.headers["www-authenticate"] == "Bearer"
        ok = {"Authorization": "Bearer s3cret"}
        assert c.post("/v1/predict", json={"texts": ["good"]}, headers=ok).status_code == 200
        assert c.get("/v1/model", headers=ok).status_code == 200
        assert c.get("/health").status_code == 200  # liveness needs no token


def test_no_cors(client: TestClient) -> None:
    r = client.options(
        "/v1/predict",
        headers={"Origin": "https://evil.example", "Access-Control-Request-Method": "POST"},
    )
    assert "access-control-allow-origin" not in r.headers
    r = client.post(
        "/v1/predict", json={"texts": ["good"]}, headers={"Origin": "https://evil.example"}
    )
    assert "access-control-allow-origin" not in r.headers


def test_bad_bundle_fails_at_startup(bundle: Path, tmp_path: Path) -> None:
    with (
        pytest.raises(BundleError, match="is not a directory"),
        TestClient(create_app(tmp_path / "missing")),
    ):
        pass
    with pytest.raises(ValueError, match="max_texts"):
        create_app(bundle, max_texts=0)


def test_cli_serve(bundle: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import uvicorn

    calls: list[dict[str, Any]] = []
    monkeypatch.setattr(uvicorn, "run", lambda app, **kw: calls.append({"app": app, **kw}))
    assert main(["serve", str(bundle)]) == 0
    assert calls[-1]["host"] == "127.0.0.1" and calls[-1]["port"] == 8000
    assert calls[-1]["app"].state.token is None
    assert main(["serve", str(bundle), "--port", "9001", "--token", "t"]) == 0
    assert calls[-1]["port"] == 9001 and calls[-1]["app"].state.token == "t"
    assert main(["serve", str(tmp_path / "missing")]) == 2  # before the server starts
    assert len(calls) == 2


def test_the_schema_asks_for_a_token_only_when_there_is_one(bundle: Path) -> None:
    """The /v1 routes get the token check (and its security scheme) only from an app with a
    token; without one nothing is checked, or solved, per request (test_token: with one, 401)."""
    for token, secured in ((None, False), ("s3cret", True)):
        schema = create_app(bundle, token=token).openapi()
        for path, method in (
            ("/v1/predict", "post"),
            ("/v1/inspect", "post"),
            ("/v1/model", "get"),
        ):
            assert ("security" in schema["paths"][path][method]) == secured, (token, path)
        assert ("securitySchemes" in schema.get("components", {})) == secured


JSON = {"content-type": "application/json"}
# (body, headers, status): successes, JSON corner cases and every error path of POST /v1/predict
BODIES: list[tuple[str | bytes, dict[str, str], int]] = [
    (json.dumps({"texts": TEXTS}), JSON, 200),
    (json.dumps({"texts": ["good"]}), {"content-type": "application/json; charset=utf-8"}, 200),
    (json.dumps({"texts": ["caf\u00e9 good", "\u65e5\u672c good"]}), JSON, 200),
    ('{"texts": ["bad"], "texts": ["good film"]}', JSON, 200),  # duplicate key: the last one
    ('{"texts": ["\\ud800 good"]}', JSON, 200),  # a lone surrogate escape
    ('{"texts": ["good"]}', {"content-type": "text/plain"}, 422),  # not read as JSON
    ('{"texts": ["good"]}', {}, 422),  # no content type: not read as JSON either
    ('{"texts": ["good"', JSON, 422),
    ('{"texts": ["\\u001e"]}', JSON, 422),
    (b'{"texts": ["\xff\xfe good"]}', JSON, 400),  # not UTF-8
    (json.dumps({"texts": ["good"] * 9}), JSON, 413),  # too many texts
    (json.dumps({"texts": ["good " * 60, "film " * 60]}), JSON, 413),  # too many characters
    (json.dumps({"texts": ["x" * 10_000]}), JSON, 413),  # body too large
]


@pytest.mark.parametrize(("body", "headers", "code"), BODIES)
def test_every_kind_of_body(
    client: TestClient, body: str | bytes, headers: dict[str, str], code: int
) -> None:
    r = client.post("/v1/predict", content=body, headers=headers)
    assert r.status_code == code, r.text
    assert r.headers["content-type"] == "application/json"
    assert int(r.headers["content-length"]) == len(r.content)
    if code == 200:
        labels = [p["label"] for p in r.json()["predictions"]]
        assert len(labels) == len(json.loads(body)["texts"])
        assert set(labels) <= {"negative", "positive"}
    else:
        assert r.json()["detail"]


def test_duplicate_key_takes_the_last(client: TestClient, bundle: Path) -> None:
    r = client.post(
        "/v1/predict", content='{"texts": ["bad"], "texts": ["good film"]}', headers=JSON
    )
    got = r.json()["predictions"][0]["scores"]
    assert got == pytest.approx(load(bundle).predict(["good film"])[0]["scores"], abs=1e-6)


def test_without_the_lifespan_the_api_says_the_model_is_not_loaded(bundle: Path) -> None:
    c = TestClient(create_app(bundle))  # not entered: no lifespan, no model
    r = c.post("/v1/predict", json={"texts": ["good"]})
    assert r.status_code == 503
    assert r.json()["detail"] == "the model is not loaded (the app's lifespan has not started)"


def test_without_micro_batching_the_route_runs_the_model(bundle: Path) -> None:
    with TestClient(create_app(bundle, micro_batch=False)) as c:
        assert c.app.state.serving.batcher is None  # type: ignore[attr-defined]
        r = c.post("/v1/predict", json={"texts": TEXTS})
        assert r.status_code == 200
        assert [p["label"] for p in r.json()["predictions"]] == [
            p["label"] for p in load(bundle).predict(TEXTS)
        ]


def test_inspect_units_are_each_units_gate_per_token(client: TestClient, bundle: Path) -> None:
    """``layers[i].units``: per gate one row per unit of its activation per token (units x
    tokens), equal to the step-by-step recomputation; the means stay what they were."""
    from lstmkit.inspect import trace_recurrent

    text = "a good film, great plot but boring acting"
    r = client.post("/v1/inspect", json={"text": text})
    assert r.status_code == 200, r.text
    got = r.json()
    predictor = load(bundle)
    ids = predictor.encode([text])[0]
    with torch.no_grad():
        feats, _ = predictor.model.features(torch.tensor([ids], dtype=torch.long))
        (trace,) = trace_recurrent(predictor.model, feats)
    assert got["unit_tokens"] == len(ids) == len(got["tokens"])
    (layer,) = got["layers"]
    assert set(layer["units"]) == {"input", "forget", "output"}
    for gate, rows in layer["units"].items():
        want = trace.gates[gate]  # (T, H)
        assert len(rows) == want.shape[1] == 8  # one row per unit
        assert all(len(row) == len(ids) for row in rows)  # one value per token
        assert torch.tensor(rows) == pytest.approx(want.T, abs=5.1e-5)  # rounded to 4 decimals
        assert layer["gates"][gate] == pytest.approx(want.mean(-1).tolist(), abs=1e-6)
        # the rows vary from unit to unit: not 8 copies of the mean
        assert max(max(row) - min(row) for row in zip(*rows, strict=True)) > 1e-3
