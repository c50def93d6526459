"""A recipe from start to finish: data -> model -> Trainer -> test metrics -> run directory.

This is what ``lstmkit train RECIPE.toml`` runs. Run directory (``--out``)::

    config.json          the validated recipe (+ the raw TOML and overrides) and data facts
    vocab.json           word -> id of the model's vocabulary (text datasets), for predict
    model.safetensors    final weights (the best ones when early stopping is on)
    metrics.json         validation and test metrics, seconds, tokens/s
    history.*, curves.png, checkpoints/   from the Trainer

``--record`` also writes ``results/<recipe>.json`` (the README tables are generated from those).
"""

from __future__ import annotations

import json
import logging
import platform
import re
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from lstmkit.checkpoint import load_model_state, model_state, save_tensors
from lstmkit.config import Recipe
from lstmkit.data.batching import SequenceDataset, collate_floats, collate_tokens
from lstmkit.data.keras_datasets import get_word_index, load_imdb, load_mnist, load_reuters
from lstmkit.data.resolve import resolve
from lstmkit.files import atomic_write_text
from lstmkit.models import ClassifierConfig, SequenceClassifier
from lstmkit.train import Trainer

logger = logging.getLogger(__name__)

TOKEN = re.compile(r"[a-z0-9']+")
# the same words as TOKEN's runs with their outer apostrophes stripped (empty ones dropped), found
# in one pass: a run from its first to its last letter or digit (a fifth faster per review,
# the serving path tokenises every request; tests/test_experiment.py checks the equality)
WORD = re.compile(r"[a-z0-9](?:[a-z0-9']*[a-z0-9])?")


def imdb_words(text: str) -> list[str]:
    """Tokenise a review exactly as ``imdb.npz`` was built: lower-case, ``<br />`` read as the
    word ``br``, runs of ``[a-z0-9']`` with outer apostrophes stripped."""
    return WORD.findall(text.lower().replace("<br />", " br "))


@dataclass
class Vocabulary:
    """word -> id as the Keras loaders number them (rank + index_from; 1 start, 2 OOV)."""

    word_to_id: dict[str, int]
    start_char: int = 1
    oov_char: int = 2
    skip_top: int = 0

    def encode(self, text: str, maxlen: int | None = None) -> list[int]:
        """Token ids of ``text`` (start marker first; unknown or rare words -> OOV). With
        ``maxlen`` the last ``maxlen`` ids are kept (Keras' truncating='pre')."""
        ids = [self.start_char] + [self.word_to_id.get(w, self.oov_char) for w in imdb_words(text)]
        if self.skip_top:  # Keras replaces every id below skip_top, the start marker included
            ids = [i if i >= self.skip_top else self.oov_char for i in ids]
        return ids[-maxlen:] if maxlen else ids

    def save(self, path: Path) -> None:
        """JSON, keys sorted (deterministic), written atomically."""
        payload = {
            "start_char": self.start_char,
            "oov_char": self.oov_char,
            "skip_top": self.skip_top,
            "word_to_id": dict(sorted(self.word_to_id.items())),
        }
        atomic_write_text(path, json.dumps(payload, ensure_ascii=False))

    @classmethod
    def load(cls, path: Path) -> Vocabulary:
        """Read what :meth:`save` wrote."""
        try:
            payload = json.loads(path.read_text(encoding="utf-8"))
            return cls(
                payload["word_to_id"],
                payload["start_char"],
                payload["oov_char"],
                payload["skip_top"],
            )
        except (OSError, json.JSONDecodeError, KeyError) as err:
            raise ValueError(f"cannot read vocabulary {path}: {err}") from None

    @classmethod
    def from_keras(
        cls, dataset: str, num_words: int | None, index_from: int, skip_top: int = 0
    ) -> Vocabulary:
        """The vocabulary of ``load_imdb/load_reuters(num_words, skip_top, index_from)``: ids in
        ``[skip_top, num_words)`` are kept, the rest read as OOV, as Keras' loaders do."""
        index = get_word_index(dataset)  # type: ignore[arg-type]
        limit = num_words or (max(index.values()) + index_from + 1)
        words = {w: r + index_from for w, r in index.items() if skip_top <= r + index_from < limit}
        return cls(words, skip_top=skip_top)


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


