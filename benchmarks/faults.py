"""Fault injection: what a real ``lstmkit train`` loses when it is killed or its disk fails.

Every case drives the real CLI as a child process (``.venv/bin/lstmkit train``, one thread,
``OMP_NUM_THREADS=1``) on a generated text-classification CSV (2,000 short reviews whose label is
carried by a few sentiment words; seed fixed), checkpointing every 5 steps
(``train.evaluate_every=5``; a checkpoint is written at every validation), and appends one JSON
line per case to ``--out``::

    {"bench": "faults", "case": "train-kill9", "injected": "SIGKILL at 20 seeded random moments",
     "times": 20, "lost": 0, "detail": "...", "seconds": 312.4, "commit": "...",
     "command": "lstmkit train ..."}

``lost`` must be 0. Cases (``--part``):

- ``training``: an uninterrupted reference run, then the same command killed with SIGKILL at
  ``--kills`` seeded moments: most at a uniform random delay over the reference's wall time, every
  third one at the first ``checkpoints/step-*.tmp`` seen after a random delay (inside a checkpoint
  write). After each kill the run goes on with ``--resume`` (a fresh start while the run has no
  ``checkpoints/`` yet); a run that finishes is compared with the reference (max abs difference of
  ``model.safetensors`` <= 1e-6) and the next kills go to a new run. ``lost`` = kills after which
  resume failed, plus the kills of a finished run whose weights differ.
- ``serve``: ``lstmkit serve`` of the reference run (benchmarks/serve_load.py's ``Server`` and
  raw keep-alive client), ``--clients`` loops for ``--serve-seconds``, first clean, then with 10%
  of the requests hostile (malformed JSON, a ~400 KB body with its Content-Length, a slow body
  sent 10 bytes per 0.1 s), each on its own connection: 0 5xx, 0 valid requests dropped; valid
  p99 beside the clean run's (goal <= 2x). The hostile kinds in turn: malformed JSON, a ~400 KB
  body with its Content-Length, a 16 MB body sent ``Transfer-Encoding: chunked`` until the server
  answers, and the slow body.
- ``ddp``: the training command as a 2-process torch.distributed job (gloo, both ranks started
  by hand as torchrun would, without its agent, which would stop the survivor itself), one rank
  (1, then 0, ...) killed with SIGKILL ``--ddp-kills`` times at a seeded moment after the run's
  first checkpoint: the surviving rank must exit by itself (exit 2, one ``error:`` line, no
  traceback) within the group timeout, both ranks go on with ``--resume``, and the finished run
  equals an uninterrupted 2-process run (<= 1e-6). A kill that lands as the killed rank exits,
  after both passed the job's last barrier (the survivor exits 0, the run complete), is counted
  as a run finished before its kill: compared with the uninterrupted run, the kill drawn again.
- ``studio``: a real ``lstmkit studio`` with the training command queued as an own-data run,
  killed with SIGKILL ``--studio-kills`` times 0-3 s after a checkpoint: the trainer must be gone
  within 5 s (its parent-death signal) and the run directory unchanged 1 s later; the studio
  started again must show the run ``interrupted`` and resume it (``POST /api/runs/ID/resume``);
  the finished run equals the uninterrupted one.
- ``serve-workers``: ``lstmkit serve --workers 2`` under ``--clients`` keep-alive loops, one
  worker killed with SIGKILL ``--worker-kills`` times (the next kill after a new worker
  listens): a request whose connection died with its worker is sent again (counted as retried);
  dropped = 5xx or 3 failed tries, must be 0; every killed worker started again by the server.
- ``storage``: a tmpfs mounted by the benchmark (needs root / CAP_SYS_ADMIN): (1) read-only
  (``mount -o remount,ro``; chmod does not stop root) with a checkpoint in it: ``--resume`` and a
  fresh run must exit 2 with one ``error:`` line and no traceback, the checkpoint unchanged (sha256)
  and, remounted read-write, resumable to the reference's weights; (2) full: training on it while
  a filler file takes the free space after the first checkpoint: exit 2, one error line, no
  traceback, the newest checkpoint verifies, and with the filler removed ``--resume`` reaches the
  reference's weights.

Usage::

    python benchmarks/faults.py [--part training storage serve ddp studio serve-workers]
        [--kills 20] [--ddp-kills 3] [--studio-kills 3] [--worker-kills 3] [--seed 0]
        [--work DIR] [--out results/bench-faults.jsonl]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import hashlib
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load_file

from lstmkit.checkpoint import checkpoint_dirs, verify_checkpoint
from lstmkit.runs import git_commit

ROOT = Path(__file__).resolve().parents[1]
LSTMKIT = str(Path(sys.executable).with_name("lstmkit"))
TOLERANCE = 1e-6
CHUNKED_BYTES = 16 * 1024 * 1024  # a chunked body ~130x the server's body limit
OVERRIDES = [
    "train.epochs=4",
    "train.evaluate_every=5",
    "train.num_threads=1",
    "train.batch_size=32",
    "train.seed=0",
]


def write_texts(path: Path, n: int = 2000, seed: int = 0) -> None:
    """Short 'reviews': 12 filler words with two sentiment words of the label inserted."""
    rng = np.random.default_rng(seed)
    pos = ["good", "great", "fine", "nice", "superb", "lovely"]
    neg = ["bad", "awful", "poor", "nasty", "dull", "weak"]
    filler = ["the", "a", "movie", "film", "plot", "actor", "scene", "it", "was", "and", "of"]
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["text", "label"])
        for _ in range(n):
            label = int(rng.integers(2))
            words = [str(x) for x in rng.choice(filler, 12)]
            for _ in range(2):
                words.insert(int(rng.integers(len(words))), str(rng.choice(pos if label else neg)))
            w.writerow([" ".join(words), "pos" if label else "neg"])


def train_argv(data: Path, out: Path, resume: bool) -> list[str]:
    argv = [LSTMKIT, "train", "--task", "text", "--train", str(data), "--text-column", "text"]
    argv += ["--label-column", "label", "--baseline", "none", "--no-progress", "--out", str(out)]
    for o in OVERRIDES:
        argv += ["--set", o]
    return argv + (["--resume"] if resume else [])


def shown(argv: list[str]) -> str:
    return " ".join(["lstmkit", *argv[1:]]).replace(str(Path(tempfile.gettempdir())), "/tmp")


def env() -> dict[str, str]:
    return {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


def run(argv: list[str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(argv, env=env(), capture_output=True, text=True, check=False)


def max_diff(a: Path, b: Path) -> float:
    """Max abs difference over every tensor of two safetensors files (inf: keys differ)."""
    ta, tb = load_file(str(a)), load_file(str(b))
    if ta.keys() != tb.keys():
        return float("inf")
    return max(
        (
            float(np.max(np.abs(ta[k].astype(np.float64) - tb[k].astype(np.float64)), initial=0.0))
            for k in ta
        ),
        default=0.0,
    )


def tmp_dirs(run_dir: Path) -> list[Path]:
    root = run_dir / "checkpoints"
    return sorted(root.glob("step-*.tmp")) if root.exists() else []


def tmp_ids(run_dir: Path) -> set[tuple[str, int, int]]:
    """The ``*.tmp`` checkpoint directories as (name, inode, mtime): a write that starts anew
    (``save_checkpoint`` removes a leftover ``.tmp`` and makes it again) is a new id."""
    out = set()
    for p in tmp_dirs(run_dir):
        try:
            st = p.stat()
        except FileNotFoundError:
            continue
        out.add((p.name, st.st_ino, st.st_mtime_ns))
    return out


def has_checkpoint(run_dir: Path) -> bool:
    return (run_dir / "checkpoints").exists() and bool(checkpoint_dirs(run_dir))


def error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if ": error: " in line]


# -- training: kill -9 at random moments ------------------------------------------------------
def segment(argv: list[str], run_dir: Path, mode: str, delay: float) -> dict[str, Any]:
    """Run ``argv``; SIGKILL it ``delay`` seconds in (``mode="time"``) or at the first
    ``step-*.tmp`` seen after ``delay`` (``mode="tmp"``). Returns what happened."""
    before = tmp_ids(run_dir)  # leftovers of the last kill: not a write of this process
    start = time.perf_counter()
    proc = subprocess.Popen(
        argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
    )
    killed, inside = False, False
    while proc.poll() is None:
        t = time.perf_counter() - start
        if t >= delay and (mode == "time" or tmp_ids(run_dir) - before):
            proc.send_signal(signal.SIGKILL)
            killed = True
            break
        time.sleep(0.002)
    _, err = proc.communicate()
    if killed:
        inside = bool(tmp_ids(run_dir) - before)  # this process's checkpoint write was cut
    return {
        "killed": killed,
        "rc": proc.returncode,
        "at": round(time.perf_counter() - start, 2),
        "inside_write": inside,
        "stderr": err,
    }


def training_case(work: Path, data: Path, kills: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    ref = work / "reference"
    shutil.rmtree(ref, ignore_errors=True)
    start = time.perf_counter()
    done = run(train_argv(data, ref, resume=False))
    ref_seconds = time.perf_counter() - start
    if done.returncode != 0:
        raise SystemExit(f"reference run failed:\n{done.stderr}")
    again = work / "reference-again"  # is an uninterrupted run itself reproducible?
    shutil.rmtree(again, ignore_errors=True)
    if run(train_argv(data, again, resume=False)).returncode != 0:
        raise SystemExit("second reference run failed")
    rerun_diff = max_diff(ref / "model.safetensors", again / "model.safetensors")
    print(f"two uninterrupted runs: max abs diff {rerun_diff:g}", file=sys.stderr, flush=True)
    rng = np.random.default_rng(seed)

    def moment(i: int) -> tuple[str, float]:
        # a "tmp" kill waits for a checkpoint write after its delay: the delay stays well
        # before the last one (the run's final 30% may hold no write after it)
        if i % 3 == 2:
            return "tmp", float(rng.uniform(0.3, 0.7 * ref_seconds))
        return "time", float(rng.uniform(0.3, ref_seconds))

    plan = [moment(i) for i in range(kills)]
    redrawn = 0
    runs: list[dict[str, Any]] = []
    lost, inside, failed_resumes, fresh_restarts = 0, 0, [], 0
    k = 0
    while k < len(plan) or (runs and not runs[-1].get("finished")):
        if not runs or runs[-1].get("finished"):
            run_dir = work / f"killed-{len(runs)}"
            shutil.rmtree(run_dir, ignore_errors=True)
            runs.append({"dir": run_dir, "kills": 0, "finished": False})
        cur = runs[-1]
        run_dir = cur["dir"]
        resume = (run_dir / "checkpoints").exists()
        if not resume and cur["kills"]:
            fresh_restarts += 1
        mode, delay = plan[k] if k < len(plan) else ("none", float("inf"))
        seg = segment(train_argv(data, run_dir, resume), run_dir, mode, delay)
        if seg["killed"]:
            k += 1
            cur["kills"] += 1
            inside += seg["inside_write"]
            print(
                f"kill {k}: {mode} at {seg['at']} s, inside a checkpoint write: "
                f"{seg['inside_write']} ({run_dir.name})",
                file=sys.stderr,
                flush=True,
            )
            continue
        if k < len(plan):  # the run ended before this kill's moment: draw it again
            plan[k] = moment(k)
            redrawn += 1
        if seg["rc"] != 0:  # resume (or the fresh start) failed after our last kill
            lost += 1
            failed_resumes.append(seg["stderr"].strip().splitlines()[-1:] or [f"rc {seg['rc']}"])
            print(f"failed: rc {seg['rc']}: {seg['stderr'][-400:]}", file=sys.stderr, flush=True)
            cur["finished"], cur["diff"] = True, None
            continue
        cur["finished"] = True
        cur["diff"] = max_diff(ref / "model.safetensors", run_dir / "model.safetensors")
        if cur["diff"] > TOLERANCE:
            lost += cur["kills"]
        print(
            f"{run_dir.name} finished after {cur['kills']} kills: max abs diff {cur['diff']}",
            file=sys.stderr,
            flush=True,
        )
    diffs = [r["diff"] for r in runs if r.get("diff") is not None]
    clean = [r["diff"] for r in runs if r.get("diff") is not None and r["kills"] == 0]
    clean_note = (
        f", {len(clean)} runs never killed (their kill moment fell after their end) differ by "
        f"up to {max(clean):g}"
        if clean
        else ""
    )
    worst = max(diffs) if diffs else float("nan")
    detail = (
        f"{len(runs)} runs resumed to the end, {inside} kills inside a checkpoint write, "
        f"{fresh_restarts} before the first checkpoint (fresh start), {redrawn} moments "
        f"redrawn (after the run had finished); final model.safetensors vs "
        f"an uninterrupted run ({ref_seconds:.0f} s): max abs diff {worst:g} (<= {TOLERANCE:g}; "
        f"a second uninterrupted run differs by {rerun_diff:g}{clean_note}); train.num_threads=1"
    )
    if failed_resumes:
        detail += f"; failed: {failed_resumes}"
    return {
        "case": "train-kill9",
        "injected": f"SIGKILL at {kills} seeded random moments (seed {seed}), "
        f"every third at a checkpoint write",
        "times": kills,
        "lost": lost,
        "max_abs_diff": worst,
        "rerun_max_abs_diff": rerun_diff,
        "kills_inside_write": inside,
        "detail": detail,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": shown(train_argv(data, Path("RUN"), resume=False)) + " [--resume]",
    }


# -- storage: read-only and full filesystems ---------------------------------------------------
def mount_tmpfs(path: Path, size: str) -> str | None:
    """Mount a tmpfs at ``path``; None, or why it cannot be."""
    path.mkdir(parents=True, exist_ok=True)
    r = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)],
        capture_output=True,
        text=True,
        check=False,
    )
    return None if r.returncode == 0 else (r.stderr.strip() or f"mount exit {r.returncode}")


def umount(path: Path) -> None:
    subprocess.run(["umount", str(path)], capture_output=True, check=False)


def remount(path: Path, mode: str) -> None:
    subprocess.run(["mount", "-o", f"remount,{mode}", str(path)], check=True)


def sha_tree(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


def partial_run(data: Path, run_dir: Path) -> None:
    """Train until the run has a finished checkpoint, then SIGKILL it."""
    proc = subprocess.Popen(
        train_argv(data, run_dir, resume=False),
        env=env(),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    while proc.poll() is None and not has_checkpoint(run_dir):
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait()


def check_error(p: subprocess.CompletedProcess[str]) -> tuple[bool, str]:
    """Exit 2, exactly one ``error:`` line, no traceback: (ok, the line or what went wrong)."""
    lines = error_lines(p.stderr)
    ok = p.returncode == 2 and len(lines) == 1 and "Traceback" not in p.stderr
    if ok:
        return True, lines[0]
    frames = [
        ln.strip().replace(str(ROOT) + "/", "")
        for ln in p.stderr.splitlines()
        if ln.strip().startswith("File ") and "/lstmkit/" in ln and "site-packages" not in ln
    ]
    last = (p.stderr.strip().splitlines() or [""])[-1]
    where = f" raised in {frames[-1]}" if frames else ""
    return False, f"rc {p.returncode}, a traceback ({len(lines)} error lines){where}: {last}"


def resume_matches(data: Path, run_dir: Path, ref: Path) -> tuple[bool, str]:
    p = run(train_argv(data, run_dir, resume=True))
    if p.returncode != 0:
        return False, f"resume failed rc {p.returncode}: {p.stderr.strip()[-200:]!r}"
    d = max_diff(ref / "model.safetensors", run_dir / "model.safetensors")
    return d <= TOLERANCE, f"resumed to the end: max abs diff {d:g} vs the uninterrupted run"


def readonly_case(work: Path, data: Path, ref: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    mnt = work / "ro-mnt"
    why = mount_tmpfs(mnt, "256M")
    row: dict[str, Any] = {
        "case": "storage-readonly",
        "injected": "run directory on a read-only filesystem (tmpfs remounted ro): --resume "
        "of a run with a checkpoint, and a fresh run",
        "times": 2,
    }
    if why:
        return {**row, "times": 0, "lost": None, "detail": f"not run: cannot mount a tmpfs ({why})"}
    try:
        run_dir = mnt / "run"
        partial_run(data, run_dir)
        before = sha_tree(run_dir / "checkpoints")
        remount(mnt, "ro")
        lost, notes = 0, []
        ok, line = check_error(run(train_argv(data, run_dir, resume=True)))
        lost += not ok
        notes.append(f"--resume: {line}")
        ok, line = check_error(run(train_argv(data, mnt / "fresh", resume=False)))
        lost += not ok
        notes.append(f"fresh run: {line}")
        remount(mnt, "rw")
        intact = sha_tree(run_dir / "checkpoints") == before
        ok, note = resume_matches(data, run_dir, ref)
        if not (intact and ok):
            lost += 1
        notes.append(f"checkpoints unchanged (sha256): {intact}; remounted rw, {note}")
        return {
            **row,
            "lost": lost,
            "detail": "; ".join(notes),
            "seconds": round(time.perf_counter() - t0, 1),
            "command": shown(train_argv(data, Path("RO/run"), resume=True)),
        }
    finally:
        umount(mnt)


def full_case(work: Path, data: Path, ref: Path) -> dict[str, Any]:
    t0 = time.perf_counter()
    mnt = work / "full-mnt"
    why = mount_tmpfs(mnt, "256M")
    row: dict[str, Any] = {
        "case": "storage-full",
        "injected": "filesystem filled (tmpfs 256 MB, a filler file takes the free space) "
        "after the first checkpoint, while training",
        "times": 1,
    }
    if why:
        return {**row, "times": 0, "lost": None, "detail": f"not run: cannot mount a tmpfs ({why})"}
    try:
        run_dir = mnt / "run"
        argv = train_argv(data, run_dir, resume=False)
        proc = subprocess.Popen(
            argv, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        )
        while proc.poll() is None and not has_checkpoint(run_dir):
            time.sleep(0.01)
        filler = mnt / "filler"
        fd = os.open(filler, os.O_WRONLY | os.O_CREAT, 0o644)
        try:  # take every free byte (1 MB writes, then 4 KB ones)
            for size in (1 << 20, 4096):
                block = b"\0" * size
                try:
                    while os.write(fd, block):
                        pass
                except OSError:
                    pass
        finally:
            os.close(fd)
        _, err = proc.communicate()
        p = subprocess.CompletedProcess(argv, proc.returncode, "", err)
        lost, notes = 0, []
        ok, line = check_error(p)
        lost += not ok
        notes.append(f"training: {line}")
        ckpts = checkpoint_dirs(run_dir)
        faults = [verify_checkpoint(c) for c in ckpts]
        good = bool(ckpts) and faults[0] is None
        leftovers = [t.name for t in tmp_dirs(run_dir)]
        notes.append(
            f"newest checkpoint {ckpts[0].name if ckpts else None} verifies: {good}; "
            f"*.tmp left: {len(leftovers)}"
        )
        filler.unlink()
        ok2, note = resume_matches(data, run_dir, ref)
        if not (good and ok2):
            lost += 1
        notes.append(f"filler removed, {note}")
        return {
            **row,
            "lost": lost,
            "detail": "; ".join(notes),
            "seconds": round(time.perf_counter() - t0, 1),
            "command": shown(train_argv(data, Path("FULL/run"), resume=False)),
        }
    finally:
        umount(mnt)


# -- serve under faults ---------------------------------------------------------------------------
async def hostile(port: int, kind: str) -> int | None:
    """One hostile request on its own connection: its status, or None when the server closed the
    connection without an answer (a refused slow or oversized body may end so)."""
    host = "127.0.0.1"
    reader, writer = await asyncio.open_connection(host, port)
    head = f"POST /v1/predict HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
    try:
        if kind == "malformed":
            body = b'{"texts": ["unclosed'
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode() + body)
        elif kind == "oversized":
            body = json.dumps({"texts": ["x" * 400_000]}).encode()  # ~3x the body limit
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
            for i in range(0, len(body), 65536):
                writer.write(body[i : i + 65536])
                await writer.drain()
        elif kind == "chunked":  # far over the limit, no Content-Length: sent until answered
            writer.write(f"{head}Transfer-Encoding: chunked\r\n\r\n".encode())
            answer = asyncio.ensure_future(reader.readuntil(b"\r\n"))
            piece = b"x" * 65536
            try:
                for _ in range(CHUNKED_BYTES // len(piece)):
                    if answer.done():
                        break
                    writer.write(b"%x\r\n%s\r\n" % (len(piece), piece))
                    await writer.drain()
                else:
                    writer.write(b"0\r\n\r\n")
                    await writer.drain()
            except OSError:  # the server answered and closed while we were still sending
                pass
            try:
                line = await asyncio.wait_for(answer, timeout=30)
            finally:
                answer.cancel()
            return int(line.split()[1])
        else:  # slow: a valid body, 10 bytes every 0.1 s for ~1 s (a bounded slowloris)
            body = json.dumps({"texts": ["the film was good"]}).encode()
            writer.write(f"{head}Content-Length: {len(body)}\r\n\r\n".encode())
            for i in range(0, len(body), 10):
                writer.write(body[i : i + 10])
                await writer.drain()
                await asyncio.sleep(0.1)
        await writer.drain()
        line = await asyncio.wait_for(reader.readuntil(b"\r\n"), timeout=30)
        return int(line.split()[1])
    except (TimeoutError, OSError, asyncio.IncompleteReadError, IndexError, ValueError):
        return None
    finally:
        writer.close()


async def drive_mixed(
    port: int, texts: list[str], clients: int, seconds: float, fault: float, seed: int
) -> dict[str, Any]:
    """``clients`` loops for ``seconds``; each request is hostile with probability ``fault``
    (malformed, oversized, chunked, slow in turn), else a valid one on the client's keep-alive
    connection."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_load import RawConnection

    rng = np.random.default_rng(seed)
    valid: list[float] = []
    dropped: list[str] = []
    faults: dict[str, dict[str, int]] = {}
    kinds = ["malformed", "oversized", "chunked", "slow"]
    stop = time.perf_counter() + seconds

    async def loop(c: int) -> None:
        conn = RawConnection(port, "/v1/predict")
        i, n = c, 0
        try:
            while time.perf_counter() < stop:
                if rng.random() < fault:
                    kind = kinds[(c + n) % len(kinds)]
                    n += 1
                    code = await hostile(port, kind)
                    key = "no answer" if code is None else str(code)
                    faults.setdefault(kind, {}).setdefault(key, 0)
                    faults[kind][key] += 1
                    continue
                body = json.dumps({"texts": [texts[i % len(texts)]]}).encode()
                i += 7919
                t = time.perf_counter()
                try:
                    code, answer = await conn.post(body)
                except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                    dropped.append(repr(err))
                    continue
                if code == 200:
                    valid.append(time.perf_counter() - t)
                else:
                    dropped.append(f"{code}: {answer[:200]!r}")
        finally:
            await conn.close()

    await asyncio.gather(*(loop(c) for c in range(clients)))
    return {"valid": valid, "dropped": dropped, "faults": faults}


