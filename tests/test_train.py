"""lstmkit.train: learning, exact resume, NaN stop, early stopping, checkpoints, DDP with gloo."""

from __future__ import annotations

import json
import shutil
import socket
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from ddp_support import assert_ranks_match, join_env

from lstmkit.checkpoint import (
    CARRY_FILE,
    checkpoint_dirs,
    latest_checkpoint,
    load_carry,
    verify_checkpoint,
)
from lstmkit.config import TrainConfig
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.data.chars import StreamDataset, collate_stream
from lstmkit.models import (
    ClassifierConfig,
    LanguageModel,
    LanguageModelConfig,
    SequenceClassifier,
)
from lstmkit.objectives import LanguageModeling
from lstmkit.train import Trainer, TrainingDiverged, confusion_matrix, metrics_from_confusion


def keyword_data(n: int, seed: int, vocab: int = 30) -> SequenceDataset:
    """Label 1 iff token 7 occurs: a real signal the model must learn. Lengths 3..20."""
    rng = np.random.default_rng(seed)
    xs, ys = [], []
    for i in range(n):
        length = int(rng.integers(3, 21))
        seq = rng.integers(8, vocab, size=length)
        label = i % 2
        if label:
            seq[rng.integers(0, length)] = 7
        xs.append(seq.tolist())
        ys.append(label)
    return SequenceDataset(xs, np.array(ys))


def small_model(seed: int = 0, **kw: Any) -> SequenceClassifier:
    torch.manual_seed(seed)
    cfg = ClassifierConfig(vocab_size=30, embedding_dim=8, hidden_size=16, **kw)
    return SequenceClassifier(cfg)


def make_trainer(model: SequenceClassifier, run_dir: Path | None, **cfg: Any) -> Trainer:
    base = {"batch_size": 16, "epochs": 3, "lr": 0.01, "seed": 0}
    return Trainer(
        model,
        TrainConfig(**{**base, **cfg}),
        num_classes=2,
        collate=collate_tokens,
        run_dir=run_dir,
        progress=False,
    )


def test_trainer_learns_a_real_signal(tmp_path: Path) -> None:
    train, valid = keyword_data(640, 0), keyword_data(200, 1)
    trainer = make_trainer(small_model(), tmp_path, epochs=6, evaluate_every=20)
    history = trainer.fit(train, train.lengths, valid, valid.lengths)
    val = [r for r in history if r["split"] == "val"]
    assert val[-1]["accuracy"] >= 0.95
    assert val[-1]["loss"] < val[0]["loss"]
    rows = [json.loads(line) for line in (tmp_path / "history.jsonl").read_text().splitlines()]
    assert rows == history
    assert (tmp_path / "curves.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert (
        (tmp_path / "history.csv")
        .read_text()
        .splitlines()[0]
        .startswith("step,epoch,lr,elapsed_s,split")
    )


def test_resume_is_exact(tmp_path: Path) -> None:
    """Stopped after k steps and resumed == uninterrupted, weights within 1e-6 (dropout on)."""
    train, valid = keyword_data(200, 0), keyword_data(50, 1)
    opts = {"dropout": 0.3, "output_dropout": 0.3, "num_layers": 2}
    full = make_trainer(small_model(**opts), tmp_path / "full", evaluate_every=5)
    full.fit(train, train.lengths, valid, valid.lengths)

    part = make_trainer(small_model(**opts), tmp_path / "part", evaluate_every=5, max_steps=17)
    part.fit(train, train.lengths, valid, valid.lengths)
    assert part.step == 17
    resumed_model = small_model(
        seed=123, **opts
    )  # different init: everything must come from the checkpoint
    resumed = make_trainer(resumed_model, tmp_path / "part", evaluate_every=5)
    resumed.fit(train, train.lengths, valid, valid.lengths, resume=True)
    assert resumed.step == full.step
    for (name, a), (_, b) in zip(
        full.model.state_dict().items(), resumed.model.state_dict().items(), strict=True
    ):
        assert float((a - b).abs().max()) <= 1e-6, name
    # validation rows agree at every step both runs evaluated (the stopped run adds one at k)
    full_val = {r["step"]: r["loss"] for r in full.history if r["split"] == "val"}
    res_val = {r["step"]: r["loss"] for r in resumed.history if r["split"] == "val"}
    assert set(full_val) <= set(res_val) and set(res_val) - set(full_val) == {17}
    for step, loss in full_val.items():
        assert abs(res_val[step] - loss) <= 1e-6


