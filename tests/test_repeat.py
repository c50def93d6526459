"""Repeated runs (lstmkit train --seeds N): every seed's figure, mean, sample std, min, max."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pytest

from lstmkit.cli import main
from lstmkit.errors import ConfigError
from lstmkit.repeat import read_summary, seed_list, spread

WORDS = ["good", "bad", "fine", "poor", "great", "awful", "nice", "dull"]


def _texts(path: Path) -> Path:
    # labels only weakly tied to the words: a few steps leave seed-dependent accuracies
    rng = np.random.default_rng(0)
    lines = ["text,label"]
    for _ in range(240):
        label = int(rng.integers(2))
        words = rng.choice(WORDS, size=6)
        if rng.random() < 0.6:
            words[0] = WORDS[2 * int(rng.integers(4)) + label]
        lines.append(f"{' '.join(words)},{label}")
    path.write_text("\n".join(lines) + "\n")
    return path


def _args(csv: Path, out: Path, *extra: str) -> list[str]:
    return [
        "train", "--task", "text", "--train", str(csv), "--text-column", "text",
        "--label-column", "label", "--baseline", "none", "--out", str(out), "--no-progress",
        "--set", "train.max_steps=8", "--set", "pretrain.method=none", *extra,
    ]  # fmt: skip


def test_spread_and_seed_list() -> None:
    s = spread([0.80, 0.84, 0.83])
    assert s["mean"] == pytest.approx(0.8233333333, rel=1e-9)
    # sample standard deviation (ddof 1), by hand: sqrt(((-.02333)^2 + .01667^2 + .00667^2) / 2)
    assert s["std"] == pytest.approx(math.sqrt((0.0005444444 + 0.0002777778 + 0.0000444444) / 2))
    assert (s["min"], s["max"]) == (0.80, 0.84)
    assert seed_list(3, 4) == [3, 4, 5, 6]
    with pytest.raises(ConfigError, match="between 2 and"):
        seed_list(0, 1)


def test_seeds_record_every_figure_and_the_spread(tmp_path: Path) -> None:
    csv = _texts(tmp_path / "s.csv")
    record = tmp_path / "results"
    out = tmp_path / "rep"
    assert main([*_args(csv, out, "--seeds", "3", "--record", str(record))]) == 0
    result = json.loads((record / "text-s.json").read_text())
    values = [s["value"] for s in result["seeds"]]
    assert [s["seed"] for s in result["seeds"]] == [0, 1, 2]
    assert len(set(values)) == 3  # the seeds really differ
    # each seed's figure is the one its own run directory measured
    for s in result["seeds"]:
        metrics = json.loads((out / f"seed-{s['seed']}" / "metrics.json").read_text())
        assert s["value"] == pytest.approx(metrics["evaluation"]["accuracy"], rel=1e-12)
    assert result["mean"] == pytest.approx(statistics.fmean(values), rel=1e-12)
    assert result["value"] == result["mean"]
    assert result["std"] == pytest.approx(statistics.stdev(values), rel=1e-12)
    assert (result["min"], result["max"]) == (min(values), max(values))
    summary = json.loads((out / "repeat.json").read_text())
    assert summary["mean"] == result["mean"]
    assert read_summary(out) == summary  # the reader the studio uses
    # a repeated run is refused where it would overwrite one
    assert main([*_args(csv, out, "--seeds", "3")]) == 2


def test_parallel_jobs_give_the_sequential_figures(tmp_path: Path) -> None:
    csv = _texts(tmp_path / "s.csv")
    assert main([*_args(csv, tmp_path / "a", "--seeds", "2")]) == 0
    assert main([*_args(csv, tmp_path / "b", "--seeds", "2", "--jobs", "2")]) == 0
    a = json.loads((tmp_path / "a" / "repeat.json").read_text())
    b = json.loads((tmp_path / "b" / "repeat.json").read_text())
    assert b["jobs"] == 2
    for x, y in zip(a["seeds"], b["seeds"], strict=True):
        assert x["seed"] == y["seed"]
        assert y["value"] == pytest.approx(x["value"], rel=1e-4)


def test_jobs_without_seeds_is_one_clear_error(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    csv = _texts(tmp_path / "s.csv")
    assert main([*_args(csv, tmp_path / "c", "--jobs", "2")]) == 2
    assert "--jobs runs seeds in parallel" in capsys.readouterr().err


def test_readme_table_shows_mean_and_std(tmp_path: Path) -> None:
    from lstmkit.report import results_table

    seeds = [{"seed": s, "value": v, "seconds": 1.0} for s, v in enumerate([0.86, 0.862, 0.858])]
    record = {
        "recipe": "imdb-seed003", "metric": "test_accuracy", "value": 0.86, "mean": 0.86,
        "std": 0.002, "min": 0.858, "max": 0.862, "seeds": seeds, "seconds": 300.0,
        "commit": "abcdef0123", "seed_figure": 0.8658,
    }  # fmt: skip
    (tmp_path / "imdb-seed003.json").write_text(json.dumps(record))
    table = results_table(tmp_path)
    assert "| imdb-seed003 | test_accuracy | 0.8658 | 0.8600 ± 0.0020 (3 seeds) | 5.0 |" in table


def test_read_summary_refuses_what_is_not_a_summary(tmp_path: Path) -> None:
    good = {"recipe": "r", "metric": "test_accuracy", "seeds": [{"seed": 0, "value": 0.5}]}
    (tmp_path / "repeat.json").write_text(json.dumps(good))
    assert read_summary(tmp_path) == good
    broken: list[object] = [
        "{not json",
        json.dumps([1, 2]),
        json.dumps({**good, "seeds": {"0": 0.5}}),
        json.dumps({**good, "seeds": [{"seed": 0, "value": "0.5"}]}),
        json.dumps({**good, "seeds": [{"seed": True, "value": 0.5}]}),
        json.dumps({**good, "seeds": [{"seed": 0, "value": 0.5}, {"seed": 0, "value": 0.6}]}),
        '{"recipe": "r", "metric": "m", "seeds": [{"seed": 0, "value": NaN}]}',
        json.dumps({"recipe": "r", "seeds": [{"seed": 0, "value": 0.5}]}),
    ]
    for text in broken:
        (tmp_path / "repeat.json").write_text(str(text))
        assert read_summary(tmp_path) is None, text
    assert read_summary(tmp_path / "missing") is None
