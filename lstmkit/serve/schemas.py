"""Request and response bodies of the serving API (pydantic; they also make the OpenAPI schema)."""

from __future__ import annotations

import re
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator

# "holds a visible character", the same in the schema (JSON Schema patterns are ECMA regexes) and
# in the server (Python's re): a character outside both \s sets -- Python's \s also covers
# U+001C..U+001F and U+0085, ECMA's also U+FEFF -- so a client generated from the schema and the
# server agree on every text
NOT_BLANK = r"[^\s\x1c-\x1f\x85\ufeff]"
_NOT_BLANK = re.compile(NOT_BLANK)


def is_blank(text: str) -> bool:
    """True when ``text`` holds no visible character (see :data:`NOT_BLANK`)."""
    return _NOT_BLANK.search(text) is None


class PredictRequest(BaseModel):
    """``POST /v1/predict`` body: the texts to classify (at least one, none empty)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(
        min_length=1,
        description="texts to classify; each must hold at least one non-space character",
        examples=[["A wonderful film, I loved every minute.", "Dull and far too long."]],
        # the schema says what _no_empty_text checks (a generated client then sends no blank text);
        # the check stays in the validator, for its clearer message
        json_schema_extra={"items": {"type": "string", "pattern": NOT_BLANK}},
    )

    @field_validator("texts")
    @classmethod
    def _no_empty_text(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            if is_blank(text):
                raise ValueError(f"texts[{i}] is empty or whitespace-only; give at least one word")
        return texts


class InspectRequest(BaseModel):
    """``POST /v1/inspect`` body: one text to look inside the model with."""

    model_config = ConfigDict(extra="forbid")

    text: StrictStr = Field(
        description="the text; it must hold at least one non-space character",
        examples=["A wonderful film, I loved every minute."],
        json_schema_extra={"pattern": NOT_BLANK},  # in the schema what _not_empty checks
    )

    @field_validator("text")
    @classmethod
    def _not_empty(cls, text: str) -> str:
        if is_blank(text):
            raise ValueError("text is empty or whitespace-only; give at least one word")
        return text


class InspectLayer(BaseModel):
    """What one recurrent layer (one direction) did at each token."""

    layer: int = Field(description="layer index, 0 next to the embedding")
    direction: str = Field(description="'forward' or 'backward'")
    gates: dict[str, list[float]] = Field(
        description="gate -> mean activation per token: input/forget/output (LSTM), "
        "reset/update (GRU), none (SimpleRNN)"
    )
    cell_norm: list[float] | None = Field(description="L2 norm of the cell state (LSTM only)")
    hidden_norm: list[float] = Field(description="L2 norm of the hidden state per token")
    units: dict[str, list[list[float]]] = Field(
        default_factory=dict,
        description="gate -> one list per unit of its activation at each of the first "
        "`unit_tokens` tokens (units x tokens, rounded to 4 decimals)",
    )


class InspectResponse(BaseModel):
    """``POST /v1/inspect`` answer: the prediction, and gates and contributions per token."""

    label: str = Field(description="the most probable label")
    probability: float = Field(description="probability of the label")
    scores: dict[str, float] = Field(description="label -> probability")
    cell: str = Field(description="'lstm', 'gru' or 'rnn'")
    contribution_method: str = Field(
        description="'occlusion': p(label) minus p(label) with the token replaced by OOV"
    )
    tokens: list[str] = Field(description="vocabulary word per token ('<start>', '<oov>')")
    ids: list[int] = Field(description="token ids")
    words: list[str] = Field(description="the text's own word behind each token")
    contributions: list[float] = Field(description="one per token; > 0 supports the label")
    layers: list[InspectLayer]
    unit_tokens: int = Field(
        0, description="how many tokens (the first ones, at most 256) `layers[i].units` covers"
    )


class Prediction(BaseModel):
    """The label of one text and the probability of every label."""

    label: str = Field(description="the most probable label")
    scores: dict[str, float] = Field(description="label -> probability (they sum to 1)")


class PredictResponse(BaseModel):
    """``POST /v1/predict`` answer: one prediction per text, in the order of the request."""

    predictions: list[Prediction]


class BundleInfo(BaseModel):
    """What ``bundle.json`` says (absent when a run directory is served)."""

    format: str | None = None
    version: int | None = None
    lstmkit_version: str | None = None
    created: str | None = None


class ModelInfo(BaseModel):
    """``GET /v1/model``: the served model, its labels, architecture and metrics."""

    name: str | None = Field(description="recipe name")
    task: str
    labels: list[str]
    model: dict[str, Any] = Field(description="architecture (ClassifierConfig)")
    maxlen: int | None = Field(description="texts are cut to their last maxlen tokens")
    tokenizer: str | None = Field(
        None,
        description="the run's own tokenizer (word, char, bpe, unigram: lstmkit train --task "
        "text); null for the Keras data sets' vocabularies",
    )
    metrics: dict[str, Any] | None = Field(description="the run's metrics.json")
    lstmkit_version: str = Field(description="the lstmkit version serving the model")
    bundle: BundleInfo | None
    max_texts: int = Field(description="most texts per request")
    max_chars: int = Field(description="most characters (all texts together) per request")


class Health(BaseModel):
    """``GET /health``: the process is alive."""

    status: str = "ok"


class Ready(BaseModel):
    """``GET /ready``: the model is loaded and warmed."""

    status: str = "ready"


class ModelEntry(BaseModel):
    """One served model of ``GET /v1/models``."""

    name: str = Field(description="its name: its API is at /models/<name>/v1/... (one model: /v1)")
    task: str = Field(description="classify, forecast or language_model")
    path: str = Field(description="where its API is")
    inputs: dict[str, Any] = Field(description="what its requests hold")
    metrics: dict[str, Any] | None = Field(description="the run's metrics.json")


class ModelList(BaseModel):
    """``GET /v1/models``: every model this server serves."""

    models: list[ModelEntry]