def serve_case(work: Path, data: Path, ref: Path, seconds: float, clients: int) -> dict[str, Any]:
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_load import Server, free_port, percentile

    t0 = time.perf_counter()
    with open(data, encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    out: dict[str, Any] = {}
    port = free_port()
    with Server(ref, port, work / "serve.log", ["--no-access-log"]) as server:
        server.wait_ready()
        for name, fault in (("clean", 0.0), ("faults", 0.1)):
            out[name] = asyncio.run(drive_mixed(port, texts, clients, seconds, fault, 0))
        alive = server.proc is not None and server.proc.poll() is None
    p99 = {k: 1000 * percentile(v["valid"], 99) for k, v in out.items() if v["valid"]}
    hostile_codes = out["faults"]["faults"]
    five = sum(
        n
        for kinds in (*hostile_codes.values(),)
        for code, n in kinds.items()
        if code.startswith("5")
    )
    dropped = len(out["faults"]["dropped"]) + len(out["clean"]["dropped"])
    sent = sum(sum(k.values()) for k in hostile_codes.values())
    ratio = p99["faults"] / p99["clean"] if len(p99) == 2 else float("nan")
    detail = (
        f"{clients} clients x {seconds:.0f} s: {len(out['faults']['valid'])} valid answered "
        f"beside {sent} hostile ({hostile_codes}); 5xx: {five}; valid dropped: {dropped}; "
        f"valid p99 {p99.get('faults', float('nan')):.1f} ms vs clean {p99.get('clean', float('nan')):.1f} ms "
        f"({ratio:.2f}x, goal <= 2x); server alive after: {alive}"
    )
    if out["faults"]["dropped"]:
        detail += f"; first dropped: {out['faults']['dropped'][0]}"
    return {
        "case": "serve-hostile",
        "injected": "10% of requests malformed JSON / oversized body (~400 KB, Content-Length) / "
        f"oversized chunked body (Transfer-Encoding: chunked, up to {CHUNKED_BYTES >> 20} MB, "
        "sent until answered) / slow body (10 bytes per 0.1 s), mixed into valid /v1/predict "
        "traffic",
        "times": sent,
        "lost": five + dropped + (not alive),
        "p99_valid_ms": round(p99.get("faults", float("nan")), 1),
        "p99_clean_ms": round(p99.get("clean", float("nan")), 1),
        "p99_ratio": round(ratio, 2),
        "detail": detail,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "lstmkit serve RUN --no-access-log (benchmarks/serve_load.py's Server, "
        "RawConnection)",
    }


# -- distributed: one rank of a 2-process job killed ----------------------------------------------
def free_tcp_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rank_env(rank: int, world: int, port: int) -> dict[str, str]:
    """What torchrun would set for ``rank`` (the group on 127.0.0.1:``port``); the group's
    timeout short enough that a survivor that waits for a dead peer shows here."""
    return {
        **env(),
        "MASTER_ADDR": "127.0.0.1",
        "MASTER_PORT": str(port),
        "RANK": str(rank),
        "WORLD_SIZE": str(world),
        "LOCAL_RANK": str(rank),
        "LSTMKIT_DIST_TIMEOUT_S": str(DDP_TIMEOUT_S),
    }


DDP_TIMEOUT_S = 60.0
# the text task's default time budget (train.max_minutes = 8) puts wall time into the linear
# schedule (progress = max(step share, time share)): on a loaded machine a slow stretch of early
# steps changes the rate, measured 7.1e-6 apart from the uninterrupted job. Lifted here so the
# comparison measures the resume, not the machine's load.
DDP_BUDGET = "train.max_minutes=100000"


def ddp_job(
    data: Path, run_dir: Path, resume: bool, kill: tuple[int, float] | None = None
) -> dict[str, Any]:
    """Both ranks of a 2-process job (no torchrun: its agent would stop the survivor itself,
    hiding whether the survivor stops on its own). ``kill = (rank, delay)``: SIGKILL that rank
    ``delay`` s after the run's first checkpoint is there (at once on a resumed run: it has one)."""
    port = free_tcp_port()
    argv = train_argv(data, run_dir, resume) + ["--set", DDP_BUDGET]
    procs = [
        subprocess.Popen(
            argv,
            env=rank_env(r, 2, port),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in range(2)
    ]
    errs: list[str] = ["", ""]

    def drain(r: int) -> None:
        assert procs[r].stderr is not None
        errs[r] = procs[r].stderr.read()

    import threading

    readers = [threading.Thread(target=drain, args=(r,), daemon=True) for r in range(2)]
    for t in readers:
        t.start()
    out: dict[str, Any] = {"killed": None}
    if kill is not None:
        rank, delay = kill
        while all(p.poll() is None for p in procs) and not has_checkpoint(run_dir):
            time.sleep(0.01)
        at = time.perf_counter() + delay
        while all(p.poll() is None for p in procs) and time.perf_counter() < at:
            time.sleep(0.005)
        if all(p.poll() is None for p in procs):
            procs[rank].send_signal(signal.SIGKILL)
            out["killed"] = rank
            t_kill = time.perf_counter()
            other = procs[1 - rank]
            try:
                other.wait(timeout=DDP_TIMEOUT_S + 60)
                out["survivor_s"] = round(time.perf_counter() - t_kill, 2)
            except subprocess.TimeoutExpired:
                out["survivor_s"] = None  # hung: stopped here, counted as lost
                other.kill()
    for p in procs:
        p.wait()
    for t in readers:
        t.join(10)
    out["rc"] = [p.returncode for p in procs]
    out["stderr"] = errs
    return out


def ddp_case(work: Path, data: Path, kills: int, seed: int) -> dict[str, Any]:
    t0 = time.perf_counter()
    ref = work / "ddp-reference"
    shutil.rmtree(ref, ignore_errors=True)
    start = time.perf_counter()
    done = ddp_job(data, ref, resume=False)
    ref_seconds = time.perf_counter() - start
    if done["rc"] != [0, 0]:
        raise SystemExit(f"uninterrupted 2-process run failed: {done['rc']}\n{done['stderr']}")
    rng = np.random.default_rng(seed)
    run_dir = work / "ddp-killed"
    shutil.rmtree(run_dir, ignore_errors=True)
    lost, notes, lines, waits, redrawn, late = 0, [], set(), [], 0, 0
    said: list[str] = []  # each survivor's error line, after how long
    k, segments, kills_of_run = 0, 0, 0
    diffs: list[float] = []
    while True:
        resume = has_checkpoint(run_dir)
        kill = (1 - k % 2, float(rng.uniform(0.0, 0.5 * ref_seconds))) if k < kills else None
        seg = ddp_job(data, run_dir, resume, kill)
        segments += 1
        if seg["killed"] is None:
            if seg["rc"] != [0, 0]:
                lost += 1
                notes.append(
                    f"segment {segments} failed: rc {seg['rc']}: {seg['stderr'][0][-300:]!r}"
                )
                break
            diffs.append(max_diff(ref / "model.safetensors", run_dir / "model.safetensors"))
            if diffs[-1] > TOLERANCE:
                lost += kills_of_run
            if k >= kills:
                break
            redrawn += 1  # finished before its kill: the next kills go to a new run
            shutil.rmtree(run_dir, ignore_errors=True)
            kills_of_run = 0
            continue
        dead = seg["killed"]
        if seg["rc"][1 - dead] == 0:
            # the survivor passed the job's last barrier: the killed rank had reached it too
            # (rank 0 after writing the finished run), so the kill came as it exited and the
            # job was complete: its weights are compared, the kill drawn again on a new run
            late += 1
            diffs.append(max_diff(ref / "model.safetensors", run_dir / "model.safetensors"))
            if diffs[-1] > TOLERANCE:
                lost += kills_of_run + 1
                notes.append(f"a job complete at its kill differs by {diffs[-1]:g}")
            print(
                f"ddp kill of rank {dead} as it exited: the job was complete (survivor rc 0), "
                f"max abs diff {diffs[-1]:g}; drawn again on a new run",
                file=sys.stderr,
                flush=True,
            )
            redrawn += 1
            shutil.rmtree(run_dir, ignore_errors=True)
            kills_of_run = 0
            continue
        kills_of_run += 1
        k += 1
        survivor_err = seg["stderr"][1 - dead]
        errs = error_lines(survivor_err)
        clear = (
            seg["survivor_s"] is not None
            and seg["rc"][1 - dead] == 2
            and len(errs) == 1
            and "Traceback" not in survivor_err
        )
        if seg["survivor_s"] is not None:
            waits.append(seg["survivor_s"])
        if not clear:
            lost += 1
            notes.append(
                f"kill {k} (rank {dead}): survivor rc {seg['rc'][1 - dead]} after "
                f"{seg['survivor_s']} s, {len(errs)} error lines, traceback "
                f"{'Traceback' in survivor_err}: {survivor_err.strip()[-300:]!r}"
            )
        else:
            lines.add(errs[0].split(": error: ", 1)[1].split(" (")[0])
            said.append(f"{seg['survivor_s']} s: {errs[0].split(': error: ', 1)[1]}")
        print(
            f"ddp kill {k}: rank {dead}, survivor rc {seg['rc'][1 - dead]} after "
            f"{seg['survivor_s']} s ({run_dir.name})",
            file=sys.stderr,
            flush=True,
        )
    diff = max(diffs, default=float("inf"))
    detail = (
        f"{kills} kills (rank 1, rank 0 in turn, a random moment after the run's first "
        f"checkpoint), {segments} 2-process jobs (gloo, CPU, no torchrun), {redrawn} runs "
        f"finished before their kill ({late} of them killed as they exited: the other rank had "
        "passed the job's last barrier and exited 0, the run complete; compared and the kill "
        "drawn again); the surviving rank stopped by itself after "
        f"{min(waits, default=float('nan')):.1f}-{max(waits, default=float('nan')):.1f} s "
        f"(group timeout {DDP_TIMEOUT_S:.0f} s), exit 2 with one line "
        f"({'; '.join(sorted(lines))}); final model.safetensors vs an uninterrupted 2-process "
        f"run ({ref_seconds:.0f} s): max abs diff {diff:g} (<= {TOLERANCE:g}; {DDP_BUDGET}: the "
        "default 8-minute budget lets wall time into the learning rate)"
    )
    if notes:
        detail += "; " + "; ".join(notes)
    return {
        "case": "ddp-rank-kill9",
        "injected": f"SIGKILL of one rank of a 2-process torch.distributed run, {kills} times "
        f"(seed {seed})",
        "times": kills,
        "lost": lost,
        "max_abs_diff": diff,
        "survivor_seconds": waits,
        "killed_as_they_exited": late,
        "survivor_lines": said,
        "detail": detail,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "RANK=r WORLD_SIZE=2 MASTER_ADDR=127.0.0.1 MASTER_PORT=P "
        f"LSTMKIT_DIST_TIMEOUT_S={DDP_TIMEOUT_S:.0f} "
        + shown(train_argv(data, Path("RUN"), resume=False))
        + f" --set {DDP_BUDGET} [--resume], r = 0, 1",
    }


# -- studio: kill -9 the studio while its run trains ------------------------------------------
def studio_case(work: Path, data: Path, ref: Path, kills: int, seed: int) -> dict[str, Any]:
    """A real ``lstmkit studio`` with an own-data run of the training case's command, killed with
    SIGKILL ``kills`` times at seeded moments after the run's first checkpoint; each time: the
    trainer must be gone within 5 s and the run directory unchanged 1 s later, the studio started
    again must show the run ``interrupted``, and its resume route must take it on; the finished
    run is compared with the uninterrupted reference."""
    import httpx

    from lstmkit.studio.jobs import process_alive
    from lstmkit.studio.store import DB_NAME, Store

    t0 = time.perf_counter()
    home = work / "studio-home"
    shutil.rmtree(home, ignore_errors=True)
    (home / "runs").mkdir(parents=True)
    run_id = "0000fa17"
    task_args = train_argv(data, Path("X"), resume=False)[2:]
    task_args = task_args[
        : task_args.index("--no-progress")
    ]  # the queue adds --out / --no-progress
    Store(home / DB_NAME).add_run(
        run_id,
        name="faults",
        recipe="text",
        dataset="texts.csv",
        params={},
        overrides=list(OVERRIDES),
        task_args=task_args,
    )
    run_dir = home / "runs" / run_id
    rng = np.random.default_rng(seed)
    port = free_tcp_port()
    base = f"http://127.0.0.1:{port}"
    argv = [LSTMKIT, "studio", "--home", str(home), "--port", str(port)]
    lost, notes, gone_in, statuses = 0, [], [], []

    def start_studio() -> subprocess.Popen[bytes]:
        log = open(work / "studio.log", "ab")  # noqa: SIM115 (the child holds it)
        proc = subprocess.Popen(argv, env=env(), stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 120
        while True:
            if proc.poll() is not None:
                raise SystemExit(f"the studio exited: {(work / 'studio.log').read_text()[-2000:]}")
            try:
                if httpx.get(base + "/health", timeout=1).status_code == 200:
                    return proc
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit("the studio did not start")
            time.sleep(0.1)

    studio = start_studio()
    try:
        for k in range(kills):
            deadline = time.monotonic() + 300
            pid = None
            while True:  # the run trains and has a checkpoint of this session
                run = Store(home / DB_NAME).get_run(run_id) or {}
                pid = run.get("pid")
                if run.get("status") == "running" and pid and has_checkpoint(run_dir):
                    break
                if run.get("status") == "finished" or time.monotonic() > deadline:
                    raise SystemExit(f"the run ended before kill {k + 1}: {run.get('status')}")
                time.sleep(0.01)
            time.sleep(float(rng.uniform(0.0, 3.0)))
            if not process_alive(pid, run_dir):
                notes.append(f"kill {k + 1}: the run finished first")
                break
            studio.kill()
            studio.wait()
            t_kill = time.perf_counter()
            while process_alive(pid, run_dir) and time.perf_counter() - t_kill < 5:
                time.sleep(0.005)
            alive = process_alive(pid, run_dir)
            gone_in.append(round(time.perf_counter() - t_kill, 3))
            before = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
            time.sleep(1.0)
            after = {p: p.stat().st_mtime_ns for p in run_dir.rglob("*")}
            if alive:
                os.kill(pid, signal.SIGKILL)
            studio = start_studio()
            shown_run = httpx.get(f"{base}/api/runs/{run_id}", timeout=10).json()
            statuses.append(shown_run["status"])
            resumed = httpx.post(f"{base}/api/runs/{run_id}/resume", timeout=10).status_code
            ok = not alive and before == after and shown_run["status"] == "interrupted"
            ok = ok and resumed == 202
            if not ok:
                lost += 1
                notes.append(
                    f"kill {k + 1}: trainer alive 5 s later {alive}, run dir written after "
                    f"{before != after}, shown {shown_run['status']}, resume {resumed}"
                )
            print(f"studio kill {k + 1}: trainer gone in {gone_in[-1]} s", file=sys.stderr)
        deadline = time.monotonic() + 600
        while (Store(home / DB_NAME).get_run(run_id) or {}).get("status") != "finished":
            if time.monotonic() > deadline:
                raise SystemExit("the resumed run did not finish")
            time.sleep(0.2)
    finally:
        if studio.poll() is None:
            studio.send_signal(signal.SIGINT)
            try:
                studio.wait(timeout=30)
            except subprocess.TimeoutExpired:
                studio.kill()
                studio.wait()
    diff = max_diff(ref / "model.safetensors", run_dir / "model.safetensors")
    if diff > TOLERANCE:
        lost += kills
    detail = (
        f"lstmkit studio killed {kills} times while its run trained (a seeded 0-3 s after the "
        f"run's checkpoint): the trainer was gone {min(gone_in):.3f}-{max(gone_in):.3f} s after "
        f"the kill (parent-death signal), the run directory unchanged 1 s later, the restarted "
        f"studio showed {sorted(set(statuses))}, resumed through POST /api/runs/ID/resume; "
        f"final model.safetensors vs the uninterrupted run: max abs diff {diff:g} "
        f"(<= {TOLERANCE:g})"
    )
    if notes:
        detail += "; " + "; ".join(notes)
    return {
        "case": "studio-kill9",
        "injected": f"SIGKILL of the studio while its run trains, {kills} times (seed {seed})",
        "times": kills,
        "lost": lost,
        "max_abs_diff": diff,
        "trainer_gone_s": gone_in,
        "detail": detail,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "lstmkit studio --home HOME (a queued own-data run: "
        + shown(train_argv(data, Path("HOME/runs/ID"), resume=False))
        + ")",
    }


# -- serve --workers 2: one worker killed ------------------------------------------------------------
def worker_pids(server: int) -> list[int]:
    """The worker processes (multiprocessing 'spawn' children) of ``server`` (Linux /proc)."""
    out = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                stat = (entry / "stat").read_text()
                cmdline = (entry / "cmdline").read_bytes()
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) == server and b"spawn_main" in cmdline:
                out.append(int(entry.name))
    return sorted(out)


def listening(pid: int, port: int) -> bool:
    """Whether process ``pid`` holds a socket listening on ``port`` (Linux /proc/net/tcp)."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        with contextlib.suppress(OSError):
            link = os.readlink(fd)
            if link.startswith("socket:["):
                inodes.add(link[8:-1])
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        parts = line.split()
        if parts[3] == "0A" and int(parts[1].split(":")[1], 16) == port and parts[9] in inodes:
            return True
    return False


async def drive_retrying(
    port: int, texts: list[str], clients: int, stop: asyncio.Event
) -> dict[str, Any]:
    """``clients`` keep-alive loops until ``stop``; a request whose connection fails is sent again
    on a new connection (up to 3 tries; counted), a 5xx or a request that fails 3 times is
    dropped."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_load import RawConnection

    valid: list[float] = []
    dropped: list[str] = []
    retried = [0]

    async def loop(c: int) -> None:
        conn = RawConnection(port, "/v1/predict")
        i = c
        try:
            while not stop.is_set():
                body = json.dumps({"texts": [texts[i % len(texts)]]}).encode()
                i += 7919
                t = time.perf_counter()
                for attempt in range(3):
                    try:
                        code, answer = await conn.post(body)
                    except (OSError, asyncio.IncompleteReadError, ValueError) as err:
                        retried[0] += 1
                        await conn.close()
                        if attempt == 2:
                            dropped.append(repr(err))
                        continue
                    if code == 200:
                        valid.append(time.perf_counter() - t)
                    else:
                        dropped.append(f"{code}: {answer[:200]!r}")
                    break
        finally:
            await conn.close()

    await asyncio.gather(*(loop(c) for c in range(clients)))
    return {"valid": valid, "dropped": dropped, "retried": retried[0]}


def serve_workers_case(
    work: Path, data: Path, ref: Path, kills: int, clients: int, seed: int
) -> dict[str, Any]:
    """``lstmkit serve RUN --workers 2`` under ``clients`` keep-alive loops; ``kills`` times a
    worker (seeded choice) is killed with SIGKILL, then the next kill waits until the server has
    a new worker in its place listening on the port."""
    sys.path.insert(0, str(ROOT / "benchmarks"))
    from serve_load import Server, percentile

    t0 = time.perf_counter()
    with open(data, encoding="utf-8") as fh:
        texts = [row["text"] for row in csv.DictReader(fh)]
    rng = np.random.default_rng(seed)
    port = free_tcp_port()
    log = work / "serve-workers.log"
    events: list[str] = []
    restart_s: list[float] = []

    async def scenario(server_pid: int) -> dict[str, Any]:
        stop = asyncio.Event()
        load = asyncio.ensure_future(drive_retrying(port, texts, clients, stop))
        await asyncio.sleep(3.0)  # clean traffic first
        for k in range(kills):
            pids = worker_pids(server_pid)
            victim = pids[int(rng.integers(len(pids)))]
            os.kill(victim, signal.SIGKILL)
            t_kill = time.perf_counter()
            while True:  # a new worker listening in its place
                now = [p for p in worker_pids(server_pid) if p not in pids]
                if now and listening(now[0], port):
                    break
                if time.perf_counter() - t_kill > 120:
                    events.append(f"kill {k + 1}: no new worker listening after 120 s")
                    break
                await asyncio.sleep(0.05)
            restart_s.append(round(time.perf_counter() - t_kill, 2))
            print(f"worker kill {k + 1}: back in {restart_s[-1]} s", file=sys.stderr)
            await asyncio.sleep(float(rng.uniform(1.0, 3.0)))
        stop.set()
        return await load

    with Server(ref, port, log, ["--workers", "2", "--no-access-log"]) as server:
        server.wait_ready()
        assert server.proc is not None
        out = asyncio.run(scenario(server.proc.pid))
        alive = server.proc.poll() is None and len(worker_pids(server.proc.pid)) == 2
    text = log.read_text(errors="replace")
    restarted = text.count("started it again")
    lost = len(out["dropped"]) + (not alive) + max(0, kills - restarted) + len(events)
    p99 = 1000 * percentile(out["valid"], 99) if out["valid"] else float("nan")
    detail = (
        f"{clients} keep-alive clients; one of the 2 workers killed {kills} times: "
        f"{len(out['valid'])} valid requests answered 200, {out['retried']} sent again on a new "
        f"connection after their worker died (client retry, counted), {len(out['dropped'])} "
        f"dropped (5xx or 3 failed tries); the server started a new worker each time "
        f"({restarted} 'started it again' lines; listening again after "
        f"{min(restart_s):.1f}-{max(restart_s):.1f} s, the other worker answering meanwhile); "
        f"valid p99 {p99:.1f} ms; 2 workers after: {alive}"
    )
    if out["dropped"]:
        detail += f"; first dropped: {out['dropped'][0]}"
    if events:
        detail += "; " + "; ".join(events)
    return {
        "case": "serve-worker-kill9",
        "injected": f"SIGKILL of one of 2 serve workers under load, {kills} times (seed {seed})",
        "times": kills,
        "lost": lost,
        "retried": out["retried"],
        "restart_seconds": restart_s,
        "p99_valid_ms": round(p99, 1),
        "detail": detail,
        "seconds": round(time.perf_counter() - t0, 1),
        "command": "lstmkit serve RUN --workers 2 --no-access-log (benchmarks/serve_load.py's "
        "Server, RawConnection with retry)",
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument(
        "--part",
        nargs="+",
        default=["training", "storage"],
        choices=["training", "storage", "serve", "ddp", "studio", "serve-workers"],
    )
    ap.add_argument("--ddp-kills", type=int, default=3)
    ap.add_argument("--studio-kills", type=int, default=3)
    ap.add_argument("--worker-kills", type=int, default=3)
    ap.add_argument("--serve-seconds", type=float, default=15.0)
    ap.add_argument("--clients", type=int, default=16)
    ap.add_argument("--kills", type=int, default=20)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--work", type=Path, default=None)
    ap.add_argument("--out", type=Path, default=None, help="append the rows to this JSONL file")
    args = ap.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="lstmkit-faults-"))
    work.mkdir(parents=True, exist_ok=True)
    data = work / "texts.csv"
    write_texts(data)
    common = {
        "bench": "faults",
        "commit": git_commit(),
        "machine": f"{platform.machine()}, {os.cpu_count()} cpus",
    }

    def record(row: dict[str, Any]) -> None:  # each row as soon as its case is done
        line = json.dumps({**common, **row, "command": row.get("command", "")})
        print(line, flush=True)
        if args.out:
            with open(args.out, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")

    if "training" in args.part:
        record(training_case(work, data, args.kills, args.seed))
    if "ddp" in args.part:
        record(ddp_case(work, data, args.ddp_kills, args.seed))
    ref = work / "reference"
    if (
        set(args.part) & {"storage", "serve", "studio", "serve-workers"}
        and not (ref / "model.safetensors").exists()
    ):
        shutil.rmtree(ref, ignore_errors=True)
        if run(train_argv(data, ref, resume=False)).returncode != 0:
            raise SystemExit("reference run failed")
    if "storage" in args.part:
        record(readonly_case(work, data, ref))
        record(full_case(work, data, ref))
    if "serve" in args.part:
        record(serve_case(work, data, ref, args.serve_seconds, args.clients))
    if "studio" in args.part:
        record(studio_case(work, data, ref, args.studio_kills, args.seed))
    if "serve-workers" in args.part:
        record(serve_workers_case(work, data, ref, args.worker_kills, args.clients, args.seed))


if __name__ == "__main__":
    main()
