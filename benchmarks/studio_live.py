"""The studio on a real recipe: how quickly a run starts and its rows reach the browser, and
that a studio run equals the same ``lstmkit train`` command run directly.

Starts ``lstmkit studio`` (uvicorn in this process, 127.0.0.1, a temporary home), queues RECIPE
with the given form values over the API, follows ``/api/runs/<id>/events`` (server-sent events)
with httpx while a second thread watches the run's ``history.jsonl`` grow, then runs the command
the studio ran (``python -m lstmkit train RECIPE --set ... --out DIR --no-progress``) directly
and compares the two runs' histories and test metrics. One JSON object on stdout::

    {"bench": "studio-live", "recipe": "imdb-seed000", "queued_to_running_s": 0.1,
     "first_row_s": 9.8, "row_latency_ms_p50": 310, "row_latency_ms_max": 540,
     "studio_test_accuracy": 0.80, "cli_test_accuracy": 0.80, "same_history": true, ...}

Row latency: from the moment a row's line is in history.jsonl (seen by polling every 5 ms) to
its ``metrics`` event arriving at the client (the studio tails every 0.25 s, the stream polls
the store every 0.3 s).

Usage::

    LSTMKIT_DATA=../shared/data python benchmarks/studio_live.py [--recipe imdb-seed000]
        [--set num_epochs=1 --set evaluate_every=5 ...]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import httpx

ROOT = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipe", default="imdb-seed000")
    parser.add_argument(
        "--set",
        dest="values",
        action="append",
        default=[],
        metavar="FIELD=VALUE",
        help="a form field (default: num_epochs=1 evaluate_every=5)",
    )
    args = parser.parse_args()
    import uvicorn

    from lstmkit.studio import create_studio_app

    values = dict(v.split("=", 1) for v in (args.values or ["num_epochs=1", "evaluate_every=5"]))
    body = {"recipe": args.recipe, **{k: _value(v) for k, v in values.items()}}
    home = Path(tempfile.mkdtemp(prefix="studio-live-"))
    app = create_studio_app(home, env={"OMP_NUM_THREADS": "1"})
    port = _free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.05)
    base = f"http://127.0.0.1:{port}"
    client = httpx.Client(base_url=base, timeout=600)
    options = client.get("/api/options").json()
    recipe = next(r for r in options["recipes"] if r["name"] == args.recipe)
    body.setdefault("dataset", recipe["dataset"])

    t0 = time.monotonic()
    run = client.post("/api/runs", json=body)
    run.raise_for_status()
    run_id = run.json()["id"]
    history = home / "runs" / run_id / "history.jsonl"
    appeared: list[float] = []
    done = threading.Event()

    def watch() -> None:  # when each history line appears on disk
        while not done.is_set():
            if history.exists():
                lines = history.read_bytes().count(b"\n")
                while len(appeared) < lines:
                    appeared.append(time.monotonic())
            time.sleep(0.005)

    watcher = threading.Thread(target=watch, daemon=True)
    watcher.start()
    received: list[float] = []
    running_at = None
    with client.stream("GET", f"/api/runs/{run_id}/events") as stream:
        event = None
        for line in stream.iter_lines():
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data = json.loads(line[5:])
                if event == "metrics":
                    received += [time.monotonic()] * len(data["rows"])
                elif event == "status" and data["status"] == "running" and running_at is None:
                    running_at = time.monotonic()
                elif event == "end":
                    break
    done.set()
    watcher.join()
    final = client.get(f"/api/runs/{run_id}").json()
    server.should_exit = True
    thread.join(timeout=60)
    if final["status"] != "finished":
        raise SystemExit(f"the studio run ended {final['status']}: {final['error']}")
    latencies = [(r - a) * 1000 for a, r in zip(appeared, received, strict=False)]

    # the same command, run directly
    direct = home / "direct"
    argv = [sys.executable, "-m", "lstmkit", "train", args.recipe]
    for item in final["overrides"]:
        argv += ["--set", item]
    t1 = time.monotonic()
    subprocess.run(
        [*argv, "--out", str(direct), "--no-progress"],
        check=True,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
        capture_output=True,
    )
    cli_seconds = time.monotonic() - t1
    cli_metrics = json.loads((direct / "metrics.json").read_text())
    keys = ("step", "split", "loss", "accuracy")
    studio_rows = [tuple(r.get(k) for k in keys) for r in final["rows"]]
    cli_rows = [
        tuple(json.loads(line).get(k) for k in keys)
        for line in (direct / "history.jsonl").read_text().splitlines()
    ]
    print(
        json.dumps(
            {
                "bench": "studio-live",
                "recipe": args.recipe,
                "values": body,
                "overrides": final["overrides"],
                "rows": len(final["rows"]),
                "queued_to_running_s": round((running_at or t0) - t0, 3),
                "first_row_s": round(appeared[0] - t0, 2) if appeared else None,
                "row_latency_ms_p50": round(statistics.median(latencies)) if latencies else None,
                "row_latency_ms_max": round(max(latencies)) if latencies else None,
                "studio_seconds": round(final["finished"] - final["started"], 1),
                "cli_seconds": round(cli_seconds, 1),
                "studio_test_accuracy": final["metrics"]["test"]["accuracy"],
                "cli_test_accuracy": cli_metrics["test"]["accuracy"],
                "first_val": next(r for r in final["rows"] if r["split"] == "val"),
                "same_history": studio_rows == cli_rows,
                "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
            }
        )
    )


if __name__ == "__main__":
    main()
