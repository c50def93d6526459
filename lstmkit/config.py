"""Recipes: typed configuration loaded from TOML, with ``--set key=value`` overrides.

A recipe has three tables, ``[data]``, ``[model]`` (:class:`lstmkit.models.ClassifierConfig`) and
``[train]``, plus ``name``, ``description`` and ``seed_figure`` (the accuracy the lecture note
reports, shown next to ours in the README). The seeds' own parameter names are accepted anywhere
(top level or in a table) and mapped to ours:

==========================  =====================================
seed name                   lstmkit field
==========================  =====================================
``max_sentence_length``     ``data.maxlen``
``class_sizes``             ``model.num_classes``
``embedding_dim``           ``model.embedding_dim``
``hidden_size``             ``model.hidden_size``
``num_layers``              ``model.num_layers``
``dropout_keep_prob``       ``model.dropout = model.output_dropout = 1 - keep`` (TF1
                            DropoutWrapper on every layer's output)
``num_epochs``              ``train.epochs``
``batch_size``              ``train.batch_size``
``evaluate_every``          ``train.evaluate_every``
``learn_rate``              ``train.lr``
==========================  =====================================

Validation is pydantic's: an unknown key or a bad value is one error naming the file and the field.
"""

from __future__ import annotations

import copy
import os
import tomllib
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    ValidationInfo,
    field_validator,
    model_validator,
)

from lstmkit import recipes as packaged
from lstmkit.data.arrays import ArraysSource
from lstmkit.data.series import SeriesSource
from lstmkit.data.text import TextSource
from lstmkit.errors import ConfigError
from lstmkit.models import ClassifierConfig, LanguageModelConfig


class CharsSource(BaseModel):
    """A text for a character-level language model (``[data.chars]``).

    Attributes:
        file: a data-file name resolved like every data set (``$LSTMKIT_DATA`` -> user cache ->
            download with a sha256 check), e.g. 'tinyshakespeare.txt', or a path to a UTF-8
            text file of your own.
        bptt: truncated BPTT: chunks of ``bptt`` characters, the state carried across chunks.
        valid_fraction, test_fraction: the last parts of the text, contiguous (the training part
            comes first).
    """

    model_config = ConfigDict(extra="forbid")

    file: str = "tinyshakespeare.txt"
    bptt: int = Field(128, ge=1, le=100_000)
    valid_fraction: float = Field(0.05, ge=0.0, lt=0.5)
    test_fraction: float = Field(0.05, ge=0.0, lt=0.5)


class DataConfig(BaseModel):
    """Which data and how it is cut. Keras' ``load_data`` semantics for the Keras data sets.

    Attributes:
        dataset: 'imdb' | 'reuters' | 'mnist'.
        num_words, skip_top, index_from: Keras' loader arguments (vocabulary = the num_words
            most frequent words).
        maxlen: [max_sentence_length] longer sequences are truncated (``truncating`` side);
            None keeps them whole.
        validation_split: fraction of the training set held out (seeded, stratified=False, the
            last fraction after a seeded shuffle, as Keras' ``validation_split`` takes the tail).
        bucketing: batch sequences of similar length together (padding mostly skipped).
        limit: only the first ``limit`` examples of the training and test sets (the first
            ``limit`` characters of a chars text; the first ``limit`` records of each class of
            your own text files; not for a series): smoke tests (``lstmkit train --quick``) and
            quick experiments; None = all.
        text: your own labelled texts (``dataset = "text"``), the ``[data.text]`` table:
            :class:`lstmkit.data.text.TextSource` (:mod:`lstmkit.tasks.text`).
        series: your own time series (``dataset = "series"``), the ``[data.series]`` table:
            :class:`lstmkit.data.series.SeriesSource` (:mod:`lstmkit.tasks.forecast`).
        chars: a character-level language-model text (``dataset = "chars"``, task
            'language_model'), the ``[data.chars]`` table: :class:`CharsSource`.
        arrays: numeric sequence arrays (N, T, F) with labels from .npy/.npz files
            (``dataset = "arrays"``), the ``[data.arrays]`` table:
            :class:`lstmkit.data.arrays.ArraysSource`.
    """

    model_config = ConfigDict(extra="forbid")

    dataset: Literal["imdb", "reuters", "mnist", "text", "series", "chars", "arrays"] = "imdb"
    num_words: int | None = Field(10000, ge=3)
    skip_top: int = Field(0, ge=0)
    index_from: int = Field(3, ge=0)
    maxlen: int | None = Field(500, ge=1, le=100_000)
    truncating: Literal["pre", "post"] = "pre"
    validation_split: float = Field(0.2, ge=0.0, lt=1.0)
    bucketing: bool = True
    limit: int | None = Field(
        None,
        ge=1,
        description="use only the first `limit` examples of each split (characters for chars)",
    )
    bucket_chunk: int = Field(
        50, ge=1, description="a bucket holds bucket_chunk batches, sorted by length"
    )
    # -- your own data (issue 6): one nested table per kind, only with its dataset --------
    text: TextSource | None = None
    series: SeriesSource | None = None
    chars: CharsSource | None = None
    arrays: ArraysSource | None = None

    @model_validator(mode="after")
    def _own_data_table(self) -> DataConfig:
        for kind, table in (
            ("text", self.text),
            ("series", self.series),
            ("chars", self.chars),
            ("arrays", self.arrays),
        ):
            if self.dataset == kind and table is None:
                raise ValueError(f'dataset "{kind}" needs a [data.{kind}] table')
            if self.dataset != kind and table is not None:
                raise ValueError(f'[data.{kind}] is only read with dataset = "{kind}"')
        return self


