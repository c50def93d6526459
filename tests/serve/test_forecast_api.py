"""POST /v1/forecast: a single-series and a panel forecasting run served -- JSON rows and CSV
bodies, the same numbers as `lstmkit forecast` on the same history, and one clear 4xx for each
kind of bad history (never a 5xx)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient
from served_runs import forecast_run, panel_run

from lstmkit.cli import main
from lstmkit.serve import create_app


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("forecast-serve")
    return {"series": forecast_run(root), "panel": panel_run(root), "root": root}


@pytest.fixture(scope="module")
def series_client(runs: dict[str, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(runs["series"], max_rows=200)) as c:
        yield c


@pytest.fixture(scope="module")
def panel_client(runs: dict[str, Path]) -> Iterator[TestClient]:
    with TestClient(create_app(runs["panel"])) as c:
        yield c


def _rows(path: Path) -> list[dict[str, Any]]:
    """A CSV's rows with its numbers as JSON numbers."""
    out = []
    for row in csv.DictReader(path.open(encoding="utf-8")):
        out.append(
            {k: (v if k in ("month", "ds", "unique_id") else float(v)) for k, v in row.items()}
        )
    return out


def _csv(rows: list[dict[str, Any]]) -> str:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(rows[0]), lineterminator="\n")
    w.writeheader()
    w.writerows(rows)
    return buf.getvalue()


def _cli_forecast(run: Path, rows: list[dict[str, Any]], tmp: Path) -> list[dict[str, str]]:
    data, out = tmp / "history.csv", tmp / "forecast.csv"
    data.write_text(_csv(rows), encoding="utf-8")
    assert main(["forecast", str(run), "--data", str(data), "--out", str(out)]) == 0
    return list(csv.DictReader(out.open(encoding="utf-8")))


def test_a_series_forecast_equals_lstmkit_forecast_on_the_same_history(
    series_client: TestClient, runs: dict[str, Path], tmp_path: Path
) -> None:
    history = _rows(runs["root"] / "sales.csv")[-30:]  # more than the lookback of 24
    r = series_client.post("/v1/forecast", json={"rows": history})
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["target"] == "sales" and body["horizon"] == 3
    assert body["quantiles"] == [0.1, 0.5, 0.9]
    steps = body["forecasts"]
    assert [s["step"] for s in steps] == [1, 2, 3]
    assert [s["time"] for s in steps] == ["2010-01", "2010-02", "2010-03"]
    assert all(s["id"] is None for s in steps)
    cli = _cli_forecast(runs["series"], history, tmp_path)
    for s, c in zip(steps, cli, strict=True):
        assert s["forecast"] == float(c["sales_forecast"])  # the CSV keeps repr: exact
        assert s["quantiles"] == {q: float(c[f"q{q}"]) for q in ("0.1", "0.5", "0.9")}
        assert s["quantiles"]["0.1"] < s["quantiles"]["0.5"] < s["quantiles"]["0.9"]
    # the same history as a CSV body: the same answer
    r2 = series_client.post(
        "/v1/forecast", content=_csv(history), headers={"content-type": "text/csv"}
    )
    assert r2.status_code == 200, r2.text
    assert r2.json()["forecasts"] == steps
    info = series_client.get("/v1/model").json()
    assert info["task"] == "forecast" and info["panel"] is False
    assert (info["target"], info["features"], info["time_column"]) == ("sales", ["driver"], "month")
    assert (info["lookback"], info["horizon"], info["max_rows"]) == (24, 3, 200)


def test_a_panel_forecasts_several_ids_at_once_as_lstmkit_forecast_does(
    panel_client: TestClient, runs: dict[str, Path], tmp_path: Path
) -> None:
    rows = _rows(runs["root"] / "panel.csv")
    history = [r for r in rows if r["unique_id"] in ("S2", "S0")]
    r = panel_client.post("/v1/forecast", json={"rows": history})
    assert r.status_code == 200, r.text
    steps = r.json()["forecasts"]
    assert [(s["id"], s["step"]) for s in steps] == [("S0", k) for k in range(1, 5)] + [
        ("S2", k) for k in range(1, 5)
    ]
    assert steps[0]["time"] == "2000-03-01"
    cli = _cli_forecast(runs["panel"], history, tmp_path)
    for s, c in zip(steps, cli, strict=True):
        assert s["id"] == c["unique_id"] and s["time"] == c["ds"]
        assert s["quantiles"] == {q: float(c[f"q{q}"]) for q in ("0.1", "0.5", "0.9")}
        assert s["forecast"] == s["quantiles"]["0.5"]
    info = panel_client.get("/v1/model").json()
    assert info["panel"] is True and info["ids"] == ["S0", "S1", "S2"]
    assert info["series_embedding"] is True and info["frequency"] == "quarterly"


