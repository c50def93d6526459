"""Adversarial training on the word vectors (lstmkit.adversarial, train.adversarial_eps):
the perturbation's norm and padding, the scale, eps=0 is the old training step bit for bit, the
gradient against finite differences, and the config errors."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
import torch.nn.functional as F
from browser_support import free_port
from ddp_support import assert_ranks_match, join_env
from torch import Tensor, nn

from lstmkit.adversarial import adversarial_perturbation, embedding_scale
from lstmkit.config import ConfigError, TrainConfig, recipe_from_dict
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.train import Trainer


def tiny_model(seed: int = 0, **kw: Any) -> SequenceClassifier:
    torch.manual_seed(seed)
    cfg = {
        "vocab_size": 20,
        "embedding_dim": 5,
        "hidden_size": 4,
        "bidirectional": True,
        "pooling": "mean+max",
        **kw,
    }
    return SequenceClassifier(ClassifierConfig(**cfg))


def trainer_for(model: nn.Module, run_dir: Path | None = None, **cfg: Any) -> Trainer:
    base = {"batch_size": 4, "epochs": 1, "lr": 0.01, "seed": 0}
    return Trainer(
        model,
        TrainConfig(**{**base, **cfg}),
        num_classes=2,
        collate=collate_tokens,
        run_dir=run_dir,
        progress=False,
    )


def batch() -> tuple[Tensor, Tensor, Tensor]:
    """Four reviews of lengths 6, 4, 2, 5 (padded with 0)."""
    seqs = [[3, 5, 7, 9, 11, 2], [4, 4, 8, 1], [12, 19], [6, 3, 15, 17, 10]]
    return collate_tokens(list(zip(seqs, [1, 0, 1, 0], strict=True)))


# -- the perturbation --------------------------------------------------------------------------
def test_perturbation_has_norm_eps_per_example_and_zero_padding() -> None:
    torch.manual_seed(1)
    g = torch.randn(3, 6, 4)
    lengths = torch.tensor([6, 3, 1])
    r = adversarial_perturbation(g, lengths, 2.5)
    norms = torch.linalg.vector_norm(r, dim=(1, 2))
    assert torch.allclose(norms, torch.full((3,), 2.5), atol=1e-6)
    assert torch.count_nonzero(r[1, 3:]) == 0 and torch.count_nonzero(r[2, 1:]) == 0
    # the direction is the gradient of the real steps alone (padding's gradient excluded
    # from the norm): r = 2.5 * g_valid / ||g_valid||
    g_valid = g[1, :3]
    assert torch.allclose(r[1, :3], 2.5 * g_valid / g_valid.norm(), atol=1e-6)
    assert torch.allclose(r[0], 2.5 * g[0] / g[0].norm(), atol=1e-6)
    # no lengths: the whole matrix counts
    assert torch.allclose(
        torch.linalg.vector_norm(adversarial_perturbation(g, None, 0.3), dim=(1, 2)),
        torch.full((3,), 0.3),
        atol=1e-6,
    )


def test_perturbation_of_a_zero_gradient_is_zero_and_bad_input_is_refused() -> None:
    g = torch.zeros(2, 3, 4)
    g[0, 0, 0] = 1e-3
    r = adversarial_perturbation(g, torch.tensor([3, 3]), 1.0)
    assert torch.isfinite(r).all()
    assert float(r[0, 0, 0]) == pytest.approx(1.0) and torch.count_nonzero(r[1]) == 0
    with pytest.raises(ValueError, match="eps must be >= 0, got -1"):
        adversarial_perturbation(g, None, -1.0)
    with pytest.raises(ValueError, match=r"grad must be \(B, T, E\), got shape \(2, 3\)"):
        adversarial_perturbation(g[:, :, 0], None, 1.0)


def test_embedding_scale_is_the_frequency_weighted_std() -> None:
    torch.manual_seed(2)
    weight = torch.randn(10, 3)
    tokens = torch.tensor([[1, 1, 2, 0], [3, 9, 0, 0]])
    lengths = torch.tensor([3, 1])  # token 9 sits in the padding: not counted
    vectors = weight[[1, 1, 2, 3]].double().numpy()  # word 1 counts twice
    expected = np.sqrt(vectors.var(axis=0).mean())
    assert (embedding_scale(weight, tokens, lengths)) == pytest.approx(expected, rel=1e-6)
    # it moves with the vectors: growing them cannot shrink the perturbation
    assert (embedding_scale(4.0 * weight, tokens, lengths)) == pytest.approx(
        4.0 * expected, rel=1e-6
    )
    with pytest.raises(ValueError, match="at least one non-padding token"):
        embedding_scale(weight, tokens, torch.tensor([0, 0]))


# -- the training step -------------------------------------------------------------------------
def test_eps_zero_is_the_plain_training_step_bit_for_bit() -> None:
    """adversarial_eps = 0 runs exactly the old step: forward, mean BCE, backward, clip, Adam."""
    inputs, lens, labels = batch()
    model = tiny_model(embedding_dropout=0.3, output_dropout=0.2)
    reference = copy.deepcopy(model)
    trainer = trainer_for(model, adversarial_eps=0.0, clip_norm=1.0)
    torch.manual_seed(5)
    for _ in range(3):
        trainer._train_step(inputs, lens, labels, trainer._new_window())

    opt = torch.optim.Adam(reference.parameters(), lr=0.01)
    reference.train()
    torch.manual_seed(5)
    for _ in range(3):
        z = reference(inputs, lens)[:, 0]
        losses = F.binary_cross_entropy_with_logits(
            z, labels.double().to(z.dtype), reduction="none"
        )
        loss = losses.sum() / float(losses.numel())
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_([p for p in reference.parameters() if p.grad is not None], 1.0)
        opt.step()
    for (name, a), (_, b) in zip(
        model.named_parameters(), reference.named_parameters(), strict=True
    ):
        assert torch.equal(a, b), name


def _loss(
    model: SequenceClassifier, inputs: Tensor, lens: Tensor, labels: Tensor, r: Tensor
) -> Tensor:
    z = model(inputs, lens, perturb=r)[:, 0]
    return F.binary_cross_entropy_with_logits(z, labels.to(z.dtype))


def test_adversarial_gradient_matches_finite_differences() -> None:
    """The step's gradient is d/dθ [CE(v) + CE(v + r_adv)] with r_adv held fixed, and r_adv is
    eps * s * g / ||g|| with g the clean loss's gradient in v (both checked numerically)."""
    inputs, lens, labels = batch()
    eps = 0.8
    model = tiny_model(impl="loop").double()
    trainer = trainer_for(model, adversarial_eps=eps)
    model.train()  # no dropout in this model: train mode is deterministic
    _, _, adv_sum = trainer._adversarial_backward(inputs, lens, labels)
    grads = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}

    # g by central differences on the embedded input
    zero = torch.zeros(*inputs.shape, 5, dtype=torch.float64, requires_grad=True)
    (g,) = torch.autograd.grad(_loss(model, inputs, lens, labels, zero), zero)
    h = 1e-6
    with torch.no_grad():
        for b, t, e in [(0, 0, 0), (0, 5, 3), (1, 2, 1), (2, 1, 4), (3, 4, 2)]:
            bump = torch.zeros_like(zero)
            bump[b, t, e] = h
            fd = (
                _loss(model, inputs, lens, labels, bump) - _loss(model, inputs, lens, labels, -bump)
            ) / (2 * h)
            assert float(g[b, t, e]) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
        assert torch.count_nonzero(g[2, 2:]) == 0  # padding steps of review 3 (length 2)

    scale = embedding_scale(model.embedding.weight, inputs, lens)  # type: ignore[union-attr]
    r = adversarial_perturbation(g, lens, eps * scale)
    assert torch.allclose(
        torch.linalg.vector_norm(r, dim=(1, 2)), torch.full((4,), eps * scale, dtype=torch.float64)
    )
    with torch.no_grad():
        clean = _loss(model, inputs, lens, labels, torch.zeros_like(r))
        adv = _loss(model, inputs, lens, labels, r)
    assert adv_sum / 4 == pytest.approx(float(adv), rel=1e-9)
    assert float(adv) > float(clean)  # the step's perturbation raises the loss

    def total() -> float:
        return float(
            _loss(model, inputs, lens, labels, torch.zeros_like(r))
            + _loss(model, inputs, lens, labels, r)
        )

    params = dict(model.named_parameters())
    checks = [
        ("embedding.weight", (3, 0)),  # a word of review 1
        ("embedding.weight", (19, 4)),
        ("rnn.cells.0.weight_ih", (2, 1)),
        ("rnn.cells.1.weight_hh", (5, 3)),
        ("head.weight", (0, 7)),
        ("head.bias", (0,)),
    ]
    with torch.no_grad():
        for name, idx in checks:
            p = params[name]
            old = float(p[idx])
            p[idx] = old + h
            up = total()
            p[idx] = old - h
            down = total()
            p[idx] = old
            fd = (up - down) / (2 * h)
            assert float(grads[name][idx]) == pytest.approx(fd, rel=1e-5, abs=1e-9), name
    # and it is not the clean gradient alone
    model.zero_grad()
    clean_loss = _loss(model, inputs, lens, labels, torch.zeros_like(r))
    clean_loss.backward()
    assert not torch.allclose(params["head.weight"].grad, grads["head.weight"])  # type: ignore[arg-type]