class TrainConfig(BaseModel):
    """Optimisation, evaluation, checkpoints.

    Attributes:
        optimizer: 'adam' | 'adamw' | 'rmsprop' | 'sgd' | 'adagrad' (``nesterov`` for sgd).
        lr: [learn_rate]. schedule: 'constant' | 'cosine' | 'linear' | 'step' (``step_size``
            steps, ``gamma``), with ``warmup_steps`` of linear warm-up.
        weight_decay: decoupled for adamw, L2-in-gradient otherwise (torch's semantics).
        l1, l2: penalties added to the loss on the weights (not biases), as Keras regularizers.
        clip_norm: max global gradient norm (0 = off).
        evaluate_every: [evaluate_every] validate every N steps (0 = once per epoch).
        early_stopping: patience in evaluations without improvement of ``monitor`` (0 = off);
            the best weights are restored at the end. monitor: None = the task's own
            (val_accuracy for classification, val_loss for language models and forecasts).
        keep_checkpoints: keep the last k checkpoints. max_steps: stop after this many steps.
        max_minutes: stop after this much training time (evaluated and saved as at the end).
        adversarial_eps: adversarial training on the word vectors (Miyato et al. 2017,
            :mod:`lstmkit.adversarial`): each step adds the loss of the batch with its word
            vectors moved by ``eps`` times their frequency-weighted standard deviation (L2 per
            example) in the direction that raises the loss most. 0 = off. Classifiers with an
            embedding only. Each step costs about twice as much.
        vat_eps: virtual adversarial training (:mod:`lstmkit.adversarial`): each step also
            takes a batch of unlabelled texts and adds the KL divergence between the model's
            prediction on them and on their word vectors moved ``vat_eps`` (in the same units
            as ``adversarial_eps``) in the direction that changes it most (one power iteration
            from a random direction of length ``vat_xi``). 0 = off. Classifiers with an
            embedding only. Costs about two more training passes of ``vat_batch_size`` texts
            (None = ``batch_size``) per step.
        vat_unlabelled: VAT reads the training split's texts and, when true, IMDB's 50,000
            unlabelled reviews (``dataset = "imdb"`` only); false = the training split's only.
        log: experiment trackers the run's history, hyperparameters, final metrics and plots
            go to: "tensorboard" (``RUN/tensorboard``), "mlflow" (``MLFLOW_TRACKING_URI``, else
            ``RUN/../mlflow.db``); :mod:`lstmkit.tracking`, ``pip install 'lstmkit[track]'``.
    """

    model_config = ConfigDict(extra="forbid")

    optimizer: Literal["adam", "adamw", "rmsprop", "sgd", "adagrad"] = "adam"
    lr: float = Field(1e-3, gt=0.0, le=10.0)
    momentum: float = Field(0.0, ge=0.0, lt=1.0)
    nesterov: bool = False
    weight_decay: float = Field(0.0, ge=0.0)
    l1: float = Field(0.0, ge=0.0)
    l2: float = Field(0.0, ge=0.0)
    clip_norm: float = Field(0.0, ge=0.0)
    schedule: Literal["constant", "cosine", "linear", "step"] = "constant"
    warmup_steps: int = Field(0, ge=0)
    step_size: int = Field(1000, ge=1)
    gamma: float = Field(0.5, gt=0.0, le=1.0)
    batch_size: int = Field(128, ge=1, le=65536)
    eval_batch_size: int = Field(512, ge=1, le=65536)
    epochs: int = Field(10, ge=1, le=10000)
    max_steps: int | None = Field(None, ge=1)
    max_minutes: float | None = Field(None, gt=0.0, le=100_000.0)
    evaluate_every: int = Field(0, ge=0)
    early_stopping: int = Field(0, ge=0)
    monitor: (
        Literal["val_accuracy", "val_loss", "val_macro_f1", "val_mae", "val_rmse", "val_perplexity"]
        | None
    ) = None
    keep_checkpoints: int = Field(2, ge=1)
    seed: int = 0
    num_threads: int | None = Field(None, ge=1, le=1024)
    adversarial_eps: float = 0.0
    vat_eps: float = 0.0
    vat_xi: float = Field(0.1, gt=0.0, le=100.0)
    vat_batch_size: int | None = Field(None, ge=1, le=65536)
    vat_unlabelled: bool = False
    log: list[Literal["tensorboard", "mlflow"]] = Field(default_factory=list)

    @field_validator("adversarial_eps", "vat_eps")
    @classmethod
    def _eps_not_negative(cls, value: float, info: ValidationInfo) -> float:
        if not value >= 0.0 or value == float("inf"):
            raise ValueError(
                f"{info.field_name} must be a finite number >= 0 (0 = off; e.g. 3.5), got {value}"
            )
        return value


