"""Shared helpers of the studio tests: waiting for a run's status, reading an SSE stream."""

from __future__ import annotations

import json
import time
from typing import Any

from fastapi.testclient import TestClient

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
