"""Atomic writes: a file or a directory is either the old one or the complete new one, never
half written, even if the process or the machine stops mid-write.

The pattern (one copy, used by the run directory, checkpoints, bundles, the data cache, the
studio's uploads and the README tables): write to a temporary name in the same directory, flush
and fsync the file, rename it over the target (atomic on POSIX), fsync the directory so that the
rename itself survives a crash.

This module imports nothing of lstmkit.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path


def fsync_dir(path: Path) -> None:
    """fsync a directory, so that a rename or a new entry in it is on disk (no-op where the OS
    cannot open a directory, e.g. Windows)."""
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync a file that is already written and closed (e.g. by a library's own writer)."""
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def temp_path(path: Path, suffix: str = ".tmp") -> Path:
    """The temporary name :func:`atomic_write_text` and friends write ``path`` under: hidden, in
    the same directory (a rename across file systems is not atomic)."""
    return path.with_name(f".{path.name}{suffix}")


def replace_into(tmp: Path, path: Path) -> None:
    """Rename a finished, fsync'ed ``tmp`` over ``path`` and fsync the directory."""
    os.replace(tmp, path)
    fsync_dir(path.parent)


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (temp file in the same directory, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path)
    with open(tmp, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    replace_into(tmp, path)


def atomic_write_text(path: Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically (temp file, fsync, rename)."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_with(path: Path, write: Callable[[Path], None], suffix: str = ".tmp") -> None:
    """``write(tmp)`` writes the file (a library's own writer: safetensors, ONNX, matplotlib);
    then it is fsync'ed and renamed over ``path``. A failed write leaves ``path`` as it was and
    removes the partial temp file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = temp_path(path, suffix)
    try:
        write(tmp)
        fsync_file(tmp)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    replace_into(tmp, path)
