"""Your own data with the defaults: the path a new user takes, against the classic baseline that
every run measures beside its model.

Runs the default ``lstmkit train --task ...`` command (no settings beyond the files and columns)
on each case and prints one JSON line per case; ``--out FILE`` also appends them (after a header
line) for the README table (``lstmkit report``)::

    {"bench": "own_data", "case": "korean-reviews", "metric": "test_accuracy", "ours": ...,
     "baseline": ..., "baseline_name": "tfidf-logreg", "minutes": ..., "command": "lstmkit ..."}

Series cases (``"metric": "mae"``) add ``seasonal_naive`` and ``naive``; their figures are on the
rolling protocol of ``shared/data/README.md``, as the forecast task's test windows are.

Panel cases (``panel-visnights``, ``panel-prison``, ``panel-accommodation``: the long-format files
of ``series/panels/``, one global model over all their series) are ``"metric": "mase"``: the mean
over series of the M4 MASE (the last H = 8 quarters of every series), ``baseline`` statsforecast's
AutoETS fitted per series in the same run, beside ``auto_theta``, ``seasonal_naive``, ``naive``,
the model's ``smape`` and ``coverage_80`` (the empirical coverage of its 80% interval).

Cases: ``korean-reviews`` (100k / 20k Korean movie reviews), ``imdb-csv`` (the 25k / 25k IMDB
reviews of ``aclImdb_v1_text.tar.gz`` written as CSV files), the series of ``series/`` and the
panels of ``series/panels/``.
Data come from ``LSTMKIT_DATA``. Usage::

    python benchmarks/own_data.py [--cases korean-reviews,imdb-csv,...] [--out results/bench-own_data.jsonl]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from data_pipeline import write_split_csvs  # noqa: E402

from lstmkit.data.resolve import resolve  # noqa: E402
from lstmkit.runs import git_commit  # noqa: E402

GOALS = {
    "korean-reviews": "test accuracy >= 88.0% (TF-IDF+LR anchor 86.77%), <= 10 min",
    "imdb-csv": "test accuracy >= the in-run baseline + 0.5 points, <= 15 min",
}
SERIES = {
    # case: (file, target column, time column, horizon)
    "airpassengers": ("series/airpassengers.csv", "passengers", "month", 12),
    "wineind": ("series/wineind.csv", "litres", "month", 12),
    "taylor": ("series/taylor.csv", "demand_mw", "half_hour", 48),
    "msft": ("series/msft.csv", "Close", "Date", 5),
    # panels (long format unique_id, ds, y): one global model over all the series of a file
    "panel-visnights": ("series/panels/visnights.csv", "y", "ds", 8),
    "panel-prison": ("series/panels/prison.csv", "y", "ds", 8),
    "panel-accommodation": ("series/panels/accommodation.csv", "y", "ds", 8),
}
PANEL_GOAL = "mean MASE <= AutoETS's (fitted per series in the same run); 80% interval covers ~80%"


def text_case(case: str, data: Path, work: Path) -> tuple[list[str], Path]:
    """The default command of a text case and its run directory."""
    run = work / case
    if case == "korean-reviews":
        k = data / "korean-reviews"
        files = ["--train", str(k / "train.csv"), "--test", str(k / "test.csv")]
        cols = ["--text-column", "review", "--label-column", "label"]
    else:
        csvs = work / "imdb-csv"
        if not (csvs / "test.csv").is_file():
            write_split_csvs(resolve("aclImdb_v1_text.tar.gz"), csvs)
        files = ["--train", str(csvs / "train.csv"), "--test", str(csvs / "test.csv")]
        cols = ["--text-column", "review", "--label-column", "sentiment"]
    return ["lstmkit", "train", "--task", "text", *files, *cols, "--out", str(run)], run


def series_case(case: str, data: Path, work: Path) -> tuple[list[str], Path]:
    """The default command of a series case and its run directory."""
    file, target, time_column, horizon = SERIES[case]
    run = work / case
    argv = ["lstmkit", "train", "--task", "forecast", "--train", str(data / file)]
    argv += ["--target", target, "--time-column", time_column, "--horizon", str(horizon)]
    return [*argv, "--out", str(run)], run


def _shown(argv: list[str], data: Path, work: Path) -> str:
    """The command as a user types it: data paths relative to the data folder."""
    text = " ".join(a for a in argv if a)
    text = text.replace(str(data) + "/", "").replace(str(work / "imdb-csv") + "/", "imdb-csv/")
    return text.split(" --out ")[0]


def record(case: str, run: Path, command: str, minutes: float) -> dict[str, Any]:
    """The JSON line of a finished case, read from its run directory."""
    metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
    row: dict[str, Any] = {
        "bench": "own_data",
        "case": case,
        "command": command,
        "commit": git_commit(),
    }
    if "evaluation" in metrics:  # a text run
        ev = metrics["evaluation"]
        base = ev.get("baseline") or {}
        row |= {
            "metric": f"{ev['split']}_accuracy",
            "ours": ev["accuracy"],
            "baseline": base.get(f"{ev['split']}_accuracy"),
            "baseline_name": base.get("name"),
            "valid_accuracy": ev.get("valid_accuracy"),
            "baseline_valid_accuracy": base.get("valid_accuracy"),
            "goal": GOALS.get(case),
        }
    elif "auto_ets" in metrics["test"]:  # a panel forecast run (M4 protocol, statsforecast)
        t = metrics["test"]
        row |= {
            "metric": "mase",
            "ours": t["model"]["mase"],
            "baseline": t["auto_ets"]["mase"],
            "baseline_name": "AutoETS",
            "auto_theta": t.get("auto_theta", {}).get("mase"),
            "seasonal_naive": t.get("seasonal_naive", {}).get("mase"),
            "naive": t.get("naive", {}).get("mase"),
            "smape": t["model"]["smape"],
            "baseline_smape": t["auto_ets"]["smape"],
            "coverage_80": t["coverage"],
            "baseline_coverage_80": t.get("baseline_coverage", {}).get("auto_ets"),
            "series": t["series"],
            "protocol": t.get("protocol"),
            "horizon": t.get("horizon"),
            "goal": PANEL_GOAL,
        }
    else:  # a forecast run
        t = metrics["test"]
        names = [k for k in ("ets", "holt_winters") if k in t]
        row |= {
            "metric": "mae",
            "ours": t["model"]["mae"],
            "baseline": t[names[0]]["mae"] if names else None,
            "baseline_name": names[0] if names else None,
            "seasonal_naive": t.get("seasonal_naive", {}).get("mae"),
            "naive": t["naive"]["mae"],
            "coverage_80": t.get("coverage"),  # the model's 80% interval on the test origins
            "goal": "MAE <= Holt-Winters/ETS on 3 of 4 series, never worse than seasonal naive "
            "(naive for msft)",
        }
    row["minutes"] = round(minutes, 2)
    row["seconds"] = round(minutes * 60, 1)
    row["steps"] = metrics.get("steps")
    return row


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cases", default="korean-reviews,imdb-csv," + ",".join(SERIES))
    parser.add_argument("--out", type=Path, help="append the JSON lines to this file")
    parser.add_argument("--work", type=Path, help="run directories (default: a temp folder)")
    args = parser.parse_args(argv)
    data = Path(os.environ.get("LSTMKIT_DATA", "")).resolve()
    if not (data / "series").is_dir():
        print("set LSTMKIT_DATA to the data folder (with korean-reviews/ and series/)")
        return 2
    cases = [c.strip() for c in args.cases.split(",") if c.strip()]
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for case in cases:
            build = series_case if case in SERIES else text_case
            cmd, run = build(case, data, work)
            start = time.perf_counter()
            proc = subprocess.run(
                [sys.executable, "-m", "lstmkit", *cmd[1:], "--no-progress"],
                capture_output=True,
                text=True,
            )
            minutes = (time.perf_counter() - start) / 60
            if proc.returncode != 0:
                print(proc.stderr[-3000:], file=sys.stderr)
                row = {"bench": "own_data", "case": case, "error": proc.stderr[-500:]}
            else:
                row = record(case, run, _shown(cmd, data, work), minutes)
                row["summary"] = proc.stdout.strip().splitlines()[-1]
            print(json.dumps(row, ensure_ascii=False), flush=True)
            rows.append(row)
    if args.out:
        head = {
            "bench": "own_data-run",
            "command": "python benchmarks/own_data.py " + " ".join(argv or sys.argv[1:]),
            "commit": git_commit(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        }
        with open(args.out, "a", encoding="utf-8") as fh:
            for r in [head, *rows]:
                fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
