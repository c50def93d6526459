"""The run directory: the only code that reads or writes it (training, evaluation, bundles and
serving all come through here).

Layout (``lstmkit train ... --out RUN``)::

    config.json          the validated recipe (+ the raw TOML and overrides), the task, the
                         model's config and the data facts
    vocab.json | tokenizer.json | chars.json
                         how text becomes ids (Keras data sets | your own texts | characters)
    model.safetensors    final weights (the best ones when early stopping is on)
    metrics.json         validation and test metrics, seconds, steps
    history.*, curves.png, checkpoints/   from the Trainer
    evaluation.json, confusion.png, forecast.png ...   the task's own reports

``--record`` also writes ``results/<recipe>.json`` (:func:`write_result`): the figure the README
tables are generated from, with the command, commit, machine and seconds of the run.

Every write is atomic (:mod:`lstmkit.files`): a stopped run leaves either the old file or the new
one. Every error is a :class:`~lstmkit.errors.LstmkitError` naming the file.
"""

from __future__ import annotations

import json
import platform
import site
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from lstmkit.checkpoint import load_model_state, model_state, save_tensors
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.errors import RunDirError, RunExistsError, RunKindError
from lstmkit.files import atomic_write_text, atomic_write_with
from lstmkit.models import ClassifierConfig, SequenceClassifier

if TYPE_CHECKING:
    from lstmkit.config import Recipe

CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
METRICS_FILE = "metrics.json"
VOCAB_FILE = "vocab.json"
HISTORY_FILE = "history.jsonl"
LATEST_CHECKPOINT = Path("checkpoints") / "latest"

# config.json's "task" of runs written before the task registry: own texts said "classify"
_DATASET_TASKS = {"text": "text", "series": "forecast", "chars": "language_model"}


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run must not overwrite a finished one; ``--resume`` needs checkpoints."""
    if resume and not (run_dir / "checkpoints").exists():
        raise RunDirError(f"--resume: {run_dir} has no checkpoints to resume from")
    if not resume and (run_dir / "checkpoints").exists():
        raise RunExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )


def write_json(path: Path, payload: Any) -> None:
    """``payload`` as indented JSON (non-ASCII kept as is: labels in any script), atomically."""
    atomic_write_text(path, json.dumps(payload, indent=2, ensure_ascii=False))


def save_config(run_dir: Path, config: dict[str, Any]) -> None:
    """``config.json`` of a new run."""
    write_json(run_dir / CONFIG_FILE, config)


def save_final(model: nn.Module, run_dir: Path, metrics: dict[str, Any]) -> None:
    """The finished run's ``model.safetensors`` and ``metrics.json``, each written atomically."""
    atomic_write_with(
        run_dir / WEIGHTS_FILE, lambda tmp: save_tensors(model_state(model), tmp), ".tmp"
    )
    atomic_write_text(run_dir / METRICS_FILE, json.dumps(metrics, indent=2))


def read_run_config(run_dir: Path, task: str | None = None, how: str = "") -> dict[str, Any]:
    """``config.json`` of a run directory; with ``task``, a run of another task is one error
    saying what it is and ``how`` to make the right kind."""
    cfg_path = run_dir / CONFIG_FILE
    if not cfg_path.exists():
        raise RunDirError(f"{run_dir} is not a run directory: {cfg_path.name} is missing")
    try:
        config: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise RunDirError(f"{cfg_path}: cannot be read as JSON ({err})") from None
    if not isinstance(config, dict):
        raise RunDirError(f"{cfg_path}: expected a JSON object, got {type(config).__name__}")
    kind = config.get("task", "classify")
    if task is not None and kind != task:
        raise RunKindError(f"{run_dir} holds a {kind!r} run, not a {task!r} run{how}")
    return config


def read_json_or_none(path: Path) -> dict[str, Any] | None:
    """A JSON object file of a run that may not exist yet (a run still training, a failed run):
    None when it is missing, unreadable or not an object."""
    try:
        payload = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return payload if isinstance(payload, dict) else None


def read_metrics(run_dir: Path) -> dict[str, Any] | None:
    """``metrics.json`` of a finished run; None while it trains or after it failed."""
    return read_json_or_none(run_dir / METRICS_FILE)


