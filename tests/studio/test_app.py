"""The studio app (lstmkit.studio.app): its arguments, the lifespan that opens the Studio into
``app.state``, the bearer token, and the same-site guard (pages of other sites cannot act, a
loopback studio refuses other host names)."""

from __future__ import annotations

import asyncio
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from studio_support import add_finished_run, make_client

from lstmkit.errors import ConfigError
from lstmkit.studio import create_studio_app
from lstmkit.studio.app import _host_name, _SameSite
from lstmkit.studio.deps import Studio


def detail(response: Any) -> Any:
    return response.json()["detail"]


def test_bad_arguments(tmp_path: Path, recipes: Path) -> None:
    with pytest.raises(ValueError, match="recipe folder .* does not exist"):
        create_studio_app(tmp_path, recipes_dir=tmp_path / "none")
    with pytest.raises(ValueError, match="token must not be empty"):
        create_studio_app(tmp_path, recipes_dir=recipes, token="")
    with pytest.raises(ValueError, match="max_concurrent must be >= 1"):
        create_studio_app(tmp_path, recipes_dir=recipes, max_concurrent=0)
    with pytest.raises(ConfigError, match="max_upload_bytes must be >= 1, got 0"):
        create_studio_app(tmp_path, recipes_dir=recipes, max_upload_bytes=0)


def test_the_lifespan_opens_the_studio_once(
    tmp_path: Path, recipes: Path, run_env: dict[str, str]
) -> None:
    client = make_client(tmp_path / "home", recipes, run_env)
    app: Any = client.app
    assert app.state.studio is None and not (tmp_path / "home").exists()  # nothing at creation
    assert client.get("/health").status_code == 503  # no lifespan, no studio
    with client:
        studio = app.state.studio
        assert isinstance(studio, Studio)
        assert studio.home == (tmp_path / "home").resolve()
        # SQLite's own sidecar files (-wal, -shm) exist while a connection is open: not ours
        sidecar = ("-wal", "-shm")
        names = sorted(p.name for p in studio.home.iterdir() if not p.name.endswith(sidecar))
        assert names == [
            "bundles",
            "runs",
            "studio.sqlite3",
            "uploads",
        ]
        assert studio.closing is app.state.closing and not studio.closing.is_set()
        assert studio.recovered == []
        assert client.get("/health").json()["max_concurrent"] == 1
    assert app.state.studio is None  # stopped


def test_token(tmp_path: Path, recipes: Path, run_env: dict[str, str]) -> None:
    with make_client(tmp_path, recipes, run_env, token="s3cret") as c:
        assert c.get("/api/options").status_code == 401
        assert c.get("/api/runs", headers={"Authorization": "Bearer wrong"}).status_code == 401
        ok = c.get("/api/options", headers={"Authorization": "Bearer s3cret"})
        assert ok.status_code == 200
        assert c.post("/api/uploads", params={"filename": "a.csv"}, content=b"x").status_code == 401
        assert c.get("/").status_code == 200 and c.get("/health").status_code == 200
        r = c.get("/api/runs", headers={"Authorization": "Basic s3cret"})
        assert r.status_code == 401 and r.headers["www-authenticate"] == "Bearer"
        assert detail(r) == "missing or wrong token: send 'Authorization: Bearer <token>'"


@pytest.fixture
def client(tmp_path: Path, recipes: Path, run_env: dict[str, str]) -> Any:
    with make_client(tmp_path, recipes, run_env) as c:
        yield c


def test_pages_of_other_sites_cannot_act(client: TestClient) -> None:
    a = "0000f00d"
    add_finished_run(client.app.state.studio.store, a, "reuters")  # type: ignore[attr-defined]
    evil = {"Origin": "http://evil.example"}
    r = client.post("/api/runs", json={"recipe": "tiny", "dataset": "reuters"}, headers=evil)
    assert r.status_code == 403 and "cross-site request refused" in detail(r)
    r = client.post(
        "/api/uploads",
        params={"filename": "a.csv"},
        content=b"a,b\n1,2\n3,4\n",
        headers={**evil, "Content-Type": "text/plain"},
    )
    assert r.status_code == 403
    assert client.post(f"/api/runs/{a}/cancel", headers={"Origin": "null"}).status_code == 403
    assert (
        client.post(f"/models/{a}/v1/predict", json={"texts": ["w1"]}, headers=evil).status_code
        == 403
    )
    # the studio's own page (same origin) may; reading is allowed (CORS keeps the answer from
    # other sites' scripts anyway)
    same = {"Origin": "http://testserver"}
    r = client.post(f"/api/runs/{a}/cancel", headers=same)
    assert r.status_code == 409  # reached the route: the run is finished
    assert client.get("/api/runs", headers=evil).status_code == 200
    assert client.get("/api/runs").headers.get("access-control-allow-origin") is None


