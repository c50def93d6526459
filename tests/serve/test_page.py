"""lstmkit.serve: ``POST /v1/inspect`` and the web page (``GET /``, ``/static/*``) on a tiny
untrained bundle (no data set): happy path, limits, token, and no external resources."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from test_bundle import make_run

from lstmkit.bundle import export_bundle, load
from lstmkit.inspect import inspect_text
from lstmkit.serve import create_app

STATIC = Path(__file__).parents[2] / "lstmkit" / "serve" / "static"
TEXT = "a good film, great plot but boring acting"


@pytest.fixture(scope="module")
def bundle(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("page")
    return export_bundle(make_run(root / "run", num_layers=2), root / "bundle")


@pytest.fixture(scope="module")
def client(bundle: Path) -> Iterator[TestClient]:
    with TestClient(create_app(bundle, max_texts=8, max_chars=500)) as c:
        yield c


def test_inspect_happy_path(client: TestClient, bundle: Path) -> None:
    r = client.post("/v1/inspect", json={"text": TEXT})
    assert r.status_code == 200, r.text
    got = r.json()
    want = inspect_text(load(bundle), TEXT)
    assert got["label"] == want["label"]
    assert got["tokens"] == want["tokens"] and got["words"] == want["words"]
    assert got["tokens"][:3] == ["<start>", "<oov>", "good"]
    assert got["contributions"] == pytest.approx(want["contributions"], abs=1e-6)
    assert len(got["contributions"]) == len(got["tokens"])
    assert got["scores"] == pytest.approx(want["scores"], abs=1e-6)
    assert got["contribution_method"] == "occlusion"
    assert [(x["layer"], x["direction"]) for x in got["layers"]] == [
        (0, "forward"),
        (1, "forward"),
    ]
    for layer in got["layers"]:
        assert set(layer["gates"]) == {"input", "forget", "output"}
        assert len(layer["cell_norm"]) == len(got["tokens"])
    predicted = client.post("/v1/predict", json={"texts": [TEXT]}).json()["predictions"][0]
    assert predicted["label"] == got["label"]
    assert "/v1/inspect" in client.get("/openapi.json").json()["paths"]


@pytest.mark.parametrize(
    ("body", "needle"),
    [
        ({"text": ""}, "empty"),
        ({"text": "   \n"}, "empty"),
        ({}, "text"),
        ({"text": 3}, "string"),
        ({"text": "good", "extra": 1}, "extra"),
    ],
)
def test_inspect_invalid_body_is_422(
    client: TestClient, body: dict[str, object], needle: str
) -> None:
    r = client.post("/v1/inspect", json=body)
    assert r.status_code == 422
    assert needle in r.text.lower()


def test_inspect_over_max_chars_is_413(client: TestClient) -> None:
    r = client.post("/v1/inspect", json={"text": "good " * 101})
    assert r.status_code == 413
    assert r.json()["detail"] == "too many characters: 505 in one request, at most 500"


def test_inspect_wants_the_token(bundle: Path) -> None:
    with TestClient(create_app(bundle, token="s3cret")) as c:
        assert c.post("/v1/inspect", json={"text": TEXT}).status_code == 401
        wrong = {"Authorization": "Bearer nope"}
        assert c.post("/v1/inspect", json={"text": TEXT}, headers=wrong).status_code == 401
        right = {"Authorization": "Bearer s3cret"}
        assert c.post("/v1/inspect", json={"text": TEXT}, headers=right).status_code == 200
        # the page itself and its assets need no token (the page asks for it)
        assert c.get("/").status_code == 200
        assert c.get("/static/app.js").status_code == 200


def test_index_page_has_the_form(client: TestClient) -> None:
    r = client.get("/")
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/html")
    html = r.text
    for element in (
        '<textarea id="text"',
        'id="predict"',
        'id="token"',
        'id="label"',
        'id="bars"',
        'id="heatmap"',
        'src="static/app.js"',  # relative: the page also works under lstmkit studio's /models/<id>/
        'href="static/style.css"',
    ):
        assert element in html, element
    assert html.count('class="example"') == 3


def test_static_files_served(client: TestClient) -> None:
    js = client.get("/static/app.js")
    assert js.status_code == 200 and "javascript" in js.headers["content-type"]
    assert '"v1/inspect"' in js.text and '"v1/predict"' in js.text
    css = client.get("/static/style.css")
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")
    assert client.get("/static/missing.js").status_code == 404
    assert client.get("/static/..%2Froutes.py").status_code == 404
    assert client.get("/static/../routes.py").status_code == 404


def test_page_uses_only_local_assets(client: TestClient) -> None:
    texts = {name: client.get(f"/static/{name}").text for name in ("app.js", "style.css")}
    texts["index.html"] = client.get("/").text
    for name, text in texts.items():
        assert "http://" not in text and "https://" not in text, name
        assert "//" not in "".join(re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', text)), name
        assert "@import" not in text and "url(" not in text, name
    refs = re.findall(r'(?:src|href)\s*=\s*"([^"]*)"', texts["index.html"])
    assert refs and all(ref.startswith("static/") for ref in refs)


def test_static_files_are_package_data() -> None:
    assert {p.name for p in STATIC.iterdir()} >= {"index.html", "app.js", "style.css"}
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"lstmkit.serve" = ["static/*"]' in pyproject


def test_favicon_is_served(client: TestClient) -> None:
    # a browser asks for /favicon.ico unless the page names its icon; both answer the SVG
    for path in ("/favicon.ico", "/static/favicon.svg"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.text.startswith("<svg")
    assert 'rel="icon" href="static/favicon.svg"' in client.get("/").text
    assert {p.name for p in STATIC.iterdir()} >= {"favicon.svg"}