def _truncate(seqs: Sequence[Any] | np.ndarray, maxlen: int | None, side: str) -> list[list[int]]:
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
        from lstmkit.data.arrays import load_arrays

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
        train_x = _truncate(x_tr, d.maxlen, d.truncating)
        test_x = _truncate(x_te, d.maxlen, d.truncating)
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


def git_commit() -> str:
    """HEAD's hash (+ '-dirty' when the work tree has changes), or 'unknown'."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return head + ("-dirty" if dirty else "")


def machine() -> str:
    """A short description of the machine: CPU, cores, torch threads."""
    return f"{platform.machine()}, {torch.get_num_threads()} torch threads, {platform.system()}"


def build_model(recipe: Recipe, data: Prepared) -> SequenceClassifier:
    """The recipe's classifier with the data's vocabulary / input size and class count."""
    updates: dict[str, Any] = {"num_classes": data.num_classes}
    if data.real_valued:
        updates.update(vocab_size=None, input_size=data.input_size)
    else:
        updates.update(vocab_size=data.vocab_size, input_size=None)
    cfg = ClassifierConfig.model_validate({**recipe.model.model_dump(), **updates})
    return SequenceClassifier(cfg)


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
        return None
    if model.embedding is None:
        raise ValueError(
            f"pretrain.method {recipe.pretrain.method!r} pretrains word vectors; this model "
            "reads real-valued sequences -- set pretrain.method = 'none'"
        )
    from lstmkit.pretrain import pretrain_embedding

    return pretrain_embedding(
        model.embedding, recipe, [train[i][0] for i in range(len(train))], unlabelled
    )


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
            raise ValueError("train.vat_unlabelled needs IMDB's unlabelled reviews")
        texts += _truncate(unlabelled, recipe.data.maxlen, recipe.data.truncating)
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


def quick_overrides(recipe: Recipe) -> list[str]:
    """``--set`` overrides of ``lstmkit train --quick``: two optimizer steps on a few examples
    of the recipe's real data, small batches -- a smoke test of the whole path, no accuracy."""
    out = ["train.max_steps=2", "train.epochs=1", "train.evaluate_every=0"]
    if recipe.task == "language_model":
        bptt = recipe.data.chars.bptt if recipe.data.chars else 128
        out += [
            "data.limit=20000",
            f"data.chars.bptt={min(bptt, 32)}",
            "train.batch_size=4",
            "train.eval_batch_size=4",
        ]
    else:
        out += ["data.limit=64", "train.batch_size=8", "train.eval_batch_size=32"]
    return out


def check_run_dir(run_dir: Path, resume: bool) -> None:
    """A new run must not overwrite a finished one; ``--resume`` needs checkpoints."""
    if resume and not (run_dir / "checkpoints").exists():
        raise FileNotFoundError(f"--resume: {run_dir} has no checkpoints to resume from")
    if not resume and (run_dir / "checkpoints").exists():
        raise FileExistsError(
            f"{run_dir} already holds a run; pass --resume to continue it or choose another --out"
        )


def save_final(model: torch.nn.Module, run_dir: Path, metrics: dict[str, Any]) -> None:
    """The finished run's ``model.safetensors`` and ``metrics.json``, each written atomically."""
    save_tensors(model_state(model), run_dir / ".model.safetensors.tmp")
    (run_dir / ".model.safetensors.tmp").replace(run_dir / "model.safetensors")
    atomic_write_text(run_dir / "metrics.json", json.dumps(metrics, indent=2))


