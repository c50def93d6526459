"""A forecast of an uploaded long-format file: the request becomes ``lstmkit train --task forecast
--train <stored upload> --target ... --horizon ...`` (recorded by a stand-in launcher, no
training), a bad column is a 422 naming its field; the run page's data: one series' rows of a
finished run's forecasts.csv (404 for an unknown or path-like id) and its forecast.png."""

from __future__ import annotations

import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from studio_support import add_finished_run, make_client, panel_csv

FORECASTS = """\
unique_id,origin,ds,y,q0.1,q0.5,q0.9,auto_ets,auto_theta,seasonal_naive,naive
A,36,2009-01-01,11.5,11.0,11.6,12.2,11.4,11.45,11.3,10.0
A,36,2009-04-01,13.0,12.1,12.8,13.4,12.9,12.95,13.1,10.0
../metrics.json,36,2009-01-01,1,0.5,1,1.5,1,1,1,1
B C,36,2009-01-01,5.0,4.0,,6.0,5.1,5.2,5.3,nan
"""


@pytest.fixture(scope="module")
def launched() -> list[list[str]]:
    return []


@pytest.fixture(scope="module")
def client(
    tmp_path_factory: pytest.TempPathFactory,
    recipes: Path,
    run_env: dict[str, str],
    launched: list[list[str]],
) -> Iterator[TestClient]:
    def record(argv: list[str], log: Path, env: dict[str, str]) -> subprocess.Popen[bytes]:
        launched.append(argv)  # stands in for the trainer: the command line is what counts
        return subprocess.Popen([sys.executable, "-c", "pass"])

    home = tmp_path_factory.mktemp("forecast-home")
    with make_client(home, recipes, run_env, launcher=record) as c:
        yield c


@pytest.fixture(scope="module")
def upload_id(client: TestClient) -> str:
    r = client.post("/api/uploads", params={"filename": "panel.csv"}, content=panel_csv())
    assert r.status_code == 201, r.text
    assert r.json()["columns"] == ["unique_id", "ds", "y"]
    return str(r.json()["id"])


def forecast_body(upload_id: str, **fields: Any) -> dict[str, Any]:
    body = {
        "recipe": "tiny",
        "dataset": "upload",
        "task": "forecast",
        "upload_id": upload_id,
        "target_column": "y",
        "time_column": "ds",
        "id_column": "unique_id",
    }
    return {**body, **fields}


def test_a_forecast_upload_runs_lstmkit_train_task_forecast(
    client: TestClient, upload_id: str, launched: list[list[str]]
) -> None:
    r = client.post("/api/runs", json=forecast_body(upload_id, horizon=4, max_steps=10))
    assert r.status_code == 201, r.text
    run = r.json()
    assert run["params"]["task"] == "forecast" and run["params"]["horizon"] == 4
    assert run["overrides"] == ["train.max_steps=10"]  # no recipe values: the data chooses
    deadline = time.monotonic() + 20
    while not launched and time.monotonic() < deadline:
        time.sleep(0.05)
    stored = client.app.state.studio.uploads_dir / f"{upload_id}.csv"  # type: ignore[attr-defined]
    assert launched[-1][1:] == [
        "-m", "lstmkit", "train",
        "--task", "forecast", "--train", str(stored),
        "--target", "y", "--time-column", "ds", "--id-column", "unique_id", "--horizon", "4",
        "--set", "train.max_steps=10",
        "--out", str(client.app.state.studio.runs_dir / run["id"]),  # type: ignore[attr-defined]
        "--no-progress",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"target_column": "sales"}, "target_column", "no column 'sales'; its columns are"),
        ({"time_column": "when"}, "time_column", "'panel.csv' has no column 'when'"),
        ({"id_column": "y"}, "id_column", "'y' is already the target_column"),
        ({"id_column": None}, "id_column", "choose it as the id column"),
        ({"horizon": 0}, "horizon", "greater than or equal to 1"),
        ({"horizon": 100000}, "horizon", "less than or equal to 1000"),
        ({"task": "guess"}, "task", "'text' or 'forecast'"),
    ],
)
def test_bad_forecast_fields_are_422_naming_the_field(
    client: TestClient, upload_id: str, fields: dict[str, Any], field: str, words: str
) -> None:
    r = client.post("/api/runs", json=forecast_body(upload_id, **fields))
    assert r.status_code == 422, r.text
    detail = r.json()["detail"][0]
    assert detail["loc"] == ["body", field] and words in detail["msg"]


