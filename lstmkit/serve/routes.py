"""The serving API's routes: ``POST /v1/predict``, ``POST /v1/inspect``, ``GET /v1/model``,
``GET /health``, and the web page: ``GET /`` (``static/index.html``) and ``GET /static/NAME``."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import FileResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from lstmkit.bundle import Predictor
from lstmkit.serve.schemas import (
    Health,
    InspectRequest,
    InspectResponse,
    ModelInfo,
    PredictRequest,
    PredictResponse,
)

STATIC_DIR = Path(__file__).parent / "static"
STATIC_FILES = {
    "index.html": "text/html; charset=utf-8",
    "app.js": "text/javascript; charset=utf-8",
    "style.css": "text/css; charset=utf-8",
}

_bearer = HTTPBearer(auto_error=False, description="the token given to `lstmkit serve --token`")


async def require_token(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> None:
    """401 unless the app has no token or the request carries ``Authorization: Bearer TOKEN``."""
    token: str | None = request.app.state.token
    if token is None:
        return
    if credentials is None or not secrets.compare_digest(
        credentials.credentials.encode(), token.encode()
    ):
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="missing or wrong token: send 'Authorization: Bearer <token>'",
            headers={"WWW-Authenticate": "Bearer"},
        )


async def get_predictor(request: Request) -> Predictor:
    """The Predictor loaded at startup (async: a plain def would cost a worker-thread hop per
    request)."""
    predictor: Predictor = request.app.state.predictor
    return predictor


# the page and /health (no token), and the /v1 API; the app includes both itself (a router nested
# in another costs a second route match on every request), v1 with require_token as a dependency
# when it has a token (V1_AUTH)
router = APIRouter()
v1 = APIRouter(prefix="/v1")
V1_AUTH = [Depends(require_token)]

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "the body cannot be read as JSON (bytes that are not UTF-8)"},
    401: {"description": "missing or wrong bearer token (when the server has one)"},
    413: {"description": "too many texts or characters in one request"},
}


@v1.post("/predict", response_model=PredictResponse, responses=_ERRORS)
async def predict(body: PredictRequest, request: Request) -> PredictResponse:
    """Classify texts; the predictions come back in the order of the texts."""
    # app.state read here rather than through a get_predictor dependency: each dependency costs
    # FastAPI's dependency solving on every request, the hottest route of the server
    predictor: Predictor = request.app.state.predictor
    max_texts: int = request.app.state.max_texts
    max_chars: int = request.app.state.max_chars
    if len(body.texts) > max_texts:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"too many texts: {len(body.texts)} in one request, at most {max_texts}",
        )
    chars = sum(len(t) for t in body.texts)
    if chars > max_chars:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"too many characters: {chars} in one request, at most {max_chars}",
        )
    batcher = request.app.state.batcher
    try:  # the model runs in a worker thread: the event loop keeps serving other requests
        if batcher is not None:  # batched with concurrent requests (lstmkit.serve.batcher)
            results = await batcher.predict(body.texts)
        else:
            results = await run_in_threadpool(predictor.predict, body.texts)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    return PredictResponse.model_validate({"predictions": results})


@v1.post("/inspect", response_model=InspectResponse, responses=_ERRORS)
async def inspect(
    body: InspectRequest,
    request: Request,
    predictor: Annotated[Predictor, Depends(get_predictor)],
) -> InspectResponse:
    """Look inside the model on one text: per token the mean gate activations and state norms
    of every layer, and each token's contribution to the label (occlusion)."""
    from lstmkit.inspect import inspect_text

    max_chars: int = request.app.state.max_chars
    if len(body.text) > max_chars:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"too many characters: {len(body.text)} in one request, at most {max_chars}",
        )
    try:
        result = await run_in_threadpool(inspect_text, predictor, body.text)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    return InspectResponse.model_validate(result)


@v1.get("/model", response_model=ModelInfo, responses={401: _ERRORS[401]})
async def model_info(
    request: Request, predictor: Annotated[Predictor, Depends(get_predictor)]
) -> ModelInfo:
    """The served model: labels, architecture, metrics, versions, request limits."""
    return ModelInfo.model_validate(
        {
            **predictor.metadata,
            "max_texts": request.app.state.max_texts,
            "max_chars": request.app.state.max_chars,
        }
    )


@router.get("/health", response_model=Health)
async def health() -> Health:
    """Liveness: 200 once the model is loaded (no token needed)."""
    return Health()


def _static(name: str) -> FileResponse:
    return FileResponse(
        STATIC_DIR / name, media_type=STATIC_FILES[name], headers={"Cache-Control": "no-cache"}
    )


@router.get("/", include_in_schema=False)
async def index() -> FileResponse:
    """The web page: a text box, the prediction and a per-token heatmap (no token needed; the
    page asks for one when the API wants it)."""
    return _static("index.html")


@router.get("/static/{name}", include_in_schema=False)
async def static_file(name: str) -> FileResponse:
    """The page's own script and stylesheet (nothing else is served)."""
    if name not in STATIC_FILES:
        raise HTTPException(status.HTTP_404_NOT_FOUND, detail=f"no static file {name!r}")
    return _static(name)