class PretrainConfig(BaseModel):
    """Unsupervised pretraining of the embedding before training (:mod:`lstmkit.pretrain`).

    Attributes:
        method: 'none' | 'word2vec': skip-gram word vectors (gensim) trained in the run on the
            training split's texts (never the validation or test texts), copied into the
            embedding, which is then fine-tuned.
        unlabelled: also read IMDB's 50,000 unlabelled reviews (``dataset = "imdb"`` only; Dai &
            Le 2015 and Maas et al. 2011 pretrain on them).
        passes (word2vec's epochs), window, negative, sample, min_count: word2vec's settings.
        init_std: standard deviation the vectors are scaled to (the rows of ids word2vec did not
            keep are drawn at random with it; the padding row stays 0).
        freeze: keep the pretrained vectors fixed (the embedding is not trained: seed 000's
            TF1 model is fed precomputed vectors); also after ``--resume``.
    """

    model_config = ConfigDict(extra="forbid")

    method: Literal["none", "word2vec"] = "none"
    unlabelled: bool = False
    passes: int = Field(5, ge=1, le=1000)
    window: int = Field(5, ge=1, le=100)
    negative: int = Field(5, ge=1, le=100)
    sample: float = Field(1e-4, ge=0.0, lt=1.0)
    min_count: int = Field(3, ge=1)
    init_std: float = Field(0.1, gt=0.0, le=10.0)
    freeze: bool = False


Task = Literal["classify", "text", "forecast", "language_model"]
# datasets whose classifier reads real-valued sequences (no embedding)
REAL_VALUED_DATASETS = ("mnist", "series", "arrays")
# the model table's schema of each task (a forecaster's recurrent stack reads the classifier's)
MODEL_CONFIGS: dict[str, type[BaseModel]] = {
    "classify": ClassifierConfig,
    "text": ClassifierConfig,
    "forecast": ClassifierConfig,
    "language_model": LanguageModelConfig,
}
# the task of a data set; the others (imdb, reuters, mnist, arrays) are task 'classify'
DATASET_TASKS = {"text": "text", "series": "forecast", "chars": "language_model"}
# the tasks with a word embedding to perturb or pretrain
WORD_TASKS = ("classify", "text")


