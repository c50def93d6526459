"""Experiment tracking: a run's history sent to TensorBoard and MLflow as it trains.

``[train] log = ["tensorboard", "mlflow"]`` in a recipe (``lstmkit train ... --log
tensorboard,mlflow``), or ``TrainConfig(log=[...])`` for :class:`lstmkit.Trainer`. The
:class:`~lstmkit.train.Trainer` (rank 0 of a DDP job) calls the trackers' three hooks
(:class:`Tracker`):

=================  ==============================================================================
hook               what is logged
=================  ==============================================================================
``start``          the recipe (or the TrainConfig) as hyperparameters, flattened to dotted names
                   (``model.hidden_size``)
``log_row``        every scalar of every history row (``history.jsonl``) as ``SPLIT/KEY`` at the
                   row's step: ``train/loss``, ``train/lr``, ``train/grad_norm``,
                   ``train/tokens_per_s``, ``train/layers.rnn.cells.0.update_ratio``,
                   ``val/accuracy``, ...
``finish``         the final metrics (``metrics.json``: ``final/test_accuracy``,
                   ``final/best_val.value``, ...); MLflow also stores the run's plots, metrics,
                   config and history (and ``bundle/`` when the run wrote one) as artifacts
=================  ==============================================================================

Where they go, by default a local store beside the run directory ``RUN``:

- TensorBoard: ``RUN/tensorboard/`` (``tensorboard --logdir runs/`` shows every run of
  ``runs/``). A resumed run appends, and TensorBoard drops the steps logged after the checkpoint
  it resumed from (``purge_step``).
- MLflow: the tracking URI ``MLFLOW_TRACKING_URI`` when set, else the SQLite store
  ``RUN/../mlflow.db`` with artifacts in ``RUN/../mlartifacts/`` (``mlflow ui
  --backend-store-uri sqlite:///runs/mlflow.db``); the experiment is the recipe's name, the run
  is named after the run directory. A resumed run continues the same MLflow run (its id is kept
  in ``RUN/tracking.json``).

Both are optional: ``pip install 'lstmkit[track]'``. Asking for one that is not installed is one
:class:`~lstmkit.errors.MissingDependencyError` naming that extra, raised before training starts.
This module imports neither package until a tracker is made.
"""

from __future__ import annotations

import json
import math
import os
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, Literal

from lstmkit.errors import ConfigError
from lstmkit.extras import missing
from lstmkit.files import atomic_write_text

__all__ = [
    "TRACKERS",
    "MlflowTracker",
    "TensorBoardTracker",
    "Tracker",
    "make_trackers",
    "flatten",
    "row_scalars",
]

TrackerName = Literal["tensorboard", "mlflow"]
TRACKERS: tuple[str, ...] = ("tensorboard", "mlflow")
TRACKING_FILE = "tracking.json"  # the MLflow run id of a run directory (resume continues it)
# the files of a finished run MLflow keeps as artifacts (those that exist)
ARTIFACT_GLOBS = ("*.png", "metrics.json", "config.json", "history.csv", "evaluation.json")


class Tracker:
    """The hooks the Trainer calls, in this order: ``start`` once per :meth:`Trainer.fit`
    session, ``log_row`` for every history row it writes, ``finish`` once at the end (also after
    a failure, with ``status="FAILED"``). The base class does nothing: a callback of one's own
    subclasses it and overrides what it needs."""

    def start(self, params: dict[str, Any], *, step: int) -> None:
        """A training session begins at ``step`` (0, or where a resumed run continues);
        ``params``: the hyperparameters (a nested dict: the recipe or the TrainConfig)."""

    def log_row(self, row: dict[str, Any]) -> None:
        """One history row (as in ``history.jsonl``) was recorded."""

    def finish(
        self, metrics: dict[str, Any], artifacts: Sequence[Path] = (), *, status: str = "FINISHED"
    ) -> None:
        """The run ended: its final ``metrics`` (nested, as ``metrics.json``) and the files to
        keep; ``status`` "FINISHED" | "FAILED" | "KILLED"."""


