"""Task ``classify``: the Keras data sets (IMDB, Reuters-46, MNIST read row by row) and numeric
arrays of your own (``[data.arrays]``), with Keras' semantics.

IMDB and Reuters load as Keras' loaders give them (``num_words``, ``skip_top``,
``index_from``), cut to ``maxlen`` (``truncating`` 'pre' or 'post'); Keras' ``validation_split``
takes the last fraction of the training data. The run saves ``vocab.json`` (the data set's word
index) so ``lstmkit predict`` and ``serve`` read raw reviews. Word vectors may be pretrained in
the run (``[pretrain]``) on the training split (and IMDB's unlabelled reviews); the n-gram
branch's naive-Bayes ratios are fitted on the training split only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.config import Recipe
from lstmkit.data.arrays import load_arrays
from lstmkit.data.batching import SequenceDataset, collate_floats, collate_tokens
from lstmkit.data.keras_datasets import load_imdb, load_mnist, load_reuters
from lstmkit.data.resolve import resolve
from lstmkit.data.vocabulary import Vocabulary
from lstmkit.errors import ConfigError
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.pretrain import imdb_unlabelled, pretrain_embedding
from lstmkit.runs import VOCAB_FILE, load_run
from lstmkit.tasks.base import QUICK_CLASSIFIER, Outcome, Record, Setup, took
from lstmkit.train import Trainer

logger = logging.getLogger(__name__)


@dataclass
class Prepared:
    """Datasets and facts the model needs."""

    train: SequenceDataset
    valid: SequenceDataset | None
    test: SequenceDataset
    num_classes: int
    vocab_size: int | None
    input_size: int | None
    vocab: Vocabulary | None
    real_valued: bool


def truncate(seqs: Sequence[Any] | np.ndarray, maxlen: int | None, side: str) -> list[list[int]]:
    """Each sequence cut to its last (``side`` 'pre') or first ('post') ``maxlen`` ids."""
    if not maxlen:
        return [list(s) for s in seqs]
    return [list(s[-maxlen:]) if side == "pre" else list(s[:maxlen]) for s in seqs]


def prepare(recipe: Recipe) -> Prepared:
    """Load the recipe's dataset with Keras' semantics, truncate, split off validation."""
    d = recipe.data
    vocab = None
    real = False
    train_x: list[Any]
    test_x: list[Any]
    if d.dataset == "arrays":
        assert d.arrays is not None
        arrays = load_arrays(d.arrays, recipe.train.seed)
        train_x, y_tr = list(arrays.x_train), arrays.y_train
        test_x, y_te = list(arrays.x_test), arrays.y_test
        num_classes = int(max(y_tr.max(), y_te.max() if len(y_te) else 0)) + 1
        vocab_size, input_size, real = None, int(arrays.x_train.shape[-1]), True
    elif d.dataset == "mnist":
        (x_tr, y_tr), (x_te, y_te) = load_mnist()
        train_x = list(x_tr.astype(np.float32) / 255.0)
        test_x = list(x_te.astype(np.float32) / 255.0)
        num_classes, vocab_size, input_size, real = 10, None, 28, True
    else:
        loader = load_imdb if d.dataset == "imdb" else load_reuters
        (x_tr, y_tr), (x_te, y_te) = loader(
            num_words=d.num_words, skip_top=d.skip_top, index_from=d.index_from
        )
        train_x = truncate(x_tr, d.maxlen, d.truncating)
        test_x = truncate(x_te, d.maxlen, d.truncating)
        num_classes = int(max(y_tr.max(), y_te.max())) + 1
        vocab_size = d.num_words or int(max(max(s) for s in train_x + test_x)) + 1
        input_size = None
        vocab = Vocabulary.from_keras(d.dataset, d.num_words, d.index_from, d.skip_top)
    y_tr = np.asarray(y_tr, dtype=np.int64)
    if d.limit:
        train_x, y_tr, test_x, y_te = (
            train_x[: d.limit],
            y_tr[: d.limit],
            test_x[: d.limit],
            y_te[: d.limit],
        )
    # Keras' validation_split takes the last fraction of the (already shuffled) training data
    n_val = int(len(train_x) * d.validation_split)
    cut = len(train_x) - n_val
    train = SequenceDataset(train_x[:cut], y_tr[:cut], real_valued=real)
    valid = SequenceDataset(train_x[cut:], y_tr[cut:], real_valued=real) if n_val else None
    test = SequenceDataset(test_x, np.asarray(y_te, dtype=np.int64), real_valued=real)
    return Prepared(train, valid, test, num_classes, vocab_size, input_size, vocab, real)


def dataset_labels(dataset: str, num_classes: int) -> list[str]:
    """Human-readable class names: IMDB negative/positive, Reuters topic names, MNIST digits."""
    if dataset == "imdb":
        return ["negative", "positive"]
    if dataset == "reuters":
        topics = json.loads(resolve("reuters_topics.json").read_text())
        return [str(t) for t in topics][:num_classes]
    return [str(i) for i in range(num_classes)]


def build_model(recipe: Recipe, data: Prepared) -> SequenceClassifier:
    """The recipe's classifier with the data's vocabulary / input size and class count."""
    updates: dict[str, Any] = {"num_classes": data.num_classes}
    if data.real_valued:
        updates.update(vocab_size=None, input_size=data.input_size)
    else:
        updates.update(vocab_size=data.vocab_size, input_size=None)
    cfg = ClassifierConfig.model_validate({**recipe.model.model_dump(), **updates})
    return SequenceClassifier(cfg)


# -- shared by the two classifier tasks (classify, text) --------------------------------------
def pretrain(
    model: SequenceClassifier,
    recipe: Recipe,
    train: SequenceDataset,
    unlabelled: list[np.ndarray] | None = None,
) -> dict[str, Any] | None:
    """``recipe.pretrain`` (:mod:`lstmkit.pretrain`) on the training split's token sequences
    (and ``unlabelled``, IMDB's unlabelled reviews, when already loaded), into the model's
    embedding; None when the recipe asks for none."""
    if recipe.pretrain.method == "none":
        if recipe.pretrain.freeze:
            raise ConfigError("pretrain.freeze keeps pretrained vectors fixed: set pretrain.method")
        return None
    if model.embedding is None:
        raise ConfigError(
            f"pretrain.method {recipe.pretrain.method!r} pretrains word vectors; this model "
            "reads real-valued sequences -- set pretrain.method = 'none'"
        )
    report = pretrain_embedding(
        model.embedding, recipe, [train[i][0] for i in range(len(train))], unlabelled
    )
    model.copy_embedding_to_members()  # a deep ensemble: every member starts from the vectors
    return report


def freeze_pretrained(model: SequenceClassifier, recipe: Recipe) -> None:
    """With ``pretrain.freeze``, the embedding's weights take no gradient (the optimizer skips
    them): called on every setup, a resumed run included."""
    if recipe.pretrain.freeze:
        for embedding in model.embeddings():
            embedding.weight.requires_grad_(False)


def vat_texts(
    recipe: Recipe, train: SequenceDataset, unlabelled: list[np.ndarray] | None
) -> SequenceDataset | None:
    """The texts virtual adversarial training reads (``train.vat_eps > 0``): the training
    split's, plus ``unlabelled`` (IMDB's unlabelled reviews, cut to ``data.maxlen`` as every
    split is) when ``train.vat_unlabelled``; labels 0 (never read). None without VAT."""
    if not recipe.train.vat_eps:
        return None
    texts: list[Any] = [train[i][0] for i in range(len(train))]
    if recipe.train.vat_unlabelled:
        if unlabelled is None:
            raise ConfigError("train.vat_unlabelled needs IMDB's unlabelled reviews")
        texts += truncate(unlabelled, recipe.data.maxlen, recipe.data.truncating)
    return SequenceDataset(texts, np.zeros(len(texts), dtype=np.int64))


def fit_ngram_ratios(
    model: SequenceClassifier, train: SequenceDataset, batch_size: int = 512
) -> dict[str, float] | None:
    """Fit the naive-Bayes ratios of the model's n-gram branch (``model.ngrams``) on the
    training split -- never on validation or test data. None when the model has no branch."""
    if model.ngram is None:
        return None

    def batches() -> Iterator[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
        for start in range(0, len(train), batch_size):
            end = min(start + batch_size, len(train))
            yield collate_tokens([train[i] for i in range(start, end)])

    facts = model.ngram.fit_ratios(batches())
    logger.info(
        "n-gram branch: naive-Bayes ratios of %d slots fitted on %d training examples",
        int(facts["slots_used"]),
        int(facts["examples"]),
    )
    return facts


def classifier_trainer_args(
    recipe: Recipe, num_classes: int, real_valued: bool = False
) -> dict[str, Any]:
    """The Trainer's arguments for a classifier (classification objective, length bucketing)."""
    return {
        "num_classes": num_classes,
        "collate": collate_floats if real_valued else collate_tokens,
        "bucketing": recipe.data.bucketing,
        "bucket_chunk": recipe.data.bucket_chunk,
    }


