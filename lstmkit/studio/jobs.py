"""The studio's job queue: runs are ``lstmkit train`` subprocesses, at most ``max_concurrent`` at
a time, supervised by one background thread.

A run is started as ``python -m lstmkit train RECIPE --set k=v ... --out HOME/runs/<id>
--no-progress`` (``--resume`` to continue from the last checkpoint; on an uploaded file
``--task text --train FILE --text-column C --label-column L``, or ``--task forecast --train FILE
--target T ...``, instead of the recipe): the CLI's own code path,
no second training loop. Its stdout and stderr go to ``HOME/runs/<id>/train.log``. While it runs,
the thread tails ``history.jsonl`` (complete lines only) into the store, so the live view and a
restarted studio see the same rows.

Cancel sends SIGINT (the Trainer checkpoints on KeyboardInterrupt), SIGTERM after ``grace_s`` and
SIGKILL ``grace_s`` later. Stopping the studio interrupts the running runs the same way and marks
them ``interrupted``; a studio that died without stopping them finds them ``running`` in the
store at the next start and marks them ``interrupted`` too (see :meth:`JobQueue.recover`).
Interrupted and cancelled runs with a checkpoint can be resumed.

A studio killed outright (``kill -9``, the OOM killer) cannot stop its runs, and a run in a session
of its own would go on writing its run directory with no studio to follow it. So on Linux each
run gets a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGKILL)``, set in the child before it
runs the trainer): the kernel kills it the moment the studio is gone. It stops at once, not at a
checkpoint of its own: a SIGINT could land between the optimizer step and the step count and
checkpoint a state no uninterrupted run passes through, while the checkpoints written before are
complete (verified on resume), so the resumed run reaches the uninterrupted run's weights. The
child checks its parent once more after the prctl call (a studio that died in between). The next
studio marks the run ``interrupted``. (The kernel sends it when the *thread* that started the
child ends: the queue's own thread, which lives as long as the studio; :meth:`JobQueue.stop` ends
it only after its runs have stopped or been killed.) Where there is no prctl (not Linux) the
queue says once that its runs outlive a killed studio.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import json
import logging
import os
import shlex
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from lstmkit.runs import HISTORY_FILE, has_checkpoint, read_metrics
from lstmkit.studio.store import Store

logger = logging.getLogger(__name__)

LOG_NAME = "train.log"
Launcher = Callable[[list[str], Path, dict[str, str]], "subprocess.Popen[bytes]"]


PR_SET_PDEATHSIG = 1  # linux/prctl.h
_warned_no_pdeathsig = False


def _parent_death_hook() -> Callable[[], None] | None:
    """A ``preexec_fn`` that asks the kernel to SIGKILL the child when this process dies
    (Linux prctl), then checks that this process still is its parent; None where there is no
    prctl (said once, as a warning)."""
    global _warned_no_pdeathsig
    prctl = None
    if sys.platform.startswith("linux"):
        with contextlib.suppress(OSError, AttributeError):
            prctl = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True).prctl
    if prctl is None:
        if not _warned_no_pdeathsig:
            _warned_no_pdeathsig = True
            logger.warning(
                "no prctl(PR_SET_PDEATHSIG) on %s: a run keeps training if the studio is killed "
                "outright (stop the studio with Ctrl-C to interrupt its runs)",
                sys.platform,
            )
        return None
    studio = os.getpid()

    def hook() -> None:  # in the child, between fork and exec: no locks, no imports
        prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        if os.getppid() != studio:  # the studio died before the prctl call
            os._exit(1)

    return hook


def default_launcher(
    argv: list[str], log_path: Path, env: dict[str, str]
) -> subprocess.Popen[bytes]:
    """Start ``argv`` in its own session (a Ctrl-C in the studio's terminal does not reach it;
    the queue decides), output appended to ``log_path``; on Linux it dies with the studio (a
    parent-death signal, see the module docstring)."""
    with open(log_path, "ab") as log:
        return subprocess.Popen(
            argv,
            stdout=log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=env,
            start_new_session=True,
            preexec_fn=_parent_death_hook(),  # one ctypes call after fork: no lock taken
        )


def process_alive(pid: int | None, run_dir: Path) -> bool:
    """Whether process ``pid`` is alive and is this run's trainer (its command line names the
    run directory), so a pid reused by another program is never signalled."""
    if not pid:
        return False
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return os.fsencode(str(run_dir)) in cmdline


@dataclass
class _Job:
    run_id: str
    proc: subprocess.Popen[bytes]
    run_dir: Path
    offset: int = 0
    inode: int | None = None
    cancel_at: float | None = None
    stopping: bool = False  # the studio is shutting down: the run ends as 'interrupted'
    signals: list[str] = field(default_factory=list)


class JobQueue:
    """Starts queued runs (oldest first) up to ``max_concurrent``; tails, cancels, finishes them.

    Args:
        store: the studio's :class:`~lstmkit.studio.store.Store`.
        home: the studio's home (runs in ``home/runs/<id>``).
        recipe_path: run id -> the recipe file to train (resolved by the app).
        max_concurrent: most runs training at once (default 1: a 2-core machine).
        grace_s: seconds between SIGINT and SIGTERM (and SIGTERM and SIGKILL).
        poll_s: how often the thread looks at the processes and the history files.
        python: the interpreter that runs ``-m lstmkit train``.
        env: extra environment variables for the runs.
        launcher: starts a process (tests swap it to check the queue with short sleeps).
    """

    def __init__(
        self,
        store: Store,
        home: Path,
        recipe_path: Callable[[dict[str, Any]], Path],
        *,
        max_concurrent: int = 1,
        grace_s: float = 30.0,
        poll_s: float = 0.25,
        python: str = sys.executable,
        env: dict[str, str] | None = None,
        launcher: Launcher = default_launcher,
    ) -> None:
        if max_concurrent < 1:
            raise ValueError(f"max_concurrent must be >= 1, got {max_concurrent}")
        self.store = store
        self.home = home
        self.recipe_path = recipe_path
        self.max_concurrent = max_concurrent
        self.grace_s = grace_s
        self.poll_s = poll_s
        self.python = python
        self.env = dict(env or {})
        self.launcher = launcher
        self.jobs: dict[str, _Job] = {}
        self.max_seen = 0  # the most runs that were ever running at once (tests read it)
        self._lock = threading.RLock()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_dir(self, run_id: str) -> Path:
        """``HOME/runs/<id>``."""
        return self.home / "runs" / run_id

    # -- lifecycle -----------------------------------------------------------------------------
    def recover(self) -> list[str]:
        """At start-up: runs the store says are running (their studio is gone) become
        ``interrupted``; a trainer of theirs that still lives gets SIGINT so it checkpoints and
        stops. Returns the ids marked."""
        marked = []
        for run in self.store.list_runs(("running", "cancelling")):
            run_dir = self.run_dir(run["id"])
            if process_alive(run["pid"], run_dir):
                os.kill(run["pid"], signal.SIGINT)
            self.store.update_run(
                run["id"],
                status="interrupted" if run["status"] == "running" else "cancelled",
                finished=time.time(),
                error="the studio stopped while this run was training"
                + ("; resume it from its last checkpoint" if has_checkpoint(run_dir) else ""),
            )
            marked.append(run["id"])
        return marked

    def start(self) -> None:
        """Start the supervising thread."""
        if self._thread is not None:
            raise RuntimeError("the job queue is already started")
        self._thread = threading.Thread(target=self._loop, name="studio-jobs", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float | None = None) -> None:
        """Interrupt the running runs (SIGINT: they checkpoint), wait for them up to
        ``timeout_s`` (default: ``grace_s``), kill what is left, mark them ``interrupted``."""
        with self._lock:
            for job in self.jobs.values():
                job.stopping = True
                self._signal(job, signal.SIGINT)
        deadline = time.monotonic() + (self.grace_s if timeout_s is None else timeout_s)
        while time.monotonic() < deadline:
            with self._lock:
                if all(j.proc.poll() is not None for j in self.jobs.values()):
                    break
            time.sleep(0.05)
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout=30)
            self._thread = None
        with self._lock:
            for job in list(self.jobs.values()):
                if job.proc.poll() is None:
                    job.proc.kill()
                    job.proc.wait()
                self._finish(job)

    def wake(self) -> None:
        """Look at the queue now (a run was queued or cancelled)."""
        self._wake.set()

    # -- requests ------------------------------------------------------------------------------
    def cancel(self, run_id: str) -> str:
        """Cancel a queued (at once) or running (SIGINT, then SIGTERM) run; returns its status.
        Raises KeyError for an unknown run, ValueError for a run that is not active."""
        with self._lock:
            run = self.store.get_run(run_id)
            if run is None:
                raise KeyError(run_id)
            if run["status"] == "queued":
                self.store.update_run(
                    run_id, expect=("queued",), status="cancelled", finished=time.time()
                )
                return "cancelled"
            job = self.jobs.get(run_id)
            if run["status"] not in ("running", "cancelling") or job is None:
                raise ValueError(
                    f"run {run_id} is {run['status']}; only queued or running runs can be cancelled"
                )
            if job.cancel_at is None:
                job.cancel_at = time.monotonic()
                self._signal(job, signal.SIGINT)
                self.store.update_run(run_id, status="cancelling")
            return "cancelling"

    # -- the thread ----------------------------------------------------------------------------
    def _loop(self) -> None:
        while not self._stop.is_set():
            try:
                self.tick()
            except Exception:  # the thread must outlive one bad tick; the error is logged
                logger.exception("studio job queue: tick failed")
            self._wake.wait(self.poll_s)
            self._wake.clear()

    def tick(self) -> None:
        """One pass: tail, escalate cancels, finish exited runs, start queued ones."""
        with self._lock:
            for job in list(self.jobs.values()):
                self._tail(job)
                if job.proc.poll() is not None:
                    self._finish(job)
                    continue
                if job.cancel_at is not None:
                    waited = time.monotonic() - job.cancel_at
                    if waited > 2 * self.grace_s and "SIGKILL" not in job.signals:
                        self._signal(job, signal.SIGKILL)
                    elif waited > self.grace_s and "SIGTERM" not in job.signals:
                        self._signal(job, signal.SIGTERM)
            if self._stop.is_set():
                return
            free = self.max_concurrent - len(self.jobs)
            if free > 0:
                for run in self.store.list_runs(("queued",))[:free]:
                    self._launch(run)
            self.max_seen = max(self.max_seen, len(self.jobs))

    def _signal(self, job: _Job, sig: signal.Signals) -> None:
        if job.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                job.proc.send_signal(sig)
            job.signals.append(sig.name)

    def _launch(self, run: dict[str, Any]) -> None:
        run_id = run["id"]
        run_dir = self.run_dir(run_id)
        resume = bool(run.get("resume"))
        argv = [self.python, "-m", "lstmkit", "train"]
        # a recipe file, or (own data) --task text --train FILE ... with the recipe as --set
        argv += run["task_args"] if run.get("task_args") else [str(self.recipe_path(run))]
        for item in run["overrides"]:
            argv += ["--set", item]
        argv += ["--out", str(run_dir), "--no-progress"]
        if resume:
            argv.append("--resume")
        run_dir.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, **self.env, "PYTHONUNBUFFERED": "1"}
        # runs side by side share the cores (more threads than cores slows every run down);
        # an OMP_NUM_THREADS of the caller or a recipe's train.num_threads still decides
        env.setdefault("OMP_NUM_THREADS", str(max(1, (os.cpu_count() or 1) // self.max_concurrent)))
        header = f"$ {shlex.join(argv)}\n"  # as a shell would run it, the interpreter first
        with open(run_dir / LOG_NAME, "a", encoding="utf-8") as log:
            log.write(header)
        try:
            proc = self.launcher(argv, run_dir / LOG_NAME, env)
        except OSError as err:
            self.store.update_run(
                run_id, status="failed", finished=time.time(), error=f"cannot start: {err}"
            )
            return
        self.jobs[run_id] = _Job(run_id, proc, run_dir)
        self.store.update_run(
            run_id,
            status="running",
            pid=proc.pid,
            started=time.time(),
            finished=None,
            exit_code=None,
            error=None,
            resume=0,
        )

    def _tail(self, job: _Job) -> None:
        """Read the complete new lines of history.jsonl into the store. The Trainer rewrites
        the file on resume (a new inode or a shorter file): then it is read from the start."""
        path = job.run_dir / HISTORY_FILE
        try:
            st = path.stat()
        except FileNotFoundError:
            return
        if job.inode != st.st_ino or st.st_size < job.offset:
            job.inode, job.offset = st.st_ino, 0
        if st.st_size == job.offset:
            return
        with open(path, "rb") as fh:
            fh.seek(job.offset)
            data = fh.read()
        end = data.rfind(b"\n") + 1
        if end == 0:
            return
        rows = []
        for line in data[:end].splitlines():
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                logger.warning("%s: skipping a line that is not JSON: %r", path, line[:200])
                continue
            if isinstance(row, dict) and "step" in row and "split" in row:
                rows.append(row)
        if rows:
            self.store.add_metric_rows(job.run_id, rows)
        job.offset += end

    def _finish(self, job: _Job) -> None:
        self._tail(job)
        code = job.proc.wait()
        self.jobs.pop(job.run_id, None)
        fields: dict[str, Any] = {"exit_code": code, "finished": time.time(), "pid": None}
        metrics = read_metrics(job.run_dir) if code == 0 else None
        if metrics is not None:
            fields.update(status="finished", metrics=metrics)
        elif job.cancel_at is not None:
            fields.update(status="cancelled", error=_cancel_note(job))
        elif job.stopping:
            fields.update(
                status="interrupted",
                error="the studio stopped while this run was training"
                + ("; resume it from its last checkpoint" if has_checkpoint(job.run_dir) else ""),
            )
        else:
            fields.update(status="failed", error=_failure(job.run_dir / LOG_NAME, code))
        self.store.update_run(job.run_id, **fields)


def _cancel_note(job: _Job) -> str:
    note = "cancelled (" + ", ".join(job.signals) + ")"
    if has_checkpoint(job.run_dir):
        note += "; resume it from its last checkpoint"
    return note


def _failure(log_path: Path, code: int) -> str:
    """The trainer's own error line (``lstmkit train: error: ...``), else the log's last line."""
    try:
        lines = log_path.read_text(encoding="utf-8", errors="replace").splitlines()
    except OSError:
        lines = []
    for line in reversed(lines):
        if "error:" in line:
            return line.strip()
    tail = next((ln.strip() for ln in reversed(lines) if ln.strip()), "")
    return f"exit code {code}" + (f": {tail}" if tail else "")