def test_fit_with_eps_reports_the_adversarial_loss() -> None:
    rng = np.random.default_rng(0)
    xs = [rng.integers(1, 20, size=int(rng.integers(2, 9))).tolist() for _ in range(32)]
    data = SequenceDataset(xs, np.array([i % 2 for i in range(32)]))
    trainer = trainer_for(tiny_model(), adversarial_eps=2.0, batch_size=8, epochs=2)
    history = trainer.fit(data, data.lengths)
    rows = [r for r in history if r["split"] == "train"]
    assert len(rows) == 2
    for row in rows:
        assert row["adv_loss"] > row["loss"] > 0  # no dropout: the perturbation raises the loss
    plain = trainer_for(tiny_model(), batch_size=8, epochs=1).fit(data, data.lengths)
    assert "adv_loss" not in plain[0]


# -- distributed -------------------------------------------------------------------------------
def _data() -> SequenceDataset:
    rng = np.random.default_rng(3)
    xs = [rng.integers(1, 20, size=int(rng.integers(2, 12))).tolist() for _ in range(48)]
    return SequenceDataset(xs, np.array([i % 2 for i in range(48)]))


def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    join_env(rank, world, port)
    data = _data()
    trainer = trainer_for(tiny_model(), adversarial_eps=3.0, batch_size=8, epochs=2)
    trainer.fit(data, data.lengths)
    torch.save(trainer.model.state_dict(), Path(out) / f"weights{rank}.pt")
    (Path(out) / f"history{rank}.json").write_text(json.dumps(trainer.history))
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_match_one_process(tmp_path: Path) -> None:
    """Under DDP the clean backward runs in no_sync and the scale is the global batch's: two
    processes end where one process with the same global batch does."""
    data = _data()
    single = trainer_for(tiny_model(), adversarial_eps=3.0, batch_size=8, epochs=2)
    single.fit(data, data.lengths)
    port = free_port()
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    hist = json.loads((tmp_path / "history0.json").read_text())
    assert len(hist) == len(single.history) == 2
    for a, b in zip(hist, single.history, strict=True):
        assert abs(a["loss"] - b["loss"]) <= 1e-5
        assert abs(a["adv_loss"] - b["adv_loss"]) <= 1e-5
    assert_ranks_match(tmp_path, single.model)


