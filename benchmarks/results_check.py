"""Do the recorded figures still come out of the code? Re-run every ``results/<recipe>.json``
whose run takes under ``--max-minutes`` (5) and fail when a figure moved beyond what it allows.

What a figure allows:

- a repeated run (``lstmkit train --seeds N``): its first seed is run again and must land inside
  the recorded spread, ``[min, max]`` of the N seeds;
- a single run: the recorded value ± 0.5 points (0.005 on a 0..1 score such as an accuracy;
  0.5% of the value above 1, as a loss or MASE may be).

Each run is the recorded ``command`` made to run here: a recipe by its packaged name (the recipes
moved from ``recipes/*.toml`` into the package), ``--out`` and ``--record`` into a temporary
folder, ``--seeds`` replaced by the one seed, ``--threads`` torch threads (default 1), the data an
example needs made first (``stacked-seed004``'s digit arrays, ``text-imdb``'s IMDB CSV files).
One JSON line per recorded figure on stdout::

    {"bench": "results_check", "recipe": "reuters-seed002", "metric": "test_accuracy",
     "recorded": 0.7972, "allowed": [0.7922, 0.8022], "now": 0.7865, "ok": false, ...}

Figures not re-run say why (``"skipped"``: the run takes longer, no lstmkit train command).
Exit status 1 when any figure re-run moved or failed to run, else 0. Usage (``make
results-check``)::

    python benchmarks/results_check.py [--results results] [--max-minutes 5] [--only a,b]
        [--threads 1] [--list] [--keep DIR] [--stamp]

``--stamp`` writes the outcome into each results file re-run (``"checked"``, see :func:`stamp`):
a figure reproduced at a commit is compared with the code from there on by ``lstmkit report``.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import shutil
import site
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
SINGLE_RUN_POINTS = 0.005  # "0.5 points" on a 0..1 score; relative above 1
DROPPED = {"--out": 1, "--record": 0, "--seeds": 1, "--jobs": 1, "--no-progress": 0}


def allowed_band(result: dict[str, Any]) -> tuple[float, float]:
    """The interval a re-run figure must land in (see the module docstring)."""
    if result.get("seeds"):
        values = [float(s["value"]) for s in result["seeds"]]
        return min(values), max(values)
    value = float(result["value"])
    tol = SINGLE_RUN_POINTS * max(1.0, abs(value))
    return value - tol, value + tol


def run_minutes(result: dict[str, Any]) -> float:
    """Minutes one run of the figure took when it was recorded (a repeated run: per seed)."""
    runs = len(result.get("seeds") or []) or 1
    return float(result["seconds"]) / 60 / runs


def _make_digit_arrays(work: Path) -> list[str]:
    import runpy

    example = runpy.run_path(str(ROOT / "examples" / "make_digit_arrays.py"))
    path = example["make"](work / "digits-ge5.npz")  # the example's default size, as recorded
    return ["--set", f"data.arrays.x={json.dumps(str(path))}"]


def _make_imdb_csvs(work: Path) -> list[str]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from data_pipeline import write_split_csvs

    from lstmkit.data.resolve import resolve

    write_split_csvs(resolve("aclImdb_v1_text.tar.gz"), work / "imdb-csv")
    return []


# data a recorded command reads that is made, not downloaded: (path prefix in the command or the
# recipe name, what makes it into the work folder and the extra arguments that point at it)
MADE_DATA: dict[str, Callable[[Path], list[str]]] = {
    "stacked-seed004": _make_digit_arrays,
    "runs/imdb-csv/": _make_imdb_csvs,
}


def _is_threads(setting: str) -> bool:
    return setting.split("=", 1)[0] in ("num_threads", "train.num_threads")


def rerun_argv(
    result: dict[str, Any], work: Path, threads: int, make_data: bool = True
) -> list[str]:
    """``lstmkit train ...`` arguments that measure ``result``'s figure again into ``work``
    (``make_data``: False to only show them, the example data not made)."""
    words = shlex.split(str(result["command"]))
    if words[:2] != ["lstmkit", "train"]:
        raise ValueError(f"not an `lstmkit train` command: {result['command']}")
    words = words[2:]
    site_packages = site.getsitepackages()[0]
    argv: list[str] = []
    i = 0
    while i < len(words):
        word = words[i]
        name = word.split("=", 1)[0]
        if name in DROPPED:
            i += 1 + (0 if "=" in word else DROPPED[name])
            continue
        if word == "--set" and i + 1 < len(words) and _is_threads(words[i + 1]):
            i += 2  # --threads decides
            continue
        if word.endswith(".toml") and not word.startswith("-"):
            word = str(result["recipe"])  # the packaged recipe of the figure's name
        word = word.replace("<site-packages>/", site_packages + "/")
        if "runs/imdb-csv/" in word:
            word = word.replace("runs/imdb-csv/", str(work / "imdb-csv") + "/")
        argv.append(word)
        i += 1
    extra: list[str] = []
    for key, make in MADE_DATA.items():
        if make_data and (key == result["recipe"] or any(key in w for w in words)):
            extra += make(work)
    if result.get("seeds"):
        extra += ["--set", f"train.seed={int(result['seeds'][0]['seed'])}"]
    extra += ["--set", f"train.num_threads={threads}"]
    out = work / str(result["recipe"])
    return [*argv, *extra, "--out", str(out), "--record", str(work / "record"), "--no-progress"]


def check(
    path: Path, threads: int, max_minutes: float, dry: bool = False, keep: Path | None = None
) -> dict[str, Any]:
    """Re-run the figure of ``path`` (or say why not) and compare it with what it allows
    (``keep``: leave the run directory and its record under ``keep/<recipe>``)."""
    result = json.loads(path.read_text(encoding="utf-8"))
    row: dict[str, Any] = {"bench": "results_check", "recipe": result.get("recipe", path.stem)}
    if "recipe" not in result or "value" not in result:
        return {**row, "skipped": "not a recorded figure (no recipe and value)"}
    row |= {"metric": result["metric"], "recorded": result["value"]}
    if not str(result.get("command", "")).startswith("lstmkit train "):
        return {**row, "skipped": f"not an `lstmkit train` command: {result.get('command')}"}
    minutes = run_minutes(result)
    if minutes >= max_minutes:
        return {**row, "skipped": f"one run took {minutes:.1f} min (>= {max_minutes:g})"}
    lo, hi = allowed_band(result)
    row["allowed"] = [lo, hi]
    with tempfile.TemporaryDirectory(prefix=f"results-check-{row['recipe']}-") as tmp:
        work = Path(tmp) if keep is None else keep / str(row["recipe"])
        if keep is not None:
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
        if dry:
            argv = rerun_argv(result, work, threads, make_data=False)
            return {**row, "command": "lstmkit train " + shlex.join(argv)}
        try:
            argv = rerun_argv(result, work, threads)
        except Exception as err:  # the example data could not be made: this figure fails
            return {**row, "ok": False, "error": f"{type(err).__name__}: {err}"}
        row["command"] = "lstmkit train " + shlex.join(argv)
        env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
        start = time.monotonic()
        limit = max(1800.0, 10 * 60 * minutes)  # a busy machine runs several times slower
        try:
            proc = subprocess.run(
                [sys.executable, "-m", "lstmkit", "train", *argv],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=limit,
            )
        except subprocess.TimeoutExpired:
            return {**row, "ok": False, "error": f"still running after {limit:.0f} s: stopped"}
        row["seconds"] = round(time.monotonic() - start, 1)
        written = sorted((work / "record").glob("*.json"))
        if proc.returncode != 0 or len(written) != 1:
            tail = (proc.stderr or proc.stdout).strip().splitlines()[-3:]
            return {**row, "ok": False, "error": f"exit {proc.returncode}: {' / '.join(tail)}"}
        now = json.loads(written[0].read_text(encoding="utf-8"))
    row |= {"now": now["value"], "commit": now.get("commit"), "ok": lo <= now["value"] <= hi}
    return row


def stamp(path: Path, row: dict[str, Any]) -> None:
    """Write what the re-run showed into the results file: ``"checked": {"commit", "value",
    "ok": true}`` when the figure held (``lstmkit report`` then compares the code with that
    commit), no ``"checked"`` when it moved or failed (it must be recorded again)."""
    from lstmkit.files import atomic_write_text

    result = json.loads(path.read_text(encoding="utf-8"))
    if row.get("ok") is True:
        result["checked"] = {"commit": row["commit"], "value": row["now"], "ok": True}
    elif row.get("ok") is False:
        result.pop("checked", None)
    else:
        return
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")


def main(argv: list[str] | None = None) -> int:
    """Command line; exit 1 when a re-run figure moved beyond what it allows."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--results", type=Path, default=ROOT / "results")
    parser.add_argument("--max-minutes", type=float, default=5.0)
    parser.add_argument("--only", default="", help="comma-separated recipe names")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--list", action="store_true", help="print the commands, run nothing")
    parser.add_argument("--keep", type=Path, help="keep each run directory under KEEP/<recipe>")
    parser.add_argument(
        "--stamp", action="store_true", help="write each re-run's outcome into its results file"
    )
    args = parser.parse_args(argv)
    only = {n for n in args.only.split(",") if n}
    moved = 0
    for path in sorted(args.results.glob("*.json")):
        if only and path.stem not in only:
            continue
        row = check(path, args.threads, args.max_minutes, dry=args.list, keep=args.keep)
        moved += row.get("ok") is False
        print(json.dumps(row), flush=True)
        if args.stamp and not args.list:
            stamp(path, row)
    return 1 if moved else 0


if __name__ == "__main__":
    sys.exit(main())
