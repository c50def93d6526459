"""What the new-run form may ask for: :class:`RunRequest` (bounded fields), the recipe catalogue
and the translation of a request into ``lstmkit train RECIPE --set key=value ...`` overrides.

Every field but ``recipe`` and ``dataset`` is optional: None keeps the recipe's value. The bounds
are the studio's, tighter than the recipe schema's, so that a client cannot ask for a model or a
run the machine cannot hold (10^9 hidden units). After the field checks the overrides are
validated exactly as the CLI does (:func:`lstmkit.config.load_recipe`), so a run that is queued
has a valid recipe.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from lstmkit.config import ConfigError, Recipe, load_recipe

DATASET_LABELS = {
    "imdb": "IMDB movie reviews (sentiment)",
    "reuters": "Reuters newswires (46 topics)",
    "mnist": "MNIST digits, read row by row",
    "mnist_rows": "MNIST digits, read row by row",
    "shakespeare": "tiny-shakespeare (characters)",
    "tinyshakespeare": "tiny-shakespeare (characters)",
    "shakespeare_char": "tiny-shakespeare (characters)",
    "upload": "your own CSV / TSV / JSONL file",
}
UPLOAD = "upload"
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
    # own data (dataset 'upload')
    upload_id: str | None = Field(None, pattern=r"^[0-9a-f]{12}$")
    text_column: str | None = Field(None, max_length=200)
    label_column: str | None = Field(None, max_length=200)


# form field -> (recipe key for --set, how to read the recipe's value)
FIELD_KEYS: dict[str, tuple[str, Any]] = {
    "max_sentence_length": ("max_sentence_length", lambda r: r.data.maxlen),
    "hidden_size": ("hidden_size", lambda r: r.model.hidden_size),
    "dropout_keep_prob": ("dropout_keep_prob", lambda r: round(1.0 - r.model.output_dropout, 6)),
    "num_epochs": ("num_epochs", lambda r: r.train.epochs),
    "batch_size": ("batch_size", lambda r: r.train.batch_size),
    "evaluate_every": ("evaluate_every", lambda r: r.train.evaluate_every),
    "learn_rate": ("learn_rate", lambda r: r.train.lr),
    "num_layers": ("num_layers", lambda r: r.model.num_layers),
    "cell": ("model.cell", lambda r: r.model.cell),
    "bidirectional": ("model.bidirectional", lambda r: r.model.bidirectional),
    "optimizer": ("train.optimizer", lambda r: r.train.optimizer),
    "vocab_size": ("data.num_words", lambda r: r.data.num_words),
    "embedding_dim": ("embedding_dim", lambda r: r.model.embedding_dim),
    "validation_split": ("data.validation_split", lambda r: r.data.validation_split),
    "max_steps": ("train.max_steps", lambda r: r.train.max_steps),
}
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
    "train.max_steps": "max_steps",
    "data.dataset": "dataset",
}


class FieldError(ValueError):
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
        r = self.recipe
        return {
            "name": self.name,
            "description": r.description,
            "dataset": r.data.dataset,
            "seed_figure": r.seed_figure,
            "values": {field: read(r) for field, (_, read) in FIELD_KEYS.items()},
        }


def recipe_catalog(recipes_dir: Path) -> dict[str, RecipeInfo]:
    """Every ``*.toml`` in ``recipes_dir``, read now (recipes added while the studio runs show up;
    one that does not load is listed with its error)."""
    out: dict[str, RecipeInfo] = {}
    for path in sorted(recipes_dir.glob("*.toml")):
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
        if info.recipe is not None:
            seen.setdefault(info.recipe.data.dataset, []).append(info.name)
    return [
        {"id": d, "label": DATASET_LABELS.get(d, d), "recipes": names}
        for d, names in sorted(seen.items())
    ]


def _toml(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, str):
        return json.dumps(value)  # a TOML basic string
    return repr(value)


def to_overrides(request: RunRequest, recipe: Recipe) -> list[str]:
    """``key=value`` overrides (``--set``) for every field the request sets."""
    out = []
    if request.dataset != UPLOAD and request.dataset != recipe.data.dataset:
        out.append(f"data.dataset={_toml(request.dataset)}")
    for field, (key, _) in FIELD_KEYS.items():
        value = getattr(request, field)
        if value is not None:
            out.append(f"{key}={_toml(value)}")
    return out


def _error_field(message: str) -> str:
    best = "recipe"
    for key, field in _ERROR_FIELDS.items():
        if re.search(rf"(^|[\s:;.]){re.escape(key)}\b", message):
            return field
    return best


def validate_request(
    request: RunRequest, catalog: dict[str, RecipeInfo], uploads_ready: bool
) -> tuple[RecipeInfo, list[str]]:
    """The recipe and the overrides of a valid request; raises :class:`FieldError` naming the
    field otherwise. ``uploads_ready``: this lstmkit can train on an uploaded file."""
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
    if request.dataset == UPLOAD:
        if not uploads_ready:
            raise FieldError(
                "dataset",
                "training on an uploaded file needs `lstmkit train --task text` (the own-data "
                "path), which this lstmkit does not have yet; the file can be uploaded and "
                "checked, but not trained on",
            )
        for field in ("upload_id", "text_column", "label_column"):
            if not getattr(request, field):
                raise FieldError(field, f"{field} is required when the dataset is 'upload'")
    overrides = to_overrides(request, info.recipe)
    try:
        load_recipe(info.path, overrides)
    except ConfigError as err:
        message = str(err).removeprefix(f"{info.path}: ")
        raise FieldError(_error_field(message), message) from None
    return info, overrides
