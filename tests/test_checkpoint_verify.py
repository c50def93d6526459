"""Checkpoints that verify: a corrupt or incomplete newest checkpoint is named in one line and the
resume continues from the one before, to the weights of an uninterrupted run; a save that fails
part way leaves no incomplete ``step-*`` and ``latest`` naming a complete one; checkpoints of an
earlier lstmkit (no manifest) still load; none verifies -> one clear error, exit 2 in the CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

import lstmkit.checkpoint as ckpt_mod
from lstmkit.checkpoint import (
    MANIFEST_FILE,
    checkpoint_dirs,
    latest_checkpoint,
    newest_verified_checkpoint,
    verify_checkpoint,
)
from lstmkit.cli import main
from lstmkit.config import TrainConfig
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.errors import CheckpointError
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.train import Trainer

NEWEST = "step-000000008"
STEPS = 12  # 2 epochs of 6 batches


def _data() -> SequenceDataset:
    rng = np.random.default_rng(0)
    xs, ys = [], []
    for i in range(96):
        seq = rng.integers(8, 30, size=int(rng.integers(3, 12)))
        if i % 2:
            seq[0] = 7
        xs.append(seq.tolist())
        ys.append(i % 2)
    return SequenceDataset(xs, np.array(ys))


def _trainer(run_dir: Path, seed: int = 0, **cfg: Any) -> Trainer:
    torch.manual_seed(seed)
    model = SequenceClassifier(
        ClassifierConfig(vocab_size=30, embedding_dim=6, hidden_size=8, dropout=0.2)
    )
    base = {"batch_size": 16, "epochs": 2, "lr": 0.01, "seed": 0, "evaluate_every": 2}
    return Trainer(
        model,
        TrainConfig(**{**base, "keep_checkpoints": 3, **cfg}),
        num_classes=2,
        collate=collate_tokens,
        run_dir=run_dir,
        progress=False,
    )


def _fit(trainer: Trainer, resume: bool = False) -> Trainer:
    data = _data()
    trainer.fit(data, data.lengths, resume=resume)
    return trainer


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in trainer.model.state_dict().items()}


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, torch.Tensor], Path]:
    """The uninterrupted run's final weights, and a run stopped after 8 steps (checkpoints 4, 6,
    8) to copy and damage."""
    root = tmp_path_factory.mktemp("runs")
    full = _weights(_fit(_trainer(root / "full")))
    _fit(_trainer(root / "part", max_steps=8))
    assert [p.name for p in checkpoint_dirs(root / "part")] == [
        NEWEST,
        "step-000000006",
        "step-000000004",
    ]
    return full, root / "part"


def _resume_and_compare(run: Path, full: dict[str, torch.Tensor]) -> Trainer:
    resumed = _fit(_trainer(run, seed=123), resume=True)  # another init: all from the checkpoint
    assert resumed.step == STEPS
    for name, value in _weights(resumed).items():
        assert torch.equal(value, full[name]), name
    return resumed


def _truncate(file: Path) -> None:
    file.write_bytes(file.read_bytes()[: file.stat().st_size // 2])


def _flip(file: Path) -> None:
    data = bytearray(file.read_bytes())
    at = len(data) - 5  # the tensors' bytes (or the JSON's end): the header still parses
    data[at] ^= 0xFF
    file.write_bytes(bytes(data))


def _manifest(ckpt: Path) -> dict[str, Any]:
    files: dict[str, Any] = json.loads((ckpt / MANIFEST_FILE).read_text())["files"]
    return files


def _size_fault(ckpt: Path, name: str, size: int) -> str:
    return f"{ckpt / name}: {size} bytes, the manifest says {_manifest(ckpt)[name]['size']}"


def _sha_fault(ckpt: Path, name: str, data: bytes) -> str:
    got = hashlib.sha256(data).hexdigest()[:12]
    return f"{ckpt / name}: sha256 {got}..., the manifest says {_manifest(ckpt)[name]['sha256'][:12]}..."


def _damage(kind: str, ckpt: Path) -> str:
    """Damage checkpoint ``ckpt`` as ``kind`` says; return the fault the warning must name."""
    name = {"weights": "model.safetensors", "optimizer": "optimizer.safetensors"}.get(
        kind.split("-")[0], "trainer.json"
    )
    file = ckpt / name
    if kind.endswith("-truncated"):
        _truncate(file)
        return _size_fault(ckpt, name, file.stat().st_size)
    if kind.endswith("-flipped"):
        _flip(file)
        return _sha_fault(ckpt, name, file.read_bytes())
    if kind.endswith("-deleted"):
        file.unlink()
        return f"{file}: missing"
    if kind == "manifest-unreadable":
        (ckpt / MANIFEST_FILE).write_text('{"format": 2, "files": {')
        return f"{ckpt / MANIFEST_FILE}: unreadable JSON (Expecting property name enclosed in double quotes: line 1 column 25 (char 24))"
    assert kind == "manifest-deleted"
    (ckpt / MANIFEST_FILE).unlink()
    return f"{ckpt / MANIFEST_FILE}: missing (its trainer.json is of format 2)"


KINDS = [
    "weights-truncated", "weights-flipped", "weights-deleted",
    "optimizer-truncated", "optimizer-flipped", "optimizer-deleted",
    "json-truncated", "json-flipped", "json-deleted",
    "manifest-unreadable", "manifest-deleted",
]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_a_damaged_newest_checkpoint_is_named_and_the_one_before_resumes_exactly(
    kind: str, runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:  # fmt: skip
    full, part = runs
    run = tmp_path / "run"
    shutil.copytree(part, run)
    fault = _damage(kind, run / "checkpoints" / NEWEST)
    assert verify_checkpoint(run / "checkpoints" / NEWEST) == fault
    with caplog.at_level(logging.INFO, logger="lstmkit"):
        _resume_and_compare(run, full)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"checkpoint {NEWEST} does not verify, skipped: {fault}"]
    assert any(
        r.getMessage() == f"resumed from {run / 'checkpoints' / 'step-000000006'} (step 6)"
        for r in caplog.records
    )
    # the resumed run wrote a new, verified step 8 over the damaged one; latest names the last
    assert [p.name for p in checkpoint_dirs(run)][0] == f"step-{STEPS:09d}"
    assert all(verify_checkpoint(p) is None for p in checkpoint_dirs(run))
    assert latest_checkpoint(run) == run / "checkpoints" / f"step-{STEPS:09d}"
    assert not list((run / "checkpoints").glob("*.tmp"))


def _as_format_1(run: Path) -> None:
    """Make every checkpoint look written by lstmkit before manifests: no manifest, no format."""
    for ckpt in checkpoint_dirs(run):
        (ckpt / MANIFEST_FILE).unlink()
        state = json.loads((ckpt / "trainer.json").read_text())
        del state["format"]
        (ckpt / "trainer.json").write_text(json.dumps(state))


def test_checkpoints_without_a_manifest_still_resume_exactly(
    runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full, part = runs
    shutil.copytree(part, tmp_path / "run")
    _as_format_1(tmp_path / "run")
    assert all(verify_checkpoint(p) is None for p in checkpoint_dirs(tmp_path / "run"))
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        _resume_and_compare(tmp_path / "run", full)
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]


def test_a_truncated_checkpoint_without_a_manifest_is_caught_by_its_header(
    runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    full, part = runs
    run = tmp_path / "run"
    shutil.copytree(part, run)
    _as_format_1(run)
    weights = run / "checkpoints" / NEWEST / "model.safetensors"
    whole = weights.stat().st_size
    _truncate(weights)
    fault = f"{weights}: {weights.stat().st_size} bytes, its safetensors header describes {whole}"
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        _resume_and_compare(run, full)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [f"checkpoint {NEWEST} does not verify, skipped: {fault}"]


def test_a_crash_between_writes_leaves_a_tmp_and_latest_naming_a_missing_checkpoint(
    runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """kill -9 of a save of step 10 after the old step 10 was moved aside: a half-written
    ``step-000000010.tmp``, ``latest`` naming ``step-000000010``; the resume takes step 8."""
    full, part = runs
    root = tmp_path / "run" / "checkpoints"
    shutil.copytree(part, tmp_path / "run")
    (root / "step-000000010.tmp").mkdir()
    (root / "step-000000010.tmp" / "model.safetensors").write_bytes(b"\0" * 10)
    (root / "latest").write_text("step-000000010\n")
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        _resume_and_compare(tmp_path / "run", full)
    warnings = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert warnings == [
        f"checkpoint step-000000010 named by {root / 'latest'} is missing; "
        "looking for the newest one that verifies"
    ]
    assert not list(root.glob("*.tmp"))  # the next save cleared what the crash left


@pytest.mark.parametrize("failing_write", [1, 2, 3, 4, "latest"])
def test_a_save_that_fails_part_way_leaves_complete_checkpoints_only(
    failing_write: int | str, runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:  # fmt: skip
    """The third save (step 6) fails at its 1st..4th file (weights, optimizer, trainer.json,
    manifest) or at moving ``latest``: no incomplete ``step-*`` stays, ``latest`` and the pruned
    set name complete checkpoints, and a resume reaches the uninterrupted weights."""
    full, _ = runs
    run = tmp_path / "run"
    real_write, real_latest = ckpt_mod._write_file, ckpt_mod.atomic_write_text
    writes = {"n": 0}

    def write(path: Path, data: bytes) -> dict[str, Any]:
        writes["n"] += 1
        if failing_write == writes["n"] - 8:  # 4 files per save: the first two saves pass
            path.write_bytes(data[: len(data) // 2])
            raise OSError(28, "No space left on device")
        return real_write(path, data)

    def move_latest(path: Path, text: str) -> None:
        if failing_write == "latest" and text.startswith("step-000000006"):
            raise OSError(28, "No space left on device")
        real_latest(path, text)

    monkeypatch.setattr(ckpt_mod, "_write_file", write)
    monkeypatch.setattr(ckpt_mod, "atomic_write_text", move_latest)
    with pytest.raises(OSError, match="No space left"):
        _fit(_trainer(run, keep_checkpoints=2))
    monkeypatch.undo()
    names = sorted(p.name for p in (run / "checkpoints").iterdir())
    if failing_write == "latest":  # step 6 is complete and renamed; latest still names step 4
        assert names == ["latest", "step-000000002", "step-000000004", "step-000000006"]
    else:
        assert names == ["latest", "step-000000002", "step-000000004"]
    assert latest_checkpoint(run) == run / "checkpoints" / "step-000000004"
    assert all(verify_checkpoint(p) is None for p in checkpoint_dirs(run))
    _resume_and_compare(run, full)


def _damage_all(run: Path) -> None:
    for ckpt in checkpoint_dirs(run):
        _truncate(ckpt / "model.safetensors")


def test_no_checkpoint_verifies_one_clear_error(
    runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path
) -> None:
    _, part = runs
    shutil.copytree(part, tmp_path / "run")
    _damage_all(tmp_path / "run")
    newest = tmp_path / "run" / "checkpoints" / NEWEST
    with pytest.raises(CheckpointError) as err:
        newest_verified_checkpoint(tmp_path / "run", report=False)
    assert str(err.value) == (
        f"no checkpoint in {tmp_path / 'run' / 'checkpoints'} verifies (3 checked; the newest: "
        f"{_size_fault(newest, 'model.safetensors', (newest / 'model.safetensors').stat().st_size)})"
    )
    assert newest_verified_checkpoint(tmp_path / "empty") is None


def _cli_run(tmp_path: Path) -> Callable[..., list[str]]:
    rng = np.random.default_rng(0)
    words = ["good", "bad", "fine", "poor"]
    csv = tmp_path / "s.csv"
    rows = [f"{' '.join(rng.choice(words, size=5))},{i % 2}" for i in range(60)]
    csv.write_text("text,label\n" + "\n".join(rows) + "\n")

    def args(*extra: str) -> list[str]:
        return [
            "train", "--task", "text", "--train", str(csv), "--text-column", "text",
            "--label-column", "label", "--baseline", "none", "--out", str(tmp_path / "run"),
            "--no-progress", "--set", "pretrain.method=none", "--set", "train.evaluate_every=2",
            "--set", "model.hidden_size=4", "--set", "model.embedding_dim=4", *extra,
        ]  # fmt: skip

    return args


def test_cli_resume_past_a_corrupt_checkpoint_and_none_left_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    args = _cli_run(tmp_path)
    assert main(args("--set", "train.max_steps=4")) == 0
    run = tmp_path / "run"
    _truncate(run / "checkpoints" / "step-000000004" / "model.safetensors")
    capsys.readouterr()
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert main(args("--set", "train.max_steps=6", "--resume")) == 0
    warnings = [r.getMessage() for r in caplog.records if r.name == "lstmkit.checkpoint"]
    assert len(warnings) == 1 and warnings[0].startswith(
        f"checkpoint step-000000004 does not verify, skipped: {run / 'checkpoints' / 'step-000000004' / 'model.safetensors'}: "
    )
    assert "Traceback" not in capsys.readouterr().err

    _damage_all(run)
    assert main(args("--set", "train.max_steps=8", "--resume")) == 2
    err = capsys.readouterr().err
    assert "Traceback" not in err
    assert err.count("\n") == 1 and err.startswith(
        f"lstmkit train: error: no checkpoint in {run / 'checkpoints'} verifies (2 checked; the newest: "
    )
