"""Checkpoints without pickle: tensors in safetensors, everything else in JSON, written atomically
and verified before a resume.

Layout of one checkpoint directory (``RUN/checkpoints/step-000123/``)::

    model.safetensors       model weights (state_dict, DDP prefix stripped)
    optimizer.safetensors   every tensor of optimizer.state_dict()["state"], key "state.<idx>.<name>"
    trainer.json            step, epoch, batch position, optimizer scalars and param_groups,
                            scheduler state, RNG states (per rank), best metric, history length
    carry.safetensors       a language model's carried state, only when there is one: "h" (and
                            "c" for an LSTM) of shape (world_size, L, B, H), rank r's at [r] --
                            where the training streams continue at ``batch_in_epoch``
    manifest.json           written last: {"format": 2, "step": 123, "files": {name: {"size": bytes,
                            "sha256": hex}}} for every file above

A checkpoint is written into ``step-000123.tmp/``, every file fsync'ed, the manifest last (also
fsync'ed), then the directory is fsync'ed and renamed into place, the parent fsync'ed, and only
then ``RUN/checkpoints/latest`` (a one-line text file) is replaced atomically; the oldest
checkpoints beyond ``keep`` are removed after that. A write that fails part way removes its
temporary directory; a crash (``kill -9``) at any point leaves at most a ``*.tmp`` directory,
which nothing reads, and the previous checkpoint and ``latest`` intact.

``--resume`` (:func:`newest_verified_checkpoint`) takes the newest ``step-*`` directory whose
files match its manifest (size and sha256 of each). One that does not -- a missing file, a size
or hash that differs, JSON that cannot be read -- is reported in one line naming the file and the
fault, and the one before is tried. A checkpoint written before manifests existed (format 1: no
``manifest.json``, no ``"format"`` in ``trainer.json``) is checked by what its files can say of
themselves: ``trainer.json`` parses, each safetensors header parses and its tensors cover the file
exactly.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import re
import shutil
import struct
from pathlib import Path
from typing import Any

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save, save_file
from torch import Tensor, nn

from lstmkit.errors import CheckpointError, StorageError
from lstmkit.files import atomic_write_text, fsync_dir

logger = logging.getLogger(__name__)

LATEST = "latest"
CARRY_FILE = "carry.safetensors"
MODEL_FILE = "model.safetensors"
OPTIMIZER_FILE = "optimizer.safetensors"
TRAINER_FILE = "trainer.json"
MANIFEST_FILE = "manifest.json"
FORMAT = 2  # 1: no manifest (lstmkit before checkpoints were verified); 2: manifest.json
REQUIRED_FILES = (MODEL_FILE, OPTIMIZER_FILE, TRAINER_FILE)
_STEP_DIR = re.compile(r"step-(\d+)")


def save_tensors(tensors: dict[str, Tensor], path: Path) -> None:
    """safetensors file of contiguous CPU copies, fsync'ed. A write the disk refuses (full,
    read-only) is a StorageError naming the file."""
    try:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, str(path))
    except SafetensorError as err:  # safetensors' own error type for an I/O failure
        raise StorageError(
            f"{path}: cannot write the tensors ({err}); free some space or choose another --out "
            "and run again with --resume: the checkpoints before it are intact"
        ) from None
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


def _write_file(path: Path, data: bytes) -> dict[str, Any]:
    """Write ``data`` to ``path`` and fsync it; return its manifest entry (size, sha256)."""
    with open(path, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())
    return {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}


def _tensor_bytes(tensors: dict[str, Tensor]) -> bytes:
    return save({k: v.detach().contiguous().cpu() for k, v in tensors.items()})


def _step_of(path: Path) -> int | None:
    """The step of a checkpoint directory's name ``step-000123`` (None: not one, e.g. ``.tmp``)."""
    match = _STEP_DIR.fullmatch(path.name)
    return int(match.group(1)) if match else None


