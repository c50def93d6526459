"""Text classification on your own labelled files, in any language: read -> tokenize -> train ->
evaluation report.

``lstmkit train --task text --train train.csv [--valid v.csv] [--test t.csv] --text-column review
--label-column label`` (or a recipe with ``[data] dataset = "text"`` and a ``[data.text]`` table,
:class:`lstmkit.data.text.TextSource`) runs this task (:class:`TextTask`):

1. read the files (:mod:`lstmkit.data.text`; every error names file, line and column), class
   names from the training labels, a stratified validation split when no ``valid`` file is given,
   the class balance of each split;
2. train the tokenizer on the training texts only (:mod:`lstmkit.data.tokenize`) and encode;
3. build the :class:`lstmkit.models.SequenceClassifier` (optionally with pretrained word vectors,
   :mod:`lstmkit.data.vectors`, frozen or fine-tuned; coverage reported) and train it with the
   Trainer (classification objective);
4. evaluate on the test file (else the validation records): accuracy, macro-F1, per-class
   precision / recall / F1 / support, and the confusion matrix as ``evaluation.json`` and
   ``confusion.png``.

Every data check runs before the run directory is touched: a failed run leaves an earlier run
intact. The run directory (``config.json`` with ``labels``, ``tokenizer.json``,
``model.safetensors``, ``metrics.json``, ``evaluation.json``, ``confusion.png``, history, curves,
checkpoints) works with ``lstmkit predict / evaluate / export / serve`` like any other.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.baselines.text import TextBaseline, tfidf_logistic
from lstmkit.config import Recipe, check_monitor
from lstmkit.data.batching import SequenceDataset, collate_tokens
from lstmkit.data.encode_cache import SplitEncodingError, encode_splits
from lstmkit.data.profile import TextProfile, profile_texts
from lstmkit.data.text import (
    ClassBalance,
    DataFileError,
    LabelledTexts,
    TextSource,
    class_balance,
    class_names,
    label_ids,
    read_labelled_texts,
    stratified_split,
)
from lstmkit.data.tokenize import TOKENIZER_FILE, EmptyEncodingError, TextTokenizer
from lstmkit.data.vectors import Coverage, embedding_matrix, load_vectors
from lstmkit.errors import RunKindError
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.plots import pyplot, save_png
from lstmkit.runs import load_run, write_json
from lstmkit.tasks.base import QUICK_CLASSIFIER, Outcome, Record, Setup, took
from lstmkit.tasks.classify import (
    classifier_trainer_args,
    fit_ngram_ratios,
    freeze_pretrained,
    pretrain,
)
from lstmkit.tasks.defaults import Choice, apply_choices
from lstmkit.tasks.text_defaults import text_choices
from lstmkit.train import Trainer

logger = logging.getLogger(__name__)


@dataclass
class PreparedText:
    """Encoded splits and the facts about them, computed before anything is written."""

    source: TextSource
    labels: list[str]
    tokenizer: TextTokenizer
    train: SequenceDataset
    valid: SequenceDataset
    test: SequenceDataset | None
    balance: dict[str, ClassBalance]
    unknown_rate: dict[str, float]
    valid_from: str
    texts: dict[str, tuple[list[str], np.ndarray]] = field(default_factory=dict)


def _no_token(data: LabelledTexts, err: EmptyEncodingError) -> DataFileError:
    return DataFileError(
        f"{data.path}: {data.where} {data.lines[err.index]}: the text gives no token after "
        "Unicode normalisation; remove the record or give it a text"
    )


def _encode(tok: TextTokenizer, data: LabelledTexts) -> list[np.ndarray]:
    try:
        return tok.encode_batch(data.texts)
    except EmptyEncodingError as err:
        raise _no_token(data, err) from None


def _first_per_class(data: LabelledTexts, limit: int | None) -> LabelledTexts:
    """The first ``limit`` records of each label (all when ``limit`` is None): a small sample that
    keeps every class, whatever the order of the file."""
    if limit is None:
        return data
    seen: dict[str, int] = {}
    keep = []
    for i, label in enumerate(data.labels):
        seen[label] = seen.get(label, 0) + 1
        if seen[label] <= limit:
            keep.append(i)
    return data.subset(keep)


def prepare_text(
    source: TextSource,
    maxlen: int | None,
    truncating: str,
    seed: int,
    limit: int | None = None,
    threads: int = 1,
) -> PreparedText:
    """Read, check, split and encode the files of ``source`` (no file is written). ``limit``
    (``data.limit``, e.g. ``lstmkit train --quick``) keeps the first ``limit`` records of each
    class of each file. ``threads``: the tokenizer's threads (``train.num_threads``; ``lstmkit
    train`` without it: torch's thread count, the cores training will use; 1 = one thread, more =
    ``tokenizers``' thread pool). The tokenizer and the ids of every split come from the cache of
    encoded ids when these texts were encoded so before (:mod:`lstmkit.data.encode_cache`)."""
    s = source
    if s.text_column == s.label_column:
        raise DataFileError(
            f"{s.train}: the text column and the label column are both {s.text_column!r}; "
            "name two different columns"
        )
    train_all = read_labelled_texts(s.train, s.text_column, s.label_column, encoding=s.encoding)
    names = class_names(train_all, s.label_column)
    train_all = _first_per_class(train_all, limit)
    ids_all = label_ids(train_all, names, s.label_column, train_all.path)
    if s.valid:
        valid = read_labelled_texts(s.valid, s.text_column, s.label_column, encoding=s.encoding)
        valid = _first_per_class(valid, limit)
        train = train_all
        y_train = ids_all
        y_valid = label_ids(valid, names, s.label_column, train_all.path)
        valid_from = str(s.valid)
    else:
        tr_idx, va_idx = stratified_split(ids_all, s.valid_fraction, seed)
        if len(va_idx) == 0:
            raise DataFileError(
                f"{s.train}: too few records ({len(train_all)}) to hold out a validation split; "
                "give --valid or more records"
            )
        train, valid = train_all.subset(tr_idx), train_all.subset(va_idx)
        y_train, y_valid = ids_all[tr_idx], ids_all[va_idx]
        valid_from = f"stratified {s.valid_fraction:g} of {s.train} (seed {seed})"
    test = None
    y_test = None
    if s.test:
        test = read_labelled_texts(s.test, s.text_column, s.label_column, encoding=s.encoding)
        test = _first_per_class(test, limit)
        y_test = label_ids(test, names, s.label_column, train_all.path)
    splits = {"train": train, "valid": valid} | ({"test": test} if test is not None else {})
    try:
        encoded = encode_splits(
            {name: data.texts for name, data in splits.items()},
            s.tokenizer,
            vocab_size=s.vocab_size,
            min_frequency=s.min_frequency,
            lowercase=s.lowercase,
            maxlen=maxlen,
            truncating=truncating,
            threads=threads,
        )
    except SplitEncodingError as err:
        raise _no_token(splits[err.split], err) from None
    except ValueError as err:
        raise DataFileError(f"[data.text]: {err}") from None
    tok, x_train, x_valid = encoded.tokenizer, encoded.ids["train"], encoded.ids["valid"]
    balance = {"train": class_balance(y_train, names), "valid": class_balance(y_valid, names)}
    unknown = {"train": tok.unknown_fraction(x_train), "valid": tok.unknown_fraction(x_valid)}
    test_ds = None
    if test is not None and y_test is not None:
        x_test = encoded.ids["test"]
        balance["test"] = class_balance(y_test, names)
        unknown["test"] = tok.unknown_fraction(x_test)
        test_ds = SequenceDataset(x_test, y_test)
    texts = {"train": (train.texts, y_train), "valid": (valid.texts, y_valid)}
    if test is not None and y_test is not None:
        texts["test"] = (test.texts, y_test)
    return PreparedText(
        s,
        names,
        tok,
        SequenceDataset(x_train, y_train),
        SequenceDataset(x_valid, y_valid),
        test_ds,
        balance,
        unknown,
        valid_from,
        texts,
    )


def _token_counts(ds: SequenceDataset, vocab_size: int) -> np.ndarray:
    flat = np.concatenate([ds[i][0] for i in range(len(ds))])
    return np.bincount(flat, minlength=vocab_size)


def build_text_model(
    recipe: Recipe, data: PreparedText
) -> tuple[SequenceClassifier, Coverage | None]:
    """The recipe's classifier sized for the tokenizer and classes, with word vectors loaded
    into the embedding when ``vectors`` is set (and frozen when ``freeze_vectors``)."""
    s = data.source
    updates: dict[str, Any] = {
        "num_classes": len(data.labels),
        "vocab_size": data.tokenizer.vocab_size,
        "input_size": None,
    }
    vectors = None
    if s.vectors:
        vocab = data.tokenizer.vocab()
        vectors = load_vectors(s.vectors, fmt=s.vectors_format, keep=vocab)
        if vectors.dim != recipe.model.embedding_dim:
            logger.info(
                "model.embedding_dim set to %d, the size of the vectors in %s",
                vectors.dim,
                s.vectors,
            )
        updates["embedding_dim"] = vectors.dim
    cfg = ClassifierConfig.model_validate({**recipe.model.model_dump(), **updates})
    model = SequenceClassifier(cfg)
    coverage = None
    if vectors is not None:
        assert model.embedding is not None
        matrix, coverage = embedding_matrix(
            data.tokenizer.vocab(),
            vectors,
            model.embedding.weight.detach().numpy(),
            token_counts=_token_counts(data.train, data.tokenizer.vocab_size),
        )
        matrix[0] = 0.0  # [PAD]
        with torch.no_grad():
            model.embedding.weight.copy_(torch.from_numpy(matrix))
        if s.freeze_vectors:
            model.embedding.weight.requires_grad_(False)
        model.copy_embedding_to_members()  # and frozen in every member when frozen
        logger.info("%s", coverage.describe())
    return model, coverage


# -- the evaluation report --------------------------------------------------------------------
def classification_report(cm: np.ndarray, labels: list[str]) -> dict[str, Any]:
    """Accuracy, macro-F1 and per-class precision / recall / F1 / support from a confusion
    matrix (rows = true class, columns = predicted). A class never predicted has precision 0;
    macro-F1 averages the classes present in truth or prediction."""
    cm = np.asarray(cm, dtype=np.int64)
    tp = np.diag(cm).astype(np.float64)
    predicted = cm.sum(0).astype(np.float64)
    support = cm.sum(1).astype(np.float64)
    per_class = {}
    f1s = []
    for i, name in enumerate(labels):
        p = tp[i] / predicted[i] if predicted[i] else 0.0
        r = tp[i] / support[i] if support[i] else 0.0
        f1 = 2 * p * r / (p + r) if p + r else 0.0
        if predicted[i] + support[i]:
            f1s.append(f1)
        per_class[name] = {
            "precision": float(p),
            "recall": float(r),
            "f1": float(f1),
            "support": int(support[i]),
        }
    total = cm.sum()
    return {
        "accuracy": float(tp.sum() / total) if total else float("nan"),
        "macro_f1": float(np.mean(f1s)) if f1s else float("nan"),
        "per_class": per_class,
        "labels": list(labels),
        "confusion_matrix": cm.tolist(),
        "examples": int(total),
    }


@torch.no_grad()
def predict_classes(
    model: SequenceClassifier, ds: SequenceDataset, batch_size: int = 256
) -> np.ndarray:
    """Predicted class id of every item of ``ds`` (batched by length)."""
    was = model.training
    model.eval()
    order = np.argsort(ds.lengths, kind="stable")
    pred = np.empty(len(ds), dtype=np.int64)
    for start in range(0, len(order), batch_size):
        idx = order[start : start + batch_size]
        tokens, lengths, _ = collate_tokens([ds[int(i)] for i in idx])
        pred[idx] = model.predict_proba(tokens, lengths).argmax(-1).numpy()
    model.train(was)
    return pred


def evaluation_report(
    model: SequenceClassifier, ds: SequenceDataset, labels: list[str]
) -> dict[str, Any]:
    """:func:`classification_report` of ``model`` on ``ds``."""
    pred = predict_classes(model, ds)
    y = np.asarray([ds[i][1] for i in range(len(ds))], dtype=np.int64)
    c = len(labels)
    cm = np.bincount(y * c + pred, minlength=c * c).reshape(c, c)
    return classification_report(cm, labels)


def plot_confusion(report: dict[str, Any], path: Path, title: str = "") -> None:
    """Confusion-matrix PNG: counts, rows = true class, columns = predicted, colour = share of the
    row (recall)."""
    plt = pyplot()

    cm = np.asarray(report["confusion_matrix"], dtype=np.float64)
    labels = report["labels"]
    c = len(labels)
    rows = cm / np.maximum(cm.sum(1, keepdims=True), 1)
    size = min(4 + 0.45 * c, 24)
    fig, ax = plt.subplots(figsize=(size + 1, size))
    im = ax.imshow(rows, cmap="Blues", vmin=0, vmax=1)
    if c <= 30:
        for i in range(c):
            for j in range(c):
                ax.text(
                    j,
                    i,
                    str(int(cm[i, j])),
                    ha="center",
                    va="center",
                    color="white" if rows[i, j] > 0.5 else "black",
                    fontsize=8 if c > 10 else 10,
                )
    # label names may be in any script; matplotlib's default font lacks CJK glyphs, so long or
    # non-Latin names are shown by index when they cannot be drawn
    ax.set_xticks(range(c))
    ax.set_yticks(range(c))
    shown = [n if n.isascii() else f"{i}" for i, n in enumerate(labels)]
    ax.set_xticklabels(shown, rotation=45 if c > 4 else 0, ha="right" if c > 4 else "center")
    ax.set_yticklabels(shown)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or f"accuracy {report['accuracy']:.3f}, macro-F1 {report['macro_f1']:.3f}")
    fig.colorbar(im, ax=ax, fraction=0.046, label="share of the true class")
    fig.tight_layout()
    save_png(fig, path)


# -- defaults, readability and the baseline ------------------------------------------------------
def choose_text_defaults(
    recipe: Recipe, given: frozenset[str] | None
) -> tuple[Recipe, list[Choice], TextProfile | None]:
    """The recipe with the defaults chosen from the training texts for every key the user did
    not give (:mod:`lstmkit.tasks.text_defaults`), the choices, and the texts' profile (None
    when ``given`` is None: nothing is chosen)."""
    s = recipe.data.text
    assert s is not None
    if given is None:
        return recipe, [], None
    train = _first_per_class(
        read_labelled_texts(s.train, s.text_column, s.label_column, encoding=s.encoding),
        recipe.data.limit,
    )
    names = class_names(train, s.label_column)
    profile = profile_texts(train.texts)
    logger.info("%s", profile.describe())
    n_train = len(train) if s.valid else int(round(len(train) * (1 - s.valid_fraction)))
    tokenizer = s.tokenizer if "data.text.tokenizer" in given else None
    choices = text_choices(profile, n_train, len(names), tokenizer)
    if s.vectors:  # the user's own word vectors start the embedding: no word2vec as well
        choices = [c for c in choices if c.key != "pretrain.method"]
    recipe, applied = apply_choices(recipe, choices, given)
    return recipe, applied, profile


UNREADABLE = 0.5


def check_readable(data: PreparedText, profile: TextProfile | None) -> None:
    """DataFileError when the tokenizer cannot read these texts: more than half of the
    validation tokens unknown to the vocabulary trained on the training texts (e.g. ``--tokenizer
    word`` on a script written without spaces)."""
    rate = data.unknown_rate["valid"]
    if rate <= UNREADABLE:
        return
    script = f" ({profile.main_script} script, {profile.family})" if profile is not None else ""
    better = "char or unigram" if data.tokenizer.kind == "word" else "char"
    raise DataFileError(
        f"{data.source.train}: tokenizer {data.tokenizer.kind!r} cannot read these texts"
        f"{script}: {rate:.0%} of the validation tokens are unknown to the vocabulary it learned "
        f"from the training texts; use --tokenizer {better} (or leave --tokenizer out and "
        "lstmkit chooses by script)"
    )


def fit_baseline(source: TextSource, data: PreparedText, seed: int) -> TextBaseline | None:
    """The classic baseline (``source.baseline``) on the run's own splits; None for 'none'."""
    if source.baseline == "none":
        return None
    tr, va = data.texts["train"], data.texts["valid"]
    te = data.texts.get("test")
    base = tfidf_logistic(tr, va, te, len(data.labels), seed=seed)
    test = f", test {base.test['accuracy']:.4f}" if base.test is not None else ""
    logger.info(
        "baseline %s (C=%g): validation accuracy %.4f%s (%.1f s)",
        base.name,
        base.C,
        base.valid["accuracy"],
        test,
        base.seconds,
    )
    return base