def portable_command(command: str) -> str:
    """``command`` without this machine's paths: the working directory's prefix is dropped and
    an installed package's data file reads ``<site-packages>/...``, so a recorded command means the
    same on another machine."""
    import site

    prefixes = [(p.rstrip("/") + "/", "<site-packages>/") for p in site.getsitepackages()]
    prefixes.append((str(Path.cwd()) + "/", ""))
    for prefix, short in prefixes:
        command = command.replace(prefix, short)
    return command


def write_result(
    record: Path,
    recipe: Recipe,
    *,
    metric: str,
    value: float,
    seconds: float,
    command: str | None,
    extra: dict[str, Any] | None = None,
    commit: str | None = None,
) -> Path:
    """``record/<recipe>.json``: the figure the README tables are generated from, with the
    command, commit, machine and seconds of the run that measured it. ``commit``: the code the
    run STARTED from (take :func:`git_commit` before training: the tree may move during a long
    run); None reads it now."""
    result = {
        "recipe": recipe.name,
        "metric": metric,
        "value": value,
        **(extra or {}),
        "seconds": seconds,
        "commit": commit if commit is not None else git_commit(),
        "command": portable_command(command or " ".join(["lstmkit", *sys.argv[1:]])),
        "machine": machine(),
        "seed_figure": recipe.seed_figure,
    }
    path = record / f"{recipe.name}.json"
    atomic_write_text(path, json.dumps(result, indent=2) + "\n")
    return path


def run_recipe(
    recipe: Recipe,
    raw: dict[str, Any],
    run_dir: Path,
    *,
    resume: bool = False,
    record: Path | None = None,
    progress: bool = True,
    command: str | None = None,
) -> dict[str, Any]:
    """Train ``recipe`` into ``run_dir`` and evaluate on the test set; returns metrics."""
    if recipe.task == "language_model":
        from lstmkit.lm import run_language_model

        return run_language_model(
            recipe, raw, run_dir, resume=resume, record=record, progress=progress, command=command
        )
    if recipe.data.dataset in ("text", "series"):  # your own data: lstmkit.owndata / .forecast
        from lstmkit.forecast import run_forecast
        from lstmkit.owndata import run_text

        runner = run_text if recipe.data.dataset == "text" else run_forecast
        return runner(
            recipe, raw, run_dir, resume=resume, record=record, progress=progress, command=command
        )
    start = time.perf_counter()
    commit = git_commit()  # the code this run starts from, for its result record
    check_run_dir(run_dir, resume)
    run_dir.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(recipe.train.seed)
    data = prepare(recipe)
    model = build_model(recipe, data)
    pretrained = None
    unlabelled = None
    wants_unlabelled = recipe.train.vat_unlabelled or (recipe.pretrain.unlabelled and not resume)
    if wants_unlabelled:
        from lstmkit.pretrain import imdb_unlabelled

        reader = "train.vat_unlabelled" if recipe.train.vat_unlabelled else "pretrain.unlabelled"
        unlabelled = imdb_unlabelled(recipe, reader)
    if not resume:  # a resumed run restores these from its checkpoint
        pretrained = pretrain(model, recipe, data.train, unlabelled)
        fit_ngram_ratios(model, data.train)
    vat = vat_texts(recipe, data.train, unlabelled)
    collate = collate_floats if data.real_valued else collate_tokens
    config = {
        "recipe": recipe.model_dump(),
        "raw": raw,
        "model": model.config.to_dict(),
        "task": "classify",
        "real_valued": data.real_valued,
        "labels": dataset_labels(recipe.data.dataset, data.num_classes),
    }
    if not resume:
        atomic_write_text(run_dir / "config.json", json.dumps(config, indent=2))
        if data.vocab is not None:
            data.vocab.save(run_dir / "vocab.json")
    trainer = Trainer(
        model,
        recipe.train,
        num_classes=data.num_classes,
        collate=collate,
        run_dir=run_dir,
        bucketing=recipe.data.bucketing,
        bucket_chunk=recipe.data.bucket_chunk,
        progress=progress,
    )
    history = trainer.fit(
        data.train,
        data.train.lengths,
        data.valid,
        data.valid.lengths if data.valid else None,
        resume=resume,
        unlabelled=vat,
        unlabelled_lengths=vat.lengths if vat is not None else None,
    )
    test = trainer.evaluate(data.test, data.test.lengths)
    seconds = time.perf_counter() - start
    val_rows = [r for r in history if r["split"] == "val"]
    metrics = {
        "test": test,
        "best_val": trainer.best,
        "last_val": val_rows[-1] if val_rows else None,
        "steps": trainer.step,
        "seconds": seconds,
        "pretrain": pretrained,
    }
    if trainer.writes:
        save_final(model, run_dir, metrics)
        if record is not None:
            write_result(
                record,
                recipe,
                commit=commit,
                metric="test_accuracy",
                value=test["accuracy"],
                seconds=seconds,
                command=command,
                extra={"macro_f1": test["macro_f1"]},
            )
    return metrics


