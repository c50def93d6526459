"""lstmkit.pretrain: word2vec vectors trained in the run initialise the embedding."""

from __future__ import annotations

import io
import os
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch

from lstmkit.config import ConfigError, PretrainConfig, load_recipe, recipe_from_dict
from lstmkit.data.resolve import ENV_VAR
from lstmkit.pretrain import pretrain_embedding, stable_hash, word2vec_matrix

RECIPES = Path(__file__).resolve().parents[1] / "lstmkit" / "recipes"
MIRROR = Path(os.environ.get(ENV_VAR) or Path(__file__).resolve().parents[2] / "shared" / "data")


def _two_topics(n: int = 400, seed: int = 0) -> list[np.ndarray]:
    """Sentences that use words 3..7 together or words 8..12 together, never mixed; id 40 is
    too rare to keep; 0 is padding."""
    rng = np.random.default_rng(seed)
    out = []
    for i in range(n):
        words = rng.integers(3, 8, 12) if i % 2 else rng.integers(8, 13, 12)
        out.append(np.concatenate([words, [0, 0]]))
    out[0] = np.concatenate([out[0][:-2], [40, 0]])
    return out


def _cos(a: np.ndarray, b: np.ndarray) -> float:
    return float(a @ b / (np.linalg.norm(a) * np.linalg.norm(b)))


def test_word2vec_learns_which_ids_go_together() -> None:
    cfg = PretrainConfig(method="word2vec", passes=20, window=3, sample=0.0, init_std=0.25)
    matrix, kept, facts = word2vec_matrix(_two_topics(), 50, 16, cfg, seed=1, workers=1)
    assert matrix.shape == (50, 16) and matrix.dtype == np.float32
    assert kept[3:13].all() and not kept[0] and not kept[40] and kept.sum() == 10
    assert facts["tokens"] == 400 * 12 + 1 and facts["sentences"] == 400
    assert np.all(matrix[0] == 0)  # padding row
    # kept rows scaled to init_std; the others random with the same spread
    assert abs(float(matrix[3:13].std()) - 0.25) < 0.08
    assert matrix[13:].std() == pytest.approx(0.25, rel=0.15)
    same = np.mean([_cos(matrix[a], matrix[b]) for a in range(3, 8) for b in range(3, 8) if a < b])
    cross = np.mean([_cos(matrix[a], matrix[b]) for a in range(3, 8) for b in range(8, 13)])
    assert same > cross + 0.3, (same, cross)


def test_word2vec_one_worker_is_reproducible() -> None:
    cfg = PretrainConfig(method="word2vec", passes=2)
    a, _, _ = word2vec_matrix(_two_topics(60), 50, 8, cfg, seed=3, workers=1)
    b, _, _ = word2vec_matrix(_two_topics(60), 50, 8, cfg, seed=3, workers=1)
    np.testing.assert_array_equal(a, b)
    assert stable_hash("12") == stable_hash("12") == 1330857165


def test_word2vec_bad_input() -> None:
    cfg = PretrainConfig(method="word2vec")
    with pytest.raises(ValueError, match=r"token ids must be in 0\.\.9 .* got 3\.\.10"):
        word2vec_matrix([np.array([3, 10])], 10, 4, cfg)
    with pytest.raises(ValueError, match="no tokens"):
        word2vec_matrix([np.array([0, 0])], 10, 4, cfg)
    with pytest.raises(ValueError, match="kept no ids.*min_count = 3"):
        word2vec_matrix([np.array([3, 4])], 10, 4, cfg)


def _archive(path: Path, texts: list[str]) -> Path:
    with tarfile.open(path, "w:gz") as tar:
        for i, text in enumerate(texts):
            data = text.encode()
            info = tarfile.TarInfo(f"aclImdb/train/unsup/{i}_0.txt")
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return path


