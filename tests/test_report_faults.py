"""The README's Reliability table, rendered from results/bench-faults.jsonl."""

from __future__ import annotations

import json
from pathlib import Path

from lstmkit.report import reliability_table, render


def _write(results: Path, rows: list[dict]) -> None:
    results.mkdir(exist_ok=True)
    with open(results / "bench-faults.jsonl", "w", encoding="utf-8") as fh:
        for r in rows:
            fh.write(json.dumps(r) + "\n")


def test_reliability_table_rows(tmp_path: Path) -> None:
    base = {"bench": "faults", "machine": "x86_64, 2 cpus", "commit": "abcdef1234", "seconds": 1}
    _write(
        tmp_path,
        [
            {
                **base,
                "case": "train-kill9",
                "injected": "SIGKILL",
                "times": 3,
                "lost": 1,
                "detail": "old",
            },
            {
                **base,
                "case": "train-kill9",
                "injected": "SIGKILL at 20 moments",
                "times": 20,
                "lost": 0,
                "detail": "max abs diff 0 | exact",
            },
            {
                **base,
                "case": "storage-full",
                "injected": "full disk",
                "times": 0,
                "lost": None,
                "detail": "not run: cannot mount",
            },
            {"bench": "serve", "case": "ignored"},
        ],
    )
    text = reliability_table(tmp_path)
    assert text == (
        "`python benchmarks/faults.py` — x86_64, 2 cpus; each case at the commit in its line "
        "(bench-faults.jsonl)\n\n"
        "| case | injected | times | lost | detail |\n"
        "| --- | --- | ---: | ---: | --- |\n"
        "| train-kill9 | SIGKILL at 20 moments | 20 | 0 | max abs diff 0 \\| exact (abcdef1) |\n"
        "| storage-full | full disk | 0 | not run | not run: cannot mount (abcdef1) |\n"
    )


def test_reliability_section_rendered(tmp_path: Path) -> None:
    readme = (
        "a\n<!-- BEGIN GENERATED: reliability -->\nstale\n<!-- END GENERATED: reliability -->\n"
    )
    assert "No fault-injection results" in render(readme, tmp_path)
    _write(
        tmp_path,
        [
            {
                "bench": "faults",
                "case": "c",
                "injected": "i",
                "times": 1,
                "lost": 0,
                "detail": "d",
                "commit": "1234567",
            }
        ],
    )
    out = render(readme, tmp_path)
    assert "| c | i | 1 | 0 | d (1234567) |" in out and "stale" not in out
