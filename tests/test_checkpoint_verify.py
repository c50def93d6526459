"""Checkpoints that verify: a corrupt or incomplete newest checkpoint is named in one line and the
resume continues from the one before, to the weights of an uninterrupted run; a save that fails
part way leaves no incomplete ``step-*`` and ``latest`` naming a complete one; checkpoints of an
earlier lstmkit (no manifest) still load; none verifies -> one clear error, exit 2 in the CLI."""

from __future__ import annotations

import hashlib
import json
import logging
import re
import shutil
import struct
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from safetensors.torch import load_file, save_file

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
from lstmkit.errors import CheckpointError, StorageError
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


# -- the guards one by one: exact outcomes and messages (fast; no training) --------------------
def _st_file(path: Path, header: Any, data: bytes = b"", length: int | None = None) -> Path:
    """A safetensors-like file: 8-byte little-endian header length, the header, the data."""
    raw = header if isinstance(header, bytes) else json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw) if length is None else length) + raw + data)
    return path


def _tensor(name: str = "w") -> dict[str, Any]:
    return {name: {"dtype": "F32", "shape": [1], "data_offsets": [0, 4]}}


def test_safetensors_fault_names_each_way_a_header_can_be_wrong(tmp_path: Path) -> None:
    fault = ckpt_mod._safetensors_fault
    short = tmp_path / "short"
    short.write_bytes(b"\1\2\3\4\5\6\7")
    assert fault(short) == "7 bytes, too short for a safetensors header"
    short.write_bytes(b"")
    assert fault(short) == "0 bytes, too short for a safetensors header"
    # the header fills the file exactly (length == size - 8), no tensors: whole
    assert fault(_st_file(tmp_path / "empty", {})) is None
    assert fault(_st_file(tmp_path / "one", _tensor(), b"\0" * 4)) is None
    assert fault(_st_file(tmp_path / "long", {}, length=3)) == (
        "its header says 3 bytes of metadata, the file has 2 after it"
    )
    assert fault(_st_file(tmp_path / "long2", {}, b"\0" * 5, length=100)) == (
        "its header says 100 bytes of metadata, the file has 7 after it"
    )
    assert fault(_st_file(tmp_path / "bad", b"{nope")) == "its safetensors header is not valid JSON"
    assert fault(_st_file(tmp_path / "bin", b"{\x80}")) == (
        "its safetensors header is not valid JSON"
    )
    assert fault(_st_file(tmp_path / "list", [1, 2])) == "its safetensors header is not valid JSON"
    assert fault(_st_file(tmp_path / "cut", _tensor(), b"\0" * 3)) == (
        f"{8 + 2 + len(json.dumps(_tensor())) + 1} bytes, its safetensors header describes "
        f"{8 + len(json.dumps(_tensor())) + 4}"
    )
    # the data's end is the largest data_offsets end of the tensors; __metadata__ and entries
    # that are not tensors do not count
    odd = {
        "__metadata__": {"data_offsets": [0, 999]},
        "note": ["data_offsets"],
        "b": {"dtype": "F32", "shape": [2], "data_offsets": [4, 12]},
        **_tensor("a"),
        "c": {"dtype": "F32", "shape": [0]},
    }
    assert fault(_st_file(tmp_path / "odd", odd, b"\0" * 12)) is None
    grown = _st_file(tmp_path / "grown", odd, b"\0" * 13)
    assert fault(grown) == (
        f"{grown.stat().st_size} bytes, its safetensors header describes {grown.stat().st_size - 1}"
    )
    # the length is unsigned: 8 bytes of 0xff are 2**64 - 1 bytes of metadata, not -1
    huge = tmp_path / "huge"
    huge.write_bytes(b"\xff" * 8 + b"{}")
    assert fault(huge) == (
        f"its header says {2**64 - 1} bytes of metadata, the file has 2 after it"
    )
    real = tmp_path / "real.safetensors"
    save_file({"x": torch.arange(6.0), "y": torch.ones(2, 2)}, str(real), metadata={"k": "v"})
    assert fault(real) is None