def compare_with_baseline(
    valid: dict[str, Any], report: dict[str, Any], base: dict[str, Any] | None, split: str
) -> dict[str, Any] | None:
    """The baseline beside the model on validation (where the choice may be made) and on the
    evaluation split, and the verdict in words; None without a baseline."""
    if base is None:
        return None
    b_valid = float(base["valid"]["accuracy"])
    on_split = base["test"] if split == "test" else base["valid"]
    b_split = float(on_split["accuracy"])
    if valid["accuracy"] >= b_valid:
        verdict = (
            f"the model beats the baseline on validation ({valid['accuracy']:.4f} vs {b_valid:.4f})"
        )
    else:
        verdict = (
            f"the baseline {base['name']} is BETTER than the model on validation "
            f"({b_valid:.4f} vs {valid['accuracy']:.4f}): on these data ten lines of "
            "scikit-learn beat this model"
        )
    return {
        "name": base["name"],
        "description": base["description"],
        "C": base["C"],
        "valid_accuracy": b_valid,
        f"{split}_accuracy": b_split,
        f"{split}_macro_f1": float(on_split["macro_f1"]),
        "model_valid_accuracy": float(valid["accuracy"]),
        "model_wins_on_validation": valid["accuracy"] >= b_valid,
        "verdict": verdict,
        "seconds": base["seconds"],
    }


