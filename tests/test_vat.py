"""Virtual adversarial training (lstmkit.adversarial, train.vat_eps): the KL divergence, the
random directions, the step's gradients against an independent float64 re-implementation, the
replayed dropout masks, exact resume, two DDP processes against one, and the config errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.multiprocessing as mp
from browser_support import free_port
from ddp_support import assert_ranks_match, join_env
from test_adversarial import tiny_model, trainer_for
from torch import Tensor

from lstmkit.adversarial import (
    adversarial_perturbation,
    embedding_scale,
    kl_divergence,
    random_directions,
)
from lstmkit.config import ConfigError, recipe_from_dict
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.train import VAT_SEED_OFFSET


def texts(n: int, seed: int, labelled: bool = True) -> SequenceDataset:
    rng = np.random.default_rng(seed)
    xs = [rng.integers(1, 20, size=int(rng.integers(2, 12))).tolist() for _ in range(n)]
    ys = [i % 2 for i in range(n)] if labelled else [0] * n
    return SequenceDataset(xs, np.array(ys))


# -- the pieces --------------------------------------------------------------------------------
def test_kl_divergence_matches_numpy_for_sigmoid_and_softmax_heads() -> None:
    rng = np.random.default_rng(0)
    a, b = rng.normal(size=(6, 1)) * 2, rng.normal(size=(6, 1)) * 2
    p, q = 1 / (1 + np.exp(-a)), 1 / (1 + np.exp(-b))
    want = (p * np.log(p / q) + (1 - p) * np.log((1 - p) / (1 - q))).reshape(-1)
    got = kl_divergence(torch.tensor(a), torch.tensor(b)).numpy()
    np.testing.assert_allclose(got, want, rtol=1e-10)
    a3, b3 = rng.normal(size=(5, 3)), rng.normal(size=(5, 3))
    p3 = np.exp(a3) / np.exp(a3).sum(1, keepdims=True)
    q3 = np.exp(b3) / np.exp(b3).sum(1, keepdims=True)
    got3 = kl_divergence(torch.tensor(a3), torch.tensor(b3)).numpy()
    np.testing.assert_allclose(got3, (p3 * np.log(p3 / q3)).sum(1), rtol=1e-10)
    # zero on itself, no gradient into the target
    t = torch.tensor(a, requires_grad=True)
    assert float(kl_divergence(t, t.detach().clone()).abs().max()) < 1e-12
    kl_divergence(t, torch.tensor(b, requires_grad=True)).sum().backward()
    assert t.grad is None
    with pytest.raises(ValueError, match=r"\(B, 1\) or \(B, C\)"):
        kl_divergence(torch.zeros(3, 2), torch.zeros(3, 1))


def test_random_directions_depend_on_the_example_not_its_batch() -> None:
    lengths = torch.tensor([4, 2, 3])
    d = random_directions([7, 3, 9], lengths, 5, 6, seed=1, step=10)
    assert d.shape == (3, 5, 6)
    assert torch.count_nonzero(d[0, 4:]) == 0 and torch.count_nonzero(d[1, 2:]) == 0
    assert torch.count_nonzero(d[0, :4]) == 24
    # example 9 in another batch, another padded length, another position: the same values
    alone = random_directions([9], torch.tensor([3]), 3, 6, seed=1, step=10)
    assert torch.equal(alone[0], d[2, :3])
    # another step or seed draws another direction
    assert not torch.equal(random_directions([9], torch.tensor([3]), 3, 6, seed=1, step=11), alone)
    assert not torch.equal(random_directions([9], torch.tensor([3]), 3, 6, seed=2, step=10), alone)
    # standard normal values
    many = random_directions(list(range(200)), torch.full((200,), 50), 50, 8, seed=0, step=0)
    assert abs(float(many.mean())) < 0.02 and abs(float(many.std()) - 1) < 0.02
    with pytest.raises(ValueError, match="2 indices for 3 lengths"):
        random_directions([1, 2], lengths, 5, 6, seed=0, step=0)


# -- the training step -------------------------------------------------------------------------
def _vat_reference(
    model: SequenceClassifier,
    x: Tensor,
    lens: Tensor,
    indices: list[int],
    *,
    eps: float,
    xi: float,
    step: int,
) -> tuple[Tensor, Tensor]:
    """VAT written out again (no dropout in the model): returns (loss, r_vadv); r_vadv is a
    constant for the loss."""
    scale = embedding_scale(model.embedding.weight, x, lens)  # type: ignore[union-attr]
    with torch.no_grad():
        target = model(x, lens)
    u = random_directions(indices, lens, x.shape[1], 5, seed=0, step=step).double()
    mask = (torch.arange(x.shape[1])[None, :] < lens[:, None]).double()[..., None]
    d = (xi * scale * u / torch.sqrt((u * u * mask).sum((1, 2), keepdim=True))).requires_grad_()
    p, q = torch.sigmoid(target), torch.sigmoid(model(x, lens, perturb=d))
    kl = (p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))).sum()
    (g,) = torch.autograd.grad(kl, [d])
    g = g * mask
    r = eps * scale * g / torch.sqrt((g * g).sum((1, 2), keepdim=True))
    q = torch.sigmoid(model(x, lens, perturb=r))
    loss = (p * torch.log(p / q) + (1 - p) * torch.log((1 - p) / (1 - q))).mean()
    return loss, r


def test_vat_gradients_match_a_float64_reimplementation() -> None:
    """The trainer's step = clean BCE + VAT on the unlabelled batch; its gradients equal those
    of the written-out formula (float64, no dropout), and r_vadv raises the divergence more than
    random directions of the same length do."""
    unl = texts(4, seed=5, labelled=False)
    lab = texts(4, seed=6)
    model = tiny_model().double()
    trainer = trainer_for(model, vat_eps=2.0, vat_xi=0.1, max_steps=1)
    grads: dict[str, Tensor] = {}
    orig_step = trainer.optimizer.step

    def capture() -> None:
        grads.update({n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None})
        orig_step()

    trainer.optimizer.step = capture  # type: ignore[method-assign]
    trainer.fit(lab, lab.lengths, unlabelled=unl, unlabelled_lengths=unl.lengths)
    model = tiny_model().double()  # the starting weights again
    # the same batches again
    indices = next(iter(trainer._vat_sampler.iter_from(0)))
    x_u, l_u, _ = collate_tokens([unl[i] for i in indices])
    first = next(iter(trainer._sampler(lab, lab.lengths, train=True)))
    x_l, l_l, y_l = collate_tokens([lab[i] for i in first])
    model.zero_grad()
    clean = trainer.objective.losses(model(x_l, l_l), y_l).mean()
    vat, r = _vat_reference(model, x_u, l_u, indices, eps=2.0, xi=0.1, step=0)
    (clean + vat).backward()
    for name, p in model.named_parameters():
        assert p.grad is not None
        torch.testing.assert_close(grads[name], p.grad, rtol=1e-7, atol=1e-12, msg=name)
    # the power iteration finds a direction that moves the prediction more than chance does
    with torch.no_grad():
        target = model(x_u, l_u)
        adv = kl_divergence(target, model(x_u, l_u, perturb=r)).sum()
        gen = torch.Generator().manual_seed(0)
        rand = [
            kl_divergence(
                target,
                model(
                    x_u,
                    l_u,
                    perturb=adversarial_perturbation(
                        torch.randn(r.shape, generator=gen, dtype=r.dtype), l_u, 1.0
                    )
                    * torch.linalg.vector_norm(r, dim=(1, 2), keepdim=True),
                ),
            ).sum()
            for _ in range(20)
        ]
    assert float(adv) > 3 * max(float(v) for v in rand)


def test_the_three_passes_share_their_dropout_masks(monkeypatch: pytest.MonkeyPatch) -> None:
    """With heavy dropout and a vanishing eps, the divergence is ~0 (float32 rounding): the
    target and the perturbed pass drew the same masks. Without the replay they draw others and
    the divergence is the dropout noise's."""
    data = texts(16, seed=2)

    def vat_loss() -> float:
        model = tiny_model(embedding_dropout=0.5, output_dropout=0.5)
        trainer = trainer_for(model, vat_eps=1e-6, batch_size=8, epochs=1)
        (row,) = [r for r in trainer.fit(data, data.lengths) if r["split"] == "train"]
        return float(row["vat_loss"])

    assert abs(vat_loss()) < 1e-7
    monkeypatch.setattr("lstmkit.train._RandomReplay.restore", lambda self: None)
    assert vat_loss() > 1e-4


