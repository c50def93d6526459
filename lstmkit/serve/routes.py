"""The serving API's routes of a text classifier -- ``POST /v1/predict``, ``POST /v1/inspect``,
``GET /v1/model`` (:data:`v1`) -- and those of every app: ``GET /health`` (alive), ``GET /ready``
(the model loaded and warmed), ``GET /metrics`` (Prometheus, :mod:`lstmkit.serve.metrics`) and
the web page: ``GET /`` (``static/index.html``) and ``GET /static/NAME`` (:data:`router`). A
forecaster's routes are in :mod:`lstmkit.serve.forecast`, a language model's in
:mod:`lstmkit.serve.generate`.

Each route gets what it needs through a dependency: :func:`~lstmkit.serve.state.get_serving`
reads the :class:`~lstmkit.serve.state.Serving` that the app's lifespan put into ``app.state``
(:func:`lstmkit.serve.app.create_app`), :func:`require_token` the app's token. Nothing is kept in
this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lstmkit.inspect import inspect_text
from lstmkit.serve.auth import check_bearer
from lstmkit.serve.metrics import CONTENT_TYPE
from lstmkit.serve.schemas import (
    Health,
    InspectRequest,
    InspectResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
    Ready,
)
from lstmkit.serve.state import Serving, get_serving

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "forecast.html": "text/html; charset=utf-8",
    "generate.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "forecast.js": "text/javascript; charset=utf-8",
    "generate.js": "text/javascript; charset=utf-8",
    "ticks.js": "text/javascript; charset=utf-8",  # also served by the studio
    "style.css": "text/css; charset=utf-8",
    "favicon.svg": "image/svg+xml",
}


_bearer = HTTPBearer(auto_error=False, description="the token given to `lstmkit serve --token`")


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the app has no token or the request carries ``Authorization: Bearer TOKEN``."""
    check_bearer(credentials, request.app.state.token)


ServingDep = Annotated[Serving, Depends(get_serving)]


def _too_many_chars(chars: int, max_chars: int) -> HTTPException:
    return HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        detail=f"too many characters: {chars} in one request, at most {max_chars}",
    )


# the page and /health (no token), and the /v1 API; the app includes both itself (a router nested
# in another costs a second route match on every request), v1 with require_token as a dependency
# when it has a token (V1_AUTH)
router = APIRouter()
ops = APIRouter()  # /health, /ready, /metrics alone (the server of several models)
v1 = APIRouter(prefix="/v1")
V1_AUTH = [Depends(require_token)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body cannot be read as JSON (bytes that are not UTF-8)"},
    401: {"description": "missing or wrong bearer token (when the server has one)"},
    413: {"description": "too many texts or characters in one request"},
}


@v1.post("/predict", response_model=PredictResponse, responses=_ERRORS)
async def predict(body: PredictRequest, serving: ServingDep) -> PredictResponse:
    """Classify texts; the predictions come back in the order of the texts."""
    if len(body.texts) > serving.max_texts:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"too many texts: {len(body.texts)} in one request, at most {serving.max_texts}",
        )
    chars = sum(len(t) for t in body.texts)
    if chars > serving.max_chars:
        raise _too_many_chars(chars, serving.max_chars)
    try:  # the model runs in a worker thread: the event loop keeps serving other requests
        if serving.batcher is not None:  # batched with concurrent requests (lstmkit.serve.batcher)
            results = await serving.batcher.predict(body.texts)
        else:
            results = await run_in_threadpool(serving.predictor.predict, body.texts)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    return PredictResponse.model_validate({"predictions": results})


@v1.post("/inspect", response_model=InspectResponse, responses=_ERRORS)
async def inspect(body: InspectRequest, serving: ServingDep) -> InspectResponse:
    """Look inside the model on one text: per token the mean gate activations and state norms
    of every layer, each unit's gate activations (units x tokens, the first 256 tokens) and
    each token's contribution to the label (occlusion)."""
    if len(body.text) > serving.max_chars:
        raise _too_many_chars(len(body.text), serving.max_chars)
    try:
        result = await run_in_threadpool(inspect_text, serving.predictor, body.text)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    return InspectResponse.model_validate(result)


@v1.get("/model", response_model=ModelInfo, responses={401: _ERRORS[401]})
async def model_info(serving: ServingDep) -> ModelInfo:
    """The served model: labels, architecture, metrics, versions, request limits."""
    return ModelInfo.model_validate(
        {
            **serving.predictor.metadata,
            "max_texts": serving.max_texts,
            "max_chars": serving.max_chars,
        }
    )


@ops.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: 200 while the process answers, model loaded or not (no token needed)."""
    return Health()


@ops.get("/ready", response_model=Ready, responses={503: {"description": "not ready yet"}})
async def ready(request: Request) -> Ready:
    """Readiness: 200 once the model is loaded and warmed (one call made), 503 before and while
    the server stops (no token needed)."""
    if request.app.state.serving is None or not request.app.state.ready:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, detail="the model is not loaded")
    return Ready()


@ops.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus' text format: requests, latencies, batch sizes, queue depth, load time."""
    return Response(request.app.state.metrics.exposition(), media_type=CONTENT_TYPE)


router.include_router(ops)


def _static(name: str) -> FileResponse:
    return FileResponse(
        STATIC_DIR / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
    )


PAGES = {"classify": "index.html", "forecast": "forecast.html", "language_model": "generate.html"}


@router.get("/", include_in_schema=False)
async def index(request: Request) -> FileResponse:
    """The web page of the model's task (no token needed; the page asks for one when the API
    wants it): for a classifier a text box, the prediction and a per-token heatmap; for a
    forecaster a CSV box (or file) and each series' history with its forecast band; for a
    language model the settings and the text as it streams."""
    return _static(PAGES[request.app.state.task])


@router.get("/favicon.ico", include_in_schema=False)
async def favicon() -> FileResponse:
    """The page's icon (an SVG; browsers that ask for /favicon.ico get it rather than a 404)."""
    return _static("favicon.svg")


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    """The page's own script and stylesheet (nothing else is served)."""
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no static file {name!r}")
    return _static(name)