def task_of(data: dict[str, Any]) -> Any:
    """The task of a raw recipe dict: its ``task``, else its data set's. A recipe written before
    the text and forecast tasks had names says ``task = "classify"`` with ``dataset = "text"`` or
    ``"series"``: it reads as the data set's task, so old recipes and run directories still load."""
    table = data.get("data")
    dataset = table.get("dataset") if isinstance(table, dict) else getattr(table, "dataset", None)
    derived = DATASET_TASKS.get(str(dataset), "classify") if dataset is not None else "classify"
    task = data.get("task")
    if task is None or (task == "classify" and derived in ("text", "forecast")):
        return derived
    return task


class Recipe(BaseModel):
    """One experiment: task, data, model, training, and the seed's reported figure (if any).

    ``task`` (:mod:`lstmkit.tasks`) follows from the data set when the TOML does not say:
    'text' for ``dataset = "text"``, 'forecast' for ``"series"``, 'language_model' for
    ``"chars"``, else 'classify'. It picks the model table's schema: :class:`ClassifierConfig`
    (classify, text, forecast) or :class:`LanguageModelConfig` (language_model).
    """

    model_config = ConfigDict(extra="forbid")

    name: str = "run"
    description: str = ""
    task: Task = "classify"
    seed_figure: float | None = None
    data: DataConfig = Field(default_factory=DataConfig)
    model: ClassifierConfig | LanguageModelConfig = Field(default_factory=ClassifierConfig)
    train: TrainConfig = Field(default_factory=TrainConfig)
    pretrain: PretrainConfig = Field(default_factory=PretrainConfig)

    @model_validator(mode="before")
    @classmethod
    def _model_for_task(cls, data: Any) -> Any:
        """Validate the model table with the task's schema (not whichever fits first)."""
        if isinstance(data, dict):
            data = {**data, "task": task_of(data)}
        if isinstance(data, dict) and isinstance(data.get("model", {}), dict):
            task = data["task"]
            if task in MODEL_CONFIGS:
                data = {**data, "model": MODEL_CONFIGS[task].model_validate(data.get("model", {}))}
        return data

    @property
    def classifier(self) -> ClassifierConfig:
        """The model table of a classifier (or forecaster) recipe."""
        if not isinstance(self.model, ClassifierConfig):
            raise TypeError(f"recipe {self.name!r} (task {self.task!r}) has no classifier model")
        return self.model

    @property
    def language_model(self) -> LanguageModelConfig:
        """The model table of a language-model recipe."""
        if not isinstance(self.model, LanguageModelConfig):
            raise TypeError(f"recipe {self.name!r} (task {self.task!r}) has no language model")
        return self.model

    @model_validator(mode="after")
    def _check_task(self) -> Recipe:
        want = MODEL_CONFIGS[self.task]
        if not isinstance(self.model, want):
            raise ValueError(f"task {self.task!r} needs a {want.__name__} model table")
        wanted = DATASET_TASKS.get(self.data.dataset, "classify")
        if wanted != self.task:
            reads = {v: k for k, v in DATASET_TASKS.items()}
            needs = (
                f"dataset {reads[self.task]!r}"
                if self.task in reads
                else "a Keras data set or arrays (imdb, reuters, mnist, arrays)"
            )
            raise ValueError(
                f"data.dataset {self.data.dataset!r} does not fit task {self.task!r}: task "
                f"{self.task!r} reads {needs} (leave task out: the data set decides it)"
            )
        if self.pretrain.method != "none" and self.data.dataset not in ("imdb", "reuters", "text"):
            raise ValueError(
                f"pretrain.method {self.pretrain.method!r} pretrains word vectors; dataset "
                f"{self.data.dataset!r} has no words (datasets with words: imdb, reuters, text)"
            )
        if self.pretrain.unlabelled and self.data.dataset != "imdb":
            raise ValueError(
                "pretrain.unlabelled reads IMDB's 50,000 unlabelled reviews; dataset "
                f"{self.data.dataset!r} has none -- set pretrain.unlabelled = false"
            )
        if self.pretrain.method != "none" and self.data.text is not None and self.data.text.vectors:
            raise ValueError(
                "give one source of word vectors: data.text.vectors (a file) or "
                f"pretrain.method = {self.pretrain.method!r} (trained in the run), not both"
            )
        if self.pretrain.unlabelled and self.pretrain.method == "none":
            raise ValueError("pretrain.unlabelled needs a pretrain.method (e.g. 'word2vec')")
        for key in ("adversarial_eps", "vat_eps"):
            eps = getattr(self.train, key)
            if eps and (self.task not in WORD_TASKS or self.data.dataset in REAL_VALUED_DATASETS):
                what = (
                    f"task {self.task!r}"
                    if self.task not in WORD_TASKS
                    else f"dataset {self.data.dataset!r} (real-valued input, no embedding)"
                )
                raise ValueError(
                    f"train.{key} = {eps} perturbs the word vectors of a classifier with an "
                    f"embedding; {what} has none -- set train.{key} = 0 (datasets with words: "
                    "imdb, reuters, text)"
                )
        if self.train.vat_unlabelled and not self.train.vat_eps:
            raise ValueError(
                "train.vat_unlabelled feeds virtual adversarial training; set train.vat_eps > 0 "
                "(e.g. 7.0) or train.vat_unlabelled = false"
            )
        if self.train.vat_unlabelled and self.data.dataset != "imdb":
            raise ValueError(
                "train.vat_unlabelled reads IMDB's 50,000 unlabelled reviews; dataset "
                f"{self.data.dataset!r} has none -- set train.vat_unlabelled = false (VAT then "
                "reads the training split's texts)"
            )
        return self


