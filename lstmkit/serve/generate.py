"""``POST /v1/generate``: a character language model served -- a prime in, sampled text out, as
one JSON body or streamed as Server-Sent Events (``"stream": true``), as the OpenAI-style APIs
stream their completions.

The sampler is :func:`lstmkit.sampling.sample_stream`, the one behind ``lstmkit sample``: with a
``seed`` the text is the same whichever way it is asked for (streamed, not streamed, or the CLI).
Without one, the server draws a seed and says which, so any answer can be reproduced.

A stream is ``text/event-stream``: one ``data: {"text": "..."}`` event per piece as it is
sampled (the first piece is one character: the time to the first character is one step), then
``data: {"done": true, "seed": S, "length": N}`` and ``data: [DONE]``. Bounds: ``length`` at most
the server's ``max_length``, the prime at most ``max_chars``, and at most ``max_streams``
generations at once (each holds a slot for as long as it samples; a request that finds none free
gets 503 with ``Retry-After``). A client that goes away frees its slot: the stream stops sampling.
"""

from __future__ import annotations

import itertools
import json
import math
from collections.abc import AsyncIterator, Iterator
from typing import Annotated, Any

import torch
from fastapi import APIRouter, Depends, HTTPException, status
from fastapi.responses import StreamingResponse
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StrictInt, StrictStr, field_validator

from lstmkit.sampling import check_sampling, sample_stream
from lstmkit.serve.models import CharModel
from lstmkit.serve.state import Serving, get_serving
from lstmkit.version import __version__

RETRY_AFTER_S = 1
FIRST_PIECE = 1  # characters in the first event: the time to the first character is one step
PIECE = 16  # characters per later event (one hop to the model's thread each)


class GenerateRequest(BaseModel):
    """``POST /v1/generate`` body."""

    model_config = ConfigDict(extra="forbid")

    prime: StrictStr = Field(
        "\n", min_length=1, description="the first characters (each one the model knows)"
    )
    length: StrictInt = Field(200, ge=1, description="characters to sample after the prime")
    temperature: float = Field(1.0, gt=0.0, le=100.0, description="< 1 conservative, > 1 wild")
    top_k: StrictInt | None = Field(None, ge=1, description="sample among the k likeliest")
    seed: StrictInt | None = Field(
        None, ge=0, lt=2**64, description="the same seed gives the same text (null: drawn)"
    )
    stream: StrictBool = Field(False, description="Server-Sent Events as the text is sampled")

    @field_validator("temperature")
    @classmethod
    def _finite(cls, value: float) -> float:
        if not math.isfinite(value):
            raise ValueError(f"temperature must be a finite number, got {value}")
        return value


class GenerateResponse(BaseModel):
    """``POST /v1/generate`` answer without streaming."""

    text: str = Field(description="the prime followed by the sampled characters")
    prime: str
    generated: str = Field(description="the sampled characters alone")
    seed: int = Field(description="the seed used (give it again for the same text)")


class LanguageModelInfo(BaseModel):
    """``GET /v1/model`` of a language model."""

    name: str | None
    task: str
    chars: str = Field(description="every character the model knows (a prime may use these)")
    model: dict[str, Any]
    metrics: dict[str, Any] | None
    lstmkit_version: str
    max_length: int = Field(description="most characters sampled per request")
    max_chars: int = Field(description="longest prime")
    max_streams: int = Field(description="generations at once")


_ERRORS: dict[int | str, dict[str, Any]] = {
    401: {"description": "missing or wrong bearer token (when the server has one)"},
    413: {"description": "a length or prime over the server's bounds"},
    422: {"description": "a prime with a character the model does not know, a bad setting"},
    503: {"description": "every generation slot is taken: retry after Retry-After seconds"},
}

generate_router = APIRouter(prefix="/v1")


