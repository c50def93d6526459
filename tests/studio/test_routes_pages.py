"""The page (lstmkit.studio.routes.pages): ``/`` and its static files only, no CDN, shipped as
package data."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from studio_support import make_client


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory, recipes: Path, run_env: dict[str, str]
) -> Iterator[TestClient]:
    with make_client(tmp_path_factory.mktemp("pages-home"), recipes, run_env) as c:
        yield c


def test_page_and_static_files(client: TestClient) -> None:
    html = client.get("/")
    assert html.status_code == 200 and html.headers["content-type"].startswith("text/html")
    for element in (
        'id="run-form"',
        'id="f-dataset"',
        'id="f-recipe"',
        'id="chart-loss"',
        'id="view-compare"',
        'src="static/vendor/uPlot.iife.min.js"',
    ):
        assert element in html.text, element
    js = client.get("/static/vendor/uPlot.iife.min.js")
    assert js.status_code == 200 and "uPlot" in js.text
    assert "MIT" in client.get("/static/vendor/uPlot.LICENSE").text
    assert client.get("/static/app.js").status_code == 200
    assert client.get("/static/missing.js").status_code == 404
    assert client.get("/static/../routes.py").status_code == 404
    assert client.get("/static/..%2Froutes.py").status_code == 404
    assert client.get("/static/..%2Fdeps.py").status_code == 404
    assert client.get("/static/..%2Froutes%2Fpages.py").status_code == 404
    for name in ("index.html", "app.js", "style.css"):
        text = (Path(__file__).parents[2] / "lstmkit/studio/static" / name).read_text()
        assert "http://" not in text and "https://" not in text, name  # no CDN


def test_health_needs_no_token(client: TestClient) -> None:
    assert client.get("/health").json() == {
        "status": "ok",
        "running": 0,
        "queued": 0,
        "max_concurrent": 1,
    }


def test_static_files_are_package_data() -> None:
    pyproject = (Path(__file__).parents[2] / "pyproject.toml").read_text()
    assert '"lstmkit.studio" = ["static/*", "static/vendor/*"]' in pyproject


def test_favicon_is_served(client: TestClient) -> None:
    # a browser asks for /favicon.ico unless the page names its icon; both answer the SVG
    for path in ("/favicon.ico", "/static/favicon.svg"):
        r = client.get(path)
        assert r.status_code == 200, path
        assert r.headers["content-type"].startswith("image/svg+xml")
        assert r.text.startswith("<svg")
    assert 'rel="icon" href="static/favicon.svg"' in client.get("/").text