# -- the task -----------------------------------------------------------------------------------
MONITORS = ("val_accuracy", "val_loss", "val_macro_f1")


class TextTask:
    """Your own labelled texts (see the module docstring)."""

    name = "text"
    description = "your own labelled texts (CSV / TSV / JSONL / Parquet), any language"

    def check(self, recipe: Recipe) -> None:
        """A ``[data.text]`` table, and a monitor this task measures."""
        if recipe.data.text is None:
            raise DataFileError(
                'dataset "text" needs a [data.text] table (train, text_column, ...)'
            )
        check_monitor(recipe, MONITORS, "text classification")

    def setup(self, recipe: Recipe, *, resume: bool, given: frozenset[str] | None = None) -> Setup:
        """Choose the settings the user did not give from the training texts
        (:mod:`lstmkit.tasks.text_defaults`), read, split and encode the files, fit the classic
        baseline, build the classifier (word vectors, pretraining)."""
        recipe, choices, profile = choose_text_defaults(recipe, given)
        source = recipe.data.text
        assert source is not None
        data = prepare_text(
            source,
            recipe.data.maxlen,
            recipe.data.truncating,
            recipe.train.seed,
            recipe.data.limit,
            # the tokenizer runs before training, on the cores training will use: torch's count
            threads=recipe.train.num_threads or torch.get_num_threads(),
        )
        for split, bal in data.balance.items():
            logger.info("%s: %d records: %s", split, bal.total, bal.describe())
            for note in bal.notes:
                logger.warning("%s: %s", split, note)
        logger.info(
            "tokenizer %s: %d ids; unknown tokens: %s",
            data.tokenizer.kind,
            data.tokenizer.vocab_size,
            ", ".join(f"{k} {v:.2%}" for k, v in data.unknown_rate.items()),
        )
        check_readable(data, profile)
        baseline = fit_baseline(source, data, recipe.train.seed)
        torch.manual_seed(recipe.train.seed)
        model, coverage = build_text_model(recipe, data)
        pretrained = None
        if not resume:  # a resumed run restores these from its checkpoint
            pretrained = pretrain(model, recipe, data.train)
            fit_ngram_ratios(model, data.train)
        freeze_pretrained(model, recipe)
        tokenizer = data.tokenizer
        return Setup(
            model=model,
            train=data.train,
            valid=data.valid,
            trainer=classifier_trainer_args(recipe, len(data.labels)),
            config={
                "model": model.config.to_dict(),
                "real_valued": False,
                "labels": data.labels,
                "text": {
                    "tokenizer": data.tokenizer.kind,
                    "maxlen": recipe.data.maxlen,
                    "truncating": recipe.data.truncating,
                    "valid_from": data.valid_from,
                    "class_balance": {k: v.to_dict() for k, v in data.balance.items()},
                    "unknown_token_rate": data.unknown_rate,
                    "vectors": coverage.to_dict() if coverage is not None else None,
                    "frozen_vectors": bool(source.vectors and source.freeze_vectors),
                    "profile": profile.to_dict() if profile is not None else None,
                },
            },
            data=data,
            save_inputs=lambda run_dir: tokenizer.save(run_dir / TOKENIZER_FILE),
            facts={
                "pretrain": pretrained,
                "baseline": baseline.to_dict() if baseline is not None else None,
            },
            recipe=recipe,
            choices=choices,
            # virtual adversarial training (train.vat_eps) reads the training split's texts:
            # the Trainer's own fallback without an unlabelled set
        )

    def evaluate(
        self, recipe: Recipe, setup: Setup, trainer: Trainer, history: list[dict[str, Any]]
    ) -> Outcome:
        """The evaluation report on the test file, else on the validation records."""
        data: PreparedText = setup.data
        split = "test" if data.test is not None else "valid"
        eval_ds = data.test if data.test is not None else data.valid
        report = evaluation_report(setup.model, eval_ds, data.labels)  # type: ignore[arg-type]
        report["split"] = split
        valid = evaluation_report(setup.model, data.valid, data.labels)  # type: ignore[arg-type]
        base = setup.facts.get("baseline")
        comparison = compare_with_baseline(valid, report, base, split)
        report["baseline"] = comparison

        def reports(run_dir: Path) -> None:
            write_json(run_dir / "evaluation.json", report)
            plot_confusion(report, run_dir / "confusion.png", title=f"{recipe.name} ({split})")

        test = trainer.evaluate(data.test, data.test.lengths) if data.test is not None else None
        extra: dict[str, Any] = {"macro_f1": report["macro_f1"]}
        if comparison is not None:
            extra["baseline"] = comparison[f"{split}_accuracy"]
            extra["baseline_name"] = comparison["name"]
            extra["baseline_valid_accuracy"] = comparison["valid_accuracy"]
            extra["valid_accuracy"] = valid["accuracy"]
        return Outcome(
            {
                "test": test,
                "evaluation": {k: report[k] for k in ("split", "accuracy", "macro_f1", "examples")}
                | {"valid_accuracy": valid["accuracy"], "baseline": comparison},
            },
            Record(f"{split}_accuracy", report["accuracy"], extra),
            reports,
        )

    def summary(self, name: str, metrics: dict[str, Any], out: Path) -> str:
        """Accuracy and macro-F1 of the evaluation split, and where the report is."""
        ev = metrics["evaluation"]
        base = ev.get("baseline")
        beside = ""
        if base is not None:
            beside = (
                f" (baseline {base['name']}: {base[ev['split'] + '_accuracy']:.4f}); "
                f"{base['verdict']}"
            )
        return (
            f"{name}: {ev['split']} accuracy {ev['accuracy']:.4f}, macro-F1 {ev['macro_f1']:.4f}"
            f"{beside} {took(metrics, out)}; report: {out / 'evaluation.json'}, "
            f"{out / 'confusion.png'}"
        )

    def evaluate_run(self, run_dir: Path) -> dict[str, Any]:
        """Re-evaluate on the test file (else the validation records) with the run's saved
        tokenizer; rewrites ``evaluation.json`` and ``confusion.png``. Returns the report."""
        return evaluate_text_run(run_dir)

    def quick_overrides(self, recipe: Recipe) -> list[str]:
        """Two steps on the first 64 records of each class, small batches."""
        return list(QUICK_CLASSIFIER)