async def get_generator(serving: Annotated[Serving, Depends(get_serving)]) -> Serving:
    """The :class:`Serving` of a language model."""
    if not isinstance(serving.model, CharModel):
        raise HTTPException(
            status.HTTP_404_NOT_FOUND, detail="this server serves no language model"
        )
    return serving


def _take(ids: Iterator[int], n: int) -> list[int]:
    return list(itertools.islice(ids, n))


def _sse(payload: Any) -> bytes:
    return f"data: {json.dumps(payload, ensure_ascii=False)}\n\n".encode()


@generate_router.post(
    "/generate",
    response_model=GenerateResponse,
    responses={**_ERRORS, 200: {"content": {"text/event-stream": {}}}},
)
async def generate(
    body: GenerateRequest, serving: Annotated[Serving, Depends(get_generator)]
) -> Any:
    """Sample ``length`` characters after ``prime``: one JSON body, or Server-Sent Events with
    ``"stream": true``."""
    served = serving.model
    assert isinstance(served, CharModel)
    if body.length > serving.max_length:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"length {body.length} is over this server's max_length {serving.max_length}",
        )
    if len(body.prime) > serving.max_chars:
        raise HTTPException(
            status.HTTP_413_CONTENT_TOO_LARGE,
            detail=f"the prime has {len(body.prime)} characters, at most {serving.max_chars}",
        )
    try:
        prime = torch.from_numpy(served.vocab.encode(body.prime))
        check_sampling(served.model, body.temperature, body.top_k)
    except ValueError as err:
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    slots = serving.slots
    assert slots is not None
    if slots.locked():
        raise HTTPException(
            status.HTTP_503_SERVICE_UNAVAILABLE,
            detail="every generation slot is taken; retry shortly",
            headers={"Retry-After": str(RETRY_AFTER_S)},
        )
    await slots.acquire()  # free (not locked): returns at once
    metrics = serving.metrics
    if metrics is not None:
        metrics.generations.inc()

    def release(chars: int) -> None:
        slots.release()
        if metrics is not None:
            metrics.generations.dec()
            metrics.generated_chars.inc(chars)

    generator = torch.Generator()
    seed = body.seed if body.seed is not None else generator.seed()
    generator.manual_seed(seed)
    try:
        ids = sample_stream(
            served.model,
            prime,
            body.length,
            temperature=body.temperature,
            top_k=body.top_k,
            generator=generator,
        )
    except ValueError as err:
        release(0)
        raise HTTPException(status.HTTP_422_UNPROCESSABLE_CONTENT, detail=str(err)) from None
    if not body.stream:
        out: list[int] = []
        try:
            out = await serving.run(_take, ids, body.length)
        finally:
            release(len(out))
        generated = served.vocab.decode(out)
        return GenerateResponse(
            text=body.prime + generated, prime=body.prime, generated=generated, seed=seed
        )

    async def events() -> AsyncIterator[bytes]:
        sent, n = 0, FIRST_PIECE
        try:
            while sent < body.length:
                piece = await serving.run(_take, ids, min(n, body.length - sent))
                sent += len(piece)
                n = PIECE
                yield _sse({"text": served.vocab.decode(piece)})
            yield _sse({"done": True, "seed": seed, "length": sent})
            yield b"data: [DONE]\n\n"
        finally:
            release(sent)

    return StreamingResponse(
        events(),
        media_type="text/event-stream",
        headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"},
    )


@generate_router.get("/model", response_model=LanguageModelInfo, responses={401: _ERRORS[401]})
async def generate_model_info(
    serving: Annotated[Serving, Depends(get_generator)],
) -> LanguageModelInfo:
    """The served language model: its characters, architecture, metrics and bounds."""
    served = serving.model
    assert isinstance(served, CharModel)
    return LanguageModelInfo.model_validate(
        {
            **served.metadata(),
            "lstmkit_version": __version__,
            "max_length": serving.max_length,
            "max_chars": serving.max_chars,
            "max_streams": serving.max_streams,
        }
    )