def test_unlabelled_batches_run_their_own_epochs_and_resume_exactly(tmp_path: Path) -> None:
    """12 unlabelled texts in batches of 5 (3 per epoch) against 4 labelled steps per epoch: the
    VAT position wraps on its own; a run stopped after 3 steps and resumed ends with the weights
    of an uninterrupted one."""
    lab, unl = texts(16, seed=3), texts(12, seed=4, labelled=False)
    cfg = {"vat_eps": 2.0, "vat_batch_size": 5, "epochs": 2, "keep_checkpoints": 5}
    full = trainer_for(tiny_model(), tmp_path / "full", **cfg)
    full.fit(lab, lab.lengths, unlabelled=unl, unlabelled_lengths=unl.lengths)
    assert full.step == 8 and (full.vat_epoch, full.vat_batch) == (2, 2)
    part = trainer_for(tiny_model(), tmp_path / "part", max_steps=3, **cfg)
    part.fit(lab, lab.lengths, unlabelled=unl, unlabelled_lengths=unl.lengths)
    assert (part.vat_epoch, part.vat_batch) == (0, 3)
    rest = trainer_for(tiny_model(seed=9), tmp_path / "part", **cfg)
    rest.fit(lab, lab.lengths, unlabelled=unl, unlabelled_lengths=unl.lengths, resume=True)
    assert rest.step == 8 and (rest.vat_epoch, rest.vat_batch) == (2, 2)
    for (name, a), b in zip(
        full.model.state_dict().items(), rest.model.state_dict().values(), strict=True
    ):
        assert float((a - b).abs().max()) <= 1e-6, name
    # the unlabelled order is its own seed's, not the labelled one's
    assert full._vat_sampler.seed == full.cfg.seed + VAT_SEED_OFFSET


