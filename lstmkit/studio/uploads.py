"""Uploaded data files (the own-data path): size-limited, checked, stored only under
``HOME/uploads/<id>.<csv|tsv|jsonl>``.

The client's file name is kept as a label only; the stored name is the upload's random id and the
format's suffix, so no client-supplied path ever reaches the file system. A file is streamed to a
temporary file in ``HOME/uploads/`` (counting bytes; over the limit it is deleted and refused),
checked, and renamed into place only when it is valid (fsync'ed first, as every atomic write of
:mod:`lstmkit.files`).
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import secrets
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from lstmkit.errors import DataFileError
from lstmkit.files import fsync_file, replace_into, temp_path

FORMATS = {".csv": "csv", ".tsv": "tsv", ".jsonl": "jsonl"}
MIN_ROWS = 2


class UploadError(DataFileError):
    """The uploaded file is not valid; the message names the file, the row and what is wrong."""


class UploadTooLarge(UploadError):
    """The upload is larger than the studio's limit."""


def upload_format(filename: str) -> str:
    """'csv' | 'tsv' | 'jsonl' from the file name's suffix, or :class:`UploadError`."""
    suffix = Path(filename).suffix.lower()
    if suffix not in FORMATS:
        raise UploadError(
            f"{filename!r}: unknown file type {suffix or '(none)'!r}; upload a .csv, .tsv or "
            ".jsonl file"
        )
    return FORMATS[suffix]


def check_table(data: bytes, fmt: str, filename: str) -> tuple[list[str], int]:
    """Column names and row count of a CSV/TSV (header row first) or JSONL (one object per line)
    file; raises :class:`UploadError` naming the row at fault."""
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as err:
        raise UploadError(f"{filename!r} is not UTF-8 text (byte {err.start})") from None
    if fmt == "jsonl":
        columns: list[str] = []
        rows = 0
        for number, line in enumerate(text.splitlines(), start=1):
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as err:
                raise UploadError(f"{filename!r} line {number}: not JSON ({err.msg})") from None
            if not isinstance(obj, dict):
                raise UploadError(
                    f"{filename!r} line {number}: expected a JSON object, got {type(obj).__name__}"
                )
            bad = [k for k, v in obj.items() if not isinstance(v, str | int | float | bool)]
            if bad:
                raise UploadError(
                    f"{filename!r} line {number}: column {bad[0]!r} holds a "
                    f"{type(obj[bad[0]]).__name__}; values must be text or numbers"
                )
            if not columns:
                columns = list(obj)
            elif set(obj) != set(columns):
                raise UploadError(
                    f"{filename!r} line {number}: columns {sorted(obj)} differ from the first "
                    f"line's {sorted(columns)}"
                )
            rows += 1
    else:
        reader = csv.reader(io.StringIO(text, newline=""), delimiter="\t" if fmt == "tsv" else ",")
        try:
            header = next(reader, None)
            if not header or not any(h.strip() for h in header):
                raise UploadError(f"{filename!r}: the first line must name the columns")
            columns = [h.strip() for h in header]
            if len(set(columns)) != len(columns) or "" in columns:
                raise UploadError(
                    f"{filename!r}: column names must be unique and not empty, got {columns}"
                )
            rows = 0
            for values in reader:
                if not values:
                    continue
                if len(values) != len(columns):
                    raise UploadError(
                        f"{filename!r} row {reader.line_num}: {len(values)} values, the header "
                        f"names {len(columns)} columns"
                    )
                rows += 1
        except csv.Error as err:
            raise UploadError(f"{filename!r} row {reader.line_num}: {err}") from None
    if rows < MIN_ROWS:
        raise UploadError(f"{filename!r} holds {rows} data row(s); at least {MIN_ROWS} are needed")
    return columns, rows


async def save_upload(
    chunks: AsyncIterator[bytes], filename: str, uploads_dir: Path, max_bytes: int
) -> dict[str, Any]:
    """Stream an upload into ``uploads_dir`` (at most ``max_bytes``), check it, rename it into
    place; returns its metadata (id, filename, format, size, sha256, columns, rows, created)."""
    fmt = upload_format(filename)
    uploads_dir.mkdir(parents=True, exist_ok=True)
    upload_id = secrets.token_hex(6)
    final = uploads_dir / f"{upload_id}.{fmt}"
    tmp = temp_path(final, ".part")  # .<id>.<fmt>.part: the studio removes these at start-up
    digest = hashlib.sha256()
    size = 0
    try:
        with open(tmp, "wb") as fh:
            async for chunk in chunks:
                size += len(chunk)
                if size > max_bytes:
                    raise UploadTooLarge(
                        f"{filename!r} is larger than the upload limit of {max_bytes} bytes"
                    )
                digest.update(chunk)
                fh.write(chunk)
        columns, rows = check_table(tmp.read_bytes(), fmt, filename)
        fsync_file(tmp)
        replace_into(tmp, final)
    finally:
        tmp.unlink(missing_ok=True)
    return {
        "id": upload_id,
        "filename": Path(filename).name[:200],
        "format": fmt,
        "size": size,
        "sha256": digest.hexdigest(),
        "columns": columns,
        "rows": rows,
        "created": time.time(),
    }


def upload_path(uploads_dir: Path, upload: dict[str, Any]) -> Path:
    """Where an upload's file lies (built from its id and format, never from the client)."""
    return uploads_dir / f"{upload['id']}.{upload['format']}"
