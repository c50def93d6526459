"""Request and response bodies of the serving API (pydantic; they also make the OpenAPI schema)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, StrictStr, field_validator


class PredictRequest(BaseModel):
    """``POST /v1/predict`` body: the texts to classify (at least one, none empty)."""

    model_config = ConfigDict(extra="forbid")

    texts: list[StrictStr] = Field(
        min_length=1,
        description="texts to classify; each must hold at least one non-space character",
        examples=[["A wonderful film, I loved every minute.", "Dull and far too long."]],
    )

    @field_validator("texts")
    @classmethod
    def _no_empty_text(cls, texts: list[str]) -> list[str]:
        for i, text in enumerate(texts):
            if not text.strip():
                raise ValueError(f"texts[{i}] is empty or whitespace-only; give at least one word")
        return texts


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
    metrics: dict[str, Any] | None = Field(description="the run's metrics.json")
    lstmkit_version: str = Field(description="the lstmkit version serving the model")
    bundle: BundleInfo | None
    max_texts: int = Field(description="most texts per request")
    max_chars: int = Field(description="most characters (all texts together) per request")


class Health(BaseModel):
    """``GET /health``."""

    status: str = "ok"
