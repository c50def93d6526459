""" "Use this model": ``POST /api/runs/<id>/bundle`` exports a finished run as a bundle
(:func:`lstmkit.bundle.export_bundle`, once) into ``HOME/bundles/<id>``; the studio then serves
it at ``/models/<id>/`` (:mod:`lstmkit.studio.mounts`)."""

from __future__ import annotations

import shutil

from fastapi import APIRouter, HTTPException, status
from fastapi.concurrency import run_in_threadpool

from lstmkit.bundle import export_bundle
from lstmkit.runs import is_classifier_run, task_of_run
from lstmkit.studio.deps import RUN_ERRORS, ExistingRun, RunId, StudioDep
from lstmkit.studio.schemas import ModelLinks
from lstmkit.studio.views import run_config, run_dir

router = APIRouter(tags=["models"])


@router.post(
    "/runs/{run_id}/bundle",
    responses={
        **RUN_ERRORS,
        409: {"description": "the run is not finished, or its model does not read text"},
        500: {"description": "the finished run cannot be exported (a file is missing)"},
    },
)
async def make_bundle(run_id: RunId, run: ExistingRun, studio: StudioDep) -> ModelLinks:
    """ "Use this model": export the finished run as a bundle (once) and answer the URL of its
    prediction and inspection page, ``/models/<id>/``."""
    if run["status"] != "finished":
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} is {run['status']}; only a finished run becomes a model",
        )
    folder = run_dir(studio, run)
    config = run_config(folder)
    # the prediction page classifies texts: a classifier of words (a Keras data set or your own
    # texts), not one of real-valued rows, a language model or a forecaster
    if not is_classifier_run(config) or config.get("real_valued"):
        task = task_of_run(config)
        what = "reads real-valued rows, not text" if task == "classify" else f"is a {task} model"
        raise HTTPException(
            status.HTTP_409_CONFLICT,
            detail=f"run {run_id} {what}; the prediction page classifies texts (use lstmkit "
            "predict / sample / forecast on its run directory)",
        )
    out = studio.bundles_dir / run_id
    if not (out / "bundle.json").is_file():
        if out.exists():  # an earlier export that did not complete
            await run_in_threadpool(shutil.rmtree, out)
        try:
            await run_in_threadpool(export_bundle, folder, out)
        except (FileNotFoundError, ValueError) as err:
            raise HTTPException(
                status.HTTP_500_INTERNAL_SERVER_ERROR, detail=f"cannot export run {run_id}: {err}"
            ) from None
    return ModelLinks(run_id=run_id, url=f"/models/{run_id}/", api=f"/models/{run_id}/v1/predict")
