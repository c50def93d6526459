"""The SQLite store: migrations (a new, an old, a newer and a broken file), metric rows replaced
by step and split, the run statuses the API documents."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import get_args

import pytest
from studio_support import add_runs

from lstmkit.studio.schemas import RunStatus
from lstmkit.studio.store import MIGRATIONS, SCHEMA_VERSION, STATUSES, Store, StoreError


def test_a_new_database_gets_the_newest_schema(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    assert store.version() == SCHEMA_VERSION == len(MIGRATIONS)
    Store(tmp_path / "s.sqlite3")  # opening again migrates nothing
    assert store.version() == SCHEMA_VERSION


def test_a_version_1_database_is_migrated_and_keeps_its_runs(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    con = sqlite3.connect(path)
    con.executescript(MIGRATIONS[0])
    con.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
    con.execute("INSERT INTO schema_version VALUES (1)")
    con.execute(
        "INSERT INTO runs (id, name, recipe, dataset, params, overrides, status, created, metrics) "
        "VALUES ('0000000a', 'old', 'tiny', 'reuters', '{}', '[]', 'finished', 1.0, "
        "'{\"steps\": 7}')"
    )
    con.execute(
        "INSERT INTO metrics (run_id, step, split, row) VALUES ('0000000a', 5, 'val', "
        '\'{"step": 5, "split": "val", "accuracy": 0.5}\')'
    )
    con.commit()
    con.close()
    store = Store(path)
    assert store.version() == SCHEMA_VERSION
    run = store.get_run("0000000a")
    assert run is not None
    assert run["metrics"] == {"steps": 7} and run["status"] == "finished"
    assert run["resumes"] == 0 and run["upload_id"] is None and run["task_args"] is None
    assert store.metric_rows("0000000a")[0]["accuracy"] == 0.5
    assert store.list_uploads() == []


def test_a_newer_database_is_refused_untouched(tmp_path: Path) -> None:
    path = tmp_path / "new.sqlite3"
    Store(path)
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = ?", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    before = path.read_bytes()
    with pytest.raises(
        StoreError, match=f"schema version {SCHEMA_VERSION + 1} was written by a newer"
    ):
        Store(path)
    assert path.read_bytes() == before


def test_a_file_that_is_not_a_database(tmp_path: Path) -> None:
    path = tmp_path / "junk.sqlite3"
    path.write_bytes(b"this is not sqlite" * 100)
    with pytest.raises(StoreError, match="not a usable studio database"):
        Store(path)


def test_metric_rows_replace_by_step_and_split(tmp_path: Path) -> None:
    store = Store(tmp_path / "s.sqlite3")
    (run_id,) = add_runs(store, 1)
    store.add_metric_rows(run_id, [{"step": 2, "split": "train", "loss": 1.0}])
    first = store.metric_rows(run_id)
    store.add_metric_rows(
        run_id,
        [{"step": 2, "split": "train", "loss": 0.9}, {"step": 2, "split": "val", "loss": 1.1}],
    )
    rows = store.metric_rows(run_id)
    assert [(r["step"], r["split"], r["loss"]) for r in rows] == [
        (2, "train", 0.9),
        (2, "val", 1.1),
    ]
    assert store.metric_rows(run_id, after=first[0]["seq"]) == rows  # the replacement is new


def test_the_api_documents_every_status() -> None:
    assert get_args(RunStatus) == STATUSES