def _keep_to_dropout(value: Any) -> Any:
    if isinstance(value, int | float) and not isinstance(value, bool):
        if not 0.0 < value <= 1.0:
            raise ConfigError(f"dropout_keep_prob must be in (0, 1], got {value!r}")
        return 1.0 - float(value)
    return value


def _identity(value: Any) -> Any:
    return value


# seed name -> [(table, field, conversion), ...]
SEED_ALIASES: dict[str, list[tuple[str, str, Callable[[Any], Any]]]] = {
    "max_sentence_length": [("data", "maxlen", _identity)],
    "class_sizes": [("model", "num_classes", _identity)],
    "embedding_dim": [("model", "embedding_dim", _identity)],
    "hidden_size": [("model", "hidden_size", _identity)],
    "num_layers": [("model", "num_layers", _identity)],
    # TF1 DropoutWrapper(output_keep_prob) on every layer's cell: between layers and on the last
    "dropout_keep_prob": [
        ("model", "dropout", _keep_to_dropout),
        ("model", "output_dropout", _keep_to_dropout),
    ],
    "num_epochs": [("train", "epochs", _identity)],
    "batch_size": [("train", "batch_size", _identity)],
    "evaluate_every": [("train", "evaluate_every", _identity)],
    "learn_rate": [("train", "lr", _identity)],
}
TABLES: dict[str, type[BaseModel]] = {
    "data": DataConfig,
    "model": ClassifierConfig,
    "train": TrainConfig,
    "pretrain": PretrainConfig,
}
TOP_LEVEL = ("name", "description", "task", "seed_figure")


def _normalise(raw: dict[str, Any], source: str) -> dict[str, Any]:
    """Map seed aliases (top level or inside tables) onto our tables."""
    out: dict[str, Any] = {t: {} for t in TABLES}
    for key, value in raw.items():
        if key in TABLES:
            if not isinstance(value, dict):
                raise ConfigError(f"{source}: [{key}] must be a table, got {value!r}")
            for sub, v in value.items():
                if sub in SEED_ALIASES:
                    for table, name, conv in SEED_ALIASES[sub]:
                        out[table][name] = conv(v)
                else:
                    out[key][sub] = v
        elif key in SEED_ALIASES:
            for table, name, conv in SEED_ALIASES[key]:
                out[table][name] = conv(value)
        else:
            out[key] = value
    return out