# -- language models: the carried state ------------------------------------------------------
def lm_streams(streams: int = 4, bptt: int = 6, seed: int = 0) -> StreamDataset:
    """A noisy periodic text of 12 symbols (so the state matters): 10 chunks per epoch."""
    rng = np.random.default_rng(seed)
    ids = np.arange(streams * (10 * bptt + 1)) % 12
    noise = rng.random(ids.size) < 0.2
    ids[noise] = rng.integers(0, 12, size=int(noise.sum()))
    return StreamDataset(ids, streams, bptt)


def small_lm(seed: int = 0, **kw: Any) -> LanguageModel:
    torch.manual_seed(seed)
    cfg = LanguageModelConfig(vocab_size=12, embedding_dim=6, hidden_size=10, num_layers=2, **kw)
    return LanguageModel(cfg)


def make_lm_trainer(model: LanguageModel, run_dir: Path | None, **cfg: Any) -> Trainer:
    base = {"batch_size": 4, "epochs": 2, "lr": 0.01, "seed": 0}
    return Trainer(
        model,
        TrainConfig(**{**base, **cfg}),
        objective=LanguageModeling(),
        collate=collate_stream,
        run_dir=run_dir,
        progress=False,
    )


def _max_weight_diff(a: torch.nn.Module, b: torch.nn.Module) -> float:
    return max(
        float((x - y).abs().max())
        for (_, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True)
    )


def test_language_model_resume_continues_the_streams(tmp_path: Path) -> None:
    """An LM stopped mid-epoch after k steps and resumed == uninterrupted (weights and every
    loss within 1e-6, dropout on): the checkpoint holds the training streams' carried state.
    Resumed without it (streams from zeros), the weights differ: the test can see the carry."""
    train, valid = lm_streams(), lm_streams(streams=2, seed=1)
    opts = {"dropout": 0.2, "output_dropout": 0.2}
    full = make_lm_trainer(small_lm(**opts), tmp_path / "full", evaluate_every=3)
    full.fit(train, train.lengths, valid, valid.lengths)
    assert full.step == 20  # 2 epochs of 10 chunks

    part = make_lm_trainer(small_lm(**opts), tmp_path / "part", evaluate_every=3, max_steps=7)
    part.fit(train, train.lengths, valid, valid.lengths)
    assert part.step == 7 and part.batch_in_epoch == 7  # mid-epoch: the carry matters
    ckpt = latest_checkpoint(tmp_path / "part")
    assert ckpt is not None and (ckpt / CARRY_FILE).exists()
    carry = load_carry(ckpt)
    assert carry is not None and part.carry is not None
    assert {k: tuple(v.shape) for k, v in carry.items()} == {"h": (1, 2, 4, 10), "c": (1, 2, 4, 10)}
    assert torch.equal(carry["h"][0], part.carry[0]) and torch.equal(carry["c"][0], part.carry[1])
    shutil.copytree(tmp_path / "part", tmp_path / "no-carry")
    # as a checkpoint written without the file: gone, and gone from its manifest
    (tmp_path / "no-carry" / "checkpoints" / ckpt.name / CARRY_FILE).unlink()
    manifest = tmp_path / "no-carry" / "checkpoints" / ckpt.name / "manifest.json"
    entries = json.loads(manifest.read_text())
    del entries["files"][CARRY_FILE]
    manifest.write_text(json.dumps(entries))

    resumed = make_lm_trainer(small_lm(seed=123, **opts), tmp_path / "part", evaluate_every=3)
    resumed.fit(train, train.lengths, valid, valid.lengths, resume=True)
    assert resumed.step == full.step
    assert _max_weight_diff(full.model, resumed.model) <= 1e-6
    for split in ("train", "val"):
        full_rows = {r["step"]: r["loss"] for r in full.history if r["split"] == split}
        res_rows = {r["step"]: r["loss"] for r in resumed.history if r["split"] == split}
        assert set(full_rows) <= set(res_rows) and set(res_rows) - set(full_rows) <= {7}
        for step, loss in full_rows.items():
            if split == "val" or step != 9:  # the resumed run's train row at 9 covers 8..9 only
                assert abs(res_rows[step] - loss) <= 1e-6, (split, step)

    zeros = make_lm_trainer(small_lm(seed=123, **opts), tmp_path / "no-carry", evaluate_every=3)
    zeros.fit(train, train.lengths, valid, valid.lengths, resume=True)
    assert _max_weight_diff(full.model, zeros.model) > 1e-4


