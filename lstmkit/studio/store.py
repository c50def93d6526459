"""The studio's SQLite store (``HOME/studio.sqlite3``): runs, their metric rows, uploads.

The schema is created and migrated by :class:`Store` itself: ``schema_version`` holds one row with
the version of the schema in the file, and every migration in :data:`MIGRATIONS` above it runs in
one transaction on open (a database from a newer lstmkit is refused, never rewritten). Each
operation opens its own short-lived connection (WAL journal), so the job thread and the request
handlers never share a connection.

A study's trials (``lstmkit tune --out HOME/runs/STUDY``) are runs too, found on disk and
recorded with :meth:`Store.put_trial` (their ``path``, ``study`` and ``trial``); they are never
queued: finished, failed, or cancelled (pruned by the study). So are the seeds of a repeated
run (``lstmkit train RECIPE --seeds N --out HOME/runs/GROUP``: its ``seed-<s>/`` folders),
recorded with :meth:`Store.put_seed` (their ``path``, ``repeat`` (GROUP) and ``seed``).

Run statuses: ``queued`` -> ``running`` -> ``finished`` | ``failed`` | ``cancelled`` |
``interrupted`` (the studio stopped while the run was running; resumable from its last
checkpoint). ``cancelling`` is the short state between the cancel request and the process's exit.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from lstmkit.errors import LstmkitError

STATUSES = ("queued", "running", "cancelling", "finished", "failed", "cancelled", "interrupted")
ACTIVE = ("queued", "running", "cancelling")
DB_NAME = "studio.sqlite3"
RUN_ID_PATTERN = r"^[0-9a-f]{8}$"  # a run id: 8 hex digits (a path segment, never a path)

# Migration i (1-based) brings the schema from version i - 1 to version i.
MIGRATIONS: tuple[str, ...] = (
    # 1: runs and their metric rows (one per history.jsonl row, keyed by step and split)
    """
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        name TEXT NOT NULL,
        recipe TEXT NOT NULL,
        dataset TEXT NOT NULL,
        params TEXT NOT NULL,
        overrides TEXT NOT NULL,
        status TEXT NOT NULL,
        created REAL NOT NULL,
        started REAL,
        finished REAL,
        pid INTEGER,
        exit_code INTEGER,
        error TEXT,
        metrics TEXT
    );
    CREATE TABLE metrics (
        seq INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs(id),
        step INTEGER NOT NULL,
        split TEXT NOT NULL,
        row TEXT NOT NULL,
        UNIQUE (run_id, step, split)
    );
    CREATE INDEX metrics_run ON metrics(run_id, seq);
    """,
    # 2: uploaded data files; runs remember the upload they train on, and whether the next
    # start continues from the last checkpoint
    """
    CREATE TABLE uploads (
        id TEXT PRIMARY KEY,
        filename TEXT NOT NULL,
        format TEXT NOT NULL,
        size INTEGER NOT NULL,
        sha256 TEXT NOT NULL,
        columns TEXT NOT NULL,
        rows INTEGER NOT NULL,
        created REAL NOT NULL
    );
    ALTER TABLE runs ADD COLUMN upload_id TEXT REFERENCES uploads(id);
    ALTER TABLE runs ADD COLUMN resume INTEGER NOT NULL DEFAULT 0;
    ALTER TABLE runs ADD COLUMN resumes INTEGER NOT NULL DEFAULT 0;
    """,
    # 3: runs on an uploaded file have no recipe file: `lstmkit train --task text --train F ...`
    """
    ALTER TABLE runs ADD COLUMN task_args TEXT;
    """,
    # 4: the trials of an `lstmkit tune` study under HOME/runs, listed like runs: their folder
    # (relative to HOME/runs; NULL for the studio's own runs, whose folder is their id), the
    # study's folder name and the trial's number
    """
    ALTER TABLE runs ADD COLUMN path TEXT;
    ALTER TABLE runs ADD COLUMN study TEXT;
    ALTER TABLE runs ADD COLUMN trial INTEGER;
    """,
    # 5: the seeds of a repeated run (`lstmkit train --seeds N --out HOME/runs/GROUP`), listed
    # like runs: the group's folder name and the seed (their folder is in `path`)
    """
    ALTER TABLE runs ADD COLUMN repeat TEXT;
    ALTER TABLE runs ADD COLUMN seed INTEGER;
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)

_JSON_COLUMNS = ("params", "overrides", "metrics", "columns", "task_args")


class StoreError(LstmkitError, RuntimeError):
    """The database cannot be used (e.g. written by a newer lstmkit); the message names the file."""