def accuracy_summary(name: str, test: dict[str, Any], metrics: dict[str, Any], out: Path) -> str:
    """``NAME: test accuracy A, macro-F1 F, loss L (steps, min) -> OUT``."""
    return (
        f"{name}: test accuracy {test['accuracy']:.4f}, macro-F1 {test['macro_f1']:.4f}, "
        f"loss {test['loss']:.4f} {took(metrics, out)}"
    )


class ClassifyTask:
    """The Keras data sets and numeric arrays (see the module docstring)."""

    name = "classify"
    description = "the Keras data sets (IMDB, Reuters-46, MNIST rows) and numeric arrays"

    def check(self, recipe: Recipe) -> None:
        """Nothing beyond the recipe's own validation."""

    def setup(self, recipe: Recipe, *, resume: bool, given: frozenset[str] | None = None) -> Setup:
        """Load and cut the data set, build the classifier, pretrain its word vectors."""
        data = prepare(recipe)
        model = build_model(recipe, data)
        unlabelled = None
        wants_unlabelled = recipe.train.vat_unlabelled or (
            recipe.pretrain.unlabelled and not resume
        )
        if wants_unlabelled:
            reader = (
                "train.vat_unlabelled" if recipe.train.vat_unlabelled else "pretrain.unlabelled"
            )
            unlabelled = imdb_unlabelled(recipe, reader)
        pretrained = None
        if not resume:  # a resumed run restores these from its checkpoint
            pretrained = pretrain(model, recipe, data.train, unlabelled)
            fit_ngram_ratios(model, data.train)
        freeze_pretrained(model, recipe)
        vocab = data.vocab

        def save_inputs(run_dir: Path) -> None:
            if vocab is not None:
                vocab.save(run_dir / VOCAB_FILE)

        return Setup(
            model=model,
            train=data.train,
            valid=data.valid,
            trainer=classifier_trainer_args(recipe, data.num_classes, data.real_valued),
            config={
                "model": model.config.to_dict(),
                "real_valued": data.real_valued,
                "labels": dataset_labels(recipe.data.dataset, data.num_classes),
            },
            data=data,
            save_inputs=save_inputs,
            facts={"pretrain": pretrained},
            unlabelled=vat_texts(recipe, data.train, unlabelled),
        )

    def evaluate(
        self, recipe: Recipe, setup: Setup, trainer: Trainer, history: list[dict[str, Any]]
    ) -> Outcome:
        """Test loss, accuracy and macro-F1."""
        data: Prepared = setup.data
        test = trainer.evaluate(data.test, data.test.lengths)
        return Outcome(
            {"test": test},
            Record("test_accuracy", test["accuracy"], {"macro_f1": test["macro_f1"]}),
        )

    def summary(self, name: str, metrics: dict[str, Any], out: Path) -> str:
        """Test accuracy, macro-F1 and loss."""
        return accuracy_summary(name, metrics["test"], metrics, out)

    def evaluate_run(self, run_dir: Path) -> dict[str, Any]:
        """Re-evaluate on the recipe's test set (same data preparation)."""
        model, config, _ = load_run(run_dir)
        recipe = Recipe.model_validate(config["recipe"])
        data = prepare(recipe)
        trainer = Trainer(
            model,
            recipe.train,
            num_classes=data.num_classes,
            collate=collate_floats if data.real_valued else collate_tokens,
            progress=False,
        )
        return trainer.evaluate(data.test, data.test.lengths)

    def quick_overrides(self, recipe: Recipe) -> list[str]:
        """Two steps on 64 examples, small batches."""
        return list(QUICK_CLASSIFIER)
