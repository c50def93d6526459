"""lstmkit.report: README tables come from results/, and the README is in sync with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstmkit.report import render, update_readme

ROOT = Path(__file__).resolve().parents[1]


def test_readme_tables_are_generated_from_results() -> None:
    """A number typed into a generated section, or a results file not rendered, fails here:
    run `lstmkit report` after recording results."""
    text = (ROOT / "README.md").read_text()
    assert (
        "<!-- BEGIN GENERATED: benchmarks -->" in text
        and "<!-- BEGIN GENERATED: results -->" in text
    )
    assert render(text, ROOT / "results") == text


def test_render_and_update(tmp_path: Path) -> None:
    results = tmp_path / "results"
    results.mkdir()
    (results / "imdb-x.json").write_text(
        json.dumps(
            {
                "recipe": "imdb-x",
                "metric": "test_accuracy",
                "value": 0.87654,
                "seconds": 125.0,
                "commit": "abcdef123456",
                "seed_figure": 0.8658,
            }
        )
    )
    header = {
        "bench": "recurrent-run",
        "command": "python benchmarks/recurrent.py",
        "torch": "2.13.0",
        "threads": 2,
        "machine": "x86_64",
    }
    case = {
        "bench": "recurrent",
        "case": "lstm-train",
        "impl": "auto->fused",
        "ours": 1000.0,
        "peer": 2000.0,
        "peer_name": "torch.nn.LSTM",
        "ratio": 0.5,
    }
    (results / "bench-recurrent.jsonl").write_text(
        json.dumps(header) + "\n" + json.dumps(case) + "\n"
    )
    readme = tmp_path / "README.md"
    readme.write_text(
        "# x\n<!-- BEGIN GENERATED: results -->\nold\n<!-- END GENERATED: results -->\n<!-- BEGIN GENERATED: benchmarks -->\n<!-- END GENERATED: benchmarks -->\n"
    )
    assert update_readme(readme, results)
    out = readme.read_text()
    assert "| imdb-x | test_accuracy | 0.8658 | 0.8765 | 2.1 | `abcdef12` |" in out
    assert "| lstm-train | auto->fused | 1.0k tok/s | 2.0k tok/s torch.nn.LSTM | 0.50x |" in out
    assert "old" not in out
    assert not update_readme(readme, results)  # idempotent
    readme.write_text("<!-- BEGIN GENERATED: nope -->\n<!-- END GENERATED: nope -->\n")
    with pytest.raises(ValueError, match="unknown generated section 'nope'"):
        update_readme(readme, results)
    (results / "bench-bad.jsonl").write_text("{not json\n")
    with pytest.raises(ValueError, match=r"bench-bad\.jsonl:1: not a JSON object"):
        render("<!-- BEGIN GENERATED: benchmarks -->\n<!-- END GENERATED: benchmarks -->", results)


def test_a_pipeline_is_shown_as_a_fraction_of_its_training(tmp_path: Path) -> None:
    from lstmkit.report import benchmark_table

    rows = [
        {
            "bench": "data_pipeline-run",
            "command": "python benchmarks/data_pipeline.py",
            "goal": "pipeline <= 10% of the default run's training time",
            "machine": "m",
        },
        {
            "bench": "data_pipeline",
            "case": "word-cold",
            "ours": 4.8,
            "peer": 60.0,
            "peer_name": "training",
            "ratio": 12.5,
            "fraction": 0.08,
            "goal": 0.1,
        },
        {
            "bench": "data_pipeline",
            "case": "bpe-cold",
            "ours": 10.6,
            "peer": 76.0,
            "peer_name": "training",
            "ratio": 7.17,
            "fraction": 0.139,
            "goal": 0.1,
        },
    ]
    (tmp_path / "bench-data_pipeline.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = benchmark_table(tmp_path)
    assert "| word-cold | 4.80 s | 60.0 s | 8.0% | yes (<= 10%) |" in table
    assert "| bpe-cold | 10.60 s | 76.0 s | 13.9% | no (<= 10%) |" in table


def test_panel_rows_are_mase_beside_autoets_with_coverage(tmp_path: Path) -> None:
    """own_data's panel cases ("metric": "mase") get their own table: MASE to 3 decimals (not a
    percentage), lower wins, sMAPE and the 80% interval's coverage beside AutoETS'; the text and
    series cases keep theirs."""
    from lstmkit.report import benchmark_table

    rows = [
        {"bench": "own_data-run", "machine": "x86_64, 2 cores"},
        {
            "bench": "own_data",
            "case": "airpassengers",
            "metric": "mae",
            "ours": 12.404,
            "baseline": 16.875,
            "baseline_name": "holt_winters",
            "seasonal_naive": 46.77,
            "naive": 81.77,
            "minutes": 0.28,
            "command": "lstmkit train --task forecast --train series/airpassengers.csv",
            "commit": "2e23e2f53eb7",
        },
        {
            "bench": "own_data",
            "case": "panel-visnights",
            "metric": "mase",
            "ours": 0.98024,
            "baseline": 1.15584,
            "baseline_name": "AutoETS",
            "auto_theta": 1.17616,
            "seasonal_naive": 1.12732,
            "naive": 1.70321,
            "smape": 11.374,
            "baseline_smape": 13.8194,
            "coverage_80": 0.94375,
            "baseline_coverage_80": 0.64375,
            "series": 20,
            "minutes": 0.35,
            "command": "lstmkit train --task forecast --train series/panels/visnights.csv",
            "commit": "5a1827831b7a",
        },
        {
            "bench": "own_data",
            "case": "panel-accommodation",
            "metric": "mase",
            "ours": 2.64246,
            "baseline": 2.11221,
            "baseline_name": "AutoETS",
            "auto_theta": 2.03106,
            "seasonal_naive": 2.80677,
            "naive": 4.52809,
            "smape": 12.0919,
            "coverage_80": 0.234375,
            "series": 8,
            "minutes": 0.2,
            "command": "lstmkit train --task forecast --train series/panels/accommodation.csv",
            "commit": "5a1827831b7a",
        },
    ]
    (tmp_path / "bench-own_data.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = benchmark_table(tmp_path)
    assert (
        "| airpassengers | mae | 12.4 | 16.88 holt_winters | 46.77 | 81.77 | 0.3 | yes | "
        "`lstmkit train --task forecast --train series/airpassengers.csv` (2e23e2f) |" in table
    )
    assert (
        "| panel-visnights | 20 | 0.980 | 1.156 | 1.176 | 1.127 | 1.703 | 11.37 / 13.82 | "
        "94% / 64% | 0.3 | yes | `lstmkit train --task forecast --train "
        "series/panels/visnights.csv` (5a18278) |" in table
    )
    assert (
        "| panel-accommodation | 8 | 2.642 | 2.112 | 2.031 | 2.807 | 4.528 | 12.09 / — | "
        "23% / — | 0.2 | no |" in table
    )
    assert "98.02%" not in table  # a MASE is not an accuracy
    assert table.index("| airpassengers |") < table.index("| panel-visnights |")


def test_panel_scale_rows_are_a_table(tmp_path: Path) -> None:
    from lstmkit.report import benchmark_table

    row = {
        "bench": "panel_scale", "series": 100000, "points": 100, "rows": 10000000,
        "windows": 5800000, "peak_rss_gb": 7.56, "read_seconds": 107.4, "epoch_seconds": 155.7,
        "total_seconds": 299.7, "test_mase": 0.83435, "commit": "ea49fc0123", "steps": 22657,
        "batch_size": 256, "validations": 9,
    }  # fmt: skip
    (tmp_path / "bench-panel_scale.jsonl").write_text(json.dumps(row) + "\n")
    table = benchmark_table(tmp_path)
    want = "| 100,000 x 100 | 10,000,000 | 5,800,000 | 7.56 GB | 107 s | 156 s (22,657 steps, 9 "
    assert want + "validations) | 300 s | 0.834 |" in table
    row["steps"] = 4600
    (tmp_path / "bench-panel_scale.jsonl").write_text(json.dumps(row) + "\n")
    assert "156 s (4,600 steps, stopped early, 9 validations)" in benchmark_table(tmp_path)