def _validation_message(err: ValidationError, source: str, prefix: str = "") -> str:
    parts = []
    for e in err.errors():
        loc = prefix + ".".join(str(p) for p in e["loc"])
        got = e.get("input")
        got_txt = "" if isinstance(got, dict) else f" (got {got!r})"
        # a check across tables (a model validator) has no field of its own: its message says
        # which fields it is about
        parts.append(f"{loc}: {e['msg']}{got_txt}" if loc else f"{e['msg']}{got_txt}")
    return f"{source}: " + "; ".join(parts)


def recipe_from_dict(raw: dict[str, Any], source: str = "<recipe>") -> Recipe:
    """Validate a raw (TOML-shaped) dict into a :class:`Recipe`."""
    data = _normalise(raw, source)
    table = data.get("data")
    if isinstance(table, dict) and table.get("dataset") == "chars" and table.get("chars") is None:
        # before the model table: a classifier's [model] read as a language model's would
        # hide the real mistake under 'extra inputs' errors
        raise ConfigError(
            f'{source}: data.dataset = "chars" needs a [data.chars] table '
            "(file, bptt, valid_fraction, test_fraction)"
        )
    model_cls = MODEL_CONFIGS.get(str(task_of(data)))
    if model_cls is not None:
        try:
            data["model"] = model_cls.model_validate(data.get("model", {}))
        except ValidationError as err:
            raise ConfigError(_validation_message(err, source, prefix="model.")) from None
    try:
        return Recipe.model_validate(data)
    except ValidationError as err:
        raise ConfigError(_validation_message(err, source)) from None


def parse_override(item: str) -> tuple[list[str], Any]:
    """``"train.lr=3e-4"`` -> (["train", "lr"], 0.0003). Values are TOML literals; a bare word
    is a string (``cell=gru``)."""
    if "=" not in item:
        raise ConfigError(f"--set {item!r}: expected key=value, e.g. train.lr=0.001")
    key, text = item.split("=", 1)
    key = key.strip()
    try:
        value = tomllib.loads(f"v = {text}")["v"]
    except tomllib.TOMLDecodeError:
        value = text
    return key.split("."), value


def _resolve_key(path: list[str]) -> list[str]:
    if len(path) == 1:
        (name,) = path
        if name in SEED_ALIASES or name in TOP_LEVEL:
            return path
        owners = [t for t, cls in TABLES.items() if name in cls.model_fields]
        if "model" not in owners and name in LanguageModelConfig.model_fields:
            owners.append("model")
        if len(owners) == 1:
            return [owners[0], name]
        if len(owners) > 1:
            raise ConfigError(
                f"--set {name}: ambiguous, say which table: {', '.join(f'{o}.{name}' for o in owners)}"
            )
        raise ConfigError(
            f"--set {name}: unknown key; valid keys are table.field ({', '.join(TABLES)}) or a seed name ({', '.join(SEED_ALIASES)})"
        )
    return path


