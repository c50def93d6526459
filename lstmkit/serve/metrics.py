"""Prometheus metrics of a serving app: :class:`ServeMetrics` (its own registry, one per app --
nothing global) and :class:`RequestMetrics`, the pure ASGI middleware that counts every request.

``GET /metrics`` (text exposition format, no token: as ``/health``) shows:

- ``lstmkit_requests_total{route, method, status}``: requests answered, by route template
  (``/v1/predict``; ``unmatched`` for a path no route has, so a scanner cannot blow up the
  label set) and status;
- ``lstmkit_request_seconds{route}``: latency histogram, from the request's arrival to the end
  of its answer (a stream: to its last event);
- ``lstmkit_batch_size{model}``: texts per model call of the micro-batcher
  (:mod:`lstmkit.serve.batcher`);
- ``lstmkit_queue_depth{model}``: texts waiting for the model (micro-batcher) now;
- ``lstmkit_generations_in_flight`` and ``lstmkit_generated_chars_total``: ``/v1/generate``;
- ``lstmkit_model_load_seconds{model}``: how long loading (and warming) each model took.

With ``lstmkit serve --workers N`` each worker process has its own registry, and a scrape of the
port reaches one worker (the kernel picks, as for any connection): its figures are that
worker's, and ``lstmkit_worker_info{pid}`` says which. Sum over the ``pid`` label (scrape each
worker's figures as separate series) rather than reading one scrape as the server's total. We
chose this over prometheus-client's multiprocess mode, whose directory of memory-mapped files
must be set (``PROMETHEUS_MULTIPROC_DIR``) before the library is imported in every worker and
cleaned between runs.
"""

from __future__ import annotations

import os
import time
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)
BATCH_BUCKETS = (1, 2, 4, 8, 16, 32, 64, 128, 256)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class ServeMetrics:
    """The metrics of one serving app, in their own :class:`CollectorRegistry`."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.requests = Counter(
            "lstmkit_requests", "Requests answered", ["route", "method", "status"], registry=r
        )
        self.latency = Histogram(
            "lstmkit_request_seconds",
            "Seconds from a request's arrival to the end of its answer",
            ["route"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.batch_size = Histogram(
            "lstmkit_batch_size",
            "Texts per model call",
            ["model"],
            buckets=BATCH_BUCKETS,
            registry=r,
        )
        self.queue_depth = Gauge(
            "lstmkit_queue_depth",
            "Texts waiting for the model (micro-batcher)",
            ["model"],
            registry=r,
        )
        self.generations = Gauge(
            "lstmkit_generations_in_flight", "Generations sampling now", registry=r
        )
        self.generated_chars = Counter(
            "lstmkit_generated_chars", "Characters sampled by /v1/generate", registry=r
        )
        self.load_seconds = Gauge(
            "lstmkit_model_load_seconds",
            "Seconds to load and warm each model",
            ["model"],
            registry=r,
        )
        Gauge("lstmkit_worker_info", "The process answering", ["pid"], registry=r).labels(
            str(os.getpid())
        ).set(1)
        self._children: dict[tuple[str, str, int], tuple[Any, Any]] = {}

    def observe(self, route: str, method: str, status: int, seconds: float) -> None:
        """Count one answered request and its latency (label children cached: no lookup per
        request once a combination was seen)."""
        key = (route, method, status)
        child = self._children.get(key)
        if child is None:
            child = (self.requests.labels(route, method, str(status)), self.latency.labels(route))
            self._children[key] = child
        child[0].inc()
        child[1].observe(seconds)

    def exposition(self) -> bytes:
        """The registry in Prometheus' text format."""
        return generate_latest(self.registry)


class RequestMetrics:
    """Pure ASGI middleware: every HTTP request counted in ``metrics`` by its route template and
    status, with its latency (to the last byte of the answer)."""

    def __init__(self, app: ASGIApp, metrics: ServeMetrics) -> None:
        self.app = app
        self.metrics = metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        code = 500  # an app that fails before answering: uvicorn answers 500

        async def counting_send(message: Message) -> None:
            nonlocal code
            if message["type"] == "http.response.start":
                code = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, counting_send)
        finally:
            route = scope.get("route")
            path = getattr(route, "path", None)
            name = scope.get("root_path", "") + path if path else "unmatched"
            self.metrics.observe(name, scope["method"], code, time.perf_counter() - start)