def evaluate_text_run(run_dir: Path) -> dict[str, Any]:
    """Re-evaluate a finished text run on its test file (else its validation records) with its
    saved tokenizer; rewrites ``evaluation.json`` and ``confusion.png``. Returns the report."""
    model, config, _ = load_run(run_dir)
    recipe = Recipe.model_validate(config["recipe"])
    s = recipe.data.text
    if s is None:
        raise RunKindError(f"{run_dir}/config.json: not a text run (no data.text)")
    tok = TextTokenizer.load(run_dir / TOKENIZER_FILE, recipe.data.maxlen, recipe.data.truncating)
    names: list[str] = list(config["labels"])
    limit = recipe.data.limit  # the same records as the run (lstmkit train --quick)
    if s.test:
        data = _first_per_class(
            read_labelled_texts(s.test, s.text_column, s.label_column, encoding=s.encoding), limit
        )
        split = "test"
    elif s.valid:
        data = _first_per_class(
            read_labelled_texts(s.valid, s.text_column, s.label_column, encoding=s.encoding), limit
        )
        split = "valid"
    else:
        train_all = _first_per_class(
            read_labelled_texts(s.train, s.text_column, s.label_column, encoding=s.encoding), limit
        )
        ids = label_ids(train_all, names, s.label_column, train_all.path)
        _, va = stratified_split(ids, s.valid_fraction, recipe.train.seed)
        data, split = train_all.subset(va), "valid"
    y = label_ids(data, names, s.label_column, Path(s.train))
    ds = SequenceDataset(_encode(tok, data), y)
    report = evaluation_report(model, ds, names)
    report["split"] = split
    write_json(run_dir / "evaluation.json", report)
    plot_confusion(report, run_dir / "confusion.png", title=f"{recipe.name} ({split})")
    return report
