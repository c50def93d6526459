"""``GET /api/options``: what the new-run form offers (recipes with their values, datasets, the
bounds of every field, the limits)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.concurrency import run_in_threadpool

from lstmkit.studio.deps import StudioDep
from lstmkit.studio.params import (
    DATASET_LABELS,
    FIELD_KEYS,
    FORECAST_NOT_APPLICABLE,
    NOT_APPLICABLE,
    UPLOAD,
    RunRequest,
    datasets,
)
from lstmkit.studio.schemas import DatasetOption, Options, RecipeOption

router = APIRouter(tags=["options"])


@router.get("/options")
async def options(studio: StudioDep) -> Options:
    """What the new-run form offers: recipes (with the values of the form's fields; the error
    of one that does not load), datasets, the bounds of every field, the upload limit. An
    uploaded CSV / TSV / JSONL file trains through ``lstmkit train --task text`` or ``--task
    forecast``."""
    catalog = await run_in_threadpool(studio.catalog)
    return Options(
        recipes=[RecipeOption.model_validate(info.to_json()) for info in catalog.values()],
        datasets=[
            *(DatasetOption.model_validate(d) for d in datasets(catalog)),
            DatasetOption(id=UPLOAD, label=DATASET_LABELS[UPLOAD], recipes=[]),
        ],
        fields=list(FIELD_KEYS),
        # "upload:forecast": the fields an uploaded file's forecast does not use
        not_applicable={
            **{k: list(v) for k, v in NOT_APPLICABLE.items()},
            f"{UPLOAD}:forecast": list(FORECAST_NOT_APPLICABLE),
        },
        schema=RunRequest.model_json_schema(),
        max_upload_bytes=studio.max_upload_bytes,
        max_concurrent=studio.queue.max_concurrent,
    )
