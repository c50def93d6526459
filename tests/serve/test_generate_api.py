"""POST /v1/generate: a character language model served -- one JSON body, or Server-Sent
Events as it samples, both equal to `lstmkit sample` with the same seed; bounded length and
concurrency; one clear 4xx for each bad request."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from fastapi.testclient import TestClient
from served_runs import language_model_run

from lstmkit.cli import main
from lstmkit.sampling import load_language_model, sample_stream
from lstmkit.serve import create_app


@pytest.fixture(scope="module")
def run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return language_model_run(tmp_path_factory.mktemp("lm-serve"))


@pytest.fixture(scope="module")
def client(run: Path) -> Iterator[TestClient]:
    with TestClient(create_app(run, max_length=300, max_chars=50)) as c:
        yield c


def _events(text: str) -> list[str]:
    assert text.endswith("data: [DONE]\n\n")
    return [e.removeprefix("data: ") for e in text.split("\n\n") if e]


def test_the_stream_and_the_body_equal_lstmkit_sample(
    client: TestClient, run: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = {"prime": "the c", "length": 120, "temperature": 0.8, "top_k": 5, "seed": 7}
    assert main(["sample", str(run), "--prime", "the c", "--length", "120", "--temperature",
                 "0.8", "--top-k", "5", "--seed", "7"]) == 0  # fmt: skip
    cli = capsys.readouterr().out.removesuffix("\n")
    r = client.post("/v1/generate", json=args)
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["text"] == cli and body["seed"] == 7
    assert body["generated"] == cli[5:] and len(body["generated"]) == 120
    with client.stream("POST", "/v1/generate", json={**args, "stream": True}) as s:
        assert s.status_code == 200
        assert s.headers["content-type"].startswith("text/event-stream")
        text = "".join(s.iter_text())
    events = _events(text)
    assert events[-1] == "[DONE]"
    pieces = [json.loads(e) for e in events[:-1]]
    assert pieces[-1] == {"done": True, "seed": 7, "length": 120}
    chunks = [p["text"] for p in pieces[:-1]]
    assert len(chunks[0]) == 1 and len(chunks) > 2  # the first character comes on its own
    assert "the c" + "".join(chunks) == cli
    # without a seed the server draws one and says which: giving it back gives the same text
    drawn = client.post("/v1/generate", json={"prime": "t", "length": 40}).json()
    again = client.post("/v1/generate", json={"prime": "t", "length": 40, "seed": drawn["seed"]})
    assert again.json()["text"] == drawn["text"]


def test_the_stepwise_sampler_equals_the_models_generate(run: Path) -> None:
    model, vocab, _ = load_language_model(run)
    prime = torch.from_numpy(vocab.encode("the "))
    for top_k in (None, 3):
        a = model.generate(prime, 50, temperature=1.3, top_k=top_k,
                           generator=torch.Generator().manual_seed(11))  # fmt: skip
        b = sample_stream(model, prime, 50, temperature=1.3, top_k=top_k,
                          generator=torch.Generator().manual_seed(11))  # fmt: skip
        assert a.tolist() == list(b)


def test_bad_generation_requests_are_one_4xx_each(client: TestClient) -> None:
    for body, code, message in [
        ({"prime": "the Z"}, 422, "character 'Z' at position 4 is not in the model's vocabulary"),
        ({"prime": ""}, 422, "at least 1 character"),
        ({"length": 0}, 422, "greater than or equal to 1"),
        ({"length": 301}, 413, "length 301 is over this server's max_length 300"),
        ({"prime": "t" * 51}, 413, "the prime has 51 characters, at most 50"),
        ({"prime": "t", "temperature": 0}, 422, "greater than 0"),
        ({"prime": "t", "top_k": 999}, 422, "top_k must be in 1.."),
        ({"seed": -1}, 422, "greater than or equal to 0"),
        ({"stream": "yes"}, 422, "valid boolean"),
        ({"length": 2.5}, 422, "valid integer"),
        ({"more": 1}, 422, "Extra inputs"),
    ]:
        r = client.post("/v1/generate", json=body)
        assert r.status_code == code, (body, r.text)
        assert message in json.dumps(r.json()["detail"]), (body, r.text)
    assert client.post("/v1/forecast", json={"rows": [{}]}).status_code == 404
    info = client.get("/v1/model").json()
    assert info["task"] == "language_model" and set(info["chars"]) == set("the cat sat on mat.")
    assert (info["max_length"], info["max_streams"]) == (300, 4)


def test_generations_beyond_the_slots_get_503_with_retry_after(run: Path) -> None:
    """Two slots, both held (as by two generations in flight): a request is refused at once
    with Retry-After; with one free it is answered, and every answer, streamed or not, gives
    its slot back."""
    with TestClient(create_app(run, max_streams=2)) as c:
        slots = c.app.state.serving.slots  # type: ignore[attr-defined]
        assert c.portal is not None
        for _ in range(2):
            c.portal.call(slots.acquire)
        r = c.post("/v1/generate", json={"prime": "t", "length": 5})
        assert r.status_code == 503 and r.headers["retry-after"] == "1", r.text
        assert "every generation slot is taken" in r.json()["detail"]
        c.portal.call(slots.release)
        assert c.post("/v1/generate", json={"prime": "t", "length": 5}).status_code == 200
        r = c.post("/v1/generate", json={"prime": "t", "length": 50, "stream": True})
        assert r.text.endswith("data: [DONE]\n\n")
        c.portal.call(slots.release)
        assert c.portal.call(lambda: slots._value) == 2  # noqa: SLF001 - every slot back
        metrics = c.get("/metrics").text
        assert 'lstmkit_requests_total{method="POST",route="/v1/generate",status="503"} 1.0' in (
            metrics
        )
        assert "lstmkit_generated_chars_total 55.0" in metrics
        assert "lstmkit_generations_in_flight 0.0" in metrics