def apply_overrides(raw: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with each ``key=value`` override applied."""
    out: dict[str, Any] = copy.deepcopy(raw)  # nested tables too: the caller's dict stays as it was
    for item in overrides:
        path, value = parse_override(item)
        path = _resolve_key(path)
        if len(path) == 1:
            out[path[0]] = value
        elif len(path) == 2:
            table = out.setdefault(path[0], {})
            if not isinstance(table, dict):
                raise ConfigError(f"--set {item}: {path[0]} is not a table")
            table[path[1]] = value
        elif len(path) == 3 and path[:2] in (
            ["model", "cell_options"],
            ["data", "text"],
            ["data", "series"],
            ["data", "chars"],
            ["data", "arrays"],
        ):
            out.setdefault(path[0], {}).setdefault(path[1], {})[path[2]] = value
        else:
            raise ConfigError(
                f"--set {item}: keys are at most table.field (or model.cell_options.name, "
                "data.text.name, data.series.name, data.chars.name, data.arrays.name)"
            )
    return out


def read_recipe_toml(path: Path) -> dict[str, Any]:
    """The TOML table of recipe file ``path``; ConfigError naming it when it is missing,
    unreadable, not UTF-8 or not TOML."""
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"recipe {path} does not exist") from None
    except UnicodeDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: not UTF-8 text (byte {err.start})") from None
    except OSError as err:  # a directory, no permission
        raise ConfigError(f"cannot read recipe {path}: {err.strerror or err}") from None
    except tomllib.TOMLDecodeError as err:
        raise ConfigError(f"{path}: not valid TOML: {err}") from None


def load_recipe(
    recipe: str | os.PathLike[str], overrides: Iterable[str] = ()
) -> tuple[Recipe, dict[str, Any]]:
    """Load and validate a TOML recipe with overrides: ``recipe`` is a packaged recipe's name
    (``imdb-seed003``) or a path to a file (:func:`lstmkit.recipes.resolve`). Returns the recipe
    and the raw dict (with overrides) for the run record."""
    path = packaged.resolve(recipe)
    raw = read_recipe_toml(path)
    raw = apply_overrides(raw, overrides)
    raw.setdefault("name", path.stem)
    return recipe_from_dict(raw, str(path)), raw


def check_monitor(recipe: Recipe, allowed: tuple[str, ...], task: str) -> None:
    """ConfigError unless ``train.monitor`` is unset (the task's own) or one of ``allowed``."""
    monitor = recipe.train.monitor
    if monitor is not None and monitor not in allowed:
        raise ConfigError(
            f"train.monitor = {monitor!r} is not measured for {task}; use one of "
            f"{', '.join(allowed)} (or leave it unset)"
        )


# -- lstmkit train --task text|forecast: the flags as a recipe --------------------------------
TASK_DATASETS = {"text": "text", "forecast": "series"}


def recipe_for_task(
    task: str,
    data_options: dict[str, Any],
    *,
    recipe_path: str | os.PathLike[str] | None = None,
    data_top: dict[str, Any] | None = None,
    overrides: list[str] | tuple[str, ...] = (),
) -> tuple[Recipe, dict[str, Any]]:
    """The recipe that ``lstmkit train --task TASK --train F ...`` runs.

    ``data_options`` (flags that were given, None values dropped) fill ``[data.text]`` (task
    'text') or ``[data.series]`` (task 'forecast'); ``data_top`` fills ``[data]`` itself (e.g.
    ``maxlen``). A ``recipe_path`` TOML is the base (its ``[data.*]`` values are overridden by
    the flags; a packaged recipe's name or a path); ``overrides`` (``--set``) apply last. The name defaults to
    ``text-<train stem>`` / ``forecast-<train stem>``. Raises ConfigError.
    """
    if task not in TASK_DATASETS:
        raise ConfigError(f"--task must be one of {', '.join(TASK_DATASETS)}, got {task!r}")
    dataset = TASK_DATASETS[task]
    raw: dict[str, Any] = {}
    source = "--task " + task
    if recipe_path is not None:
        path = packaged.resolve(recipe_path)
        raw = read_recipe_toml(path)
        source = str(recipe_path)
        raw.setdefault("name", path.stem)
    data = dict(raw.get("data") or {})
    if data.get("dataset", dataset) != dataset:
        raise ConfigError(
            f"{source}: --task {task} reads dataset {dataset!r}, but the recipe says "
            f"dataset = {data['dataset']!r}"
        )
    data["dataset"] = dataset
    table = dict(data.get(dataset) or {})
    table.update({k: v for k, v in data_options.items() if v is not None})
    data[dataset] = table
    data.update({k: v for k, v in (data_top or {}).items() if v is not None})
    raw["data"] = data
    if "train" not in table:
        raise ConfigError(f"--task {task} needs --train FILE (or [data.{dataset}] train = ...)")
    raw.setdefault("name", f"{task}-{Path(str(table['train'])).stem}")
    raw = apply_overrides(raw, overrides)
    return recipe_from_dict(raw, source), raw
