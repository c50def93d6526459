"""lstmkit.report: README tables come from results/, and the README is in sync with them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from lstmkit.report import render, update_readme

ROOT = Path(__file__).resolve().parents[1]


def _full_history() -> bool:
    """This checkout is a git repository with its whole history: the commits the figures were
    measured at are there to compare the code with (not so in a shallow clone or an sdist)."""
    import subprocess

    try:
        out = subprocess.run(
            ["git", "rev-parse", "--is-shallow-repository"],
            cwd=ROOT, capture_output=True, text=True, check=False,
        )  # fmt: skip
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.strip() == "false"


@pytest.mark.skipif(not _full_history(), reason="the figures' commits are not in this checkout")
def test_readme_tables_are_generated_from_results() -> None:
    """A number typed into a generated section, a results file not rendered, or a figure whose
    code changed since its commit and is not marked so, fails here: run `lstmkit report` after
    recording results or changing the model, training or recipe code."""
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


def _git(repo: Path, *args: str) -> str:
    import subprocess

    return subprocess.run(
        ["git", "-c", "user.name=t", "-c", "user.email=t@example.com", *args],
        cwd=repo, capture_output=True, text=True, check=True,
    ).stdout.strip()  # fmt: skip


def _repo_with_a_figure(tmp_path: Path) -> tuple[Path, str]:
    """A git repository holding a recipe, two code files and the figure recorded at its commit."""
    repo = tmp_path / "repo"
    (repo / "lstmkit" / "recipes").mkdir(parents=True)
    (repo / "results").mkdir()
    (repo / "lstmkit" / "models.py").write_text('"""Models."""\n\nSIZE = 32  # hidden units\n')
    (repo / "lstmkit" / "train.py").write_text("def step(lr):\n    return lr * 2\n")
    (repo / "lstmkit" / "cli.py").write_text("X = 1\n")
    recipe = 'name = "x"\ndescription = "a"\n[data]\ndataset = "imdb"\n[train]\nlr = 0.001\n'
    (repo / "lstmkit" / "recipes" / "x.toml").write_text(recipe)
    _git(repo, "init", "-q")
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "one")
    commit = _git(repo, "rev-parse", "HEAD")
    figure = {
        "recipe": "x", "metric": "test_accuracy", "value": 0.8, "seconds": 60.0,
        "commit": commit + "-dirty", "command": "lstmkit train recipes/x.toml --record",
    }  # fmt: skip
    (repo / "results" / "x.json").write_text(json.dumps(figure))
    return repo, commit


def test_a_figure_whose_code_changed_is_marked_with_the_files_named(tmp_path: Path) -> None:
    from lstmkit.report import figure_changes, results_table

    repo, commit = _repo_with_a_figure(tmp_path)
    figure = json.loads((repo / "results" / "x.json").read_text())
    assert figure_changes(figure, repo / "results") == ()
    # comments, docstrings, formatting, the recipe's description and code it does not use: no
    (repo / "lstmkit" / "models.py").write_text('"""Models, all."""\n\nSIZE = (32)  # units\n')
    (repo / "lstmkit" / "train.py").write_text("def step(lr):\n    '''One.'''\n    return lr*2\n")
    (repo / "lstmkit" / "cli.py").write_text("X = 2\n")
    recipe = repo / "lstmkit" / "recipes" / "x.toml"
    recipe.write_text(recipe.read_text().replace('description = "a"', 'description = "b"'))
    assert figure_changes(figure, repo / "results") == ()
    assert "†" not in results_table(repo / "results")
    # the model, the training and the recipe's settings: yes, named in that order
    (repo / "lstmkit" / "models.py").write_text("SIZE = 64\n")
    recipe.write_text(recipe.read_text().replace("lr = 0.001", "lr = 0.01"))
    assert figure_changes(figure, repo / "results") == (
        "lstmkit/recipes/x.toml",
        "lstmkit/models.py",
    )
    (repo / "lstmkit" / "train.py").write_text("def step(lr):\n    return lr * 3\n")
    table = results_table(repo / "results")
    assert f"| x | test_accuracy |  | 0.8000 † | 1.0 | `{commit[:8]}` |" in table
    assert table.endswith(
        f"- x (`{commit[:8]}`): `lstmkit/recipes/x.toml`, `lstmkit/models.py`, `lstmkit/train.py`\n"
    )
    assert "† Its recipe, model or training code changed since the commit" in table
    # a figure reproduced since (results_check --stamp) is compared from there
    _git(repo, "add", ".")
    _git(repo, "commit", "-qm", "two")
    later = _git(repo, "rev-parse", "HEAD")
    figure["checked"] = {"commit": later, "value": 0.801, "ok": True}
    (repo / "results" / "x.json").write_text(json.dumps(figure))
    assert figure_changes(figure, repo / "results") == ()
    table = results_table(repo / "results")
    assert f"| 0.8000 | 1.0 | `{commit[:8]}` (re-run `{later[:8]}`: 0.8010) |" in table
    assert "†" not in table


def test_a_figure_that_cannot_be_traced_is_not_marked(tmp_path: Path) -> None:
    """No git repository, or a commit it does not hold (a shallow clone): nothing to compare."""
    from lstmkit.report import figure_changes

    repo, _ = _repo_with_a_figure(tmp_path)
    figure = json.loads((repo / "results" / "x.json").read_text())
    assert figure_changes({**figure, "commit": "0" * 40}, repo / "results") is None
    assert figure_changes({**figure, "commit": "unknown"}, repo / "results") is None
    (tmp_path / "plain").mkdir()
    assert figure_changes(figure, tmp_path / "plain") is None


def test_recurrent_rows_show_their_fraction_of_the_measured_gemm_peak(tmp_path: Path) -> None:
    """benchmarks/recurrent.py's peak row (a large GEMM timed in the same run) heads the table,
    and each fixed-shape row gets its GFLOP/s and fraction of that peak; rows without (the
    variable-length cases) leave the two columns empty."""
    from lstmkit.report import benchmark_table

    rows = [
        {"bench": "recurrent-run", "command": "python benchmarks/recurrent.py", "threads": 2},
        {"bench": "recurrent-peak", "case": "gemm-f32-N2048", "gflops": 124.8, "threads": 2},
        {
            "bench": "recurrent",
            "case": "lstm-train-B128-T500-D32-H32",
            "impl": "auto->fused",
            "ours": 724812.9,
            "peer": 627462.9,
            "peer_name": "torch.nn.LSTM",
            "ratio": 1.155,
            "unit": "tok/s",
            "gflops_ours": 36.53,
            "gflops_peer": 31.62,
            "peak_fraction_ours": 0.2927,
            "peak_fraction_peer": 0.2534,
        },
        {
            "bench": "recurrent",
            "case": "lstm-train-varlen-bucketed-B128-T200-D128-H128",
            "impl": "split->fused",
            "ours": 5000.0,
            "peer": 4000.0,
            "peer_name": "torch.nn.LSTM+PackedSequence",
            "ratio": 1.25,
            "unit": "tok/s",
        },
    ]
    (tmp_path / "bench-recurrent.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    table = benchmark_table(tmp_path)
    assert "a gemm-f32-N2048 GEMM at 124.8 GFLOP/s (2 threads)" in table
    assert "| 1.16x | 36.5 (29%) | 31.6 (25%) |" in table
    assert "torch.nn.LSTM+PackedSequence | 1.25x | | |" in table