def test_pretrain_embedding_reads_the_unlabelled_reviews(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    words = {"good": 1, "great": 2, "fine": 3, "bad": 4, "awful": 5, "poor": 6}
    monkeypatch.setattr("lstmkit.data.imdb_texts.get_word_index", lambda _: words)
    archive = _archive(
        tmp_path / "unsup.tar.gz", ["good great fine " * 4, "bad awful poor " * 4] * 30
    )
    monkeypatch.setattr("lstmkit.data.imdb_texts.resolve", lambda name: archive)
    recipe = recipe_from_dict(
        {
            "data": {"dataset": "imdb", "num_words": 12},
            "train": {"num_threads": 1},
            "pretrain": {"method": "word2vec", "unlabelled": True, "passes": 3, "min_count": 1},
        }
    )
    emb = torch.nn.Embedding(12, 8, padding_idx=0)
    before = emb.weight.detach().clone()
    # one labelled training text: ids 1 (start), 4..9 = the six words
    facts = pretrain_embedding(emb, recipe, [np.array([1, 4, 5, 6, 0])])
    assert facts is not None
    assert facts["unlabelled_reviews"] == 60 and facts["sentences"] == 61
    assert facts["tokens"] == 4 + 60 * 13  # start char + 12 words per unlabelled review
    assert facts["kept_ids"] == 7  # the start char and the six words
    assert not torch.equal(emb.weight, before)
    assert torch.all(emb.weight[0] == 0)
    # method none: nothing changes
    plain = recipe_from_dict({"data": {"dataset": "imdb"}})
    assert pretrain_embedding(emb, plain, [np.array([1, 4])]) is None


def test_pretrain_recipe_errors(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="dataset 'mnist' has no words"):
        recipe_from_dict(
            {
                "data": {"dataset": "mnist", "num_words": None, "maxlen": None},
                "pretrain": {"method": "word2vec"},
            }
        )
    with pytest.raises(ValueError, match="dataset 'reuters' has none"):
        recipe_from_dict(
            {"data": {"dataset": "reuters"}, "pretrain": {"method": "word2vec", "unlabelled": True}}
        )
    with pytest.raises(ValueError, match="pretrain.unlabelled needs a pretrain.method"):
        recipe_from_dict({"pretrain": {"unlabelled": True}})
    with pytest.raises(ConfigError, match="pretrain.passes"):
        load_recipe(RECIPES / "imdb-best.toml", ["pretrain.passes=0"])
    # a check across tables: one message naming the file and the fields, no empty field path
    with pytest.raises(ConfigError) as err:
        load_recipe(RECIPES / "imdb-best.toml", ["pretrain.method=none"])
    assert str(err.value) == (
        f"{RECIPES / 'imdb-best.toml'}: Value error, pretrain.unlabelled needs a "
        "pretrain.method (e.g. 'word2vec')"
    )
    r, _ = load_recipe(RECIPES / "imdb-best.toml", ["passes=2", "epochs=1"])
    assert r.pretrain.passes == 2 and r.train.epochs == 1


@pytest.mark.skipif(
    not (MIRROR / "imdb.npz").is_file() or not (MIRROR / "aclImdb_v1_text.tar.gz").is_file(),
    reason="the IMDB files are not in the data mirror",
)
def test_imdb_run_pretrains_on_unlabelled_reviews(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The imdb-best recipe, cut to a few reviews: the run trains vectors on the training split
    plus as many unlabelled reviews (data.limit) and reports it in its metrics."""
    from lstmkit.experiment import run_recipe

    monkeypatch.setenv(ENV_VAR, str(MIRROR))
    recipe, raw = load_recipe(
        RECIPES / "imdb-best.toml",
        [
            "data.limit=40",
            "data.validation_split=0.25",
            "pretrain.passes=1",
            "pretrain.min_count=1",
            "train.max_steps=1",
            "train.num_threads=1",
        ],
    )
    metrics = run_recipe(recipe, raw, tmp_path / "run", progress=False)
    facts = metrics["pretrain"]
    assert facts["unlabelled_reviews"] == 40
    assert facts["sentences"] == 30 + 40  # the 30 training reviews, not the 10 validation ones
    assert facts["kept_ids"] > 1000


@pytest.mark.skipif(
    not (MIRROR / "imdb.npz").is_file() or not (MIRROR / "aclImdb_v1_text.tar.gz").is_file(),
    reason="the IMDB files are not in the data mirror",
)
def test_seed000_frozen_vectors_stay_frozen(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """imdb-seed000 (the note's run): word2vec vectors copied in and kept fixed by training --
    the LSTM and head change, the embedding does not -- and still fixed after --resume."""
    from lstmkit.tasks import get_task
    from lstmkit.train import Trainer

    monkeypatch.setenv(ENV_VAR, str(MIRROR))
    recipe, _ = load_recipe(
        RECIPES / "imdb-seed000.toml",
        [
            "data.limit=60",
            "pretrain.passes=1",
            "pretrain.min_count=1",
            "train.max_steps=3",
            "train.batch_size=16",
            "train.evaluate_every=0",
            "train.num_threads=1",
        ],
    )
    assert recipe.pretrain.freeze and recipe.pretrain.unlabelled
    task = get_task("classify")
    setup = task.setup(recipe, resume=False)
    model = setup.model
    assert not model.embedding.weight.requires_grad
    before = {k: v.detach().clone() for k, v in model.state_dict().items()}
    assert float(before["embedding.weight"][1:].abs().sum()) > 0  # the vectors are in
    trainer = Trainer(
        model, recipe.train, run_dir=tmp_path / "run", progress=False, **setup.trainer
    )
    trainer.fit(setup.train, setup.train.lengths, setup.valid, setup.valid.lengths)
    after = model.state_dict()
    assert torch.equal(after["embedding.weight"], before["embedding.weight"])
    changed = [
        k for k in before if k != "embedding.weight" and not torch.equal(after[k], before[k])
    ]
    assert any(k.startswith("rnn") or "layers" in k for k in changed), changed
    assert any(k.startswith("head") for k in changed), changed
    resumed = task.setup(recipe, resume=True)
    assert not resumed.model.embedding.weight.requires_grad
