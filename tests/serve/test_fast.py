"""lstmkit.serve.fast: the lean POST /v1/predict answers exactly as the FastAPI route does, and
every request it does not finish reaches the route unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from test_api import TEXTS, make_bundle

import lstmkit.serve.fast as fast
from lstmkit.serve import create_app
from lstmkit.serve.schemas import PredictResponse

JSON = {"content-type": "application/json"}
# (body, headers): successes, every error path of the route, and JSON corner cases
REQUESTS: list[tuple[str | bytes, dict[str, str]]] = [
    (json.dumps({"texts": TEXTS}), JSON),
    (json.dumps({"texts": ["good"]}), {"content-type": "application/json; charset=utf-8"}),
    (json.dumps({"texts": ["caf\u00e9 good", "\u65e5\u672c good"]}), JSON),
    ('{"texts": ["bad"], "texts": ["good film"]}', JSON),  # duplicate key: the last one
    ('{"texts": ["\\ud800 good"]}', JSON),  # a lone surrogate escape
    ('{"texts": ["good"]}', {"content-type": "text/plain"}),
    ('{"texts": ["good"]}', {}),
    ('{"texts": ["good"', JSON),
    ('["good"]', JSON),
    ("{}", JSON),
    ('{"texts": "good film"}', JSON),
    ('{"texts": ["good", 3]}', JSON),
    ('{"texts": []}', JSON),
    ('{"texts": ["good"], "extra": 1}', JSON),
    ('{"texts": ["good", "   \\n"]}', JSON),
    ('{"texts": ["\\u001e"]}', JSON),
    (b'{"texts": ["\xff\xfe good"]}', JSON),  # not UTF-8
    (json.dumps({"texts": ["good"] * 9}), JSON),  # 413: too many texts
    (json.dumps({"texts": ["good " * 60, "film " * 60]}), JSON),  # 413: too many characters
    (json.dumps({"texts": ["x" * 10_000]}), JSON),  # 413: body too large
]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return make_bundle(tmp_path_factory.mktemp("fast"))


def _answers(bundle: Path, token: str | None, headers: dict[str, str]) -> list[tuple[int, Any]]:
    with TestClient(create_app(bundle, token=token, max_texts=8, max_chars=500)) as c:
        out = []
        for body, h in REQUESTS:
            r = c.post("/v1/predict", content=body, headers={**h, **headers})
            out.append((r.status_code, r.json()))
        return out


@pytest.mark.parametrize(
    ("token", "headers"),
    [
        (None, {}),
        ("s3cret", {"Authorization": "Bearer s3cret"}),
        ("s3cret", {"Authorization": "bearer s3cret"}),  # the route's HTTPBearer decides
        ("s3cret", {"Authorization": "Bearer wrong"}),
        ("s3cret", {}),
    ],
)
def test_same_answers_as_the_route(
    bundle: Path,
    token: str | None,
    headers: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    with_fast = _answers(bundle, token, headers)

    async def passthrough(self: fast.FastPredict, scope: Any, receive: Any, send: Any) -> None:
        await self.app(scope, receive, send)

    monkeypatch.setattr(fast.FastPredict, "__call__", passthrough)
    route = _answers(bundle, token, headers)
    assert with_fast == route
    statuses = {s for s, _ in route}
    if not token or headers.get("Authorization", "").lower() == "bearer s3cret":
        assert {200, 400, 413, 422} <= statuses  # the list reaches every outcome
    else:  # FastAPI answers a bad body before the token; nothing succeeds
        assert 401 in statuses and 200 not in statuses


def test_successes_do_not_reach_the_route(bundle: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def route_used(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("the FastAPI route answered")

    with TestClient(create_app(bundle)) as c:
        monkeypatch.setattr(PredictResponse, "model_validate", route_used)  # the route's last step
        r = c.post("/v1/predict", json={"texts": TEXTS})
        assert r.status_code == 200 and len(r.json()["predictions"]) == len(TEXTS)
        assert r.headers["content-type"] == "application/json"
        assert int(r.headers["content-length"]) == len(r.content)
    with (
        TestClient(create_app(bundle, micro_batch=False)) as c,  # no batcher: the route answers
        pytest.raises(AssertionError, match="the FastAPI route answered"),
    ):
        c.post("/v1/predict", json={"texts": TEXTS})
