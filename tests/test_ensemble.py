"""The deep ensemble inside one classifier (``ClassifierConfig.members``): every member learns
on its own loss, prediction averages the members' logits, and the serving / export forward
gives the same probabilities."""

from __future__ import annotations

import pytest
import torch
from torch.nn import functional as F

from lstmkit.adversarial import kl_divergence
from lstmkit.models import ClassifierConfig, PaddedClassifier, SequenceClassifier
from lstmkit.objectives import Classification


def _model(members: int, classes: int = 2, ngrams: int = 2) -> SequenceClassifier:
    torch.manual_seed(0)
    cfg = ClassifierConfig(
        num_classes=classes,
        vocab_size=50,
        embedding_dim=8,
        hidden_size=6,
        bidirectional=True,
        pooling="mean+max",
        ngrams=ngrams,
        ngram_buckets=1024,
        members=members,
    )
    model = SequenceClassifier(cfg)
    if model.ngram is not None:  # non-zero n-gram weights, so the branch counts
        with torch.no_grad():
            model.ngram.ratio.uniform_(-1, 1)
            model.ngram.weight.uniform_(-0.5, 0.5)
    return model


def _batch() -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(1)
    x = torch.randint(1, 50, (5, 9), generator=g)
    lengths = torch.tensor([9, 7, 4, 2, 9])
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0
    return x, lengths


def test_one_member_has_the_weights_it_always_had():
    keys = set(_model(1).state_dict())
    assert not any(k.startswith("others.") for k in keys)
    two = set(_model(2).state_dict())
    assert keys < two
    extra = two - keys
    assert extra and all(k.startswith("others.0.") for k in extra)
    assert not any("ngram" in k for k in extra)  # the n-gram branch is one, shared


@pytest.mark.parametrize("classes", [2, 4])
def test_members_are_independent_networks_and_eval_averages_their_logits(classes):
    model = _model(3, classes).eval()
    x, lengths = _batch()
    members = model.member_models()
    assert len(members) == 3 and members[0] is model
    each = torch.stack([m.deep_logits(x, lengths) for m in members], 0)
    # differently initialised: the members disagree
    assert (each[0] - each[1]).abs().max() > 1e-3
    assert model.ngram is not None
    expected = each.mean(0) + model.ngram(x, lengths)
    got = model(x, lengths)
    torch.testing.assert_close(got, expected, rtol=1e-5, atol=1e-6)
    model.train()
    torch.manual_seed(3)
    train_out = model(x, lengths)
    width = 1 if classes == 2 else classes
    assert train_out.shape == (5, 3, width)


def test_each_member_learns_from_its_own_loss():
    model = _model(2).train()
    for m in model.modules():  # dropout off: the two passes below must see the same network
        if isinstance(m, torch.nn.Dropout):
            m.p = 0.0
    x, lengths = _batch()
    y = torch.tensor([0, 1, 1, 0, 1])
    objective = Classification(2)
    losses = objective.losses(model(x, lengths), y)
    assert losses.shape == (5,)
    # by hand: the mean over the members of each one's binary cross-entropy
    assert model.ngram is not None
    wide = model.ngram(x, lengths)
    by_hand = torch.stack(
        [
            F.binary_cross_entropy_with_logits(
                (m.deep_logits(x, lengths) + wide)[:, 0], y.float(), reduction="none"
            )
            for m in model.member_models()
        ],
        1,
    ).mean(1)
    torch.testing.assert_close(losses, by_hand, rtol=1e-5, atol=1e-6)
    # the second member's gradient is that of its own loss alone (halved by the mean)
    model.zero_grad()
    losses.mean().backward()
    second = model.others[0]
    grad = second.head.weight.grad.clone()
    model.zero_grad()
    own = F.binary_cross_entropy_with_logits(
        (second.deep_logits(x, lengths) + wide.detach())[:, 0], y.float()
    )
    (own / 2).backward()
    torch.testing.assert_close(grad, second.head.weight.grad, rtol=1e-5, atol=1e-7)


def test_training_metrics_come_from_the_mean_logits():
    objective = Classification(3)
    out = torch.tensor([[[2.0, 0.0, 0.0], [-3.0, 0.0, 1.0]]])  # mean: [-0.5, 0, 0.5] -> class 2
    sums = objective.sums(out, torch.tensor([2]), objective.losses(out, torch.tensor([2])))
    assert int(sums["cm"][2, 2]) == 1


def test_padded_forward_serves_the_ensemble():
    model = _model(2, classes=3).eval()
    x, lengths = _batch()
    torch.testing.assert_close(
        PaddedClassifier(model)(x, lengths), model.predict_proba(x, lengths), rtol=1e-5, atol=1e-6
    )


def test_embedding_copied_to_every_member_frozen_too():
    model = _model(3)
    assert model.embedding is not None
    with torch.no_grad():
        model.embedding.weight.fill_(0.25)
    model.embedding.weight.requires_grad_(False)
    model.copy_embedding_to_members()
    for emb in model.embeddings():
        assert torch.equal(emb.weight, model.embedding.weight)
        assert not emb.weight.requires_grad
    assert len(model.embeddings()) == 3


def test_kl_divergence_of_members_is_the_mean_of_theirs():
    t = torch.tensor([[[1.0], [-1.0]], [[0.5], [2.0]]])
    q = torch.tensor([[[0.0], [0.0]], [[0.0], [1.0]]])
    got = kl_divergence(t, q)
    each = kl_divergence(t.flatten(0, 1), q.flatten(0, 1)).view(2, 2)
    torch.testing.assert_close(got, each.mean(1))
    assert got.shape == (2,) and bool((got > 0).all())


def test_onnx_export_of_the_ensemble_matches_it(tmp_path):
    pytest.importorskip("onnxruntime")
    from lstmkit.export import check_classifier_onnx, export_onnx

    model = _model(2).eval()
    path = export_onnx(model, tmp_path / "m.onnx")
    ratio, diff = check_classifier_onnx(path, model)
    assert ratio <= 1.0
    # the check compares with the whole ensemble: a file of the first member alone differs
    alone = SequenceClassifier(model.config.model_copy(update={"members": 1})).eval()
    alone.load_state_dict({k: v for k, v in model.state_dict().items() if "others." not in k})
    x, lengths = _batch()
    gap = (alone.predict_proba(x, lengths) - model.predict_proba(x, lengths)).abs().max()
    assert gap > 10 * max(diff, 1e-6)