def read_run_config(run_dir: Path, task: str | None = None, how: str = "") -> dict[str, Any]:
    """``config.json`` of a run directory; with ``task``, a run of another task is one error
    saying what it is and ``how`` to make the right kind."""
    cfg_path = run_dir / "config.json"
    if not cfg_path.exists():
        raise FileNotFoundError(f"{run_dir} is not a run directory: {cfg_path.name} is missing")
    config: dict[str, Any] = json.loads(cfg_path.read_text(encoding="utf-8"))
    if task is not None and config.get("task", "classify") != task:
        raise ValueError(
            f"{run_dir} holds a {config.get('task', 'classify')!r} run, not a {task!r} run{how}"
        )
    return config


def load_weights(model: torch.nn.Module, run_dir: Path) -> None:
    """The run's final weights into ``model`` (eval mode); a run that did not finish is one
    error saying how to resume it."""
    weights = run_dir / "model.safetensors"
    if not weights.exists():
        raise FileNotFoundError(
            f"{weights} is missing: the run did not finish (resume it with --resume)"
        )
    load_model_state(model, weights)
    model.eval()


def load_run(run_dir: Path) -> tuple[SequenceClassifier, dict[str, Any], Vocabulary | None]:
    """Model (eval mode), config and vocabulary of a finished run directory."""
    config = read_run_config(run_dir)
    model = SequenceClassifier(ClassifierConfig.model_validate(config["model"]))
    load_weights(model, run_dir)
    vocab = Vocabulary.load(run_dir / "vocab.json") if (run_dir / "vocab.json").exists() else None
    return model, config, vocab


def _run_dataset(run_dir: Path) -> str | None:
    """``recipe.data.dataset`` of a run directory's config.json (None when unreadable)."""
    try:
        config = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
        return str(config["recipe"]["data"]["dataset"])
    except (OSError, ValueError, KeyError, TypeError):
        return None  # load_run below reports what is wrong


def evaluate_run(run_dir: Path) -> dict[str, Any]:
    """Re-evaluate a finished run on its recipe's test set (same data preparation)."""
    dataset = _run_dataset(run_dir)
    if dataset == "chars":
        from lstmkit.lm import evaluate_language_model_run

        return evaluate_language_model_run(run_dir)
    if dataset == "text":
        from lstmkit.owndata import evaluate_text_run

        return evaluate_text_run(run_dir)
    if dataset == "series":
        from lstmkit.forecast import evaluate_forecast_run

        return evaluate_forecast_run(run_dir)
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


def predict_texts(run_dir: Path, texts: list[str]) -> list[dict[str, Any]]:
    """Label and class probabilities for each text, with the run's own vocabulary (a run or a
    bundle directory; see :class:`lstmkit.bundle.Predictor`)."""
    from lstmkit.bundle import load

    return load(run_dir).predict(texts)
