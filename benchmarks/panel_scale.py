"""How the panel forecast path scales: a synthetic long-format panel of N series x T points
trained through the real CLI for one epoch.

Writes ``unique_id,ds,y`` (``ds`` quarterly or monthly ISO dates; ``y`` a per-series level times
a seasonal pattern with a per-series phase, plus noise; seed fixed), then runs, as a child
process, the default command with one epoch and no statsforecast baselines::

    lstmkit train --task forecast --train panel.csv --target y --time-column ds --horizon 8 \\
        --baseline none --set train.epochs=1

and prints one JSON line (``--out FILE`` also appends it)::

    {"bench": "panel_scale", "series": N, "points": T, "rows": N*T, "windows": ...,
     "peak_rss_gb": ..., "read_seconds": ..., "epoch_seconds": ..., "total_seconds": ...,
     "command": "lstmkit train ...", "commit": ...}

``peak_rss_gb``: the child's maximum resident set (``os.wait4``'s rusage), the whole process.
``read_seconds``: from the child's start to its ``panel ...: N series`` log line (interpreter
start, reading the file, the defaults' season vote, splitting, windowing, the in-window baseline
choice; the time each log line arrived is recorded in ``log_seconds``). ``epoch_seconds``: the
trainer's elapsed seconds at the end of the epoch (``history.jsonl``; periodic validation
included, ``validations`` of them). ``total_seconds``: the child's wall time (evaluation,
forecasts.csv and plots included). Usage::

    python benchmarks/panel_scale.py [--series 100000] [--points 100] [--work DIR] [--out FILE]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from lstmkit.runs import git_commit


def write_panel(
    path: Path, series: int, points: int, freq: str = "quarterly", seed: int = 0
) -> float:
    """Write the synthetic panel; return the seconds it took."""
    start = time.perf_counter()
    rng = np.random.default_rng(seed)
    season, step = (4, 3) if freq == "quarterly" else (12, 1)
    months = np.arange(points) * step  # from 1990-01
    ds = np.array([f"{1990 + m // 12:04d}-{m % 12 + 1:02d}-01" for m in months])
    t = np.arange(points)
    with open(path, "w", encoding="utf-8", newline="\n") as fh:
        fh.write("unique_id,ds,y\n")
        chunk = 2000
        for lo in range(0, series, chunk):
            n = min(chunk, series - lo)
            level = np.exp(rng.normal(4.0, 1.0, size=(n, 1)))
            phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
            amp = rng.uniform(0.1, 0.4, size=(n, 1))
            trend = 1 + rng.normal(0, 0.002, size=(n, 1)) * t
            pattern = 1 + amp * np.sin(2 * np.pi * t / season + phase)
            y = level * trend * pattern + level * 0.05 * rng.standard_normal((n, points))
            ids = np.repeat([f"s{k:06d}" for k in range(lo, lo + n)], points)
            dates = np.tile(ds, n)
            vals = np.char.mod("%.4f", y.ravel())
            lines = np.char.add(np.char.add(np.char.add(ids, ","), np.char.add(dates, ",")), vals)
            fh.write("\n".join(lines.tolist()) + "\n")
    return time.perf_counter() - start


def run_child(argv: list[str], log: Path) -> dict[str, Any]:
    """Run ``argv``; return its wall seconds, max RSS, return code and the arrival time of
    each output line (seconds from the start)."""
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    lines: list[tuple[float, str]] = []

    def pump() -> None:
        assert proc.stdout is not None
        with open(log, "w", encoding="utf-8") as fh:
            for line in proc.stdout:
                at = time.perf_counter() - start
                lines.append((at, line.rstrip("\n")))
                fh.write(f"[{at:8.1f}s] {line}")
                fh.flush()

    reader = threading.Thread(target=pump, daemon=True)
    reader.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    proc.returncode = os.waitstatus_to_exitcode(status)
    reader.join()
    return {
        "wall": wall,
        "rc": proc.returncode,
        "maxrss_kb": usage.ru_maxrss,  # Linux: kilobytes
        "lines": lines,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--series", type=int, default=100_000)
    parser.add_argument("--points", type=int, default=100)
    parser.add_argument("--freq", choices=("quarterly", "monthly"), default="quarterly")
    parser.add_argument("--horizon", type=int, default=8)
    parser.add_argument("--work", type=Path, help="the CSV and the run (default: a temp folder)")
    parser.add_argument("--out", type=Path, help="append the JSON line to this file")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        work = args.work or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        csv = work / f"panel-{args.series}x{args.points}.csv"
        write_seconds = write_panel(csv, args.series, args.points, args.freq)
        run = work / f"run-{args.series}x{args.points}"
        cmd = ["lstmkit", "train", "--task", "forecast", "--train", str(csv), "--target", "y"]
        cmd += ["--time-column", "ds", "--horizon", str(args.horizon), "--baseline", "none"]
        cmd += ["--set", "train.epochs=1"]
        child = run_child(
            [sys.executable, "-m", "lstmkit", *cmd[1:], "--out", str(run), "--no-progress"],
            work / f"run-{args.series}x{args.points}.log",
        )
        shown = " ".join(cmd).replace(str(csv), csv.name)
        row: dict[str, Any] = {
            "bench": "panel_scale",
            "series": args.series,
            "points": args.points,
            "rows": args.series * args.points,
            "freq": args.freq,
            "horizon": args.horizon,
        }
        if child["rc"] != 0:
            row["error"] = "\n".join(t for _, t in child["lines"][-15:])[-1500:]
        else:
            metrics = json.loads((run / "metrics.json").read_text(encoding="utf-8"))
            config = json.loads((run / "config.json").read_text(encoding="utf-8"))
            history = [
                json.loads(line)
                for line in (run / "history.jsonl").read_text(encoding="utf-8").splitlines()
            ]
            train_rows = [h for h in history if h.get("split") == "train" and h.get("epoch") == 1]
            windows = config.get("windows") or {}
            panel_at = next((t for t, text in child["lines"] if text.startswith("panel ")), None)
            first_default = next(
                (t for t, text in child["lines"] if text.startswith("default ")), None
            )
            trained_at = next(
                (t for t, text in child["lines"] if text.startswith("restored the best")), None
            )
            row |= {
                "windows": windows.get("train"),
                "valid_windows": windows.get("valid"),
                "test_windows": windows.get("test"),
                "lookback": config.get("lookback"),
                "batch_size": ((config.get("recipe") or {}).get("train") or {}).get("batch_size"),
                "evaluate_every": ((config.get("recipe") or {}).get("train") or {}).get(
                    "evaluate_every"
                ),
                "members": (config.get("model") or {}).get("members"),
                "steps": metrics.get("steps"),
                "validations": sum(1 for h in history if h.get("split") == "val"),
                "test_mase": metrics["test"]["model"]["mase"],
                "log_seconds": {
                    "first_default_line": first_default,
                    "panel_line": panel_at,
                    "trained": trained_at,
                },
            }
            row["read_seconds"] = None if panel_at is None else round(panel_at, 1)
            row["epoch_seconds"] = (
                round(train_rows[-1]["elapsed_s"], 1) if train_rows else metrics.get("seconds")
            )
            row["after_training_seconds"] = (
                None if trained_at is None else round(child["wall"] - trained_at, 1)
            )
        row |= {
            "peak_rss_gb": round(child["maxrss_kb"] / 2**20, 2),
            "total_seconds": round(child["wall"], 1),
            "write_csv_seconds": round(write_seconds, 1),
            "csv_mb": round(csv.stat().st_size / 2**20, 1),
            "command": shown,
            "commit": git_commit(),
            "machine": f"{platform.machine()}, {os.cpu_count()} cores",
            "threads": os.environ.get("OMP_NUM_THREADS", "default"),
        }
    print(json.dumps(row), flush=True)
    if args.out:
        with open(args.out, "a", encoding="utf-8") as fh:
            fh.write(json.dumps(row) + "\n")
    return 0 if "error" not in row else 1


if __name__ == "__main__":
    sys.exit(main())