def test_json_fault(tmp_path: Path) -> None:
    file = tmp_path / "t.json"
    file.write_text('{"a": 1}')
    assert ckpt_mod._json_fault(file) is None
    file.write_text("[1]")
    assert ckpt_mod._json_fault(file) == "unreadable JSON (not an object)"
    file.write_text('{"a": ')
    assert ckpt_mod._json_fault(file) == (
        "unreadable JSON (Expecting value: line 1 column 7 (char 6))"
    )
    file.write_bytes(b"\xff{}")
    assert ckpt_mod._json_fault(file).startswith("unreadable JSON ('utf-8' codec can't decode")


def test_step_of_and_checkpoint_dirs_sort_numerically_newest_first(tmp_path: Path) -> None:
    assert ckpt_mod._step_of(Path("step-000000012")) == 12
    assert ckpt_mod._step_of(Path("step-7")) == 7
    assert ckpt_mod._step_of(Path("step-0")) == 0
    for name in ("step-12.tmp", "step-x", "xstep-3", "step-", "latest", "step-3.stale.tmp"):
        assert ckpt_mod._step_of(Path(name)) is None, name
    assert checkpoint_dirs(tmp_path) == []  # no checkpoints/ folder
    root = tmp_path / "checkpoints"
    root.mkdir()
    assert checkpoint_dirs(tmp_path) == []
    for name in ("step-9", "step-10", "step-0", "step-100", "step-11.tmp"):
        (root / name).mkdir()
    (root / "step-50").write_text("a file, not a checkpoint")
    (root / "latest").write_text("step-100\n")
    assert [p.name for p in checkpoint_dirs(tmp_path)] == [
        "step-100",
        "step-10",
        "step-9",
        "step-0",
    ]