def read_history(run_dir: Path) -> list[dict[str, Any]]:
    """The rows of ``history.jsonl`` (one per evaluation), complete lines only: a row the
    Trainer is still writing is left for the next read."""
    path = run_dir / HISTORY_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [json.loads(line) for line in lines[:-1] if line.strip()]


def has_checkpoint(run_dir: Path) -> bool:
    """Whether the run directory holds a checkpoint to resume from."""
    return (run_dir / LATEST_CHECKPOINT).is_file()


def task_of_run(config: dict[str, Any]) -> str:
    """The task that wrote a run's ``config`` ('classify', 'text', 'forecast',
    'language_model'), also for runs written before config.json named it."""
    recipe = config.get("recipe")
    data = recipe.get("data") if isinstance(recipe, dict) else None
    dataset = data.get("dataset") if isinstance(data, dict) else None
    if isinstance(dataset, str) and dataset in _DATASET_TASKS:
        return _DATASET_TASKS[dataset]
    return str(config.get("task", "classify"))


def is_classifier_run(config: dict[str, Any]) -> bool:
    """Whether the run's model is a :class:`SequenceClassifier` (Keras data sets or your own
    texts): the kind a bundle serves and the ONNX export takes."""
    return task_of_run(config) in ("classify", "text")


def load_weights(model: nn.Module, run_dir: Path) -> None:
    """The run's final weights into ``model`` (eval mode); a run that did not finish is one
    error saying how to resume it."""
    weights = run_dir / WEIGHTS_FILE
    if not weights.exists():
        raise RunDirError(f"{weights} is missing: the run did not finish (resume it with --resume)")
    load_model_state(model, weights)
    model.eval()


def load_run(run_dir: Path) -> tuple[SequenceClassifier, dict[str, Any], Vocabulary | None]:
    """Classifier (eval mode), config and vocabulary (None for your own texts: they have a
    ``tokenizer.json``) of a finished classification run directory."""
    config = read_run_config(run_dir)
    if not is_classifier_run(config):
        raise RunKindError(
            f"{run_dir} holds a {task_of_run(config)!r} run, not a classifier "
            "(lstmkit predict / export / serve take a classify or text run)"
        )
    model = SequenceClassifier(ClassifierConfig.model_validate(config["model"]))
    load_weights(model, run_dir)
    vocab_path = run_dir / VOCAB_FILE
    vocab = Vocabulary.load(vocab_path) if vocab_path.exists() else None
    return model, config, vocab


# -- provenance of a result ---------------------------------------------------------------------
def git_commit() -> str:
    """HEAD's hash (+ '-dirty' when the work tree has changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine() -> str:
    """A short description of the machine: CPU, cores, torch threads."""
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.system()}"


def portable_command(command: str) -> str:
    """``command`` without this machine's paths: the working directory's prefix is dropped and
    an installed package's data file reads ``<site-packages>/...``, so a recorded command means the
    same on another machine."""
    prefixes = [(p.rstrip("/") + "/", "<site-packages>/") for p in site.getsitepackages()]
    prefixes.append((str(Path.cwd()) + "/", ""))
    for prefix, short in prefixes:
        command = command.replace(prefix, short)
    return command


def write_result(
    record: Path,
    recipe: Recipe,
    *,
    metric: str,
    value: float,
    seconds: float,
    command: str | None,
    extra: dict[str, Any] | None = None,
    commit: str | None = None,
) -> Path:
    """``record/<recipe>.json``: the figure the README tables are generated from, with the
    command, commit, machine and seconds of the run that measured it. ``commit``: the code the
    run STARTED from (take :func:`git_commit` before training: the tree may move during a long
    run); None reads it now."""
    result = {
        "recipe": recipe.name,
        "metric": metric,
        "value": value,
        **(extra or {}),
        "seconds": seconds,
        "commit": commit if commit is not None else git_commit(),
        "command": portable_command(command or " ".join(["lstmkit", *sys.argv[1:]])),
        "machine": machine(),
        "seed_figure": recipe.seed_figure,
    }
    path = record / f"{recipe.name}.json"
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return path
