"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically.

Layout of one checkpoint directory (``RUN/checkpoints/step-000123/``)::

    model.safetensors       model weights (state_dict, DDP prefix stripped)
    optimizer.safetensors   every tensor of optimizer.state_dict()["state"], key "state.<idx>.<name>"
    trainer.json            step, epoch, batch position, optimizer scalars and param_groups,
                            scheduler state, RNG states (per rank), best metric, history length
    carry.safetensors       a language model's carried state, only when there is one: "h" (and
                            "c" for an LSTM) of shape (world_size, L, B, H), rank r's at [r] --
                            where the training streams continue at ``batch_in_epoch``

A checkpoint is written into ``step-000123.tmp/``, every file fsync'ed, then the directory is
renamed into place and ``RUN/checkpoints/latest`` (a one-line text file) is replaced atomically.
A crash at any point leaves the previous checkpoint and ``latest`` intact. Only the newest
``keep`` checkpoints are kept.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file
from torch import Tensor, nn

from lstmkit.errors import CheckpointError
from lstmkit.files import atomic_write_text, fsync_dir

LATEST = "latest"
CARRY_FILE = "carry.safetensors"


def save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    """safetensors file of contiguous CPU copies, fsync'ed."""
    save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    with open(path, "rb") as fh:
        os.fsync(fh.fileno())


def unwrap(model: nn.Module) -> nn.Module:
    """The model inside a DistributedDataParallel wrapper (or the model itself)."""
    inner = getattr(model, "module", model)
    assert isinstance(inner, nn.Module)
    return inner


def model_state(model: nn.Module) -> dict[str, Tensor]:
    """state_dict without DDP's ``module.`` prefix."""
    return dict(unwrap(model).state_dict())


def load_model_state(model: nn.Module, path: Path) -> None:
    """Load ``model.safetensors`` into ``model`` (strict: names and shapes must match)."""
    inner = unwrap(model)
    try:
        state = load_file(str(path))
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"cannot read weights {path}: {err}") from None
    missing = set(inner.state_dict()) - set(state)
    unexpected = set(state) - set(inner.state_dict())
    if missing or unexpected:
        raise CheckpointError(
            f"{path} does not fit the model: missing {sorted(missing)}, unexpected {sorted(unexpected)}"
        )
    for name, value in inner.state_dict().items():
        if value.shape != state[name].shape:
            raise CheckpointError(
                f"{path}: '{name}' has shape {tuple(state[name].shape)}, the model expects {tuple(value.shape)}"
            )
    inner.load_state_dict(state)


def _split_optimizer(state: dict[str, Any]) -> tuple[dict[str, Tensor], dict[str, Any]]:
    tensors: dict[str, Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for idx, entry in state["state"].items():
        for name, value in entry.items():
            if isinstance(value, Tensor):
                tensors[f"state.{idx}.{name}"] = value
            else:
                scalars.setdefault(str(idx), {})[name] = value
    return tensors, {"scalars": scalars, "param_groups": state["param_groups"]}


def _join_optimizer(tensors: dict[str, Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        _, idx, name = key.split(".", 2)
        state.setdefault(int(idx), {})[name] = value
    for idx, entry in meta["scalars"].items():
        state.setdefault(int(idx), {}).update(entry)
    return {"state": state, "param_groups": meta["param_groups"]}


def rng_state() -> dict[str, Any]:
    """torch's CPU (and CUDA) RNG state as JSON-safe lists of ints."""
    out: dict[str, Any] = {"torch": torch.get_rng_state().tolist()}
    if torch.cuda.is_available():
        out["cuda"] = [s.tolist() for s in torch.cuda.get_rng_state_all()]
    return out


def set_rng_state(state: dict[str, Any]) -> None:
    """Restore what :func:`rng_state` returned."""
    torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all([torch.tensor(s, dtype=torch.uint8) for s in state["cuda"]])


def save_checkpoint(
    run_dir: Path,
    *,
    step: int,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    trainer_state: dict[str, Any],
    keep: int,
    carry: dict[str, Tensor] | None = None,
) -> Path:
    """Write checkpoint ``step`` atomically, point ``latest`` at it, prune to ``keep``.
    ``carry``: the carried state's tensors (``carry.safetensors``; none written when None)."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:09d}"
    tmp = ckpt_root / f"step-{step:09d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    save_tensors(model_state(model), tmp / "model.safetensors")
    opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
    save_tensors(opt_tensors, tmp / "optimizer.safetensors")
    if carry is not None:
        save_tensors(carry, tmp / CARRY_FILE)
    payload = {**trainer_state, "step": step, "optimizer": opt_meta}
    with open(tmp / "trainer.json", "w", encoding="utf-8") as fh:
        json.dump(payload, fh)
        fh.flush()
        os.fsync(fh.fileno())
    fsync_dir(tmp)
    if final.exists():
        shutil.rmtree(final)
    tmp.rename(final)
    fsync_dir(ckpt_root)
    atomic_write_text(ckpt_root / LATEST, final.name + "\n")
    existing = sorted(
        p for p in ckpt_root.glob("step-*") if p.is_dir() and not p.name.endswith(".tmp")
    )
    for old in existing[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The directory ``latest`` points to, or None when the run has no checkpoint."""
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / "trainer.json").exists():
        raise CheckpointError(f"{pointer} points to {path.name}, which is missing or incomplete")
    return path


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Load weights and optimizer state from ``path``; return the trainer state (JSON part)."""
    try:
        payload: dict[str, Any] = json.loads((path / "trainer.json").read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path / 'trainer.json'}: {err}") from None
    load_model_state(model, path / "model.safetensors")
    tensors = load_file(str(path / "optimizer.safetensors"))
    optimizer.load_state_dict(_join_optimizer(tensors, payload.pop("optimizer")))
    return payload


def load_carry(path: Path) -> dict[str, Tensor] | None:
    """The carried state's tensors of checkpoint ``path`` (None: it holds none, e.g. a
    classifier's, one written at an epoch end or by a version before the file existed)."""
    file = path / CARRY_FILE
    if not file.exists():
        return None
    try:
        return dict(load_file(str(file)))
    except (OSError, ValueError, SafetensorError) as err:
        raise CheckpointError(f"cannot read the carried state {file}: {err}") from None