def test_another_port_of_the_same_host_is_another_site(
    tmp_path: Path, recipes: Path, run_env: dict[str, str]
) -> None:
    """An origin is scheme, host and port: a page served on 127.0.0.1:8001 (another local app)
    may not act on the studio at 127.0.0.1:8000, nor one on the studio's port of another host."""
    a = "0000beef"
    app = create_studio_app(tmp_path, recipes_dir=recipes, env=run_env)
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        add_finished_run(app.state.studio.store, a, "reuters")
        for origin in ("http://127.0.0.1:8001", "http://127.0.0.1", "http://localhost:8000"):
            r = c.post(f"/api/runs/{a}/cancel", headers={"Origin": origin})
            assert r.status_code == 403, origin
            assert detail(r) == (
                f"cross-site request refused: origin {origin!r} is not this studio"
            )
        r = c.post(f"/api/runs/{a}/cancel", headers={"Origin": "http://127.0.0.1:8000"})
        assert r.status_code == 409  # its own origin reached the route: the run is finished


def test_a_loopback_studio_refuses_other_host_names(
    tmp_path: Path, recipes: Path, run_env: dict[str, str]
) -> None:
    app = create_studio_app(
        tmp_path, recipes_dir=recipes, env=run_env, allowed_hosts=("127.0.0.1", "localhost")
    )
    with TestClient(app, base_url="http://127.0.0.1:8000") as c:
        assert c.get("/api/options").status_code == 200
        assert c.get("/health", headers={"Host": "localhost:8000"}).status_code == 200
        r = c.get("/api/options", headers={"Host": "rebound.example:8000"})
        assert r.status_code == 400
        assert "host 'rebound.example:8000' is not served here" in detail(r)


@pytest.mark.parametrize(
    ("netloc", "host"),
    [
        ("127.0.0.1:8000", "127.0.0.1"),
        ("localhost", "localhost"),  # no port
        ("[::1]:8000", "::1"),  # an IPv6 literal, bracketed, with a port
        ("[::1]", "::1"),
        ("::1", "::1"),  # unbracketed: no port can be told apart
        ("", ""),
    ],
)
def test_the_host_name_of_a_host_header(netloc: str, host: str) -> None:
    assert _host_name(netloc) == host


_refusal_headers: list[tuple[bytes, bytes]] = []  # the last _asgi answer's headers


def _asgi(
    allowed: tuple[str, ...] | None, headers: list[tuple[bytes, bytes]], method: str = "POST"
) -> tuple[int, dict[str, Any] | None]:
    """One request through the same-site middleware alone: (status, JSON body of a refusal)."""
    sent: list[dict[str, Any]] = []
    reached: list[str] = []

    async def app(scope: Any, receive: Any, send: Any) -> None:
        reached.append(scope["path"])
        await send({"type": "http.response.start", "status": 204, "headers": []})
        await send({"type": "http.response.body", "body": b""})

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        sent.append(message)

    scope = {"type": "http", "method": method, "path": "/api/runs", "headers": headers}
    asyncio.run(_SameSite(app, allowed)(scope, receive, send))
    status = sent[0]["status"]
    _refusal_headers[:] = sent[0]["headers"]
    assert (status == 204) == (reached == ["/api/runs"])
    return status, None if status == 204 else json.loads(sent[1]["body"])


def test_the_same_site_check_on_hosts_it_may_meet() -> None:
    loopback = ("127.0.0.1", "localhost", "::1")
    assert _asgi(loopback, [(b"host", b"localhost")]) == (204, None)
    assert _asgi(loopback, [(b"host", b"[::1]:8000")]) == (204, None)
    assert _asgi(loopback, [(b"host", b"[::1]:8000"), (b"origin", b"http://[::1]:8000")])[0] == 204
    # no Host header at all (HTTP/1.0): not one of the names, said as it is
    assert _asgi(loopback, []) == (
        400,
        {"detail": "host '' is not served here; use 127.0.0.1 or localhost or ::1"},
    )
    assert _asgi(None, [], method="GET") == (204, None)
    # an origin against no Host: cross-site, refused for a POST
    status, body = _asgi(None, [(b"origin", b"http://127.0.0.1:8000")])
    assert status == 403 and body == {
        "detail": "cross-site request refused: origin 'http://127.0.0.1:8000' is not this studio"
    }
    assert _refusal_headers == [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(json.dumps(body))).encode()),
    ]


def test_the_studio_imports_no_cli() -> None:
    """The studio sits below the CLI: importing it (server included) loads no lstmkit.cli."""
    code = "import sys, lstmkit.studio.server; print('lstmkit.cli' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
