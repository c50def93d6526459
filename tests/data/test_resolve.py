"""resolve/download against a local HTTP server: good, corrupted, truncated, offline, precedence."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from rich.console import Console

from lstmkit.data.resolve import (
    ENV_VAR,
    REGISTRY,
    DataIntegrityError,
    DataNotFoundError,
    DownloadError,
    default_cache_dir,
    download,
    resolve,
    verify_file,
)

# Where CI's mirror lives (.ci/run sets LSTMKIT_DATA to it); used as a fallback for local runs.
_MIRROR = Path(os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[3] / "shared" / "data")

PAYLOAD = bytes(range(256)) * 10_000  # 2.56 MB: several 1 MiB reads
PAYLOAD_SHA = hashlib.sha256(PAYLOAD).hexdigest()


class _Server(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), _Handler)
        # path -> (body, Content-Length to announce, or None to send no length)
        self.routes: dict[str, tuple[bytes, int | None]] = {}
        self.hits: list[str] = []

    def add(self, path: str, body: bytes, length: int | None = None, announce: bool = True) -> str:
        self.routes[path] = (
            body,
            None if not announce else len(body) if length is None else length,
        )
        return f"http://127.0.0.1:{self.server_address[1]}{path}"


class _Handler(BaseHTTPRequestHandler):
    server: _Server

    def do_GET(self) -> None:
        self.server.hits.append(self.path)
        if self.path not in self.server.routes:
            self.send_error(404)
            return
        body, length = self.server.routes[self.path]
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(length))
        self.end_headers()
        # With length > len(body), this is a dropped connection: the handler returns and the
        # server closes the socket before the announced length was sent.
        self.wfile.write(body)
        self.close_connection = True

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 - base signature
        pass


@pytest.fixture
def server() -> Iterator[_Server]:
    srv = _Server()
    thread = threading.Thread(target=srv.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    yield srv
    srv.shutdown()
    srv.server_close()
    thread.join(timeout=5)


@pytest.fixture
def closed_url() -> str:
    """A URL on a port nobody listens on: connecting is refused at once, like being offline."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}/imdb.npz"


@pytest.fixture(autouse=True)
def _isolated_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    # No test may see the developer's mirror or write to the real user cache.
    monkeypatch.delenv(ENV_VAR, raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))


def _console() -> tuple[Console, io.StringIO]:
    buf = io.StringIO()
    return Console(file=buf, force_terminal=True, width=120), buf


