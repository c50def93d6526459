"""A repeated run (``lstmkit train RECIPE --seeds N --out HOME/runs/GROUP``, built here with
:func:`lstmkit.repeat.repeat_recipe` itself) in the studio: its seeds are listed as runs named
"GROUP seed S", ``GET /api/repeats`` lists the group, and comparing its seeds gives the spread
of their figures -- :func:`lstmkit.repeat.spread` of the seeds' figures -- and of their
validation curves per step. A broken summary, a seed without metrics, a broken history: left
out or read from the seeds' own records, never a 500."""

from __future__ import annotations

import json
import shutil
import statistics
from pathlib import Path
from typing import Any

import pytest
from studio_support import make_client

from lstmkit.config import load_recipe
from lstmkit.repeat import repeat_recipe, spread


@pytest.fixture(scope="module")
def repeated_home(
    tmp_path_factory: pytest.TempPathFactory, recipes_dir: Path, tiny_data: Path
) -> dict[str, Any]:
    """HOME/runs/rep: 3 seeds of the tiny recipe; HOME/runs/copy: two of its seeds copied, a
    broken repeat.json, a seed-9 folder that never finished and a seed-8 with a broken history."""
    home = tmp_path_factory.mktemp("repeated-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("LSTMKIT_DATA", str(tiny_data))
        recipe, raw = load_recipe(str(recipes_dir / "tiny.toml"), ["train.lr=0.002"])
        summary = repeat_recipe(recipe, raw, home / "runs" / "rep", 3, progress=False)
    copy = home / "runs" / "copy"
    for s in (0, 1, 2):
        shutil.copytree(home / "runs" / "rep" / f"seed-{s}", copy / f"seed-{s}")
    (copy / "repeat.json").write_text('{"seeds": [{"seed": 0, "value": "x"}')  # broken
    (copy / "seed-9").mkdir()
    shutil.copy(copy / "seed-0" / "config.json", copy / "seed-9" / "config.json")  # no metrics
    (copy / "seed-2" / "history.jsonl").write_text("not json\n")  # not a run to show
    return {"home": home, "summary": summary}


def test_seeds_are_listed_and_compare_gives_their_spread(
    repeated_home: dict[str, Any], recipes_dir: Path, run_env: dict[str, str]
) -> None:
    home, summary = repeated_home["home"], repeated_home["summary"]
    figures = [float(s["value"]) for s in summary["seeds"]]
    assert len(set(figures)) >= 2  # the seeds really differ: the spread is not zero
    with make_client(home, recipes_dir, run_env) as client:
        listed = client.get("/api/runs")
        assert listed.status_code == 200, listed.text
        seeds = sorted(
            (r for r in listed.json() if r["params"].get("repeat") == "rep"),
            key=lambda r: r["params"]["seed"],
        )
        assert [r["name"] for r in seeds] == ["rep seed 0", "rep seed 1", "rep seed 2"]
        for run, s in zip(seeds, summary["seeds"], strict=True):
            folder = home / "runs" / "rep" / f"seed-{s['seed']}"
            assert run["params"] == {
                "repeat": "rep",
                "seed": s["seed"],
                "metric": summary["metric"],
                "value": s["value"],
            }
            assert run["status"] == "finished" and run["resumable"] is False
            assert run["recipe"] == "tiny" and run["dataset"] == "reuters"
            assert run["metrics"] == json.loads((folder / "metrics.json").read_text())
        ids = [r["id"] for r in seeds]

        groups = {g["name"]: g for g in client.get("/api/repeats").json()}
        assert groups["rep"]["metric"] == summary["metric"]
        assert [(f["seed"], f["run_id"], f["value"]) for f in groups["rep"]["seeds"]] == [
            (s["seed"], i, s["value"]) for s, i in zip(summary["seeds"], ids, strict=True)
        ]
        assert groups["rep"]["spread"] == spread(figures)
        assert groups["rep"]["spread"]["mean"] == pytest.approx(summary["mean"], rel=1e-12)
        assert groups["rep"]["spread"]["std"] == pytest.approx(summary["std"], rel=1e-12)

        compared = client.get("/api/compare", params={"ids": ids})
        assert compared.status_code == 200, compared.text
        got = compared.json()
        assert [r["id"] for r in got["runs"]] == ids
        sp = got["spread"]
        assert sp["name"] == "rep" and [f["value"] for f in sp["seeds"]] == figures
        assert sp["spread"] == spread(figures)
        # the curves: per step, the spread of the seeds' own validation rows (history.jsonl)
        curves = {c["key"]: c for c in sp["curves"]}
        assert set(curves) == {"accuracy", "loss"}
        history = [
            [json.loads(x) for x in (home / "runs" / "rep" / f"seed-{s}" / "history.jsonl")
             .read_text().splitlines()]
            for s in (0, 1, 2)
        ]  # fmt: skip
        for key, curve in curves.items():
            assert curve["split"] == "val" and len(curve["steps"]) >= 2
            for k, step in enumerate(curve["steps"]):
                vals = [
                    r[key] for h in history for r in h if r["split"] == "val" and r["step"] == step
                ]
                assert curve["n"][k] == len(vals) == 3
                assert curve["mean"][k] == pytest.approx(statistics.fmean(vals), rel=1e-12)
                assert curve["std"][k] == pytest.approx(statistics.stdev(vals), rel=1e-12)
                assert (curve["min"][k], curve["max"][k]) == (min(vals), max(vals))

        # two of the seeds: their own spread; a seed beside a run of another group: none
        two = client.get("/api/compare", params={"ids": ids[:2]}).json()["spread"]
        assert two["spread"] == spread(figures[:2])
        copies = sorted(
            (r for r in client.get("/api/runs").json() if r["params"].get("repeat") == "copy"),
            key=lambda r: r["params"]["seed"],
        )
        mixed = client.get("/api/compare", params={"ids": [ids[0], copies[0]["id"]]})
        assert mixed.status_code == 200 and mixed.json()["spread"] is None

        resumed = client.post(f"/api/runs/{ids[0]}/resume")
        assert resumed.status_code == 409
        assert "seed 0 of the repeated run 'rep'" in resumed.json()["detail"]
        assert client.get(f"/api/runs/{ids[1]}").json()["values"]["hidden_size"] == 8


def test_a_broken_summary_and_broken_seeds_are_skipped(
    repeated_home: dict[str, Any], recipes_dir: Path, run_env: dict[str, str]
) -> None:
    """copy/: its repeat.json is no JSON (the seeds' own records give the figures), seed-9 has
    no metrics.json and seed-2 a history that is not JSON lines: both left out."""
    home, summary = repeated_home["home"], repeated_home["summary"]
    with make_client(home, recipes_dir, run_env) as client:
        copies = sorted(
            (r for r in client.get("/api/runs").json() if r["params"].get("repeat") == "copy"),
            key=lambda r: r["params"]["seed"],
        )
        assert [r["name"] for r in copies] == ["copy seed 0", "copy seed 1"]
        for run in copies:
            record = home / "runs" / "copy" / f"seed-{run['params']['seed']}" / "record"
            assert run["params"]["value"] == json.loads((record / "tiny.json").read_text())["value"]
        figures = [float(s["value"]) for s in summary["seeds"][:2]]
        assert [r["params"]["value"] for r in copies] == figures
        got = client.get("/api/compare", params={"ids": [r["id"] for r in copies]}).json()
        assert got["spread"]["spread"] == spread(figures)
        groups = {g["name"]: g for g in client.get("/api/repeats").json()}
        assert [f["seed"] for f in groups["copy"]["seeds"]] == [0, 1]
        assert client.get("/api/compare", params={"ids": ["deadbeef"]}).status_code == 404