@pytest.mark.parametrize("listing", ["by name", "by name reversed"])
def test_checkpoint_dirs_put_step_1_before_step_0_whatever_order_the_folder_lists(
    listing: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The order is the steps', not the filesystem's: step 0 is older than step 1 whichever
    the directory lists first."""
    root = tmp_path / "checkpoints"
    for name in ("step-000000000", "step-000000001", "step-000000002"):
        (root / name).mkdir(parents=True)
    real = Path.iterdir

    def iterdir(self: Path) -> Any:
        return iter(sorted(real(self), reverse=listing.endswith("reversed")))

    monkeypatch.setattr(Path, "iterdir", iterdir)
    assert [p.name for p in checkpoint_dirs(tmp_path)] == [
        "step-000000002",
        "step-000000001",
        "step-000000000",
    ]


def test_write_file_returns_size_and_sha256(tmp_path: Path) -> None:
    data = b"some bytes\n" * 1000
    entry = ckpt_mod._write_file(tmp_path / "f", data)
    assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}
    assert (tmp_path / "f").read_bytes() == data
    big = bytes(range(256)) * 5000  # over one read block of _sha256 (1 MiB)
    (tmp_path / "big").write_bytes(big)
    assert ckpt_mod._sha256(tmp_path / "big") == hashlib.sha256(big).hexdigest()
    (tmp_path / "none").write_bytes(b"")
    assert ckpt_mod._sha256(tmp_path / "none") == hashlib.sha256(b"").hexdigest()


def test_save_tensors_writes_contiguous_cpu_copies(tmp_path: Path) -> None:
    t = torch.arange(12.0).reshape(3, 4).t()  # not contiguous
    ckpt_mod.save_tensors({"t": t}, tmp_path / "t.safetensors")
    back = load_file(str(tmp_path / "t.safetensors"))
    assert list(back) == ["t"] and torch.equal(back["t"], t)
    target = tmp_path / "no-folder" / "w.safetensors"
    with pytest.raises(StorageError) as err:
        ckpt_mod.save_tensors({"w": torch.zeros(1)}, target)
    message = str(err.value)
    assert message.startswith(f"{target}: cannot write the tensors (")
    assert message.endswith(
        "); free some space or choose another --out and run again with --resume: the "
        "checkpoints before it are intact"
    )
    assert err.value.__cause__ is None and err.value.__suppress_context__


class _Wrapped(torch.nn.Module):
    """What DistributedDataParallel looks like from here: the model as ``.module``."""

    def __init__(self, inner: torch.nn.Module) -> None:
        super().__init__()
        self.module = inner


def test_unwrap_and_model_state_strip_the_ddp_wrapper(tmp_path: Path) -> None:
    inner = torch.nn.Linear(2, 3)
    assert ckpt_mod.unwrap(inner) is inner
    assert ckpt_mod.unwrap(_Wrapped(inner)) is inner
    state = ckpt_mod.model_state(_Wrapped(inner))
    assert sorted(state) == ["bias", "weight"] and torch.equal(state["weight"], inner.weight)
    # and loads back into a wrapped model
    other = torch.nn.Linear(2, 3)
    ckpt_mod.save_tensors(state, tmp_path / "m.safetensors")
    ckpt_mod.load_model_state(_Wrapped(other), tmp_path / "m.safetensors")
    assert torch.equal(other.weight, inner.weight) and torch.equal(other.bias, inner.bias)


def test_load_model_state_refuses_what_does_not_fit(tmp_path: Path) -> None:
    model = torch.nn.Linear(2, 3)
    file = tmp_path / "m.safetensors"
    ckpt_mod.save_tensors({"weight": torch.zeros(3, 2), "extra": torch.zeros(1)}, file)
    with pytest.raises(CheckpointError) as err:
        ckpt_mod.load_model_state(model, file)
    assert (
        str(err.value) == f"{file} does not fit the model: missing ['bias'], unexpected ['extra']"
    )
    ckpt_mod.save_tensors({"weight": torch.zeros(3, 2)}, file)
    with pytest.raises(CheckpointError, match=r"missing \['bias'\], unexpected \[\]$"):
        ckpt_mod.load_model_state(model, file)
    ckpt_mod.save_tensors({"weight": torch.zeros(2, 3), "bias": torch.zeros(3)}, file)
    with pytest.raises(CheckpointError) as err:
        ckpt_mod.load_model_state(model, file)
    assert str(err.value) == f"{file}: 'weight' has shape (2, 3), the model expects (3, 2)"
    before = model.weight.detach().clone()
    file.write_bytes(b"\0" * 3)
    with pytest.raises(CheckpointError) as err:
        ckpt_mod.load_model_state(model, file)
    assert str(err.value).startswith(f"cannot read weights {file}: ")
    (tmp_path / "gone.safetensors").unlink(missing_ok=True)
    with pytest.raises(CheckpointError, match="cannot read weights"):
        ckpt_mod.load_model_state(model, tmp_path / "gone.safetensors")
    assert torch.equal(model.weight, before)  # nothing loaded


def test_optimizer_state_splits_into_tensors_and_json_and_joins_back() -> None:
    t0, t1 = torch.arange(3.0), torch.ones(2)
    state = {
        "state": {0: {"exp_avg": t0, "step": 3, "a.b": t1}, 2: {"count": 7}},
        "param_groups": [{"lr": 0.1, "params": [0, 2]}],
    }
    tensors, meta = ckpt_mod._split_optimizer(state)
    assert set(tensors) == {"state.0.exp_avg", "state.0.a.b"}
    assert tensors["state.0.exp_avg"] is t0
    assert meta == {
        "scalars": {"0": {"step": 3}, "2": {"count": 7}},
        "param_groups": [{"lr": 0.1, "params": [0, 2]}],
    }
    meta = json.loads(json.dumps(meta))  # as it comes back from trainer.json
    joined = ckpt_mod._join_optimizer(tensors, meta)
    assert set(joined) == {"state", "param_groups"}
    assert sorted(joined["state"]) == [0, 2]
    assert joined["state"][0]["exp_avg"] is t0 and joined["state"][0]["a.b"] is t1
    assert joined["state"][0]["step"] == 3 and joined["state"][2] == {"count": 7}
    assert joined["param_groups"] == [{"lr": 0.1, "params": [0, 2]}]


def test_rng_state_round_trips() -> None:
    state = json.loads(json.dumps(ckpt_mod.rng_state()))
    assert set(state) == ({"torch", "cuda"} if torch.cuda.is_available() else {"torch"})
    ahead = torch.rand(5)
    torch.rand(7)
    ckpt_mod.set_rng_state(state)
    assert torch.equal(torch.rand(5), ahead)


def test_rng_state_keeps_every_cuda_device_s_state_where_there_is_cuda(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The CUDA branch, run on a machine without one: torch.cuda's RNG calls stand in."""
    devices = [torch.tensor([1, 2, 3], dtype=torch.uint8), torch.tensor([250], dtype=torch.uint8)]
    restored: list[list[torch.Tensor]] = []
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_rng_state_all", lambda: devices)
    monkeypatch.setattr(torch.cuda, "set_rng_state_all", restored.append)
    state = json.loads(json.dumps(ckpt_mod.rng_state()))
    assert sorted(state) == ["cuda", "torch"]
    assert state["cuda"] == [[1, 2, 3], [250]]
    ckpt_mod.set_rng_state(state)
    assert len(restored) == 1 and len(restored[0]) == 2
    for got, want in zip(restored[0], devices, strict=True):
        assert got.dtype == torch.uint8 and torch.equal(got, want)
    ckpt_mod.set_rng_state({"torch": state["torch"]})  # a CPU checkpoint on a CUDA machine
    assert len(restored) == 1
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    ckpt_mod.set_rng_state(state)  # a CUDA checkpoint on a CPU machine: the CPU state only
    assert len(restored) == 1


def _opt_model() -> tuple[torch.nn.Module, torch.optim.Optimizer]:
    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=0.01)
    model(torch.ones(4, 3)).sum().backward()
    opt.step()
    return model, opt


