"""The NBSVM-style n-gram branch (lstmkit.ngrams) and its place in SequenceClassifier."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.checkpoint import load_model_state, model_state, save_tensors
from lstmkit.data.batching import SequenceDataset
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.ngrams import NgramBranch, ngram_ids
from lstmkit.tasks.classify import fit_ngram_ratios

BIG = 1 << 22  # enough slots that the few n-grams below never collide


def distinct(ids: torch.Tensor, keep: torch.Tensor, row: int) -> list[int]:
    return ids[row][keep[row]].tolist()


def test_ngram_ids_counts_each_distinct_ngram_once_and_skips_padding() -> None:
    tokens = torch.tensor([[5, 6, 5, 6, 0, 0], [7, 8, 9, 7, 8, 9]])
    ids, keep = ngram_ids(tokens, torch.tensor([4, 6]), 2, BIG)
    # row 0: unigrams {5, 6}, bigrams {5 6, 6 5}; row 1: {7, 8, 9} and {7 8, 8 9, 9 7}
    assert keep.sum(1).tolist() == [4, 6]
    assert len(set(distinct(ids, keep, 0))) == 4
    ids3, keep3 = ngram_ids(tokens, torch.tensor([4, 6]), 3, BIG)
    # trigrams: row 0 {5 6 5, 6 5 6}; row 1 {7 8 9, 8 9 7, 9 7 8}
    assert keep3.sum(1).tolist() == [6, 9]
    # the same bigram hashes to the same slot in both rows; order matters
    ids_a, keep_a = ngram_ids(torch.tensor([[3, 4]]), None, 2, BIG)
    ids_b, keep_b = ngram_ids(torch.tensor([[4, 3]]), None, 2, BIG)
    ids_c, keep_c = ngram_ids(torch.tensor([[1, 3, 4, 0]]), None, 2, BIG)
    a, b, c = (
        set(distinct(ids_a, keep_a, 0)),
        set(distinct(ids_b, keep_b, 0)),
        set(distinct(ids_c, keep_c, 0)),
    )
    assert a <= c
    assert a != b and len(a & b) == 2  # the unigrams are shared, the bigrams are not
    # lengths=None treats id 0 as padding: the same as giving the lengths
    ids_n, keep_n = ngram_ids(tokens, None, 2, BIG)
    assert keep_n.sum(1).tolist() == [4, 6]


def test_ngram_ids_up_to_five_grams_count_every_distinct_ngram_once() -> None:
    # six distinct tokens: 6 + 5 + 4 + 3 + 2 distinct 1..5-grams; a row "1 2 1 2 1 2" has
    # 2 unigrams, 2 bigrams (12, 21), 2 trigrams, 2 four-grams and 2 five-grams
    tokens = torch.tensor([[1, 2, 3, 4, 5, 6], [1, 2, 1, 2, 1, 2]])
    ids, keep = ngram_ids(tokens, torch.tensor([6, 6]), 5, BIG)
    assert keep.sum(1).tolist() == [20, 10]
    # the orders below 5 are the same slots as with n = 3 (saved models keep their features)
    ids3, keep3 = ngram_ids(tokens, torch.tensor([6, 6]), 3, BIG)
    assert set(ids3[0][keep3[0]].tolist()) <= set(ids[0][keep[0]].tolist())


def test_ngram_ids_bad_input() -> None:
    with pytest.raises(ValueError, match="n-gram order must be 1..5, got 6"):
        ngram_ids(torch.tensor([[1, 2]]), None, 6, BIG)
    with pytest.raises(ValueError, match=r"expected token ids \(B, T\) int64"):
        ngram_ids(torch.zeros(2, 3), None, 2, BIG)


def test_fit_ratios_are_the_naive_bayes_log_count_ratios() -> None:
    # four texts, binary labels; slot counts by hand (binarised: a repeat counts once)
    tokens = torch.tensor([[5, 5, 6], [5, 7, 0], [6, 7, 0], [6, 6, 6]])
    lengths = torch.tensor([3, 2, 2, 3])
    labels = torch.tensor([1, 1, 0, 0])
    branch = NgramBranch(1, BIG, 1)
    facts = branch.fit_ratios([(tokens, lengths, labels)], alpha=1.0)
    assert facts["examples"] == 4 and facts["slots_used"] == 3  # unigrams 5, 6, 7
    # positive counts: 5 -> 2, 6 -> 1, 7 -> 1; negative: 5 -> 0, 6 -> 2, 7 -> 1
    p_total = BIG * 1.0 + 4  # alpha over every slot + the four positive occurrences
    q_total = BIG * 1.0 + 3
    for token, (p, q) in {5: (2, 0), 6: (1, 2), 7: (1, 1)}.items():
        slot, _ = ngram_ids(torch.tensor([[token]]), None, 1, BIG)
        got = float(branch.ratio[int(slot[0, 0]), 0])
        want = math.log(((p + 1) / p_total) / ((q + 1) / q_total))
        assert got == pytest.approx(want, rel=1e-5)
    # an unseen slot gets the ratio of the smoothing alone
    assert float(branch.ratio[12345, 0]) == pytest.approx(math.log(q_total / p_total), rel=1e-5)


def test_fit_ratios_one_vs_rest_for_many_classes_and_bad_labels() -> None:
    tokens = torch.tensor([[3], [4], [5]])
    branch = NgramBranch(1, BIG, 3)
    branch.fit_ratios([(tokens, None, torch.tensor([0, 1, 2]))])
    slot = {t: int(ngram_ids(torch.tensor([[t]]), None, 1, BIG)[0][0, 0]) for t in (3, 4, 5)}
    r = branch.ratio
    # token 3 only in class 0: positive ratio for class 0, negative for classes 1 and 2
    assert r[slot[3], 0] > 0 > r[slot[3], 1]
    assert r[slot[4], 1] > 0 > r[slot[4], 2]
    assert float(r[slot[5], 2]) == pytest.approx(float(r[slot[3], 0]), rel=1e-6)
    with pytest.raises(ValueError, match=r"labels must be in 0..2 for the n-gram ratios, got 0..3"):
        branch.fit_ratios([(tokens, None, torch.tensor([0, 1, 3]))])
    with pytest.raises(ValueError, match="alpha"):
        branch.fit_ratios([(tokens, None, torch.tensor([0, 1, 2]))], alpha=0.0)
    with pytest.raises(ValueError, match="no training examples"):
        branch.fit_ratios([])


def test_classifier_with_branch_padding_invariant_and_saved_with_the_weights(
    tmp_path: Path,
) -> None:
    torch.manual_seed(0)
    cfg = ClassifierConfig(vocab_size=40, ngrams=2, ngram_buckets=4096, pooling="mean")
    model = SequenceClassifier(cfg)
    assert model.ngram is not None
    with torch.no_grad():
        model.ngram.weight.normal_()
        model.ngram.ratio.normal_()
    model.eval()
    x = torch.randint(1, 40, (3, 6))
    lengths = torch.tensor([6, 4, 2])
    for i, n in enumerate(lengths.tolist()):
        x[i, n:] = 0
    a = model(x, lengths)
    padded = torch.cat([x, torch.zeros(3, 5, dtype=torch.int64)], 1)
    assert torch.allclose(a, model(padded, lengths), atol=1e-6)
    # the branch contributes: without it the logits differ
    wide = model.ngram(x, lengths)
    assert float(wide.detach().abs().max()) > 0.1
    # ratios and weights travel with the state (a buffer and a parameter)
    state = model_state(model)
    assert "ngram.ratio" in state and "ngram.weight" in state
    save_tensors(state, tmp_path / "model.safetensors")
    other = SequenceClassifier(cfg)
    load_model_state(other, tmp_path / "model.safetensors")
    other.eval()
    assert torch.equal(other(x, lengths), a)


def test_branch_needs_token_input() -> None:
    with pytest.raises(ValueError, match="model.ngrams = 2 needs token input"):
        SequenceClassifier(ClassifierConfig(vocab_size=None, input_size=4, ngrams=2))


def test_branch_learns_a_bigram_rule_the_unigrams_cannot_express() -> None:
    """Label = whether the bigram (3, 4) occurs; every text holds the unigrams 3 and 4. The
    NB-scaled bigram branch alone separates the classes after a few steps."""
    rng = np.random.default_rng(0)
    seqs, labels = [], []
    for i in range(200):
        body = list(rng.integers(5, 30, size=8))
        if i % 2:
            body[2:4] = [3, 4]
            body[6] = 4
        else:
            body[2:4] = [4, 3]
            body[6] = 3
        seqs.append(np.array(body, dtype=np.int64))
        labels.append(i % 2)
    data = SequenceDataset(seqs, np.array(labels))
    torch.manual_seed(0)
    model = SequenceClassifier(
        ClassifierConfig(vocab_size=30, ngrams=2, ngram_buckets=1 << 16, hidden_size=4)
    )
    facts = fit_ngram_ratios(model, data, batch_size=64)
    assert facts is not None and facts["examples"] == 200
    assert model.ngram is not None
    x = torch.stack([torch.from_numpy(s) for s in seqs])
    y = torch.tensor(labels, dtype=torch.float32)
    opt = torch.optim.Adam(model.ngram.parameters(), lr=0.05)
    for _ in range(20):
        loss = torch.nn.functional.binary_cross_entropy_with_logits(model.ngram(x)[:, 0], y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    acc = float(((model.ngram(x)[:, 0] > 0).float() == y).float().mean())
    assert acc == 1.0
    assert float(loss) < 0.1


def test_branch_exports_to_onnx_exactly(tmp_path: Path) -> None:
    """The hash, the binarising sort and the gather trace into ONNX (dynamic B and T)."""
    ort = pytest.importorskip("onnxruntime")
    from lstmkit.export import export_onnx

    torch.manual_seed(0)
    model = SequenceClassifier(
        ClassifierConfig(
            vocab_size=50, ngrams=3, ngram_buckets=4096, bidirectional=True, pooling="mean+max"
        )
    )
    assert model.ngram is not None
    with torch.no_grad():
        model.ngram.weight.normal_()
        model.ngram.ratio.normal_()
    model.eval()
    session = ort.InferenceSession(str(export_onnx(model, tmp_path / "ngram.onnx")))
    for steps in (3, 9, 20):
        x = torch.randint(1, 50, (4, steps))
        lengths = torch.tensor([steps, steps - 1, 2, 1])
        for i, n in enumerate(lengths.tolist()):
            x[i, n:] = 0
        want = model.predict_proba(x, lengths).detach().numpy()
        (got,) = session.run(None, {"tokens": x.numpy(), "lengths": lengths.numpy()})
        assert np.abs(got - want).max() <= 1e-5


def test_ngram_dropout_trains_the_branches_as_an_ensemble() -> None:
    torch.manual_seed(0)
    model = SequenceClassifier(
        ClassifierConfig(vocab_size=40, ngrams=2, ngram_buckets=4096, ngram_dropout=1.0)
    )
    assert model.ngram is not None
    with torch.no_grad():
        model.ngram.weight.normal_()
        model.ngram.ratio.normal_()
    x = torch.randint(1, 40, (400, 5))
    model.eval()
    both = model(x).detach()
    wide = model.ngram(x).detach()
    deep = both - wide
    model.train()
    out = model(x).detach()
    is_wide = torch.isclose(out, wide, atol=1e-6)[:, 0]
    is_deep = torch.isclose(out, deep, atol=1e-6)[:, 0]
    assert bool((is_wide ^ is_deep).all())  # every example: exactly one branch
    assert 150 < int(is_wide.sum()) < 250  # evenly split
    # 0.5: a quarter each branch alone, half both
    model.config.ngram_dropout = 0.5
    out = model(x).detach()
    alone_w = torch.isclose(out, wide, atol=1e-6)[:, 0]
    summed = torch.isclose(out, both, atol=1e-6)[:, 0]
    assert 60 < int(alone_w.sum()) < 140 and 150 < int(summed.sum()) < 250
    # prediction always sums both
    model.eval()
    assert torch.equal(model(x).detach(), both)
