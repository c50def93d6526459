"""How fast the command line answers: ``lstmkit --help`` and ``lstmkit train --help`` as whole
processes (interpreter start, imports, argparse, exit), against ``python -c pass`` (the floor any
Python command line pays) measured in the same run. Goal: <= 0.5 s each.

    python benchmarks/cli_start.py [--repeat 15] [--out results/bench-cli_start.jsonl]
                                   [--before REV]

``--before REV`` also times the command line of another commit (``git archive REV`` unpacked in
a temporary folder, run with the same interpreter), e.g. the one before the lazy imports.

Prints one JSON object per case (median wall seconds over ``--repeat`` runs, and the min;
ratio = peer / ours, as the other benchmarks: > 1 would be faster than the bare interpreter)
and writes them to ``--out``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CASES = {"help": ["--help"], "train-help": ["train", "--help"]}
GOAL_S = 0.5


def timed(
    argv: list[str], repeat: int, env: dict[str, str] | None = None, cwd: str | None = None
) -> list[float]:
    """Wall seconds of ``repeat`` runs of ``argv`` (after one warm-up run: the files cached)."""
    run = dict(stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, check=True, env=env, cwd=cwd)
    subprocess.run(argv, **run)  # type: ignore[call-overload]
    out = []
    for _ in range(repeat):
        start = time.perf_counter()
        subprocess.run(argv, **run)  # type: ignore[call-overload]
        out.append(time.perf_counter() - start)
    return out


def lstmkit_argv() -> list[str]:
    """The console script next to the interpreter (what a user runs), else ``-m lstmkit``."""
    script = Path(sys.executable).with_name("lstmkit")
    return [str(script)] if script.exists() else [sys.executable, "-m", "lstmkit"]


def old_tree(rev: str, into: Path) -> Path:
    """The package of commit ``rev`` unpacked into ``into`` (git archive)."""
    archive = subprocess.run(
        ["git", "-C", str(ROOT), "archive", "--format=tar", rev, "lstmkit"],
        check=True,
        capture_output=True,
    ).stdout
    tar = into / "tree.tar"
    tar.write_bytes(archive)
    with tarfile.open(tar) as fh:
        fh.extractall(into, filter="data")
    return into


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--repeat", type=int, default=15)
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench-cli_start.jsonl")
    parser.add_argument("--before", metavar="REV", help="also time this commit's command line")
    args = parser.parse_args()
    commit = subprocess.run(
        ["git", "-C", str(ROOT), "rev-parse", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    rows: list[dict[str, object]] = [
        {
            "bench": "cli_start-run",
            "command": "python benchmarks/cli_start.py " + " ".join(sys.argv[1:]),
            "commit": commit,
            # ours is the working tree's code: say whether it differs from the commit
            "tree_changed": bool(
                subprocess.run(
                    ["git", "-C", str(ROOT), "status", "--porcelain", "lstmkit"],
                    capture_output=True,
                    text=True,
                ).stdout.strip()
            ),
            "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            "load_avg_start": [round(x, 2) for x in os.getloadavg()],
            "python": platform.python_version(),
        }
    ]
    peer = timed([sys.executable, "-c", "pass"], args.repeat)
    with tempfile.TemporaryDirectory() as tmp:
        old_env = None
        if args.before:
            old_tree(args.before, Path(tmp))
            # the old package first on the path (python -c puts its working folder first,
            # before the editable install's finder, which points at this checkout)
            old_env = {**os.environ, "PYTHONPATH": tmp}
        for case, extra in CASES.items():
            ours = timed([*lstmkit_argv(), *extra], args.repeat)
            row: dict[str, object] = {
                "bench": "cli_start",
                "case": case,
                "impl": "lazy imports",
                "command": "lstmkit " + " ".join(extra),
                "ours": round(statistics.median(ours), 4),
                "ours_min": round(min(ours), 4),
                "peer": round(statistics.median(peer), 4),
                "peer_name": "python -c pass",
                # as the other benchmarks: > 1 = faster than the peer; the floor of any Python
                # command line, so below 1 by construction (0.3 = 3x the bare interpreter)
                "ratio": round(statistics.median(peer) / statistics.median(ours), 3),
                "unit": "s",
                "goal_s": GOAL_S,
                "repeat": args.repeat,
            }
            if old_env is not None:
                code = (
                    f"import sys; sys.argv = ['lstmkit', *{extra!r}]; "
                    "from lstmkit.cli import main; sys.exit(main())"
                )
                before = timed([sys.executable, "-c", code], args.repeat, env=old_env, cwd=tmp)
                row["before"] = round(statistics.median(before), 4)
                row["before_rev"] = args.before
            rows.append(row)
            print(json.dumps(row), flush=True)
    rows[0]["load_avg_end"] = [round(x, 2) for x in os.getloadavg()]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")


if __name__ == "__main__":
    main()
