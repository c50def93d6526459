"""``GET /api/options`` (lstmkit.studio.routes.options): the recipes with the values of the form's
fields, the datasets, the bounds; the repository's own recipes."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from studio_support import make_client

REPO_RECIPES = Path(__file__).resolve().parents[2] / "lstmkit" / "recipes"


def detail(response: Any) -> Any:
    return response.json()["detail"]


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, recipes_dir: Path, run_env: dict[str, str]
) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("options-home"), recipes_dir, run_env) as c:
        yield c


def test_options_list_the_recipes_and_bounds(client: TestClient) -> None:
    got = client.get("/api/options").json()
    names = {r["name"]: r for r in got["recipes"]}
    assert set(names) == {"tiny", "slow", "broken"}
    assert "hidden_size" in names["broken"]["error"]
    tiny = names["tiny"]
    assert tiny["dataset"] == "reuters"
    assert tiny["values"]["hidden_size"] == 8 and tiny["values"]["evaluate_every"] == 5
    assert tiny["values"]["dropout_keep_prob"] == 1.0 and tiny["values"]["vocab_size"] == 63
    assert [d["id"] for d in got["datasets"]] == ["reuters", "upload"]
    assert got["datasets"][0]["recipes"] == ["slow", "tiny"]
    assert got["datasets"][1]["available"] is True  # lstmkit train --task text
    props = got["schema"]["properties"]
    assert props["hidden_size"]["anyOf"][0]["maximum"] == 1024
    assert got["max_concurrent"] == 1
    assert got["max_upload_bytes"] == 50 * 1024 * 1024


def test_the_repository_recipes_are_offered(tmp_path: Path, run_env: dict[str, str]) -> None:
    with make_client(tmp_path, REPO_RECIPES, run_env) as c:
        got = c.get("/api/options").json()
        bad = c.post(
            "/api/runs",
            json={"recipe": "mnist-rows-seed001", "dataset": "mnist", "max_sentence_length": 50},
        )
        assert bad.status_code == 422
        assert detail(bad)[0]["loc"] == ["body", "max_sentence_length"]
        assert "does not apply to the mnist dataset" in detail(bad)[0]["msg"]
        assert c.get("/api/runs").json() == []
    names = {r["name"]: r for r in got["recipes"]}
    seed3 = names["imdb-seed003"]
    assert seed3["dataset"] == "imdb" and seed3["values"]["hidden_size"] == 32
    seed0 = names["imdb-seed000"]["values"]
    assert seed0["max_sentence_length"] == 100 and seed0["dropout_keep_prob"] == 0.5
    assert seed0["num_layers"] == 2 and seed0["evaluate_every"] == 150
    assert seed0["batch_size"] == 1000 and seed0["learn_rate"] == 0.001
    assert {"imdb", "reuters", "upload"} <= {d["id"] for d in got["datasets"]}
    if "mnist-rows-seed001" in names:
        mnist = names["mnist-rows-seed001"]["values"]
        assert mnist["max_sentence_length"] is None and mnist["vocab_size"] is None
        assert mnist["hidden_size"] == 128
    assert got["not_applicable"]["mnist"] == ["max_sentence_length", "vocab_size", "embedding_dim"]