def flatten(tree: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested dicts as dotted keys (``{"model": {"hidden_size": 8}}`` ->
    ``{"model.hidden_size": 8}``); lists and other leaves are kept as they are."""
    out: dict[str, Any] = {}
    for key, value in tree.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def row_scalars(row: dict[str, Any]) -> dict[str, float]:
    """The scalars of a history row as ``SPLIT/KEY`` -> value: every number but the step
    (nested ``layers`` flattened: ``train/layers.rnn.cells.0.grad_norm``)."""
    split = str(row.get("split", "train"))
    return {
        f"{split}/{key}": float(value)
        for key, value in flatten(row).items()
        if key not in ("step", "split") and _is_number(value)
    }


def final_scalars(metrics: dict[str, Any]) -> dict[str, float]:
    """The numbers of a run's final metrics as ``final/KEY`` (dotted; finite ones only: a
    tracker's summary of a run that never validated has no ``best_val.value``)."""
    return {
        f"final/{key}": float(value)
        for key, value in flatten(metrics).items()
        if _is_number(value) and math.isfinite(float(value))
    }


def _param_text(value: Any) -> str:
    return json.dumps(value) if isinstance(value, list | tuple | dict) else str(value)


def _artifact_files(run_dir: Path) -> list[Path]:
    files: list[Path] = []
    for pattern in ARTIFACT_GLOBS:
        files += sorted(p for p in run_dir.glob(pattern) if p.is_file())
    return files


class TensorBoardTracker(Tracker):
    """Event files in ``log_dir`` (``RUN/tensorboard``): scalars per history row, the
    hyperparameters as text at the start and as TensorBoard's HParams (with the final metrics)
    at the end."""

    def __init__(self, log_dir: Path) -> None:
        self.log_dir = log_dir
        self._writer: Any = None
        self._params: dict[str, Any] = {}
        self._step = 0

    def start(self, params: dict[str, Any], *, step: int) -> None:
        from torch.utils.tensorboard import SummaryWriter

        self._params = flatten(params)
        self._step = step
        # a resumed run: the events written after its checkpoint (a crash) are dropped
        self._writer = SummaryWriter(str(self.log_dir), purge_step=step + 1 if step else None)
        if not step:
            self._writer.add_text("hparams", "```\n" + json.dumps(params, indent=2) + "\n```", 0)

    def log_row(self, row: dict[str, Any]) -> None:
        step = int(row["step"])
        self._step = max(self._step, step)
        for tag, value in row_scalars(row).items():
            self._writer.add_scalar(tag, value, step)

    def finish(
        self, metrics: dict[str, Any], artifacts: Sequence[Path] = (), *, status: str = "FINISHED"
    ) -> None:
        if self._writer is None:
            return
        from torch.utils.tensorboard.summary import hparams

        final = final_scalars(metrics)
        for tag, value in final.items():
            self._writer.add_scalar(tag, value, self._step)
        if final:
            values = {
                k: v if isinstance(v, bool | int | float | str) else _param_text(v)
                for k, v in self._params.items()
                if v is not None
            }
            for summary in hparams(values, final):
                self._writer.file_writer.add_summary(summary, self._step)
        self._writer.close()
        self._writer = None


class MlflowTracker(Tracker):
    """One MLflow run: params, metrics per history row, final metrics and artifacts.

    ``tracking_uri``: None = ``MLFLOW_TRACKING_URI``, else ``sqlite:///RUN/../mlflow.db``
    (artifacts in ``RUN/../mlartifacts``)."""

    def __init__(self, run_dir: Path, experiment: str, tracking_uri: str | None = None) -> None:
        self.run_dir = run_dir
        self.experiment = experiment
        self.tracking_uri = tracking_uri or default_mlflow_uri(run_dir)
        self._client: Any = None
        self.run_id: str | None = None
        self._step = 0

    def start(self, params: dict[str, Any], *, step: int) -> None:
        from mlflow.entities import Param
        from mlflow.tracking import MlflowClient

        self._client = client = MlflowClient(tracking_uri=self.tracking_uri)
        record = self.run_dir / TRACKING_FILE
        known = _read_json(record).get("mlflow_run_id") if step else None
        if known is not None:
            client.update_run(known, status="RUNNING")
            self.run_id = known
            return
        found = client.get_experiment_by_name(self.experiment)
        if found is not None:
            experiment_id = found.experiment_id
        else:
            location = None
            if self.tracking_uri.startswith("sqlite:"):
                location = (self.run_dir.parent / "mlartifacts").resolve().as_uri()
            experiment_id = client.create_experiment(self.experiment, artifact_location=location)
        run = client.create_run(experiment_id, run_name=self.run_dir.name)
        self.run_id = run.info.run_id
        atomic_write_text(record, json.dumps({"mlflow_run_id": self.run_id}, indent=2))
        flat = [Param(k, _param_text(v)[:6000]) for k, v in sorted(flatten(params).items())]
        for i in range(0, len(flat), 100):  # MLflow takes at most 100 params per batch
            client.log_batch(self.run_id, params=flat[i : i + 100])

    def _log_metrics(self, values: dict[str, float], step: int) -> None:
        import time

        from mlflow.entities import Metric

        stamp = int(time.time() * 1000)
        batch = [Metric(k, v, stamp, step) for k, v in values.items()]
        for i in range(0, len(batch), 1000):
            self._client.log_batch(self.run_id, metrics=batch[i : i + 1000])

    def log_row(self, row: dict[str, Any]) -> None:
        self._step = int(row["step"])
        self._log_metrics(row_scalars(row), self._step)

    def finish(
        self, metrics: dict[str, Any], artifacts: Sequence[Path] = (), *, status: str = "FINISHED"
    ) -> None:
        if self._client is None or self.run_id is None:
            return
        self._log_metrics(final_scalars(metrics), int(metrics.get("steps", 0) or 0))
        for path in artifacts:
            if path.is_dir():
                self._client.log_artifacts(self.run_id, str(path), artifact_path=path.name)
            elif path.is_file():
                self._client.log_artifact(self.run_id, str(path))
        self._client.set_terminated(self.run_id, status=status)
        self._client = None


def default_mlflow_uri(run_dir: Path) -> str:
    """``MLFLOW_TRACKING_URI`` when set, else the SQLite store beside the run directory."""
    env = os.environ.get("MLFLOW_TRACKING_URI")
    if env:
        return env
    return "sqlite:///" + str((run_dir.parent / "mlflow.db").resolve())


def _read_json(path: Path) -> dict[str, Any]:
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return payload if isinstance(payload, dict) else {}


def check_installed(names: Iterable[str]) -> None:
    """Raise the one error of a tracker that cannot run: an unknown name (ConfigError listing
    the known ones) or a missing package (MissingDependencyError naming ``lstmkit[track]``)."""
    for name in names:
        if name not in TRACKERS:
            raise ConfigError(
                f"train.log: unknown tracker {name!r}; expected one of {', '.join(TRACKERS)}"
            )
        modules = ("tensorboard",) if name == "tensorboard" else ("mlflow", "sqlalchemy")
        for module in modules:
            try:
                __import__(module)
            except ImportError:
                raise missing("track", f"train.log = [{name!r}]", module) from None


def make_trackers(names: Sequence[str], run_dir: Path | None, *, experiment: str) -> list[Tracker]:
    """The trackers ``train.log`` names, writing beside ``run_dir`` (see the module docstring);
    ``experiment``: the MLflow experiment (the recipe's name)."""
    if not names:
        return []
    if run_dir is None:
        raise ConfigError(
            f"train.log = {list(names)} logs beside the run directory: give the Trainer a run_dir"
        )
    if len(set(names)) != len(names):
        raise ConfigError(f"train.log = {list(names)}: name each tracker once")
    check_installed(names)
    trackers: list[Tracker] = []
    for name in names:
        if name == "tensorboard":
            trackers.append(TensorBoardTracker(run_dir / "tensorboard"))
        else:
            trackers.append(MlflowTracker(run_dir, experiment))
    return trackers


def run_artifacts(run_dir: Path) -> list[Path]:
    """The files of a finished run MLflow keeps: plots, metrics, config, history (and the
    ``bundle/`` folder when the run wrote one)."""
    files = _artifact_files(run_dir)
    if (run_dir / "bundle").is_dir():
        files.append(run_dir / "bundle")
    return files
