"""The 422 of a request that does not validate, for any body: :func:`invalid_request`.

FastAPI's own handler echoes each error's ``input`` and fails (a 500 with a traceback) when that
input cannot be written as JSON: a body that is not UTF-8 sent without a JSON content type (the
input is the raw bytes), ``NaN`` / ``Infinity`` (which Python's JSON reader accepts) and lone
surrogates (``"\\ud800"`` is valid JSON but no UTF-8). Here those inputs are made text first.
Registered by :func:`lstmkit.serve.create_app` and by the studio's app.
"""

from __future__ import annotations

import math
from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse


def json_safe(value: Any) -> Any:
    """``value`` with what JSON cannot carry made text: bytes that are not UTF-8, NaN and
    infinities (Python's JSON reader takes ``NaN``, ``Infinity``), lone surrogates (``"\\ud800"``
    is valid JSON but no UTF-8)."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "backslashreplace")
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, str):
        return value.encode("utf-8", "backslashreplace").decode("utf-8")
    if isinstance(value, dict):
        return {json_safe(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    return value


async def invalid_request(request: Request, exc: Exception) -> JSONResponse:
    """FastAPI's 422 (``{"detail": [errors]}``), its echoed inputs made JSON-safe: FastAPI's own
    handler fails (a 500) on a body that is not UTF-8 sent without a JSON content type, on
    ``NaN`` / ``Infinity`` and on lone surrogates."""
    assert isinstance(exc, RequestValidationError)
    detail = jsonable_encoder(json_safe(list(exc.errors())))
    return JSONResponse(status_code=422, content={"detail": detail})
