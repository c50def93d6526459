"""lstmkit compare: one recipe per cell type -> JSON, Markdown table and figure."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from lstmkit.cli import main
from lstmkit.compare import comparison_markdown
from lstmkit.data.resolve import ENV_VAR

RECIPE = Path(__file__).parents[1] / "lstmkit" / "recipes" / "reuters-seed002.toml"


@pytest.mark.skipif(
    not (Path(os.environ.get(ENV_VAR, "/nonexistent")) / "reuters.npz").exists(),
    reason=f"{ENV_VAR} does not point at a directory with reuters.npz",
)
def test_compare_cells_quick(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "cmp"
    md = tmp_path / "docs" / "cmp.md"
    code = main(
        [
            "compare",
            str(RECIPE),
            "--cells",
            "rnn",
            "gru",
            "--quick",
            "--out",
            str(out),
            "--markdown",
            str(md),
        ]
    )
    assert code == 0
    result = json.loads((out / "comparison.json").read_text())
    assert [r["cell"] for r in result["cells"]] == ["rnn", "gru"]
    assert result["quick"] is True and "recipe" not in result  # not a README accuracy row
    # a GRU has 3 gate blocks, a SimpleRNN 1: the parameter counts differ by 2 blocks
    rnn, gru = result["cells"]
    assert gru["params"] > rnn["params"]
    assert json.loads((out / "rnn" / "config.json").read_text())["model"]["cell"] == "rnn"
    text = md.read_text()
    assert "| SimpleRNN |" in text and "| GRU |" in text and "quick mode" in text
    assert "![validation curves](../cmp/comparison.png)" in text  # relative to the Markdown
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert "SimpleRNN: test accuracy" in capsys.readouterr().out


def test_compare_rejects_bad_cells_and_quick_record(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["compare", str(RECIPE), "--cells", "lstm", "tcn", "--out", str(tmp_path)]) == 2
    assert "--cells takes some of rnn, lstm, gru, got ['lstm', 'tcn']" in capsys.readouterr().err
    assert main(["compare", str(RECIPE), "--quick", "--record", str(tmp_path / "r")]) == 2
    assert "drop --record" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_markdown_table_rows() -> None:
    result = {
        "of_recipe": "x",
        "command": "lstmkit compare x",
        "commit": "abcdef123",
        "machine": "m",
        "quick": False,
        "seed_figure": 0.8658,
        "cells": [
            {
                "name": "LSTM",
                "test_accuracy": 0.87,
                "test_loss": 0.31,
                "params": 1234,
                "seconds_per_epoch": 7.25,
                "seconds": 90,
            }
        ],
    }
    text = comparison_markdown(result, "fig.png")
    assert "| LSTM | 0.8700 | 0.3100 | 1,234 | 7.2 | 1.5 |" in text
    assert "The note's LSTM figure: 0.8658." in text and "![validation curves](fig.png)" in text
