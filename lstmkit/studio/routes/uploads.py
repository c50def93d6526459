"""Uploads (the own-data path): ``POST /api/uploads?filename=F`` (the request body is the file:
CSV, TSV or JSONL; checked and stored by :mod:`lstmkit.studio.uploads`) and ``GET /api/uploads``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, status
from fastapi.concurrency import run_in_threadpool

from lstmkit.studio.deps import RUN_ERRORS, StudioDep
from lstmkit.studio.schemas import UploadOut
from lstmkit.studio.uploads import UploadError, UploadTooLarge, save_upload

router = APIRouter(tags=["uploads"])


@router.post(
    "/uploads",
    status_code=status.HTTP_201_CREATED,
    responses={
        401: RUN_ERRORS[401],
        413: {"description": "the file is over the upload limit"},
        422: {"description": "not a valid CSV/TSV/JSONL file"},
    },
)
async def upload(
    request: Request,
    studio: StudioDep,
    filename: Annotated[str, Query(min_length=1, max_length=200)],
) -> UploadOut:
    """Upload a data file: the request body is the file, ``filename`` (its name on the
    client, ending in .csv, .tsv or .jsonl) only labels it. Stored as ``HOME/uploads/<id>.<fmt>``
    after its columns and rows are checked."""
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > studio.max_upload_bytes:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"{filename!r} is {int(length)} bytes; the upload limit is {studio.max_upload_bytes}",
        )
    try:
        meta = await save_upload(
            request.stream(), filename, studio.uploads_dir, studio.max_upload_bytes
        )
    except UploadTooLarge as err:
        raise HTTPException(status.HTTP_413_CONTENT_TOO_LARGE, detail=str(err)) from None
    except UploadError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    await run_in_threadpool(studio.store.add_upload, meta)
    return UploadOut.model_validate(meta)


@router.get("/uploads", responses={401: RUN_ERRORS[401]})
async def list_uploads(studio: StudioDep) -> list[UploadOut]:
    """Uploaded files, newest first."""
    uploads = await run_in_threadpool(studio.store.list_uploads)
    return [UploadOut.model_validate(u) for u in uploads]