# -- the run page's data ---------------------------------------------------------------------
@pytest.fixture(scope="module")
def finished(client: TestClient) -> str:
    studio = client.app.state.studio  # type: ignore[attr-defined]
    add_finished_run(studio.store, "f0f0f0f0", dataset="upload")
    run_dir = studio.runs_dir / "f0f0f0f0"
    run_dir.mkdir(parents=True)
    (run_dir / "forecasts.csv").write_text(FORECASTS)
    add_finished_run(studio.store, "0e0e0e0e", dataset="upload")  # a single-series run
    return "f0f0f0f0"


def test_the_rows_of_one_series(client: TestClient, finished: str) -> None:
    r = client.get(f"/api/runs/{finished}/forecasts", params={"series": "A"})
    assert r.status_code == 200, r.text
    got = r.json()
    assert got["series"] == "A" and got["ids"] == ["A", "../metrics.json", "B C"]
    assert got["id_column"] == "unique_id" and got["time_column"] == "ds"
    assert got["quantiles"] == ["q0.1", "q0.5", "q0.9"]
    assert got["baselines"] == ["auto_ets", "auto_theta", "seasonal_naive", "naive"]
    assert got["rows"][1] == {
        "origin": 36, "time": "2009-04-01", "y": 13.0, "q0.1": 12.1, "q0.5": 12.8, "q0.9": 13.4,
        "auto_ets": 12.9, "auto_theta": 12.95, "seasonal_naive": 13.1, "naive": 10.0,
    }  # fmt: skip
    assert not got["rows_truncated"] and not got["ids_truncated"]
    # no series: the first; an empty cell or a NaN is null; an id with a space is an id
    assert client.get(f"/api/runs/{finished}/forecasts").json()["series"] == "A"
    row = client.get(f"/api/runs/{finished}/forecasts", params={"series": "B C"}).json()["rows"]
    assert row[0]["q0.5"] is None and row[0]["naive"] is None and row[0]["y"] == 5.0


def test_unknown_and_path_like_series_and_runs(client: TestClient, finished: str) -> None:
    r = client.get(f"/api/runs/{finished}/forecasts", params={"series": "Z"})
    assert r.status_code == 404
    assert r.json()["detail"] == (
        f"run {finished} has no series 'Z'; its 3 series are 'A', '../metrics.json', 'B C'"
    )
    # an id only selects rows of the file: a path names no file
    r = client.get(f"/api/runs/{finished}/forecasts", params={"series": "../../studio.sqlite3"})
    assert r.status_code == 404 and "has no series '../../studio.sqlite3'" in r.json()["detail"]
    r = client.get(f"/api/runs/{finished}/forecasts", params={"series": "A\nB"})
    assert r.status_code == 422
    for bad in ("..%2F..%2Fuploads", "f0f0f0f", "../f0f0f0f0"):
        assert client.get(f"/api/runs/{bad}/forecasts").status_code in (404, 422)
    r = client.get("/api/runs/abcdef01/forecasts")
    assert r.status_code == 404 and r.json()["detail"] == "no run 'abcdef01'"
    r = client.get("/api/runs/0e0e0e0e/forecasts")
    assert r.status_code == 404 and "has no forecasts.csv" in r.json()["detail"]


def test_the_forecast_plot(client: TestClient, finished: str) -> None:
    r = client.get(f"/api/runs/{finished}/forecast.png")
    assert r.status_code == 404 and "has no forecast.png" in r.json()["detail"]
    png = b"\x89PNG\r\n\x1a\n" + b"\0" * 16
    (client.app.state.studio.runs_dir / finished / "forecast.png").write_bytes(png)  # type: ignore[attr-defined]
    r = client.get(f"/api/runs/{finished}/forecast.png")
    assert r.status_code == 200 and r.headers["content-type"] == "image/png"
    assert r.content == png
