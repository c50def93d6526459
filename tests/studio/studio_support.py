"""Shared by the studio tests (a module name of its own: every test folder has a conftest): the
tiny Reuters-layout data set and recipes, a test client of a studio, a finished run written into
the store, waiting for a run's status, reading an SSE stream, a tiny long-format panel."""

from __future__ import annotations

import csv
import io
import json
import math
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient

from lstmkit.studio import create_studio_app
from lstmkit.studio.store import Store

TOPICS = ["grain", "money", "ships"]
WORDS = [f"w{i}" for i in range(60)]
TINY_RECIPE = """\
name = "tiny"
description = "3-topic toy newswires, a few seconds"

[data]
dataset = "reuters"
num_words = 63
maxlen = 30
validation_split = 0.25

[model]
embedding_dim = 8
cell = "lstm"
hidden_size = 8
pooling = "last"

[train]
optimizer = "adam"
lr = 0.01
batch_size = 16
epochs = 2
evaluate_every = 5
seed = 0
"""


def write_tiny_reuters(folder: Path, n: int = 400, seed: int = 0) -> Path:
    """``reuters.npz`` (+ word index, topic names) in Keras' layout: topic k's newswires mostly
    use the words of rank 20k+1 .. 20k+20, so a model can learn the topic."""
    rng = np.random.default_rng(seed)
    folder.mkdir(parents=True, exist_ok=True)
    x = np.empty(n, dtype=object)
    y = rng.integers(0, len(TOPICS), n)
    for i in range(n):
        length = int(rng.integers(8, 30))
        own = rng.integers(1, 21, length) + 20 * int(y[i])
        noise = rng.integers(1, 61, length)
        x[i] = [int(a if rng.random() < 0.7 else b) for a, b in zip(own, noise, strict=True)]
    np.savez(folder / "reuters.npz", x=x, y=y.astype(np.int64))
    index = {w: i + 1 for i, w in enumerate(WORDS)}
    (folder / "reuters_word_index.json").write_text(json.dumps(index))
    (folder / "reuters_topics.json").write_text(json.dumps(TOPICS))
    return folder


SLOW_RECIPE = """\
name = "slow"
description = "the tiny data with a wider loop-implemented LSTM: steps of tens of milliseconds"

[data]
dataset = "reuters"
num_words = 63
maxlen = 30
validation_split = 0.25

[model]
embedding_dim = 16
cell = "lstm"
hidden_size = 96
impl = "loop"
pooling = "last"

[train]
optimizer = "adam"
lr = 0.003
batch_size = 32
epochs = 100
max_steps = 20
evaluate_every = 2
seed = 0
"""


def add_runs(store: Store, n: int) -> list[str]:
    """``n`` queued runs with ids 00000000, 00000001 ..., oldest first."""
    ids = []
    for i in range(n):
        run_id = f"{i:08x}"
        store.add_run(
            run_id, name=f"r{i}", recipe="tiny", dataset="reuters", params={}, overrides=[]
        )
        ids.append(run_id)
        time.sleep(0.002)  # distinct creation times: the queue is first come, first served
    return ids


def make_client(home: Path, recipes: Path, env: dict[str, str], **kwargs: Any) -> TestClient:
    """A test client of a studio on ``home`` (enter it to start the studio: its lifespan)."""
    app = create_studio_app(home, recipes_dir=recipes, env=env, poll_s=0.05, grace_s=20.0, **kwargs)
    return TestClient(app)


def add_finished_run(store: Store, run_id: str, dataset: str = "chars") -> None:
    """A run the store holds as finished that was never queued (so no trainer starts)."""
    with store.connect() as con:
        con.execute(
            "INSERT INTO runs (id, name, recipe, dataset, params, overrides, status, "
            "created) VALUES (?, 'x', 'tiny', ?, '{}', '[]', 'finished', 0)",
            (run_id, dataset),
        )


def wait_for(
    client: TestClient,
    run_id: str,
    statuses: tuple[str, ...],
    timeout: float = 60.0,
    min_rows: int = 0,
) -> dict[str, Any]:
    """Poll GET /api/runs/<id> until its status is one of ``statuses`` (and it has at least
    ``min_rows`` metric rows); fail with the run's log after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    run: dict[str, Any] = {}
    while time.monotonic() < deadline:
        run = client.get(f"/api/runs/{run_id}").json()
        if run["status"] in statuses and len(run["rows"]) >= min_rows:
            return run
        time.sleep(0.05)
    log = client.get(f"/api/runs/{run_id}/log").json()["log"]
    raise AssertionError(
        f"run {run_id} is {run.get('status')} with {len(run.get('rows', []))} rows after "
        f"{timeout} s, expected {statuses}; log:\n{log}"
    )


def read_events(text: str) -> list[tuple[str, Any]]:
    """(event, data) pairs of a text/event-stream body."""
    out = []
    for block in text.replace("\r\n", "\n").split("\n\n"):
        event, data = "message", []
        for line in block.split("\n"):
            if line.startswith("event:"):
                event = line[6:].strip()
            elif line.startswith("data:"):
                data.append(line[5:].lstrip(" "))
        if data:
            out.append((event, json.loads("\n".join(data))))
    return out


def panel_csv(series: int = 4, points: int = 40, seed: int = 0) -> bytes:
    """A long-format panel (``unique_id, ds, y``): ``series`` quarterly series S0, S1, ... of
    ``points`` values each (level, trend, a season of 4 and noise)."""
    rng = random.Random(seed)
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(["unique_id", "ds", "y"])
    for k in range(series):
        for t in range(points):
            season = 2 * math.sin(2 * math.pi * t / 4 + k)
            y = 10 + k + 0.05 * t + season + rng.gauss(0, 0.3)
            writer.writerow([f"S{k}", f"{2000 + t // 4}-{3 * (t % 4) + 1:02d}-01", f"{y:.4f}"])
    return out.getvalue().encode()