def test_without_unlabelled_texts_vat_reads_the_training_split() -> None:
    data = texts(8, seed=1)
    trainer = trainer_for(tiny_model(), vat_eps=2.0)
    history = trainer.fit(data, data.lengths)
    assert trainer._vat_data is data
    assert [r["vat_loss"] > 0 for r in history if r["split"] == "train"] == [True]
    plain = trainer_for(tiny_model()).fit(data, data.lengths)
    assert "vat_loss" not in plain[0]


# -- distributed -------------------------------------------------------------------------------
def _ddp_worker(rank: int, world: int, port: int, out: str) -> None:
    join_env(rank, world, port)
    lab, unl = texts(32, seed=3), texts(24, seed=4, labelled=False)
    trainer = trainer_for(tiny_model(), adversarial_eps=3.0, vat_eps=3.0, batch_size=8, epochs=2)
    trainer.fit(lab, lab.lengths, unlabelled=unl, unlabelled_lengths=unl.lengths)
    torch.save(trainer.model.state_dict(), Path(out) / f"weights{rank}.pt")
    (Path(out) / f"history{rank}.json").write_text(json.dumps(trainer.history))
    torch.distributed.destroy_process_group()


def test_ddp_two_processes_match_one_process(tmp_path: Path) -> None:
    """AT and VAT together under DDP: the labelled backwards accumulate in no_sync, VAT's
    backward averages them; the directions do not depend on the split. Two processes end where
    one process with the same global batches does."""
    lab, unl = texts(32, seed=3), texts(24, seed=4, labelled=False)
    single = trainer_for(tiny_model(), adversarial_eps=3.0, vat_eps=3.0, batch_size=8, epochs=2)
    single.fit(lab, lab.lengths, unlabelled=unl, unlabelled_lengths=unl.lengths)
    port = free_port()
    mp.spawn(_ddp_worker, args=(2, port, str(tmp_path)), nprocs=2, join=True)
    hist = json.loads((tmp_path / "history0.json").read_text())
    assert len(hist) == len(single.history) == 2
    for a, b in zip(hist, single.history, strict=True):
        for key in ("loss", "adv_loss", "vat_loss"):
            assert abs(a[key] - b[key]) <= 1e-5, key
    assert_ranks_match(tmp_path, single.model)


# -- configuration -----------------------------------------------------------------------------
def test_config_errors() -> None:
    recipe = recipe_from_dict({"train": {"vat_eps": 5.0, "vat_unlabelled": True}})
    assert (recipe.train.vat_eps, recipe.train.vat_xi, recipe.train.vat_batch_size) == (
        5.0,
        0.1,
        None,
    )
    with pytest.raises(ConfigError, match=r"r\.toml: train\.vat_eps: .*>= 0.*got -2"):
        recipe_from_dict({"train": {"vat_eps": -2.0}}, "r.toml")
    with pytest.raises(ConfigError, match=r"vat_xi"):
        recipe_from_dict({"train": {"vat_eps": 1.0, "vat_xi": 0.0}}, "r.toml")
    with pytest.raises(ConfigError, match=r"vat_unlabelled feeds .* set train.vat_eps > 0"):
        recipe_from_dict({"train": {"vat_unlabelled": True}}, "r.toml")
    with pytest.raises(
        ConfigError, match=r"dataset 'reuters' has none -- set train.vat_unlabelled = false"
    ):
        recipe_from_dict(
            {"data": {"dataset": "reuters"}, "train": {"vat_eps": 1.0, "vat_unlabelled": True}},
            "r.toml",
        )
    with pytest.raises(ConfigError, match=r"train\.vat_eps = 1\.0 .*dataset 'mnist'"):
        recipe_from_dict({"data": {"dataset": "mnist"}, "train": {"vat_eps": 1.0}}, "r.toml")
    real = SequenceClassifier(ClassifierConfig(vocab_size=None, input_size=3, hidden_size=4))
    with pytest.raises(ValueError, match=r"train\.vat_eps = 1\.0 .*without one"):
        trainer_for(real, vat_eps=1.0)
