"""The studio API's response models: what each ``/api`` route answers, as its OpenAPI schema
documents it (the request model, :class:`lstmkit.studio.params.RunRequest`, lives beside the
rules of the new-run form).

A metric row is a ``history.jsonl`` row as the Trainer wrote it (``step``, ``split`` and whatever
the task measures) plus the store's ``seq``: a plain JSON object here, not a model, so that a new
metric reaches the page without a schema change.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

# lstmkit.studio.store.STATUSES, as a type (tests/studio/test_store.py keeps them equal)
RunStatus = Literal[
    "queued", "running", "cancelling", "finished", "failed", "cancelled", "interrupted"
]
MetricRow = dict[str, Any]


class Progress(BaseModel):
    """Where a run is, from its newest train row (None where the row does not say)."""

    step: int | None = None
    total_steps: int | None = None
    tokens_per_s: float | None = None
    eta_s: float | None = Field(None, description="seconds left; None unless the run trains")


class Hint(BaseModel):
    """A training hint of :func:`lstmkit.studio.diagnose.diagnose`."""

    kind: Literal["learning_rate", "overfitting", "gradients"]
    text: str


class RunOut(BaseModel):
    """A run as the API shows it (no pids, no paths)."""

    id: str = Field(description="8 hex digits")
    name: str
    recipe: str
    dataset: str
    params: dict[str, Any] = Field(description="the request's fields that were set")
    overrides: list[str] = Field(description="the run's `--set key=value` overrides")
    status: RunStatus
    created: float
    started: float | None
    finished: float | None
    exit_code: int | None
    error: str | None
    metrics: dict[str, Any] | None = Field(description="the run's metrics.json once finished")
    upload_id: str | None
    resumes: int
    resumable: bool = Field(description="stopped with a checkpoint: POST .../resume continues it")
    model_url: str | None = Field(description="the page of its exported model, once made")
    progress: Progress | None = None


class RunWithRows(RunOut):
    """A run with its metric rows and the form fields' values it trains with."""

    rows: list[MetricRow]
    values: dict[str, Any] | None = Field(
        description="the form fields' values of its recipe (None until the run wrote config.json)"
    )


class RunDetail(RunWithRows):
    """``GET /api/runs/<id>``: the run, its rows, its values and the training hints."""

    hints: list[Hint]


class LogTail(BaseModel):
    """The end of a run's ``train.log``."""

    log: str


class SeedFigure(BaseModel):
    """One seed of a repeated run: its run and its figure (None without one)."""

    seed: int
    run_id: str
    value: float | None


class SpreadStats(BaseModel):
    """:func:`lstmkit.repeat.spread` of the seeds' figures: mean, sample std (ddof 1), min, max."""

    mean: float
    std: float
    min: float
    max: float


class SpreadCurve(BaseModel):
    """A validation metric's spread over the seeds, per step (steps with two or more seeds)."""

    split: str
    key: str = Field(description="the metric of the history rows (accuracy, loss)")
    steps: list[int]
    n: list[int] = Field(description="how many seeds have a value at each step")
    mean: list[float]
    std: list[float]
    min: list[float]
    max: list[float]


class RepeatGroup(BaseModel):
    """``GET /api/repeats``: a repeated run (``lstmkit train --seeds N --out HOME/runs/NAME``)."""

    name: str = Field(description="its folder under HOME/runs")
    recipe: str
    metric: str | None = Field(description="the figure each seed records (test_accuracy, ...)")
    seeds: list[SeedFigure]
    spread: SpreadStats | None = Field(description="None with fewer than two figures")


class RepeatSpread(RepeatGroup):
    """The spread of the compared seeds of one repeated run, with their curves' spread."""

    curves: list[SpreadCurve]


class Comparison(BaseModel):
    """``GET /api/compare``: the chosen runs and the form fields to tabulate; ``spread`` when
    the runs are two or more seeds of one repeated run (else None)."""

    runs: list[RunWithRows]
    fields: list[str]
    spread: RepeatSpread | None = None


class ModelLinks(BaseModel):
    """``POST /api/runs/<id>/bundle``: where the exported model is served."""

    run_id: str
    url: str = Field(description="its prediction and inspection page")
    api: str = Field(description="its prediction endpoint")


class RecipeOption(BaseModel):
    """A recipe the form offers (``error`` instead of the rest when it does not load)."""

    name: str
    error: str | None = None
    description: str | None = None
    dataset: str | None = None
    task: str | None = None
    seed_figure: float | None = None
    values: dict[str, Any] | None = None


class DatasetOption(BaseModel):
    """A dataset the form offers, with the recipes that train on it."""

    id: str
    label: str
    recipes: list[str]
    available: bool = True


class Options(BaseModel):
    """``GET /api/options``: what the new-run form offers."""

    recipes: list[RecipeOption]
    datasets: list[DatasetOption]
    fields: list[str]
    not_applicable: dict[str, list[str]]
    run_request_schema: dict[str, Any] = Field(
        alias="schema", description="the JSON schema of POST /api/runs"
    )
    max_upload_bytes: int
    max_concurrent: int


class UploadOut(BaseModel):
    """An uploaded data file (stored as ``HOME/uploads/<id>.<format>``)."""

    id: str
    filename: str = Field(description="the client's file name, a label only")
    format: Literal["csv", "tsv", "jsonl"]
    size: int
    sha256: str
    columns: list[str]
    rows: int
    created: float


class Health(BaseModel):
    """``GET /health``: the queue's size and limit."""

    status: Literal["ok"] = "ok"
    running: int
    queued: int
    max_concurrent: int


class SeriesForecastOut(BaseModel):
    """``GET /api/runs/<id>/forecasts``: one series' test forecasts (rows of forecasts.csv)."""

    run_id: str
    series: str = Field(description="the id whose rows these are")
    id_column: str
    time_column: str = Field(description="the run's time column ('row' without one)")
    quantiles: list[str] = Field(description="the quantile columns, ascending (q0.1, q0.5, ...)")
    baselines: list[str] = Field(description="the baselines' columns (auto_ets, ...)")
    ids: list[str] = Field(description="every series id of the run, in file order")
    ids_truncated: bool
    rows: list[dict[str, Any]] = Field(
        description="origin, time, y, the quantiles and baselines per test step"
    )
    rows_truncated: bool