def checkpoint_dirs(run_dir: Path) -> list[Path]:
    """Every ``step-*`` directory of the run (no ``*.tmp``), newest (highest step) first."""
    root = run_dir / "checkpoints"
    if not root.is_dir():
        return []
    found = [p for p in root.iterdir() if _step_of(p) is not None and p.is_dir()]
    return sorted(found, key=lambda p: _step_of(p) or 0, reverse=True)


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
    """Write checkpoint ``step`` atomically (manifest last), point ``latest`` at it, prune to
    ``keep``. ``carry``: the carried state's tensors (``carry.safetensors``; none written when
    None). A write that fails part way removes its temporary directory and re-raises."""
    ckpt_root = run_dir / "checkpoints"
    ckpt_root.mkdir(parents=True, exist_ok=True)
    final = ckpt_root / f"step-{step:09d}"
    tmp = ckpt_root / f"step-{step:09d}.tmp"
    if tmp.exists():
        shutil.rmtree(tmp)
    tmp.mkdir()
    try:
        files = {MODEL_FILE: _write_file(tmp / MODEL_FILE, _tensor_bytes(model_state(model)))}
        opt_tensors, opt_meta = _split_optimizer(optimizer.state_dict())
        files[OPTIMIZER_FILE] = _write_file(tmp / OPTIMIZER_FILE, _tensor_bytes(opt_tensors))
        if carry is not None:
            files[CARRY_FILE] = _write_file(tmp / CARRY_FILE, _tensor_bytes(carry))
        payload = {**trainer_state, "step": step, "optimizer": opt_meta, "format": FORMAT}
        files[TRAINER_FILE] = _write_file(tmp / TRAINER_FILE, json.dumps(payload).encode())
        manifest = {"format": FORMAT, "step": step, "files": files}
        _write_file(tmp / MANIFEST_FILE, json.dumps(manifest, indent=1).encode())
        fsync_dir(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    stale = ckpt_root / f"step-{step:09d}.stale.tmp"  # an earlier checkpoint of this step
    if final.exists():
        shutil.rmtree(stale, ignore_errors=True)
        final.rename(stale)
    tmp.rename(final)
    fsync_dir(ckpt_root)
    atomic_write_text(ckpt_root / LATEST, final.name + "\n")  # only now: final is complete
    _prune(ckpt_root, final, keep)
    return final


def _prune(ckpt_root: Path, final: Path, keep: int) -> None:
    """Keep ``final`` and the ``keep - 1`` checkpoints before it; remove the rest, the leftovers
    of interrupted writes (``*.tmp``) and any checkpoint of a higher step than ``final`` (what a
    resume from an earlier checkpoint left behind: unverifiable, the run has moved past it)."""
    step = _step_of(final)
    assert step is not None
    older = [p for p in checkpoint_dirs(ckpt_root.parent) if (_step_of(p) or 0) < step]
    newer = [p for p in checkpoint_dirs(ckpt_root.parent) if (_step_of(p) or 0) > step]
    leftovers = [p for p in ckpt_root.glob("step-*.tmp") if p.is_dir()]
    for old in [*newer, *older[keep - 1 :], *leftovers]:
        shutil.rmtree(old, ignore_errors=True)


def latest_checkpoint(run_dir: Path) -> Path | None:
    """The directory ``latest`` points to, or None when the run has no checkpoint."""
    pointer = run_dir / "checkpoints" / LATEST
    if not pointer.exists():
        return None
    path = run_dir / "checkpoints" / pointer.read_text().strip()
    if not (path / "trainer.json").exists():
        raise CheckpointError(f"{pointer} points to {path.name}, which is missing or incomplete")
    return path


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _safetensors_fault(path: Path) -> str | None:
    """What is wrong with a safetensors file by its own account (None: its header parses and its
    tensors cover the rest of the file exactly) -- the check of a checkpoint without a manifest."""
    size = path.stat().st_size
    with open(path, "rb") as fh:
        head = fh.read(8)
        if len(head) < 8:
            return f"{size} bytes, too short for a safetensors header"
        (length,) = struct.unpack("<Q", head)
        if length > size - 8:
            return f"its header says {length} bytes of metadata, the file has {size - 8} after it"
        try:
            header = json.loads(fh.read(length))
        except (UnicodeDecodeError, json.JSONDecodeError):
            return "its safetensors header is not valid JSON"
    if not isinstance(header, dict):
        return "its safetensors header is not valid JSON"
    ends = [
        int(v["data_offsets"][1])
        for k, v in header.items()
        if k != "__metadata__" and isinstance(v, dict) and "data_offsets" in v
    ]
    expected = 8 + length + max(ends, default=0)
    if expected != size:
        return f"{size} bytes, its safetensors header describes {expected}"
    return None


def _json_fault(path: Path) -> str | None:
    try:
        payload = json.loads(path.read_bytes())
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        return f"unreadable JSON ({err})"
    return None if isinstance(payload, dict) else "unreadable JSON (not an object)"


def verify_checkpoint(path: Path) -> str | None:
    """What is wrong with checkpoint directory ``path``, as ``"FILE: fault"`` naming the first
    file at fault (None: it verifies). A checkpoint with a manifest: every file it lists exists
    with the listed size and sha256, and the three required files are listed. One without (written
    by an earlier lstmkit): ``trainer.json`` parses and each safetensors file is whole by its own
    header (sizes; its tensors' bytes carry no hash to check)."""
    manifest_file = path / MANIFEST_FILE
    trainer_file = path / TRAINER_FILE
    try:
        if not manifest_file.exists():
            for name in REQUIRED_FILES:
                if not (path / name).is_file():
                    return f"{path / name}: missing"
            fault = _json_fault(trainer_file)
            if fault is not None:
                return f"{trainer_file}: {fault}"
            written_as = json.loads(trainer_file.read_bytes()).get("format", 1)
            if not isinstance(written_as, int) or written_as >= FORMAT:
                return f"{manifest_file}: missing (its trainer.json is of format {FORMAT})"
            for name in (MODEL_FILE, OPTIMIZER_FILE, CARRY_FILE):
                file = path / name
                if file.exists() and (fault := _safetensors_fault(file)) is not None:
                    return f"{file}: {fault}"
            return None
        fault = _json_fault(manifest_file)
        if fault is not None:
            return f"{manifest_file}: {fault}"
        files = json.loads(manifest_file.read_bytes()).get("files")
        if not isinstance(files, dict) or any(name not in files for name in REQUIRED_FILES):
            return f"{manifest_file}: does not list {', '.join(REQUIRED_FILES)}"
        for name, entry in files.items():
            file = path / str(name)
            if not file.is_file():
                return f"{file}: missing"
            if not isinstance(entry, dict):
                return f"{manifest_file}: the entry of {name} is not an object"
            size = file.stat().st_size
            if size != entry.get("size"):
                return f"{file}: {size} bytes, the manifest says {entry.get('size')}"
            digest = _sha256(file)
            if digest != entry.get("sha256"):
                return f"{file}: sha256 {digest[:12]}..., the manifest says {str(entry.get('sha256'))[:12]}..."
    except OSError as err:
        return f"{path}: cannot be read ({err.strerror or err})"
    return None


def newest_verified_checkpoint(run_dir: Path, *, report: bool = True) -> Path | None:
    """The newest (highest-step) checkpoint of the run that verifies (:func:`verify_checkpoint`),
    the one ``--resume`` continues from. Each newer one that does not verify is reported in one
    warning line naming the file and the fault (``report``: False on all but one process of a
    distributed job). None: the run has no checkpoint at all. Raises :class:`CheckpointError`
    when there are checkpoints and none verifies."""
    root = run_dir / "checkpoints"
    candidates = checkpoint_dirs(run_dir)
    pointer = root / LATEST
    named = pointer.read_text(errors="replace").strip() if pointer.is_file() else None
    if named is not None and not (root / named).is_dir() and report:
        logger.warning(
            "checkpoint %s named by %s is missing; looking for the newest one that verifies",
            named,
            pointer,
        )
    if not candidates:
        if named is None:
            return None
        raise CheckpointError(
            f"{pointer} names {named}, which is missing, and {root} holds no other checkpoint"
        )
    faults = []
    for path in candidates:
        fault = verify_checkpoint(path)
        if fault is None:
            return path
        faults.append(fault)
        if report:
            logger.warning("checkpoint %s does not verify, skipped: %s", path.name, fault)
    raise CheckpointError(
        f"no checkpoint in {root} verifies ({len(candidates)} checked; the newest: {faults[0]})"
    )


def load_checkpoint(
    path: Path, model: nn.Module, optimizer: torch.optim.Optimizer
) -> dict[str, Any]:
    """Load weights and optimizer state from ``path``; return the trainer state (JSON part)."""
    try:
        payload: dict[str, Any] = json.loads((path / TRAINER_FILE).read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as err:
        raise CheckpointError(f"cannot read {path / TRAINER_FILE}: {err}") from None
    load_model_state(model, path / MODEL_FILE)
    try:
        tensors = load_file(str(path / OPTIMIZER_FILE))
        optimizer.load_state_dict(_join_optimizer(tensors, payload.pop("optimizer")))
    except (OSError, ValueError, KeyError, SafetensorError) as err:
        raise CheckpointError(
            f"cannot read the optimizer state {path / OPTIMIZER_FILE}: {err}"
        ) from None
    payload.pop("format", None)
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