def _decode(row: sqlite3.Row) -> dict[str, Any]:
    out = dict(row)
    for key in _JSON_COLUMNS:
        if key in out and out[key] is not None:
            out[key] = json.loads(out[key])
    return out


class Store:
    """Runs, metric rows and uploads in ``HOME/studio.sqlite3`` (created and migrated on open)."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.migrate()

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A connection in a transaction (committed on success, rolled back on error)."""
        con = sqlite3.connect(self.path, timeout=30.0)
        con.row_factory = sqlite3.Row
        try:
            con.execute("PRAGMA foreign_keys = ON")
            with con:
                yield con
        finally:
            con.close()

    def version(self) -> int:
        """The schema version of the file (0 for a new, empty database)."""
        with self.connect() as con:
            return self._version(con)

    @staticmethod
    def _version(con: sqlite3.Connection) -> int:
        exists = con.execute(
            "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
        ).fetchone()
        if not exists:
            return 0
        row = con.execute("SELECT version FROM schema_version").fetchone()
        return int(row[0]) if row else 0

    def migrate(self, target: int = SCHEMA_VERSION) -> int:
        """Bring the schema up to ``target`` (default: the newest); returns the version."""
        con = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
        try:
            con.execute("PRAGMA journal_mode = WAL")
            con.execute("BEGIN IMMEDIATE")  # one migrator at a time
            try:
                current = self._version(con)
                if current > SCHEMA_VERSION:
                    raise StoreError(
                        f"{self.path}: schema version {current} was written by a newer lstmkit; "
                        f"this one reads versions up to {SCHEMA_VERSION}. Use that lstmkit or "
                        "another --home"
                    )
                if current == 0:
                    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                    con.execute("INSERT INTO schema_version (version) VALUES (0)")
                for version in range(current + 1, target + 1):
                    for statement in MIGRATIONS[version - 1].split(";"):
                        if statement.strip():
                            con.execute(statement)
                    con.execute("UPDATE schema_version SET version = ?", (version,))
                con.execute("COMMIT")
            except BaseException:
                con.execute("ROLLBACK")
                raise
            return max(current, target)
        except sqlite3.DatabaseError as err:
            raise StoreError(f"{self.path}: not a usable studio database: {err}") from None
        finally:
            con.close()

    # -- runs --------------------------------------------------------------------------------
    def add_run(
        self,
        run_id: str,
        *,
        name: str,
        recipe: str,
        dataset: str,
        params: dict[str, Any],
        overrides: list[str],
        upload_id: str | None = None,
        task_args: list[str] | None = None,
    ) -> dict[str, Any]:
        """Insert a queued run; returns it."""
        with self.connect() as con:
            con.execute(
                "INSERT INTO runs (id, name, recipe, dataset, params, overrides, status, created, "
                "upload_id, task_args) VALUES (?, ?, ?, ?, ?, ?, 'queued', ?, ?, ?)",
                (
                    run_id,
                    name,
                    recipe,
                    dataset,
                    json.dumps(params),
                    json.dumps(overrides),
                    time.time(),
                    upload_id,
                    json.dumps(task_args) if task_args is not None else None,
                ),
            )
        run = self.get_run(run_id)
        assert run is not None
        return run

    def get_run(self, run_id: str) -> dict[str, Any] | None:
        """The run, or None."""
        with self.connect() as con:
            row = con.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()
        return _decode(row) if row else None

    def list_runs(self, statuses: tuple[str, ...] | None = None) -> list[dict[str, Any]]:
        """All runs (or those with one of ``statuses``), oldest first."""
        with self.connect() as con:
            if statuses:
                marks = ",".join("?" * len(statuses))
                rows = con.execute(
                    f"SELECT * FROM runs WHERE status IN ({marks}) ORDER BY created, id",
                    statuses,
                ).fetchall()
            else:
                rows = con.execute("SELECT * FROM runs ORDER BY created, id").fetchall()
        return [_decode(r) for r in rows]

    def update_run(
        self, run_id: str, *, expect: tuple[str, ...] | None = None, **fields: Any
    ) -> bool:
        """Set ``fields`` of the run (JSON columns encoded); with ``expect``, only while its status
        is one of those. Returns whether a row changed."""
        if not fields:
            return False
        values = [
            json.dumps(v) if k in _JSON_COLUMNS and v is not None else v for k, v in fields.items()
        ]
        sql = "UPDATE runs SET " + ", ".join(f"{k} = ?" for k in fields) + " WHERE id = ?"
        args: list[Any] = [*values, run_id]
        if expect:
            sql += f" AND status IN ({','.join('?' * len(expect))})"
            args += list(expect)
        with self.connect() as con:
            return con.execute(sql, args).rowcount > 0

    def put_trial(
        self,
        run_id: str,
        *,
        path: str,
        study: str,
        trial: int,
        run: dict[str, Any],
        rows: list[dict[str, Any]],
    ) -> None:
        """Insert or replace a study's trial (``path``: its folder under HOME/runs) with the
        ``run`` fields (name, recipe, dataset, params, status, created, started, finished,
        error, metrics) and its history ``rows``, in one transaction."""
        self._put_found(run_id, path, {"study": study, "trial": trial}, run, rows)

    def put_seed(
        self,
        run_id: str,
        *,
        path: str,
        repeat: str,
        seed: int,
        run: dict[str, Any],
        rows: list[dict[str, Any]],
    ) -> None:
        """Insert or replace a seed of a repeated run (``path``: its ``GROUP/seed-<s>`` folder
        under HOME/runs; ``repeat``: GROUP), as :meth:`put_trial` does a trial."""
        self._put_found(run_id, path, {"repeat": repeat, "seed": seed}, run, rows)

    def _put_found(
        self,
        run_id: str,
        path: str,
        marks: dict[str, Any],
        run: dict[str, Any],
        rows: list[dict[str, Any]],
    ) -> None:
        keys = ("name", "recipe", "dataset", "status", "created", "started", "finished", "error")
        values = [run.get(k) for k in keys]
        extra = ("path", *marks)
        with self.connect() as con:
            con.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
            con.execute("DELETE FROM runs WHERE id = ?", (run_id,))
            con.execute(
                f"INSERT INTO runs (id, {', '.join(keys)}, params, overrides, metrics, "
                f"{', '.join(extra)}) VALUES (?, {', '.join('?' * (len(keys) + 3 + len(extra)))})",
                [
                    run_id,
                    *values,
                    json.dumps(run.get("params", {})),
                    json.dumps(run.get("overrides", [])),
                    json.dumps(run["metrics"]) if run.get("metrics") is not None else None,
                    path,
                    *marks.values(),
                ],
            )
            con.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, step, split, row) VALUES (?, ?, ?, ?)",
                [(run_id, int(r["step"]), str(r["split"]), json.dumps(r)) for r in rows],
            )

    def trial_runs(self) -> dict[str, dict[str, Any]]:
        """The recorded trials and seeds (every run found on disk) by their ``path``."""
        with self.connect() as con:
            rows = con.execute("SELECT * FROM runs WHERE path IS NOT NULL").fetchall()
        return {r["path"]: _decode(r) for r in rows}

    # -- metric rows -------------------------------------------------------------------------
    def add_metric_rows(self, run_id: str, rows: list[dict[str, Any]]) -> None:
        """Insert history rows (a row with the same step and split replaces the old one: a resumed
        run recomputes the evaluations after its checkpoint)."""
        with self.connect() as con:
            con.executemany(
                "INSERT OR REPLACE INTO metrics (run_id, step, split, row) VALUES (?, ?, ?, ?)",
                [(run_id, int(r["step"]), str(r["split"]), json.dumps(r)) for r in rows],
            )

    def metric_rows(self, run_id: str, after: int = 0) -> list[dict[str, Any]]:
        """History rows of the run with ``seq > after``, each with its ``seq``; by step."""
        with self.connect() as con:
            rows = con.execute(
                "SELECT seq, row FROM metrics WHERE run_id = ? AND seq > ? ORDER BY step, split",
                (run_id, after),
            ).fetchall()
        return [{**json.loads(r["row"]), "seq": int(r["seq"])} for r in rows]

    # -- uploads -----------------------------------------------------------------------------
    def add_upload(self, upload: dict[str, Any]) -> None:
        """Insert an upload's metadata (the file is already in place)."""
        keys = ("id", "filename", "format", "size", "sha256", "columns", "rows", "created")
        with self.connect() as con:
            con.execute(
                f"INSERT INTO uploads ({', '.join(keys)}) VALUES ({', '.join('?' * len(keys))})",
                [json.dumps(upload[k]) if k == "columns" else upload[k] for k in keys],
            )

    def get_upload(self, upload_id: str) -> dict[str, Any] | None:
        """The upload's metadata, or None."""
        with self.connect() as con:
            row = con.execute("SELECT * FROM uploads WHERE id = ?", (upload_id,)).fetchone()
        return _decode(row) if row else None

    def list_uploads(self) -> list[dict[str, Any]]:
        """All uploads, newest first."""
        with self.connect() as con:
            rows = con.execute("SELECT * FROM uploads ORDER BY created DESC").fetchall()
        return [_decode(r) for r in rows]