# -- configuration -----------------------------------------------------------------------------
def test_config_errors() -> None:
    assert recipe_from_dict({"train": {"adversarial_eps": 3.5}}).train.adversarial_eps == 3.5
    assert TrainConfig().adversarial_eps == 0.0
    with pytest.raises(ConfigError, match=r"r\.toml: train\.adversarial_eps: .*>= 0.*got -1"):
        recipe_from_dict({"train": {"adversarial_eps": -1.0}}, "r.toml")
    with pytest.raises(ConfigError, match=r"adversarial_eps.*got nan"):
        recipe_from_dict({"train": {"adversarial_eps": float("nan")}}, "r.toml")
    with pytest.raises(ConfigError, match=r"dataset 'mnist' \(real-valued input, no embedding\)"):
        recipe_from_dict(
            {"data": {"dataset": "mnist"}, "train": {"adversarial_eps": 1.0}}, "r.toml"
        )
    with pytest.raises(ConfigError, match="task 'language_model' has none"):
        recipe_from_dict(
            {
                "task": "language_model",
                "data": {"dataset": "chars", "chars": {}},
                "train": {"adversarial_eps": 1.0},
            },
            "r.toml",
        )
    # the Trainer refuses a model without an embedding too
    real = SequenceClassifier(ClassifierConfig(vocab_size=None, input_size=3, hidden_size=4))
    with pytest.raises(ValueError, match="SequenceClassifier without one"):
        trainer_for(real, adversarial_eps=1.0)
    with pytest.raises(ValueError, match="real-valued input"):
        real(torch.zeros(1, 2, 3), perturb=torch.zeros(1, 2, 3))
    tokens = tiny_model()
    with pytest.raises(
        ValueError, match=r"perturb must have the embedded input's shape \(1, 2, 5\)"
    ):
        tokens(torch.ones(1, 2, dtype=torch.int64), perturb=torch.zeros(1, 2, 4))