def _save(run: Path, step: int, keep: int = 5, **kw: Any) -> Path:
    model, opt = _opt_model()
    return ckpt_mod.save_checkpoint(
        run, step=step, model=model, optimizer=opt, trainer_state={"epoch": 1, **kw}, keep=keep
    )


def test_save_checkpoint_writes_a_manifest_of_every_file_and_points_latest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    (run / "checkpoints" / "step-000000003.tmp").mkdir(parents=True)  # what a crash left
    (run / "checkpoints" / "step-000000003.tmp" / "junk").write_text("x")
    model, opt = _opt_model()
    carry = {"h": torch.ones(1, 1, 2, 4)}
    path = ckpt_mod.save_checkpoint(
        run, step=3, model=model, optimizer=opt, trainer_state={"epoch": 1}, keep=2, carry=carry
    )
    assert path == run / "checkpoints" / "step-000000003"
    assert (run / "checkpoints" / "latest").read_text() == "step-000000003\n"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000003"]
    assert sorted(p.name for p in path.iterdir()) == sorted(
        ["model.safetensors", "optimizer.safetensors", "carry.safetensors", "trainer.json",
         "manifest.json"]
    )  # fmt: skip
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["format"] == 2 and manifest["step"] == 3
    assert sorted(manifest["files"]) == sorted(
        ["model.safetensors", "optimizer.safetensors", "carry.safetensors", "trainer.json"]
    )
    for name, entry in manifest["files"].items():
        data = (path / name).read_bytes()
        assert entry == {"size": len(data), "sha256": hashlib.sha256(data).hexdigest()}, name
    trainer = json.loads((path / "trainer.json").read_text())
    assert trainer["epoch"] == 1 and trainer["step"] == 3 and trainer["format"] == 2
    assert set(trainer["optimizer"]) == {"scalars", "param_groups"}
    assert verify_checkpoint(path) is None
    assert torch.equal(ckpt_mod.load_carry(path)["h"], carry["h"])
    other = torch.nn.Linear(3, 2)
    opt2 = torch.optim.Adam(other.parameters(), lr=0.5)
    state = ckpt_mod.load_checkpoint(path, other, opt2)
    assert state == {"epoch": 1, "step": 3}  # the optimizer's and the format's keys taken out
    assert torch.equal(other.weight, model.weight)
    assert opt2.param_groups[0]["lr"] == 0.01
    for key, value in opt.state_dict()["state"][0].items():
        assert torch.equal(opt2.state_dict()["state"][0][key], value), key
    no_carry = _save(tmp_path / "plain", 1)
    assert not (no_carry / "carry.safetensors").exists()
    assert ckpt_mod.load_carry(no_carry) is None
    assert "carry.safetensors" not in json.loads((no_carry / "manifest.json").read_text())["files"]


