"""lstmkit.models.SequenceClassifier: shapes, pooling, conv lengths, padding never changes a prediction."""

from __future__ import annotations

import pytest
import torch

from lstmkit.data.batching import collate_tokens
from lstmkit.models import ClassifierConfig, SequenceClassifier

POOLINGS = ["last", "mean", "max", "attention", "mean+max"]


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("cell", ["lstm", "gru", "rnn"])
def test_shapes(pooling: str, cell: str) -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(
        ClassifierConfig(
            vocab_size=50,
            embedding_dim=8,
            hidden_size=6,
            cell=cell,
            pooling=pooling,
            bidirectional=True,
            num_layers=2,
        )
    )
    x = torch.randint(1, 50, (4, 9))
    assert tuple(model(x, torch.tensor([9, 3, 5, 1])).shape) == (4, 1)
    multi = SequenceClassifier(
        ClassifierConfig(vocab_size=50, num_classes=46, pooling=pooling, cell=cell)
    )
    assert tuple(multi(x).shape) == (4, 46)
    proba = multi.predict_proba(x)
    assert torch.allclose(proba.sum(-1), torch.ones(4))


@pytest.mark.parametrize("pooling", POOLINGS)
@pytest.mark.parametrize("conv", [0, 4])
def test_padding_never_changes_a_prediction(pooling: str, conv: int) -> None:
    """The same review alone or in a padded batch with longer ones gives the same logits."""
    torch.manual_seed(0)
    cfg = ClassifierConfig(
        vocab_size=40,
        embedding_dim=8,
        hidden_size=6,
        pooling=pooling,
        bidirectional=True,
        conv_filters=conv,
        conv_kernel=3,
        pool_size=2,
    )
    model = SequenceClassifier(cfg).double().eval()
    reviews = [list(range(5, 5 + n)) for n in (12, 3, 30, 8)]
    tokens, lengths, _ = collate_tokens([(r, 0) for r in reviews])
    with torch.no_grad():
        batch = model(tokens, lengths)
        for i, r in enumerate(reviews):
            alone = model(torch.tensor([r]), torch.tensor([len(r)]))
            assert float((batch[i] - alone[0]).abs().max()) <= 1e-10, (pooling, i)


def test_real_valued_input_and_conv_lengths() -> None:
    model = SequenceClassifier(
        ClassifierConfig(vocab_size=None, input_size=28, num_classes=10, hidden_size=16)
    )
    assert tuple(model(torch.randn(3, 28, 28)).shape) == (3, 10)
    conv = SequenceClassifier(
        ClassifierConfig(vocab_size=100, conv_filters=8, conv_kernel=5, pool_size=4)
    )
    feats, lens = conv.features(torch.randint(1, 100, (2, 100)), torch.tensor([100, 9]))
    assert tuple(feats.shape) == (2, 24, 8)  # (100 - 5 + 1) // 4
    assert lens is not None and lens.tolist() == [24, 1]


def test_bad_config_and_input() -> None:
    with pytest.raises(ValueError, match="exactly one of vocab_size"):
        SequenceClassifier(ClassifierConfig(vocab_size=None))
    model = SequenceClassifier(ClassifierConfig(vocab_size=10))
    with pytest.raises(ValueError, match=r"expected token ids of shape \(B, T\) int64"):
        model(torch.randn(2, 3))
