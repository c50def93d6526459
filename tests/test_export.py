"""ONNX export (lstmkit.export): onnxruntime's probabilities equal predict_proba on variable-length
post-padded batches, with batch sizes and lengths other than the export example's."""

from __future__ import annotations

import os
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")

from lstmkit.data.batching import collate_tokens  # noqa: E402
from lstmkit.export import ExportError, export_onnx, export_run_onnx  # noqa: E402
from lstmkit.models import ClassifierConfig, SequenceClassifier  # noqa: E402

TOL = 1e-4


def _model(**kw: Any) -> SequenceClassifier:
    torch.manual_seed(0)
    base: dict[str, Any] = dict(
        vocab_size=50, embedding_dim=8, hidden_size=6, pooling="last", init="torch"
    )
    base.update(kw)
    return SequenceClassifier(ClassifierConfig(**base)).eval()


def _batch(lengths: list[int], vocab: int = 50, seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    rng = np.random.default_rng(seed)
    seqs = [(rng.integers(1, vocab, n), 0) for n in lengths]
    tokens, lens, _ = collate_tokens(seqs)
    return tokens, lens


def _session(path: Path) -> Any:
    return ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])


def _max_diff(
    model: SequenceClassifier, sess: Any, tokens: torch.Tensor, lens: torch.Tensor
) -> float:
    with torch.no_grad():
        ref = model.predict_proba(tokens, lens).numpy()
    (got,) = sess.run(None, {"tokens": tokens.numpy(), "lengths": lens.numpy()})
    assert got.shape == ref.shape
    return float(np.abs(got - ref).max())


@pytest.mark.parametrize(
    "options",
    [
        dict(num_layers=1),
        dict(num_layers=2),
        dict(num_layers=2, num_classes=3),
        dict(bidirectional=True),
        dict(num_layers=2, bidirectional=True, pooling="mean+max"),
        dict(pooling="attention"),
        dict(cell="gru", pooling="max"),
        dict(cell="rnn", impl="loop", pooling="mean"),
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()),
)
def test_onnx_matches_predict_proba(tmp_path: Path, options: dict[str, Any]) -> None:
    model = _model(**options)
    path = export_onnx(model, tmp_path / "sub" / "model.onnx")
    assert path == tmp_path / "sub" / "model.onnx" and path.exists()
    assert [p.name for p in tmp_path.joinpath("sub").iterdir()] == ["model.onnx"]  # no temp left
    onnx.checker.check_model(onnx.load(str(path)))
    sess = _session(path)
    assert [i.name for i in sess.get_inputs()] == ["tokens", "lengths"]
    assert [o.name for o in sess.get_outputs()] == ["probabilities"]
    # lengths 1..T, a full row, unsorted; then batch sizes / lengths unlike the example's (3, 7)
    batches = [
        list(range(1, 13)),
        [12, 3, 1, 7, 12],
        [1],
        [30, 2],
        [5] * 9,
    ]
    diffs = [_max_diff(model, sess, *_batch(b, seed=i)) for i, b in enumerate(batches)]
    assert max(diffs) <= TOL, diffs


def test_export_leaves_model_alone(tmp_path: Path) -> None:
    model = _model(dropout=0.2, num_layers=2).train()
    before = {k: v.clone() for k, v in model.state_dict().items()}
    export_onnx(model, tmp_path / "m.onnx")
    assert model.training
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())
    model.eval()
    assert _max_diff(model, _session(tmp_path / "m.onnx"), *_batch([4, 9, 2])) <= TOL


@pytest.mark.parametrize(
    ("options", "named"),
    [
        (dict(vocab_size=None, input_size=4), "vocab_size=None"),
        (dict(conv_filters=4, conv_kernel=3, pool_size=2), "conv_filters=4"),
        (dict(cell_options={"peephole": True}), "peephole"),
        (dict(cell_options={"proj_size": 3}), "proj_size=3"),
    ],
)
def test_unsupported_raises(tmp_path: Path, options: dict[str, Any], named: str) -> None:
    model = _model(**options)
    with pytest.raises(ExportError, match=named):
        export_onnx(model, tmp_path / "m.onnx")
    assert not list(tmp_path.iterdir())


REVIEWS = [
    "great",
    "awful film",
    "this movie was wonderful and moving",
    "one of the worst films i have ever seen, a total waste of time",
    "i loved the acting but the plot was thin and the ending made no sense at all",
    "brilliant",
    "boring boring boring",
    "the cast is superb and the director knows exactly what she is doing with every scene",
    "not good",
    "a masterpiece of modern cinema that i will watch again and again",
    "terrible script, wooden acting, and a soundtrack that never stops",
    "funny, warm and surprisingly smart",
    "i fell asleep halfway through",
    "the best performance of his career, heartbreaking and honest",
    "avoid this one",
    "it was fine i guess, nothing special but not bad either",
    "the special effects were cheap and the dialogue was laughable from start to finish",
    "beautiful photography and a haunting score",
    "why did anyone make this",
    "an instant classic",
]


@pytest.fixture(scope="module")
def seed003_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real run directory of the imdb-seed003 recipe (its 10,000-word vocabulary, Embedding(32)
    -> LSTM(32)), trained in quick mode (two steps, about 15 s): what ``lstmkit export`` reads."""
    from lstmkit.cli import main
    from lstmkit.data.resolve import ENV_VAR

    if not (Path(os.environ.get(ENV_VAR, "/nonexistent")) / "imdb.npz").exists():
        pytest.skip(f"{ENV_VAR} does not point at a directory with imdb.npz")
    run = tmp_path_factory.mktemp("seed003") / "run"
    assert main(["train", "imdb-seed003", "--quick", "--out", str(run), "--no-progress"]) == 0
    return run


def test_real_run_seed003(seed003_run: Path, tmp_path: Path) -> None:
    from lstmkit.runs import load_run

    model, _, vocab = load_run(seed003_run)
    assert model.config.vocab_size == 10000 and model.config.hidden_size == 32
    assert vocab is not None
    path = export_run_onnx(seed003_run, tmp_path / "imdb.onnx")
    sess = _session(path)
    rng = random.Random(3)
    texts = [" ".join([t] * rng.randint(1, 8)) for t in REVIEWS]  # 1 to ~200 words
    seqs = [(vocab.encode(t, maxlen=500), 0) for t in texts]
    tokens, lens, _ = collate_tokens(seqs)
    assert int(lens.min()) < 5 and int(lens.max()) > 100
    assert _max_diff(model, sess, tokens, lens) <= TOL
    # one at a time too (B=1, T=len): another batch size and length
    for i in (0, 7, 19):
        t, n, _ = collate_tokens([seqs[i]])
        assert _max_diff(model, sess, t, n) <= TOL