def test_saving_a_step_again_replaces_it_and_pruning_keeps_the_newest(tmp_path: Path) -> None:
    run = tmp_path / "run"
    for step in (1, 2, 3, 4):
        _save(run, step, keep=2, tag=step)
    root = run / "checkpoints"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000000003", "step-000000004"]
    _save(run, 4, keep=2, tag="again")  # the same step again: the new one replaces the old
    assert json.loads((root / "step-000000004" / "trainer.json").read_text())["tag"] == "again"
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000000003", "step-000000004"]
    _save(run, 5, keep=1)
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000000005"]
    for step in (6, 7, 8):
        _save(run, step, keep=3)
    assert [p.name for p in checkpoint_dirs(run)] == [
        "step-000000008", "step-000000007", "step-000000006",
    ]  # fmt: skip
    # a resume from step 6 saves step 7 again: the newer step 8 goes, a stray .tmp folder too
    (root / "step-000000002.tmp").mkdir()
    (root / "step-000000001.tmp").write_text("a file is left alone")
    _save(run, 7, keep=3)
    assert sorted(p.name for p in root.iterdir()) == [
        "latest", "step-000000001.tmp", "step-000000006", "step-000000007",
    ]  # fmt: skip
    assert latest_checkpoint(run) == root / "step-000000007"


def test_a_checkpoint_of_step_0_is_pruned_and_kept_like_any_other(tmp_path: Path) -> None:
    run = tmp_path / "run"
    root = run / "checkpoints"
    first = _save(run, 0, keep=1)
    assert first == root / "step-000000000" and verify_checkpoint(first) is None
    assert latest_checkpoint(run) == first  # step 0 is not "newer" than itself
    _save(run, 1, keep=1)  # keep 1: step 0 is the one before, and goes
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000000001"]
    _save(run, 0, keep=3)  # a resume from step 0: step 1 is newer, and goes
    assert sorted(p.name for p in root.iterdir()) == ["latest", "step-000000000"]


def test_saving_a_step_again_clears_the_leftover_of_an_interrupted_replace(tmp_path: Path) -> None:
    """A replace of step 4 stopped after moving the old one aside left ``*.stale.tmp``; the next
    save of step 4 removes it before moving the old one there (a rename onto a non-empty
    directory fails)."""
    run = tmp_path / "run"
    _save(run, 4, tag="first")
    stale = run / "checkpoints" / "step-000000004.stale.tmp"
    stale.mkdir()
    (stale / "trainer.json").write_text("{}")
    path = _save(run, 4, tag="again")
    assert json.loads((path / "trainer.json").read_text())["tag"] == "again"
    assert verify_checkpoint(path) is None
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000004"]