def test_checkpoints_are_atomic_and_pruned(tmp_path: Path) -> None:
    train = keyword_data(96, 0)
    trainer = make_trainer(small_model(), tmp_path, evaluate_every=2, keep_checkpoints=2)
    trainer.fit(train, train.lengths)
    ckpts = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert ckpts == ["latest", "step-000000016", "step-000000018"]
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-000000018"
    assert sorted(p.name for p in latest.iterdir()) == [
        "manifest.json",
        "model.safetensors",
        "optimizer.safetensors",
        "trainer.json",
    ]
    assert not list(tmp_path.rglob("*.tmp"))
    # each kept checkpoint is whole (its manifest's sizes and hashes); a save that fails part
    # way is tests/test_checkpoint_verify.py's test_a_save_that_fails_part_way_...
    assert [verify_checkpoint(p) for p in checkpoint_dirs(tmp_path)] == [None, None]
    assert (tmp_path / "checkpoints" / "latest").read_text() == "step-000000018\n"


def test_nan_loss_stops_with_a_clear_message_and_keeps_the_last_checkpoint(tmp_path: Path) -> None:
    train = keyword_data(96, 0)
    model = small_model()
    trainer = make_trainer(model, tmp_path, evaluate_every=2)
    real_forward = model.forward
    calls = {"n": 0}

    def poisoned(x: torch.Tensor, lengths: torch.Tensor | None = None) -> torch.Tensor:
        calls["n"] += 1
        out = real_forward(x, lengths)
        return out * float("nan") if calls["n"] == 5 else out

    model.forward = poisoned  # type: ignore[method-assign]
    with pytest.raises(TrainingDiverged, match=r"loss became nan at step 5 .*step-000000004"):
        trainer.fit(train, train.lengths)
    latest = latest_checkpoint(tmp_path)
    assert latest is not None and latest.name == "step-000000004"
    state = json.loads((latest / "trainer.json").read_text())
    assert state["step"] == 4


def test_early_stopping_restores_the_best_weights(tmp_path: Path) -> None:
    train, flipped = keyword_data(160, 0), keyword_data(60, 1)
    # validation labels inverted: the better the model learns, the worse it scores there, so
    # validation loss rises after the first evaluations and early stopping must trigger
    valid = SequenceDataset(
        [flipped[i][0] for i in range(len(flipped))],
        1 - np.array([flipped[i][1] for i in range(len(flipped))]),
    )
    trainer = make_trainer(
        small_model(), tmp_path, epochs=30, lr=0.05, early_stopping=2, monitor="val_loss"
    )
    history = trainer.fit(train, train.lengths, valid, valid.lengths)
    val = [r for r in history if r["split"] == "val"]
    best = min(val, key=lambda r: r["loss"])
    assert trainer.best["step"] == best["step"]
    assert len(val) == val.index(best) + 3 < 30  # stopped after 2 evaluations without improvement
    again = trainer.evaluate(valid, valid.lengths)
    assert again["loss"] == pytest.approx(best["loss"], abs=1e-9)