def _series_history(runs: dict[str, Path]) -> list[dict[str, Any]]:
    return _rows(runs["root"] / "sales.csv")[-24:]


def _panel_history(runs: dict[str, Path]) -> list[dict[str, Any]]:
    return [r for r in _rows(runs["root"] / "panel.csv") if r["unique_id"] == "S1"][-12:]


def _bad_series(runs: dict[str, Path]) -> list[tuple[str, Any, int, str]]:
    h = _series_history(runs)
    gap = h[:10] + h[11:] + [{**h[-1], "month": "2010-01"}]
    text = [dict(r) for r in h]
    text[3]["sales"] = "twelve"
    nan = [dict(r) for r in h]
    nan[5]["sales"] = "NaN"
    missing = [dict(r) for r in h]
    del missing[2]["driver"]
    dup = h[:-1] + [dict(h[-2])]
    return [
        ("too short", {"rows": h[:10]}, 422, "rows: 10 rows, but the model reads the last 24"),
        ("a gap", {"rows": gap}, 422, "has a gap: '2008-10' then '2008-12'"),
        ("not a number", {"rows": text}, 422, "rows[3], column 'sales': 'twelve' is not a number"),
        ("NaN", {"rows": nan}, 422, "rows[5], column 'sales': the value is NaN"),
        ("no column", {"rows": missing}, 422, "rows[2]: no 'driver' key"),
        ("duplicate time", {"rows": dup}, 422, "rows[22] and rows[23], column 'month'"),
        ("no rows", {"rows": []}, 422, "at least 1 item"),
        ("a list", {"rows": [[1, 2]]}, 422, "Input should be an object"),
        ("a bool", {"rows": [{"sales": True}]}, 422, ""),
        ("extra key", {"rows": h, "more": 1}, 422, "Extra inputs"),
        ("too many rows", {"rows": h * 10}, 413, "too many rows: 240 in one request, at most 200"),
    ]


def test_every_bad_series_history_is_one_4xx(
    series_client: TestClient, runs: dict[str, Path]
) -> None:
    for what, body, code, message in _bad_series(runs):
        r = series_client.post("/v1/forecast", json=body)
        assert r.status_code == code, (what, r.text)
        assert message in json.dumps(r.json()["detail"]), (what, r.text)
    for content, headers, code, message in [
        ("sales\n1\n", {"content-type": "text/plain"}, 415, "application/json"),
        ("sales\n1\n", {}, 415, "not a body without a content type"),
        ('{"rows": [', {"content-type": "application/json"}, 422, "json_invalid"),
        (
            "month,sales\n2000-01,1\n",
            {"content-type": "text/csv"},
            422,
            "no column 'driver' in the header",
        ),
        (b"month,sales,driver\n2000-01,\xff,1\n", {"content-type": "text/csv"}, 422, "CSV body"),
    ]:
        r = series_client.post("/v1/forecast", content=content, headers=headers)
        assert r.status_code == code, (content, r.text)
        assert message in json.dumps(r.json()["detail"]), (content, r.text)
    # the classifier's routes are not there; the metrics counted what this test asked
    assert series_client.post("/v1/predict", json={"texts": ["a"]}).status_code == 404
    metrics = series_client.get("/metrics").text
    assert 'lstmkit_requests_total{method="POST",route="/v1/forecast",status="422"}' in metrics