def test_download_good_is_verified_atomic_and_shows_progress(
    server: _Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    url = server.add("/payload.bin", PAYLOAD)
    dest = tmp_path / "cache" / "payload.bin"
    order: list[str] = []
    renames: list[tuple[Path, Path]] = []
    real_replace, real_fsync = os.replace, os.fsync

    def spy_replace(src: str | os.PathLike[str], dst: str | os.PathLike[str]) -> None:
        order.append("replace")
        renames.append((Path(src), Path(dst)))
        assert Path(src).read_bytes() == PAYLOAD  # complete before it becomes visible
        real_replace(src, dst)

    def spy_fsync(fd: int) -> None:
        order.append("fsync")
        real_fsync(fd)

    monkeypatch.setattr(os, "replace", spy_replace)
    monkeypatch.setattr(os, "fsync", spy_fsync)
    console, buf = _console()

    got = download(url, dest, expected=[f"sha256:{PAYLOAD_SHA}"], console=console)

    assert got == dest
    assert dest.read_bytes() == PAYLOAD
    assert os.listdir(dest.parent) == ["payload.bin"]  # no temp file left behind
    assert order.index("fsync") < order.index("replace")
    [(src, dst)] = renames
    assert dst == dest
    assert src.parent == dest.parent  # same filesystem, so the rename is atomic
    assert src.name.startswith(".payload.bin.") and src.name.endswith(".part")
    out = buf.getvalue()
    assert "Downloading payload.bin" in out
    assert "2.6/2.6 MB" in out
    assert server.hits == ["/payload.bin"]


def test_download_without_progress_prints_nothing(server: _Server, tmp_path: Path) -> None:
    url = server.add("/payload.bin", PAYLOAD)
    console, buf = _console()
    md5 = hashlib.md5(PAYLOAD).hexdigest()
    download(url, tmp_path / "p.bin", expected=[f"md5:{md5}"], progress=False, console=console)
    assert (tmp_path / "p.bin").read_bytes() == PAYLOAD
    assert buf.getvalue() == ""


def test_corrupted_download_raises_and_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    corrupted = bytearray(PAYLOAD)
    corrupted[1234] ^= 0xFF
    url = server.add("/payload.bin", bytes(corrupted))
    cache = tmp_path / "cache"
    with pytest.raises(DataIntegrityError) as err:
        download(url, cache / "payload.bin", expected=[f"sha256:{PAYLOAD_SHA}"], progress=False)
    message = str(err.value)
    assert "payload.bin" in message
    assert PAYLOAD_SHA in message  # expected
    assert hashlib.sha256(bytes(corrupted)).hexdigest() in message  # got
    assert os.listdir(cache) == []


def test_corrupted_download_keeps_existing_file(server: _Server, tmp_path: Path) -> None:
    url = server.add("/payload.bin", b"not the payload")
    dest = tmp_path / "payload.bin"
    dest.write_bytes(b"old content")
    with pytest.raises(DataIntegrityError):
        download(url, dest, expected=[f"sha256:{PAYLOAD_SHA}"], progress=False)
    assert dest.read_bytes() == b"old content"
    assert os.listdir(tmp_path) == ["payload.bin"]


def test_dropped_connection_raises_and_leaves_nothing(server: _Server, tmp_path: Path) -> None:
    half = PAYLOAD[: len(PAYLOAD) // 2]
    url = server.add("/payload.bin", half, length=len(PAYLOAD))
    cache = tmp_path / "cache"
    with pytest.raises(DownloadError) as err:
        download(url, cache / "payload.bin", expected=[f"sha256:{PAYLOAD_SHA}"], progress=False)
    message = str(err.value)
    assert "payload.bin" in message
    assert f"got {len(half)} of {len(PAYLOAD)} bytes" in message
    assert os.listdir(cache) == []


def test_download_without_content_length_is_still_hash_checked(
    server: _Server, tmp_path: Path
) -> None:
    url = server.add("/payload.bin", PAYLOAD, announce=False)
    console, buf = _console()
    download(url, tmp_path / "ok.bin", expected=[f"sha256:{PAYLOAD_SHA}"], console=console)
    assert (tmp_path / "ok.bin").read_bytes() == PAYLOAD
    assert "Downloading payload.bin" not in buf.getvalue()  # the bar is named after dest
    assert "Downloading ok.bin" in buf.getvalue()
    url = server.add("/short.bin", PAYLOAD[:-1], announce=False)  # truncated, nothing to count
    with pytest.raises(DataIntegrityError, match="short.bin"):
        download(url, tmp_path / "short.bin", expected=[f"sha256:{PAYLOAD_SHA}"], progress=False)
    assert os.listdir(tmp_path) == ["ok.bin"]


def test_http_error_is_data_not_found(server: _Server, tmp_path: Path) -> None:
    url = server.add("/other", b"x").replace("/other", "/missing.npz")
    with pytest.raises(DataNotFoundError, match="HTTP 404"):
        download(url, tmp_path / "m.npz", expected=[f"sha256:{PAYLOAD_SHA}"], progress=False)
    assert os.listdir(tmp_path) == []


def test_download_requires_well_formed_hashes(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="without an expected hash"):
        download("http://127.0.0.1:9/x", tmp_path / "x", expected=[])
    with pytest.raises(ValueError, match="sha256:<hexdigest>"):
        download("http://127.0.0.1:9/x", tmp_path / "x", expected=[PAYLOAD_SHA])


def test_offline_raises_one_clear_error(closed_url: str, tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    with pytest.raises(DataNotFoundError) as err:
        resolve("imdb.npz", cache_dir=cache, url=closed_url, progress=False)
    message = str(err.value)
    assert isinstance(err.value, FileNotFoundError)
    assert "imdb.npz" in message
    assert str(cache / "imdb.npz") in message  # where it looked
    assert closed_url in message  # what it tried
    assert f"{ENV_VAR} is not set" in message
    assert f"Set {ENV_VAR}=/path/to/dir containing imdb.npz." in message
    assert not cache.exists() or os.listdir(cache) == []


def test_offline_message_names_the_mirror_dir(
    closed_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mirror = tmp_path / "mirror"
    mirror.mkdir()
    monkeypatch.setenv(ENV_VAR, str(mirror))
    with pytest.raises(DataNotFoundError) as err:
        resolve("reuters.npz", cache_dir=tmp_path / "cache", url=closed_url, progress=False)
    assert str(mirror / "reuters.npz") in str(err.value)
    assert "is not set" not in str(err.value)


def test_no_download_url_or_download_off(tmp_path: Path, server: _Server) -> None:
    with pytest.raises(DataNotFoundError, match="no download URL"):
        resolve("reuters_topics.json", cache_dir=tmp_path)
    with pytest.raises(DataNotFoundError, match="allow_download=False"):
        url = server.add("/imdb.npz", b"x")
        resolve("imdb.npz", cache_dir=tmp_path, url=url, allow_download=False)
    assert server.hits == []


def test_mirror_takes_precedence_over_cache(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, closed_url: str
) -> None:
    mirror, cache = tmp_path / "mirror", tmp_path / "cache"
    mirror.mkdir()
    cache.mkdir()
    (mirror / "mnist.npz").write_bytes(b"mirror")
    (cache / "mnist.npz").write_bytes(b"cache")
    monkeypatch.setenv(ENV_VAR, str(mirror))
    assert resolve("mnist.npz", cache_dir=cache, url=closed_url) == mirror / "mnist.npz"
    (mirror / "mnist.npz").unlink()  # mirror set but without the file: the cache is next
    assert resolve("mnist.npz", cache_dir=cache, url=closed_url) == cache / "mnist.npz"


def test_cache_hit_skips_the_network(tmp_path: Path, server: _Server) -> None:
    (tmp_path / "imdb.npz").write_bytes(b"cached")
    url = server.add("/imdb.npz", b"served")
    assert resolve("imdb.npz", cache_dir=tmp_path, url=url) == tmp_path / "imdb.npz"
    assert server.hits == []


def test_verify_rejects_a_local_file_matching_no_known_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "mnist.npz").write_bytes(b"not mnist")
    monkeypatch.setenv(ENV_VAR, str(tmp_path))
    assert resolve("mnist.npz", cache_dir=tmp_path / "c") == tmp_path / "mnist.npz"  # no hashing
    with pytest.raises(DataIntegrityError) as err:
        resolve("mnist.npz", cache_dir=tmp_path / "c", verify=True)
    message = str(err.value)
    assert str(tmp_path / "mnist.npz") in message
    for spec in REGISTRY["mnist.npz"].hashes:
        assert spec in message
    assert hashlib.sha256(b"not mnist").hexdigest() in message


def test_resolve_downloads_into_cache_once(tmp_path: Path, server: _Server) -> None:
    real = _MIRROR / "reuters_word_index.json"
    if not real.is_file():
        pytest.skip(f"{real} is absent; set {ENV_VAR} to the shared data mirror")
    url = server.add("/reuters_word_index.json", real.read_bytes())
    cache = tmp_path / "cache"
    got = resolve("reuters_word_index.json", cache_dir=cache, url=url, progress=False)
    assert got == cache / "reuters_word_index.json"
    assert got.read_bytes() == real.read_bytes()
    assert resolve("reuters_word_index.json", cache_dir=cache, url=url) == got
    assert server.hits == ["/reuters_word_index.json"]
    assert os.listdir(cache) == ["reuters_word_index.json"]


def test_registry_knows_the_mirror_hashes() -> None:
    missing = [name for name in REGISTRY if not (_MIRROR / name).is_file()]
    if missing:
        pytest.skip(f"{', '.join(missing)} absent from {_MIRROR}; set {ENV_VAR} to the mirror")
    for name in REGISTRY:
        assert verify_file(_MIRROR / name) == _MIRROR / name


def test_default_cache_dir(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "lstmkit"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/dir")  # invalid per the XDG spec: ignored
    assert default_cache_dir() == Path.home() / ".cache" / "lstmkit"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_dir() == Path.home() / ".cache" / "lstmkit"


def test_unknown_name_lists_the_known_ones() -> None:
    with pytest.raises(
        ValueError, match=r"Unknown data file 'imdb\.zip'; known files are: .*imdb\.npz"
    ):
        resolve("imdb.zip")


def test_module_has_no_mutable_registry() -> None:
    with pytest.raises(TypeError):
        REGISTRY["x"] = REGISTRY["imdb.npz"]  # type: ignore[index]