def test_metrics() -> None:
    pred = torch.tensor([0, 1, 1, 2, 2, 2])
    true = torch.tensor([0, 1, 2, 2, 2, 0])
    cm = confusion_matrix(pred, true, 3)
    assert cm.tolist() == [[1, 0, 1], [0, 1, 0], [0, 1, 2]]
    m = metrics_from_confusion(cm)
    assert m["accuracy"] == pytest.approx(4 / 6)
    # per-class F1: c0 2*1/(1+2)=2/3, c1 2*1/(2+1)=2/3, c2 2*2/(3+3)=2/3
    assert m["macro_f1"] == pytest.approx(2 / 3)


def test_l1_l2_penalties_change_the_weights(tmp_path: Path) -> None:
    train = keyword_data(64, 0)
    plain = make_trainer(small_model(), None, epochs=1)
    plain.fit(train, train.lengths)
    reg = make_trainer(small_model(), None, epochs=1, l2=0.1)
    reg.fit(train, train.lengths)

    def norm(t: Trainer) -> float:
        return sum(float(p.detach().pow(2).sum()) for p in t.model.parameters() if p.dim() > 1)

    assert norm(reg) < norm(plain)


# -- distributed ------------------------------------------------------------------------------
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    join_env(rank, world, port)
    train = keyword_data(128, 0)
    trainer = make_trainer(small_model(), Path(out) / "run", evaluate_every=2, epochs=2)
    trainer.fit(train, train.lengths)
    torch.save(
        {k: v.clone() for k, v in trainer.model.state_dict().items()},
        Path(out) / f"weights{rank}.pt",
    )
    (Path(out) / f"history{rank}.json").write_text(json.dumps(trainer.history))
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_match_one_process(tmp_path: Path) -> None:
    train = keyword_data(128, 0)
    single = make_trainer(small_model(), tmp_path / "single", evaluate_every=2, epochs=2)
    single.fit(train, train.lengths)
    mp.spawn(_ddp_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    hist = json.loads((tmp_path / "history0.json").read_text())
    assert len(hist) == len(single.history) > 0
    for a, b in zip(hist, single.history, strict=True):
        assert a["step"] == b["step"]
        assert abs(a["loss"] - b["loss"]) <= 1e-5
    w0 = torch.load(tmp_path / "weights0.pt")
    w1 = torch.load(tmp_path / "weights1.pt")
    for name, value in single.model.state_dict().items():
        assert float((w0[name] - value).abs().max()) <= 1e-5, name
        assert torch.equal(w0[name], w1[name])
    # only rank 0 wrote the run directory: one history, one set of checkpoints
    run = tmp_path / "run"
    assert len((run / "history.jsonl").read_text().splitlines()) == len(hist)


def _ddp_lm_worker(rank: int, world: int, port: int, out: str) -> None:
    join_env(rank, world, port)
    train = lm_streams()
    trainer = make_lm_trainer(small_lm(), Path(out) / "lm-run", evaluate_every=4, max_steps=7)
    trainer.fit(train, train.lengths)
    torch.save(
        {k: v.clone() for k, v in trainer.model.state_dict().items()},
        Path(out) / f"weights{rank}.pt",
    )
    torch.distributed.destroy_process_group()


def test_ddp_language_model_ranks_carry_their_own_streams(tmp_path: Path) -> None:
    """Two processes (2 of the 4 streams each) == one process, weights within 1e-5; the
    checkpoint holds each rank's carried state, rank r's = rows r, r + 2 of the one process's."""
    train = lm_streams()
    single = make_lm_trainer(small_lm(), tmp_path / "single", evaluate_every=4, max_steps=7)
    single.fit(train, train.lengths)
    mp.spawn(_ddp_lm_worker, args=(2, _free_port(), str(tmp_path)), nprocs=2, join=True)
    assert_ranks_match(tmp_path, single.model)
    ckpt = latest_checkpoint(tmp_path / "lm-run")
    assert ckpt is not None and single.carry is not None
    carry = load_carry(ckpt)
    assert carry is not None
    for name, one in zip(("h", "c"), single.carry, strict=True):
        assert tuple(carry[name].shape) == (2, 2, 2, 10)  # (world, L, B per rank, H)
        for rank in (0, 1):
            assert float((carry[name][rank] - one[:, rank::2]).abs().max()) <= 1e-5