def test_a_failed_save_raises_its_own_error_when_its_tmp_is_gone_already(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The write fails with its temporary directory already removed (by whatever broke it): the
    caller gets the write's error, not the cleanup's FileNotFoundError; the saved ones stand."""
    run = tmp_path / "run"
    before = _save(run, 1)

    def write(path: Path, data: bytes) -> dict[str, Any]:
        shutil.rmtree(path.parent)
        raise StorageError(f"{path}: cannot write the checkpoint (the disk went away)")

    monkeypatch.setattr(ckpt_mod, "_write_file", write)
    with pytest.raises(StorageError, match="the disk went away"):
        _save(run, 2)
    monkeypatch.undo()
    assert checkpoint_dirs(run) == [before] and latest_checkpoint(run) == before
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000001"]


def test_pruning_a_checkpoint_removed_behind_its_back_does_not_fail_the_save(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The oldest checkpoint disappears between the prune's listing and its removal (a person
    clearing old checkpoints by hand): the save, complete and pointed to, still succeeds."""
    run = tmp_path / "run"
    for step in (1, 2):
        _save(run, step, keep=1 + step)
    real = ckpt_mod.checkpoint_dirs

    def listing(run_dir: Path) -> list[Path]:
        found = real(run_dir)
        shutil.rmtree(run_dir / "checkpoints" / "step-000000001", ignore_errors=True)
        return found

    monkeypatch.setattr(ckpt_mod, "checkpoint_dirs", listing)
    path = _save(run, 3, keep=1)
    monkeypatch.undo()
    assert path == run / "checkpoints" / "step-000000003" and verify_checkpoint(path) is None
    assert latest_checkpoint(run) == path
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step-000000003"]


def test_latest_checkpoint(tmp_path: Path) -> None:
    assert latest_checkpoint(tmp_path) is None
    path = _save(tmp_path, 2)
    assert latest_checkpoint(tmp_path) == path
    (tmp_path / "checkpoints" / "latest").write_text("step-000000009\n")
    with pytest.raises(CheckpointError) as err:
        latest_checkpoint(tmp_path)
    assert str(err.value) == (
        f"{tmp_path / 'checkpoints' / 'latest'} points to step-000000009, which is missing or "
        "incomplete"
    )


def test_verify_checkpoint_names_the_file_and_the_fault(tmp_path: Path) -> None:
    path = _save(tmp_path / "run", 1)
    manifest = path / "manifest.json"
    good = manifest.read_text()
    assert verify_checkpoint(path) is None

    def with_files(files: Any) -> str | None:
        manifest.write_text(json.dumps({"format": 2, "step": 1, "files": files}))
        return verify_checkpoint(path)

    files = json.loads(good)["files"]
    required = "model.safetensors, optimizer.safetensors, trainer.json"
    assert with_files(None) == f"{manifest}: does not list {required}"
    assert with_files([]) == f"{manifest}: does not list {required}"
    for name in ("model.safetensors", "optimizer.safetensors", "trainer.json"):
        rest = {k: v for k, v in files.items() if k != name}
        assert with_files(rest) == f"{manifest}: does not list {required}", name
    assert with_files({**files, "extra.bin": {"size": 1, "sha256": "0"}}) == (
        f"{path / 'extra.bin'}: missing"
    )
    (path / "extra.bin").write_bytes(b"x")
    assert with_files({**files, "extra.bin": [1]}) == (
        f"{manifest}: the entry of extra.bin is not an object"
    )
    assert with_files({**files, "extra.bin": {"sha256": hashlib.sha256(b"x").hexdigest()}}) == (
        f"{path / 'extra.bin'}: 1 bytes, the manifest says None"
    )
    assert with_files({**files, "extra.bin": {"size": 1}}) == (
        f"{path / 'extra.bin'}: sha256 {hashlib.sha256(b'x').hexdigest()[:12]}..., the manifest "
        "says None..."
    )
    assert (
        with_files({**files, "extra.bin": {"size": 1, "sha256": hashlib.sha256(b"x").hexdigest()}})
        is None
    )
    (path / "model.safetensors").rename(path / "moved")
    (path / "model.safetensors").mkdir()  # a folder where the file should be
    assert with_files(files) == f"{path / 'model.safetensors'}: missing"
    (path / "model.safetensors").rmdir()
    (path / "moved").rename(path / "model.safetensors")
    manifest.write_text(good)
    assert verify_checkpoint(path) is None


def test_verify_checkpoint_reports_a_read_error_as_a_fault(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = _save(tmp_path / "run", 1)

    def unreadable(file: Path) -> str:
        raise OSError(5, "Input/output error", str(file))

    monkeypatch.setattr(ckpt_mod, "_sha256", unreadable)
    assert verify_checkpoint(path) == f"{path}: cannot be read (Input/output error)"

    def bare(file: Path) -> str:
        raise OSError("no strerror")

    monkeypatch.setattr(ckpt_mod, "_sha256", bare)
    assert verify_checkpoint(path) == f"{path}: cannot be read (no strerror)"


def _format_1(path: Path, **trainer: Any) -> None:
    (path / "manifest.json").unlink()
    state = json.loads((path / "trainer.json").read_text())
    del state["format"]
    (path / "trainer.json").write_text(json.dumps({**state, **trainer}))


def test_verify_checkpoint_without_a_manifest_checks_what_the_files_say(tmp_path: Path) -> None:
    path = _save(tmp_path / "run", 1)
    _format_1(path)
    assert verify_checkpoint(path) is None
    manifest = path / "manifest.json"
    for written_as, ok in (
        (1, True),
        (0, True),
        (2, False),
        (3, False),
        ("1", False),
        (None, False),
    ):
        _format_1(_save(tmp_path / f"f{written_as}", 1), format=written_as)
        got = verify_checkpoint(tmp_path / f"f{written_as}" / "checkpoints" / "step-000000001")
        want = (
            None
            if ok
            else (
                f"{tmp_path / f'f{written_as}' / 'checkpoints' / 'step-000000001' / 'manifest.json'}: "
                "missing (its trainer.json is of format 2)"
            )
        )
        assert got == want, written_as
    trainer = path / "trainer.json"
    good = trainer.read_text()
    trainer.write_text("[]")
    assert verify_checkpoint(path) == f"{trainer}: unreadable JSON (not an object)"
    trainer.write_text(good)
    carry = path / "carry.safetensors"
    _st_file(carry, _tensor(), b"\0" * 2)
    assert verify_checkpoint(path) == (
        f"{carry}: {carry.stat().st_size} bytes, its safetensors header describes "
        f"{carry.stat().st_size + 2}"
    )
    _st_file(carry, _tensor(), b"\0" * 4)
    assert verify_checkpoint(path) is None
    opt = path / "optimizer.safetensors"
    opt_bytes = opt.read_bytes()
    opt.write_bytes(opt_bytes + b"\0")
    assert verify_checkpoint(path) == (
        f"{opt}: {len(opt_bytes) + 1} bytes, its safetensors header describes {len(opt_bytes)}"
    )
    opt.write_bytes(opt_bytes)
    for name in ("model.safetensors", "optimizer.safetensors", "trainer.json"):
        moved = path / (name + ".away")
        (path / name).rename(moved)
        assert verify_checkpoint(path) == f"{path / name}: missing", name
        moved.rename(path / name)
    (path / "model.safetensors").unlink()
    (path / "optimizer.safetensors").unlink()
    assert verify_checkpoint(path) == f"{path / 'model.safetensors'}: missing"  # the first named
    assert not manifest.exists()


def test_newest_verified_checkpoint_says_what_it_skipped(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    assert newest_verified_checkpoint(run) is None  # nothing at all
    (run / "checkpoints").mkdir(parents=True)
    assert newest_verified_checkpoint(run) is None
    pointer = run / "checkpoints" / "latest"
    pointer.write_text("step-000000004\n")
    with pytest.raises(CheckpointError) as err:
        newest_verified_checkpoint(run)
    assert str(err.value) == (
        f"{pointer} names step-000000004, which is missing, and {run / 'checkpoints'} holds no "
        "other checkpoint"
    )
    one = _save(run, 1, keep=5)
    two = _save(run, 2, keep=5)
    pointer.write_text("step-000000004\n")
    (two / "trainer.json").write_text("{")
    fault = verify_checkpoint(two)
    assert fault is not None and fault.startswith(
        f"{two / 'trainer.json'}: 1 bytes, the manifest says "
    )
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert newest_verified_checkpoint(run) == one
    assert [r.getMessage() for r in caplog.records] == [
        f"checkpoint step-000000004 named by {pointer} is missing; looking for the newest one "
        "that verifies",
        f"checkpoint step-000000002 does not verify, skipped: {fault}",
    ]
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert newest_verified_checkpoint(run, report=False) == one
    assert caplog.records == []
    pointer.write_text("step-000000002")  # it exists: nothing said of the pointer
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert newest_verified_checkpoint(run) == one
    assert [r.getMessage() for r in caplog.records] == [
        f"checkpoint step-000000002 does not verify, skipped: {fault}"
    ]
    (one / "manifest.json").write_text("[]")
    with pytest.raises(CheckpointError) as err:
        newest_verified_checkpoint(run, report=False)
    assert str(err.value) == (
        f"no checkpoint in {run / 'checkpoints'} verifies (2 checked; the newest: {fault})"
    )
    pointer.unlink()
    with pytest.raises(CheckpointError, match=r"\(2 checked; "):
        newest_verified_checkpoint(run, report=False)


def test_load_checkpoint_and_load_carry_name_an_unreadable_file(tmp_path: Path) -> None:
    path = _save(tmp_path / "run", 1)
    model, opt = _opt_model()
    trainer = path / "trainer.json"
    good = trainer.read_text()
    trainer.write_text("{")
    with pytest.raises(CheckpointError) as err:
        ckpt_mod.load_checkpoint(path, model, opt)
    assert str(err.value).startswith(f"cannot read {trainer}: Expecting property name")
    trainer.unlink()
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read {trainer}: [Errno 2]")):
        ckpt_mod.load_checkpoint(path, model, opt)
    trainer.write_bytes(b"\xff")
    with pytest.raises(CheckpointError, match=re.escape(f"cannot read {trainer}: 'utf-8' codec")):
        ckpt_mod.load_checkpoint(path, model, opt)
    trainer.write_text(good)
    optimizer = path / "optimizer.safetensors"
    optimizer.write_bytes(b"\0" * 4)
    with pytest.raises(CheckpointError) as err:
        ckpt_mod.load_checkpoint(path, model, opt)
    assert str(err.value).startswith(f"cannot read the optimizer state {optimizer}: ")
    trainer.write_text(json.dumps({k: v for k, v in json.loads(good).items() if k != "optimizer"}))
    _save(tmp_path / "other", 1)
    shutil.copy(
        tmp_path / "other" / "checkpoints" / "step-000000001" / "optimizer.safetensors", optimizer
    )
    with pytest.raises(CheckpointError, match="cannot read the optimizer state .*'optimizer'"):
        ckpt_mod.load_checkpoint(path, model, opt)
    carry = path / "carry.safetensors"
    carry.write_bytes(b"\1\2")
    with pytest.raises(CheckpointError) as err:
        ckpt_mod.load_carry(path)
    assert str(err.value).startswith(f"cannot read the carried state {carry}: ")


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


def test_a_resume_takes_the_time_budget_s_position_from_the_checkpoint(
    runs: tuple[dict[str, torch.Tensor], Path], tmp_path: Path
) -> None:
    """``max_minutes`` puts the training time into the schedule (progress = max(step share,
    time share)): a resumed run goes on from the seconds its checkpoint recorded, not from 0 and
    not from the wall time the interruption took."""
    _, part = runs
    run = tmp_path / "run"
    shutil.copytree(part, run)
    saved = json.loads((run / "checkpoints" / NEWEST / "trainer.json").read_text())["elapsed_s"]
    assert saved > 0
    resumed = _fit(_trainer(run, max_minutes=1000.0), resume=True)
    assert resumed.elapsed_before == saved
    after = [r for r in resumed.history if r["step"] > 8]
    assert after and all(r["elapsed_s"] >= saved for r in after)
    assert min(r["elapsed_s"] for r in after) < saved + 60  # this session's seconds added, no gap


def test_an_unreadable_latest_pointer_does_not_stop_the_resume(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    run = tmp_path / "run"
    one = _save(run, 1)
    pointer = run / "checkpoints" / "latest"
    pointer.write_bytes(b"step-\xff\xfe\n")  # not UTF-8: a damaged pointer
    with caplog.at_level(logging.WARNING, logger="lstmkit"):
        assert newest_verified_checkpoint(run) == one
    assert [r.getMessage() for r in caplog.records] == [
        f"checkpoint step-\ufffd\ufffd named by {pointer} is missing; looking for the newest one "
        "that verifies"
    ]
