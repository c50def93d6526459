"""Find a known data file on disk, or download it once into the user cache.

`resolve(name)` looks in three places, in this order, and returns the first hit:

1. ``$LSTMKIT_DATA/<name>`` when the environment variable ``LSTMKIT_DATA`` is set (an offline
   mirror, e.g. the ``shared/data`` folder CI points at);
2. ``<cache_dir>/<name>``, where the cache is ``$XDG_CACHE_HOME/lstmkit`` or ``~/.cache/lstmkit``;
3. the file's canonical URL: it is streamed into a temporary file next to its final place, its
   hash is checked against `REGISTRY`, and only then is it fsynced and renamed into the cache.

Verification policy: a download is always hashed. A file already on disk (in ``LSTMKIT_DATA`` or
the cache) is hashed only with ``verify=True``. The cache only ever receives files that passed
the hash check and were renamed into place atomically, so re-hashing them on every load (57 MB
for the aclImdb archive) would buy nothing; for a hand-made ``LSTMKIT_DATA`` mirror, call
``resolve(name, verify=True)`` once (the test suite does) to check it against the known hashes.

`REGISTRY` keeps, per file, the canonical hashes of the upstream download and the hashes of the
known offline mirror (``shared/data``, whose ``imdb.npz``, ``reuters.npz`` and ``mnist.npz`` are
rebuilt in the Keras layout and so differ byte-wise from the Keras downloads). A file is accepted
when it matches any of them.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import secrets
import urllib.error
import urllib.request
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType
from typing import BinaryIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    DownloadColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from lstmkit.errors import ConfigError, DataIntegrityError, DataNotFoundError, DownloadError
from lstmkit.files import fsync_dir

__all__ = [
    "ENV_VAR",
    "REGISTRY",
    "DataFile",
    "DataIntegrityError",
    "DataNotFoundError",
    "DownloadError",
    "default_cache_dir",
    "download",
    "resolve",
    "verify_file",
]

ENV_VAR = "LSTMKIT_DATA"
"""Environment variable naming a directory that holds local copies of the data files."""

_KERAS = "https://storage.googleapis.com/tensorflow/tf-keras-datasets/"
_CHUNK = 1 << 20  # 1 MiB per read: few syscalls, small memory, smooth progress bar.
_TIMEOUT_S = 60.0  # per socket operation, not for the whole transfer.


@dataclass(frozen=True)
class DataFile:
    """One known data file.

    Attributes:
        name: file name, the key in `REGISTRY` and the name on disk.
        url: canonical download URL, or None when the file only exists in offline mirrors.
        canonical: hashes of the file served at `url`, as ``"algorithm:hexdigest"``.
        mirror: hashes of known offline mirror copies (``shared/data``), same format.
        description: what the file holds.
    """

    name: str
    url: str | None
    canonical: tuple[str, ...]
    mirror: tuple[str, ...]
    description: str

    @property
    def hashes(self) -> tuple[str, ...]:
        """Every accepted ``"algorithm:hexdigest"``: canonical first, then mirrors."""
        return self.canonical + self.mirror


def _registry(*files: DataFile) -> Mapping[str, DataFile]:
    return MappingProxyType({f.name: f for f in files})


REGISTRY: Mapping[str, DataFile] = _registry(
    DataFile(
        name="imdb.npz",
        url=f"{_KERAS}imdb.npz",
        canonical=("sha256:69664113be75683a8fe16e3ed0ab59fda8886cb3cd7ada244f7d9544e4676b9f",),
        mirror=("sha256:881760df4c5750b87efa4ab7dc37b2a1a06c383d72b3a09907772d05f1cae07f",),
        description="IMDB sentiment, Keras imdb.npz layout",
    ),
    DataFile(
        name="imdb_word_index.json",
        url=f"{_KERAS}imdb_word_index.json",
        # The mirror is byte-identical to the Keras file, whose published hash is an md5.
        canonical=(
            "md5:bfafd718b763782e994055a2d397834f",
            "sha256:027313fe9a320280f3bf0fac5baf58c4a683cf39a7ed9c3d3d3912bde4284cf6",
        ),
        mirror=(),
        description="IMDB word -> frequency rank",
    ),
    DataFile(
        name="reuters.npz",
        url=f"{_KERAS}reuters.npz",
        canonical=("sha256:d6586e694ee56d7a4e65172e12b3e987c03096cb01eab99753921ef915959916",),
        mirror=("sha256:c19b5e2f68ffded568d76328f0c7abd603819c8bfb735e7f738a498b18b9cb07",),
        description="Reuters newswires, 46 topics, Keras reuters.npz layout",
    ),
    DataFile(
        name="reuters_word_index.json",
        url=f"{_KERAS}reuters_word_index.json",
        canonical=("md5:4d44cc38712099c9e383dc6e5f11a921",),  # Keras publishes only an md5.
        mirror=("sha256:238e72dfcf1c04bd76ac4b27a354032620a7d1d613e2fa9b41c5e770cb5bc25c",),
        description="Reuters word -> frequency rank",
    ),
    DataFile(
        name="reuters_topics.json",
        # Keras hard-codes its topic names; this file only exists in the rebuilt mirror, whose
        # labels are numbered by topic name in alphabetical order.
        url=None,
        canonical=(),
        mirror=("sha256:ebeff1c247681f273d25538bfa745938696f1f1cb616c813ec404d29b723e4b0",),
        description="names of the 46 topics of the rebuilt reuters.npz",
    ),
    DataFile(
        name="mnist.npz",
        url=f"{_KERAS}mnist.npz",
        canonical=("sha256:731c5ac602752760c8e48fbffcf8c3b850d9dc2a2aedcf2cc48468fc17b673d1",),
        mirror=("sha256:88eaf78b3cf8a302b5c253212171853934f34bb083759fe893a3554a84c56f0a",),
        description="MNIST digits, Keras mnist.npz layout",
    ),
    DataFile(
        name="tinyshakespeare.txt",
        url="https://raw.githubusercontent.com/karpathy/char-rnn/master/data/tinyshakespeare/input.txt",
        canonical=("sha256:86c4e6aa9db7c042ec79f339dcb96d42b0075e16b8fc2e86bf0ca57e2dc565ed",),
        mirror=(),
        description="char-rnn tiny shakespeare corpus",
    ),
    DataFile(
        name="aclImdb_v1_text.tar.gz",
        # Upstream serves the full aclImdb_v1.tar.gz (84 MB, with bag-of-words files); the mirror
        # is a re-pack of its review texts. Both unpack to the same aclImdb/ review layout.
        url="https://ai.stanford.edu/~amaas/data/sentiment/aclImdb_v1.tar.gz",
        canonical=("sha256:c40f74a18d3b61f90feba1e17730e0d38e8b97c05fde7008942e91923d1658fe",),
        mirror=("sha256:91ab3079f70de8a9697b762bba75c97e4c82d1f1b49e151618e666091fb6a7fc",),
        description="Stanford Large Movie Review Dataset v1.0 review texts",
    ),
)


def default_cache_dir() -> Path:
    """Return ``$XDG_CACHE_HOME/lstmkit`` (if set to an absolute path) or ``~/.cache/lstmkit``."""
    xdg = os.environ.get("XDG_CACHE_HOME", "")
    # The XDG spec says a relative XDG_CACHE_HOME is invalid and must be ignored.
    base = Path(xdg) if xdg and os.path.isabs(xdg) else Path.home() / ".cache"
    return base / "lstmkit"


def _entry(name: str) -> DataFile:
    try:
        return REGISTRY[name]
    except KeyError:
        known = ", ".join(sorted(REGISTRY))
        raise ConfigError(f"Unknown data file {name!r}; known files are: {known}.") from None


def _hashers(expected: Iterable[str]) -> dict[str, hashlib._Hash]:
    """One hasher per algorithm named in `expected` (sha256 always, for error messages)."""
    bad = [spec for spec in expected if ":" not in spec]
    if bad:
        raise ValueError(f"Expected hash {bad[0]!r} must look like 'sha256:<hexdigest>'.")
    algorithms = {"sha256"} | {spec.split(":", 1)[0] for spec in expected}
    return {algo: hashlib.new(algo) for algo in sorted(algorithms)}


def _matches(hashers: Mapping[str, hashlib._Hash], expected: Iterable[str]) -> bool:
    return any(f"{algo}:{h.hexdigest()}" in expected for algo, h in hashers.items())


def _got(hashers: Mapping[str, hashlib._Hash]) -> str:
    return ", ".join(f"{algo}:{h.hexdigest()}" for algo, h in hashers.items())


def verify_file(path: str | os.PathLike[str], name: str | None = None) -> Path:
    """Hash `path` and check it against the known hashes of `name` (default: its file name).

    Returns the path; raises `DataIntegrityError` naming the file, the expected and the got hashes.
    """
    path = Path(path)
    entry = _entry(name if name is not None else path.name)
    hashers = _hashers(entry.hashes)
    with path.open("rb") as f:
        while chunk := f.read(_CHUNK):
            for h in hashers.values():
                h.update(chunk)
    if not _matches(hashers, entry.hashes):
        raise DataIntegrityError(
            f"{path} does not match any known hash of {entry.name}: expected one of "
            f"{', '.join(entry.hashes)}, got {_got(hashers)}; delete it, or point "
            f"{ENV_VAR} at a directory with an intact copy."
        )
    return path


def _open(url: str, name: str, timeout: float) -> http.client.HTTPResponse:
    request = urllib.request.Request(url, headers={"User-Agent": "lstmkit"})
    try:
        response: http.client.HTTPResponse = urllib.request.urlopen(request, timeout=timeout)
    except urllib.error.HTTPError as exc:
        raise DataNotFoundError(
            f"Download of {name} from {url} failed with HTTP {exc.code} {exc.reason}."
        ) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
        raise DataNotFoundError(f"Could not reach {url} to download {name}: {reason}.") from exc
    return response


def _stream(
    response: http.client.HTTPResponse,
    out: BinaryIO,
    hashers: Mapping[str, hashlib._Hash],
    *,
    what: str,
    progress: bool,
    console: Console | None,
) -> None:
    """Copy the body into `out` and the hashers; raise `DownloadError` if it is cut short."""
    length = response.headers.get("Content-Length")
    total = int(length) if length is not None and length.isdigit() else None
    received = 0
    columns = (
        TextColumn("{task.description}"),
        BarColumn(),
        DownloadColumn(),
        TransferSpeedColumn(),
        TimeRemainingColumn(),
    )
    console = console if console is not None else Console(stderr=True)
    with Progress(*columns, console=console, disable=not progress) as bar:
        task = bar.add_task(f"Downloading {what}", total=total)
        try:
            while chunk := response.read(_CHUNK):
                out.write(chunk)
                for h in hashers.values():
                    h.update(chunk)
                received += len(chunk)
                bar.advance(task, len(chunk))
        except (OSError, http.client.HTTPException) as exc:
            raise DownloadError(
                f"Download of {what} broke off after {received} bytes "
                f"({type(exc).__name__}: {exc}); nothing was saved."
            ) from exc
    # http.client returns b"" instead of raising when the server closes the connection early,
    # so a truncated body only shows up by counting bytes.
    if total is not None and received != total:
        raise DownloadError(
            f"Download of {what} was truncated: got {received} of {total} bytes; nothing was saved."
        )


def download(
    url: str,
    dest: str | os.PathLike[str],
    *,
    expected: Iterable[str],
    progress: bool = True,
    console: Console | None = None,
    timeout: float = _TIMEOUT_S,
) -> Path:
    """Download `url` to `dest` atomically, checking the content against `expected` hashes.

    The body is streamed into a temporary file in ``dest``'s directory while being hashed; only a
    complete body whose hash is in `expected` (``"algorithm:hexdigest"`` strings, e.g.
    ``"sha256:..."``) is fsynced and renamed onto `dest`. On any failure the temporary file is
    removed and `dest` is left untouched.

    Args:
        url: where to fetch from (``http(s)://`` or ``file://``).
        dest: final path of the file; its directory is created if needed.
        expected: accepted hashes; the download fails when it matches none of them.
        progress: show a `rich` progress bar (on stderr unless `console` is given).
        console: the console the progress bar is drawn on.
        timeout: seconds each socket operation may block.

    Raises:
        DataNotFoundError: the URL could not be opened (offline, refused, HTTP error).
        DownloadError: the transfer broke off (fewer bytes than Content-Length, reset, timeout).
        DataIntegrityError: the complete body's hash matches none of `expected`.
    """
    dest = Path(dest)
    expected = tuple(expected)
    if not expected:
        raise ValueError(f"Refusing to download {dest.name} without an expected hash.")
    hashers = _hashers(expected)
    with _open(url, dest.name, timeout) as response:
        dest.parent.mkdir(parents=True, exist_ok=True)
        # Not tempfile.mkstemp: its 0600 mode would stick to the cached file; os.open with 0666
        # lets the umask decide, as for any file the user creates.
        tmp = dest.parent / f".{dest.name}.{secrets.token_hex(8)}.part"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o666)
        try:
            with os.fdopen(fd, "wb") as out:
                what = f"{dest.name} from {url}"
                _stream(response, out, hashers, what=what, progress=progress, console=console)
                if not _matches(hashers, expected):
                    raise DataIntegrityError(
                        f"Downloaded {what} does not match its known hashes: expected one of "
                        f"{', '.join(expected)}, got {_got(hashers)}; nothing was saved."
                    )
                out.flush()
                os.fsync(out.fileno())
            os.replace(tmp, dest)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    fsync_dir(dest.parent)
    return dest


def _missing(name: str, looked: list[Path], env_set: bool, reason: str) -> str:
    where = " or ".join(str(p) for p in looked)
    env_note = "" if env_set else f" ({ENV_VAR} is not set)"
    return (
        f"Data file {name} is missing: not found at {where}{env_note}. {reason}. "
        f"Set {ENV_VAR}=/path/to/dir containing {name}."
    )


def resolve(
    name: str,
    *,
    cache_dir: str | os.PathLike[str] | None = None,
    url: str | None = None,
    verify: bool = False,
    allow_download: bool = True,
    progress: bool = True,
) -> Path:
    """Return the path of the known data file `name`, downloading it into the cache if needed.

    Looks in ``$LSTMKIT_DATA``, then in `cache_dir`, then downloads (see the module docstring).

    Args:
        name: a key of `REGISTRY`, e.g. ``"imdb.npz"``.
        cache_dir: the download cache; defaults to `default_cache_dir()`.
        url: download from here instead of the canonical URL (a mirror, or a test server).
        verify: also hash a file found on disk; downloads are always hashed.
        allow_download: when False, a file not on disk raises instead of being downloaded.
        progress: show a progress bar while downloading.

    Raises:
        ValueError: `name` is not in `REGISTRY`.
        DataNotFoundError: the file is not on disk and cannot be downloaded.
        DataIntegrityError: a hash check failed (download, or a local file with `verify=True`).
        DownloadError: the download broke off.
    """
    entry = _entry(name)
    looked: list[Path] = []
    env_dir = os.environ.get(ENV_VAR)
    if env_dir:
        looked.append(Path(env_dir).expanduser() / name)
    cache = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    looked.append(cache / name)
    for candidate in looked:
        if candidate.is_file():
            return verify_file(candidate, name) if verify else candidate

    source = url if url is not None else entry.url
    if source is not None and allow_download:
        try:
            return download(source, cache / name, expected=entry.hashes, progress=progress)
        except DataNotFoundError as exc:
            reason = str(exc).rstrip(".")
            raise DataNotFoundError(_missing(name, looked, bool(env_dir), reason)) from exc
    reason = (
        "It has no download URL"
        if source is None
        else "Downloading is turned off (allow_download=False)"
    )
    raise DataNotFoundError(_missing(name, looked, bool(env_dir), reason))
