"""A studio killed with ``kill -9`` while a real run trains: the run's trainer dies with it (the
parent-death signal of :mod:`lstmkit.studio.jobs`), writes nothing more, the restarted studio
shows the run ``interrupted``, and resuming it reaches the weights of an uninterrupted run."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file
from studio_support import make_client, wait_for

from lstmkit.runs import has_checkpoint
from lstmkit.studio.jobs import process_alive
from lstmkit.studio.store import DB_NAME, Store

# a studio's job queue alone (no web server: it starts in a fraction of the time), as the app
# runs it: the store in HOME, the supervising thread started
STUDIO = """
import sys, time
from pathlib import Path
from lstmkit.studio.jobs import JobQueue
from lstmkit.studio.store import DB_NAME, Store

home, recipe = Path(sys.argv[1]), Path(sys.argv[2])
JobQueue(Store(home / DB_NAME), home, lambda run: recipe, poll_s=0.05).start()
time.sleep(600)
"""
OVERRIDES = ["train.max_steps=24"]  # the slow recipe, checkpoints every 2 steps


def _max_diff(a: Path, b: Path) -> float:
    ta, tb = load_file(str(a)), load_file(str(b))
    assert ta.keys() == tb.keys()
    return max(float(np.max(np.abs(ta[k] - tb[k]))) for k in ta)


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="a Linux parent-death signal")
def test_a_killed_studio_takes_its_run_along_and_the_run_resumes_exactly(
    tmp_path: Path, recipes_dir: Path, run_env: dict[str, str]
) -> None:
    home = tmp_path / "home"
    (home / "runs").mkdir(parents=True)
    run_id = "0000abcd"
    Store(home / DB_NAME).add_run(
        run_id, name="killed", recipe="slow", dataset="reuters", params={}, overrides=OVERRIDES
    )
    run_dir = home / "runs" / run_id
    env = {**os.environ, **run_env}
    recipe = recipes_dir / "slow.toml"
    ref_argv = [sys.executable, "-m", "lstmkit", "train", str(recipe)]
    for item in OVERRIDES:
        ref_argv += ["--set", item]
    ref_argv += ["--out", str(tmp_path / "reference"), "--no-progress"]
    reference = subprocess.Popen(ref_argv, env=env, stdout=subprocess.DEVNULL)
    script = tmp_path / "studio.py"
    script.write_text(STUDIO)
    studio = subprocess.Popen([sys.executable, str(script), str(home), str(recipe)], env=env)
    try:
        deadline = time.monotonic() + 120
        pid = None
        while pid is None or not has_checkpoint(run_dir):  # training, a checkpoint written
            assert studio.poll() is None and time.monotonic() < deadline
            pid = (Store(home / DB_NAME).get_run(run_id) or {}).get("pid")
            time.sleep(0.02)
        assert process_alive(pid, run_dir)
        studio.kill()
        studio.wait()
        while process_alive(pid, run_dir):  # gone with its studio (a zombie counts as gone)
            assert time.monotonic() < deadline, "the trainer outlived its studio"
            time.sleep(0.02)
    finally:
        if studio.poll() is None:
            studio.kill()
            studio.wait()
    assert not (run_dir / "metrics.json").exists()  # cut off mid-way, not finished
    before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
    assert Store(home / DB_NAME).get_run(run_id)["status"] == "running"  # type: ignore[index]

    with make_client(home, recipes_dir, run_env) as client:  # the studio started again
        run = client.get(f"/api/runs/{run_id}").json()
        assert run["status"] == "interrupted"
        assert run["error"].endswith("resume it from its last checkpoint")
        # nothing wrote the run directory between the kill and the restart
        assert {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")} == before
        assert client.post(f"/api/runs/{run_id}/resume").status_code == 202
        wait_for(client, run_id, ("finished",), timeout=180)
    assert reference.wait(timeout=180) == 0
    diff = _max_diff(tmp_path / "reference" / "model.safetensors", run_dir / "model.safetensors")
    assert diff <= 1e-6
