"""What the new-run form may ask for: :class:`RunRequest` (bounded fields), the recipe catalogue
and the translation of a request into ``lstmkit train RECIPE --set key=value ...`` overrides.

Every field but ``recipe`` and ``dataset`` is optional: None keeps the recipe's value. The bounds
are the studio's, tighter than the recipe schema's, so that a client cannot ask for a model or a
run the machine cannot hold (10^9 hidden units). After the field checks the overrides are
validated exactly as the CLI does (:func:`lstmkit.config.load_recipe`), so a run that is queued
has a valid recipe.

An uploaded file (dataset ``upload``) runs without a recipe file: task ``text`` (the default) as
``lstmkit train --task text --train FILE --text-column C --label-column L`` with the recipe's
model and training as ``--set`` values; task ``forecast`` as ``lstmkit train --task forecast
--train FILE --target T [--time-column C] [--id-column I] [--horizon H]`` with only the fields
the request sets (the data chooses the rest, as on the command line).
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lstmkit.config import Recipe, load_recipe, recipe_for_task
from lstmkit.errors import ConfigError

# the datasets the form offers, in this order (seed 000's IMDB first); recipes reading files
# named in the recipe itself ([data.arrays], [data.text], [data.series]) are not offered: a client
# never supplies a file path (own texts come as uploads)
DATASET_LABELS = {
    "imdb": "IMDB movie reviews (sentiment)",
    "reuters": "Reuters newswires (46 topics)",
    "mnist": "MNIST digits, read row by row",
    "chars": "tiny-shakespeare (characters, language model)",
    "upload": "your own CSV / TSV / JSONL file",
}
UPLOAD = "upload"
MAX_HORIZON = 1000  # steps forecast at once (the recipe schema allows 10^4)
RECIPE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


class RunRequest(BaseModel):
    """``POST /api/runs``: a recipe to start from, a dataset and the parameters to change.

    Seed names (seed 000's ``run_lstm(params)``) keep their meaning: ``dropout_keep_prob`` is the
    probability of keeping a unit (dropout = 1 - keep), ``evaluate_every`` is in steps (0: once
    per epoch).
    """

    model_config = ConfigDict(extra="forbid")

    recipe: str = Field(description="name of a recipe in the studio's recipe folder")
    dataset: str = Field(description="a dataset of the recipes, or 'upload'")
    name: str | None = Field(None, max_length=80, description="a label for the run")
    # the seed's parameters
    max_sentence_length: int | None = Field(None, ge=1, le=5000)
    hidden_size: int | None = Field(None, ge=1, le=1024)
    dropout_keep_prob: float | None = Field(None, gt=0.0, le=1.0)
    num_epochs: int | None = Field(None, ge=1, le=1000)
    batch_size: int | None = Field(None, ge=1, le=4096)
    evaluate_every: int | None = Field(None, ge=0, le=1_000_000)
    learn_rate: float | None = Field(None, gt=0.0, le=1.0)
    num_layers: int | None = Field(None, ge=1, le=8)
    # ours
    cell: Literal["lstm", "gru", "rnn"] | None = None
    bidirectional: bool | None = None
    optimizer: Literal["adam", "adamw", "rmsprop", "sgd", "adagrad"] | None = None
    vocab_size: int | None = Field(None, ge=3, le=200_000, description="data.num_words")
    embedding_dim: int | None = Field(None, ge=1, le=1024)
    validation_split: float | None = Field(None, ge=0.0, le=0.9)
    max_steps: int | None = Field(None, ge=1, le=10_000_000)
    # own data (dataset 'upload'): classify its texts (task 'text', the default) or forecast
    # a numeric column (task 'forecast'; many series when it has an id column)
    upload_id: str | None = Field(None, pattern=r"^[0-9a-f]{12}$")
    task: Literal["text", "forecast"] | None = Field(
        None, description="what to do with an uploaded file (None: 'text')"
    )
    text_column: str | None = Field(None, max_length=200)
    label_column: str | None = Field(None, max_length=200)
    target_column: str | None = Field(None, max_length=200, description="forecast: --target")
    time_column: str | None = Field(
        None, max_length=200, description="forecast: --time-column (None: file order)"
    )
    id_column: str | None = Field(
        None, max_length=200, description="forecast: --id-column (None: one series)"
    )
    horizon: int | None = Field(
        None, ge=1, le=MAX_HORIZON, description="forecast: --horizon (None: the CLI's 1)"
    )


def _model(name: str, convert: Any = None) -> Any:
    """Reader of a model field (None when the recipe's model has no such field, e.g. a language
    model has no ``bidirectional``)."""

    def read(r: Recipe) -> Any:
        value = getattr(r.model, name, None)
        return convert(value) if convert is not None and value is not None else value

    return read


def _vocab(r: Recipe) -> Any:
    if r.data.dataset == "text" and r.data.text is not None:
        return r.data.text.vocab_size
    return r.data.num_words


def _validation(r: Recipe) -> Any:
    if r.data.dataset == "text" and r.data.text is not None:
        return r.data.text.valid_fraction
    return r.data.validation_split


# form field -> (recipe key for --set, how to read the recipe's value)
FIELD_KEYS: dict[str, tuple[str, Any]] = {
    "max_sentence_length": ("max_sentence_length", lambda r: r.data.maxlen),
    "hidden_size": ("hidden_size", _model("hidden_size")),
    "dropout_keep_prob": ("dropout_keep_prob", _model("output_dropout", lambda v: round(1 - v, 6))),
    "num_epochs": ("num_epochs", lambda r: r.train.epochs),
    "batch_size": ("batch_size", lambda r: r.train.batch_size),
    "evaluate_every": ("evaluate_every", lambda r: r.train.evaluate_every),
    "learn_rate": ("learn_rate", lambda r: r.train.lr),
    "num_layers": ("num_layers", _model("num_layers")),
    "cell": ("model.cell", _model("cell")),
    "bidirectional": ("model.bidirectional", _model("bidirectional")),
    "optimizer": ("train.optimizer", lambda r: r.train.optimizer),
    "vocab_size": ("data.num_words", _vocab),
    "embedding_dim": ("embedding_dim", _model("embedding_dim")),
    "validation_split": ("data.validation_split", _validation),
    "max_steps": ("train.max_steps", lambda r: r.train.max_steps),
}
# fields that mean nothing for a dataset: MNIST rows are pixels (no words), a character
# language model cuts its text by [data.chars] (bptt, valid_fraction) and has one direction
NOT_APPLICABLE: dict[str, tuple[str, ...]] = {
    "mnist": ("max_sentence_length", "vocab_size", "embedding_dim"),
    "chars": ("max_sentence_length", "vocab_size", "validation_split", "bidirectional"),
}
# on an uploaded file (lstmkit train --task text) these fields set the [data.text] table
TEXT_KEYS = {"vocab_size": "data.text.vocab_size", "validation_split": "data.text.valid_fraction"}
# on an uploaded file forecast (lstmkit train --task forecast) the data chooses the rest: these
# fields do not apply (no words, and the forecaster reads forward), and the validation share is
# [data.series]'s
FORECAST_NOT_APPLICABLE = ("max_sentence_length", "vocab_size", "embedding_dim", "bidirectional")
FORECAST_KEYS = {"validation_split": "data.series.valid_fraction"}
TEXT_FIELDS = ("text_column", "label_column")
FORECAST_FIELDS = ("target_column", "time_column", "id_column", "horizon")
# the id column lstmkit reads as the series' ids when the file has it and none is named
DEFAULT_ID_COLUMN = "unique_id"
# model fields the own-data pipeline sets from the data, never from the base recipe
_DATA_MODEL_FIELDS = {"num_classes", "vocab_size", "input_size"}
# where a recipe error about a table field belongs on the form
_ERROR_FIELDS = {
    "data.maxlen": "max_sentence_length",
    "model.hidden_size": "hidden_size",
    "model.dropout": "dropout_keep_prob",
    "model.output_dropout": "dropout_keep_prob",
    "dropout_keep_prob": "dropout_keep_prob",
    "train.epochs": "num_epochs",
    "train.batch_size": "batch_size",
    "train.evaluate_every": "evaluate_every",
    "train.lr": "learn_rate",
    "model.num_layers": "num_layers",
    "model.cell": "cell",
    "model.bidirectional": "bidirectional",
    "train.optimizer": "optimizer",
    "data.num_words": "vocab_size",
    "model.embedding_dim": "embedding_dim",
    "data.validation_split": "validation_split",
    "data.text.vocab_size": "vocab_size",
    "data.text.valid_fraction": "validation_split",
    "data.text.text_column": "text_column",
    "data.text.label_column": "label_column",
    "data.series.target": "target_column",
    "data.series.time_column": "time_column",
    "data.series.id_column": "id_column",
    "data.series.horizon": "horizon",
    "data.series.valid_fraction": "validation_split",
    "train.max_steps": "max_steps",
    "data.dataset": "dataset",
    "data": "dataset",  # last: an error about the [data] table as a whole
}


class FieldError(ConfigError):
    """A request value is invalid; ``field`` names the form field, the message says why."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field
        self.message = message


@dataclass(frozen=True)
class RecipeInfo:
    """A recipe the studio can start from."""

    name: str
    path: Path
    recipe: Recipe | None
    error: str | None

    def to_json(self) -> dict[str, Any]:
        """Name, description, dataset and the form fields' values (or why it cannot be used)."""
        if self.recipe is None:
            return {"name": self.name, "error": self.error}
        return {
            "name": self.name,
            "description": self.recipe.description,
            "dataset": self.recipe.data.dataset,
            "task": self.recipe.task,
            "seed_figure": self.recipe.seed_figure,
            "values": recipe_values(self.recipe),
        }


def recipe_values(recipe: Recipe) -> dict[str, Any]:
    """The form fields' values in ``recipe`` (None for a field its dataset does not use)."""
    skip = NOT_APPLICABLE.get(recipe.data.dataset, ())
    return {
        field: None if field in skip else read(recipe) for field, (_, read) in FIELD_KEYS.items()
    }


def recipe_catalog(*recipe_dirs: Path) -> dict[str, RecipeInfo]:
    """Every ``*.toml`` in ``recipe_dirs``, read now (recipes added while the studio runs show up;
    one that does not load is listed with its error; a later folder's recipe takes the place of
    an earlier one's of the same name), sorted by name."""
    out: dict[str, RecipeInfo] = {}
    paths = {p.stem: p for d in recipe_dirs for p in sorted(d.glob("*.toml"))}
    for path in (paths[name] for name in sorted(paths)):
        if not RECIPE_NAME.match(path.stem):
            continue
        try:
            recipe, _ = load_recipe(path)
            out[path.stem] = RecipeInfo(path.stem, path, recipe, None)
        except (ConfigError, OSError) as err:
            out[path.stem] = RecipeInfo(path.stem, path, None, str(err))
    return out


def datasets(catalog: dict[str, RecipeInfo]) -> list[dict[str, Any]]:
    """The recipes' datasets (each with the recipes that train on it) and 'upload'."""
    seen: dict[str, list[str]] = {}
    for info in catalog.values():
        if info.recipe is not None and info.recipe.data.dataset in DATASET_LABELS:
            seen.setdefault(info.recipe.data.dataset, []).append(info.name)
    order = list(DATASET_LABELS)
    return [
        # the seeds' own recipes first (imdb-seed000: the note's run_lstm), then ours
        {"id": d, "label": DATASET_LABELS[d], "recipes": sorted(names, key=_seed_first)}
        for d, names in sorted(seen.items(), key=lambda item: order.index(item[0]))
    ]


def _seed_first(name: str) -> tuple[bool, str]:
    return ("-seed" not in name, name)


def _toml(value: Any) -> str:
    """A TOML literal of a JSON-like value (what ``--set key=VALUE`` parses)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_toml(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(str(k))} = {_toml(v)}" for k, v in value.items()) + "}"
    return repr(value)


def to_overrides(request: RunRequest, recipe: Recipe) -> list[str]:
    """``key=value`` overrides (``--set``) for every field the request sets (on an uploaded
    file, the keys of its task's table: [data.text] or [data.series])."""
    out = []
    upload = request.dataset == UPLOAD
    if not upload and request.dataset != recipe.data.dataset:
        out.append(f"data.dataset={_toml(request.dataset)}")
        if recipe.pretrain.unlabelled and request.dataset != "imdb":
            # the recipe's word vectors read IMDB's unlabelled reviews, which only IMDB has:
            # on another data set they are trained on its training texts alone (the run's
            # config.json keeps this override)
            out.append("pretrain.unlabelled=false")
    own = (FORECAST_KEYS if request.task == "forecast" else TEXT_KEYS) if upload else {}
    for field, (key, _) in FIELD_KEYS.items():
        value = getattr(request, field)
        if value is not None:
            out.append(f"{own.get(field, key)}={_toml(value)}")
    return out


def base_overrides(recipe: Recipe) -> list[str]:
    """The recipe's model and training values (those not at their defaults) and its maxlen as
    overrides: on an uploaded file the run is ``lstmkit train --task text`` with no recipe file
    (its data table would name another dataset), so the recipe to start from comes this way."""
    out = []
    if recipe.data.maxlen is not None:
        out.append(f"data.maxlen={recipe.data.maxlen}")
    model = recipe.model.model_dump(exclude_defaults=True, exclude=_DATA_MODEL_FIELDS)
    for key, value in model.items():
        if value is not None:
            out.append(f"model.{key}={_toml(value)}")
    for key, value in recipe.train.model_dump(exclude_defaults=True).items():
        if value is not None:
            out.append(f"train.{key}={_toml(value)}")
    return out


@dataclass(frozen=True)
class Plan:
    """How a valid request runs: ``lstmkit train [RECIPE] [TASK_ARGS] --set OVERRIDES``."""

    recipe: RecipeInfo
    overrides: list[str]
    task_args: list[str] | None  # ['--task', 'text' | 'forecast', '--train', FILE, ...]: an upload


def _error_field(message: str) -> str:
    best = "recipe"
    for key, field in _ERROR_FIELDS.items():
        if re.search(rf"(^|[\s:;.]){re.escape(key)}\b", message):
            return field
    return best


def validate_request(
    request: RunRequest,
    catalog: dict[str, RecipeInfo],
    upload: dict[str, Any] | None = None,
    upload_file: Path | None = None,
) -> Plan:
    """How to run a valid request; raises :class:`FieldError` naming the field otherwise.
    ``upload``, ``upload_file``: the metadata and the stored file of ``request.upload_id``
    (an uploaded file trains through ``lstmkit train --task text`` or, with ``task =
    'forecast'``, ``--task forecast``)."""
    info = catalog.get(request.recipe)
    if info is None:
        valid = ", ".join(n for n, i in catalog.items() if i.recipe is not None) or "none"
        raise FieldError("recipe", f"no recipe named {request.recipe!r}; choose one of: {valid}")
    if info.recipe is None:
        raise FieldError("recipe", f"recipe {info.name} cannot be used: {info.error}")
    known = [d["id"] for d in datasets(catalog)] + [UPLOAD]
    if request.dataset not in known:
        raise FieldError(
            "dataset", f"unknown dataset {request.dataset!r}; choose one of: {', '.join(known)}"
        )
    if request.task is not None and request.dataset != UPLOAD:
        raise FieldError(
            "task", f"a task is chosen for an uploaded file; the dataset is {request.dataset!r}"
        )
    for field in NOT_APPLICABLE.get(request.dataset, ()):
        if getattr(request, field) is not None:
            raise FieldError(
                field, f"{field} does not apply to the {request.dataset} dataset; leave it empty"
            )
    overrides = to_overrides(request, info.recipe)
    if request.dataset != UPLOAD:
        try:
            load_recipe(info.path, overrides)
        except ConfigError as err:
            message = str(err).removeprefix(f"{info.path}: ")
            raise FieldError(_error_field(message), message) from None
        return Plan(info, overrides, None)

    if request.task == "forecast":
        return _forecast_plan(request, info, upload, upload_file, overrides)
    for field in FORECAST_FIELDS:
        if getattr(request, field) is not None:
            raise FieldError(field, f"{field} is for a forecast; choose the task 'forecast'")
    for field in ("upload_id", "text_column", "label_column"):
        if not getattr(request, field):
            raise FieldError(field, f"{field} is required when the dataset is 'upload'")
    if upload is None or upload_file is None:
        raise FieldError("upload_id", f"no upload {request.upload_id!r}; upload the file first")
    for field in ("text_column", "label_column"):
        column = getattr(request, field)
        if column not in upload["columns"]:
            raise FieldError(
                field,
                f"{upload['filename']!r} has no column {column!r}; its columns are "
                + ", ".join(upload["columns"]),
            )
    if request.text_column == request.label_column:
        raise FieldError("label_column", "the label column must differ from the text column")
    if info.recipe.task not in ("classify", "text"):  # a classifier's recipe
        raise FieldError(
            "recipe",
            f"recipe {info.name} is a {info.recipe.task} recipe; an uploaded file is classified, "
            "start from a classification recipe",
        )
    overrides = base_overrides(info.recipe) + overrides
    task_args = [
        "--task",
        "text",
        "--train",
        str(upload_file),
        "--text-column",
        str(request.text_column),
        "--label-column",
        str(request.label_column),
    ]
    try:
        recipe_for_task(
            "text",
            {
                "train": str(upload_file),
                "text_column": request.text_column,
                "label_column": request.label_column,
            },
            overrides=overrides,
        )
    except ConfigError as err:
        message = str(err).removeprefix("--task text: ")
        raise FieldError(_error_field(message), message) from None
    return Plan(info, overrides, task_args)


def _upload_of(
    request: RunRequest, upload: dict[str, Any] | None, upload_file: Path | None
) -> tuple[dict[str, Any], Path]:
    if not request.upload_id:
        raise FieldError("upload_id", "upload_id is required when the dataset is 'upload'")
    if upload is None or upload_file is None:
        raise FieldError("upload_id", f"no upload {request.upload_id!r}; upload the file first")
    return upload, upload_file


def _forecast_plan(
    request: RunRequest,
    info: RecipeInfo,
    upload: dict[str, Any] | None,
    upload_file: Path | None,
    overrides: list[str],
) -> Plan:
    """``lstmkit train --task forecast --train FILE --target T [--time-column C] [--id-column
    I] [--horizon H]`` with only the fields the request sets as ``--set``: the data chooses the
    rest (lookback, season, model size, steps; :mod:`lstmkit.tasks.defaults`), so the recipe's
    values are not carried over (it names the run only)."""
    upload, upload_file = _upload_of(request, upload, upload_file)
    for field in TEXT_FIELDS:
        if getattr(request, field) is not None:
            raise FieldError(field, f"{field} is for text classification; a forecast has none")
    for field in FORECAST_NOT_APPLICABLE:
        if getattr(request, field) is not None:
            raise FieldError(field, f"{field} does not apply to a forecast; leave it empty")
    if not request.target_column:
        raise FieldError("target_column", "target_column is required for a forecast")
    columns = upload["columns"]
    chosen: dict[str, str] = {}
    for field in ("target_column", "time_column", "id_column"):
        column = getattr(request, field)
        if column is None:
            continue
        if column not in columns:
            raise FieldError(
                field,
                f"{upload['filename']!r} has no column {column!r}; its columns are "
                + ", ".join(columns),
            )
        same = next((f for f, c in chosen.items() if c == column), None)
        if same is not None:
            raise FieldError(field, f"column {column!r} is already the {same}; choose another")
        chosen[field] = column
    if request.id_column is None and DEFAULT_ID_COLUMN in columns:
        # lstmkit reads unique_id as the ids whenever the file has it (find_id_column)
        raise FieldError(
            "id_column",
            f"{upload['filename']!r} has a {DEFAULT_ID_COLUMN!r} column, which lstmkit reads as "
            f"the series' ids; choose it as the id column (or upload the file without it for "
            "one series)",
        )
    task_args = ["--task", "forecast", "--train", str(upload_file)]
    options: dict[str, Any] = {"train": str(upload_file)}
    for field, flag, key in (
        ("target_column", "--target", "target"),
        ("time_column", "--time-column", "time_column"),
        ("id_column", "--id-column", "id_column"),
        ("horizon", "--horizon", "horizon"),
    ):
        value = getattr(request, field)
        if value is not None:
            task_args += [flag, str(value)]
            options[key] = value
    try:
        recipe_for_task("forecast", options, overrides=overrides)
    except ConfigError as err:
        message = str(err).removeprefix("--task forecast: ")
        raise FieldError(_error_field(message), message) from None
    return Plan(info, overrides, task_args)