def test_every_bad_panel_history_is_one_4xx(
    panel_client: TestClient, runs: dict[str, Path]
) -> None:
    h = _panel_history(runs)
    unknown = [{**r, "unique_id": "S9"} for r in h]
    monthly = [{**r, "ds": f"2001-{k + 1:02d}-01"} for k, r in enumerate(h)]
    short = h + [r for r in _rows(runs["root"] / "panel.csv") if r["unique_id"] == "S0"][:5]
    gap = h[:4] + h[5:] + [{**h[-1], "ds": "2000-03-01"}]
    empty_id = [{**h[0], "unique_id": " "}, *h[1:]]
    for what, rows, message in [
        ("unknown id", unknown, "series 'S9' is not one the model was trained on"),
        ("monthly", monthly, "holds monthly times (2001-01-01 .. 2001-12-01), but the model was "),
        ("short", short, "series 'S0' has 5 rows, but the model reads the last 12"),
        ("gap", gap, "series 'S1' has a gap: '1997-12-01' then '1998-06-01'"),
        ("empty id", empty_id, "rows[0], column 'unique_id': the series id is empty"),
    ]:
        r = panel_client.post("/v1/forecast", json={"rows": rows})
        assert r.status_code == 422, (what, r.text)
        assert message in r.json()["detail"], (what, r.text)


@pytest.mark.parametrize("kind", ["series", "panel"])
def test_a_bundle_serves_the_forecasts_of_its_run_directory(
    runs: dict[str, Path],
    tmp_path: Path,
    kind: str,
    series_client: TestClient,
    panel_client: TestClient,
    capsys: pytest.CaptureFixture[str],
) -> None:
    bundle = tmp_path / f"{kind}-bundle"
    assert main(["export", str(runs[kind]), "--bundle", str(bundle)]) == 0
    assert f"bundle written to {bundle}" in capsys.readouterr().out
    assert sorted(p.name for p in bundle.iterdir()) == [
        "bundle.json",
        "config.json",
        "metrics.json",
        "model.safetensors",
    ]
    run_client = series_client if kind == "series" else panel_client
    if kind == "series":
        histories = [_series_history(runs), _rows(runs["root"] / "sales.csv")[-40:-5]]
    else:
        rows = _rows(runs["root"] / "panel.csv")
        histories = [_panel_history(runs), [r for r in rows if r["unique_id"] != "S1"]]
    with TestClient(create_app(bundle)) as c:
        for history in histories:
            from_bundle = c.post("/v1/forecast", json={"rows": history})
            from_run = run_client.post("/v1/forecast", json={"rows": history})
            assert from_bundle.status_code == 200, from_bundle.text
            assert from_bundle.json() == from_run.json()  # the very same floats
            assert len(from_bundle.json()["forecasts"]) >= 3
        info, run_info = c.get("/v1/model").json(), run_client.get("/v1/model").json()
        assert {k: v for k, v in info.items() if k != "max_rows"} == {
            k: v for k, v in run_info.items() if k != "max_rows"
        }
        # a bad history is the same 422 from the bundle
        short = {"rows": histories[0][:3]}
        r = c.post("/v1/forecast", json=short)
        assert r.status_code == 422
        assert r.json() == run_client.post("/v1/forecast", json=short).json()


def test_lstmkit_serve_of_a_forecasting_bundle_answers_as_the_run(
    runs: dict[str, Path], tmp_path: Path, series_client: TestClient
) -> None:
    """The real thing: ``lstmkit serve BUNDLE`` as a process (uvicorn), over HTTP."""
    import os
    import sys

    import httpx
    from browser_support import free_port
    from http_support import running_process

    from lstmkit.bundle import export_bundle

    bundle = export_bundle(runs["series"], tmp_path / "bundle")
    port = free_port()
    command = [sys.executable, "-m", "lstmkit", "serve", str(bundle), "--port", str(port)]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    history = {"rows": _series_history(runs)}
    with running_process(command, env, port, tmp_path / "server.log"):
        r = httpx.post(f"http://127.0.0.1:{port}/v1/forecast", json=history, timeout=30)
        assert r.status_code == 200, r.text
        assert r.json() == series_client.post("/v1/forecast", json=history).json()
        info = httpx.get(f"http://127.0.0.1:{port}/v1/model", timeout=30).json()
        assert info["task"] == "forecast" and info["name"] == "forecast-sales"
