"""Prometheus metrics of one service process: requests and latency per route template
(never per raw path, which would list tenants' domains), errors, the segment queue."""

from __future__ import annotations

import time

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from starlette.types import ASGIApp, Message, Receive, Scope, Send

_LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0)


class Metrics:
    """The process's metrics, in a registry of their own (one per app)."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry()
        self.requests = Counter(
            "knnvocab_requests",
            "HTTP requests answered, per route template and status.",
            ["method", "route", "status"],
            registry=self.registry,
        )
        self.latency = Histogram(
            "knnvocab_request_seconds",
            "Time to answer a request, per route template.",
            ["method", "route"],
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self.errors = Counter(
            "knnvocab_errors",
            "Requests answered with an error status, per route template and status.",
            ["route", "status"],
            registry=self.registry,
        )
        self.queue_depth = Gauge(
            "knnvocab_segment_queue_depth",
            "Segment requests waiting for a free slot.",
            registry=self.registry,
        )
        self.running = Gauge(
            "knnvocab_segment_running",
            "Segmentations running now.",
            registry=self.registry,
        )
        self.rejected = Counter(
            "knnvocab_segment_rejected",
            "Segment requests answered 503 (queue full or timed out).",
            ["reason"],
            registry=self.registry,
        )
        self.jobs = Gauge(
            "knnvocab_jobs_running", "Jobs (ingests) running now.", registry=self.registry
        )

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        self.requests.labels(method, route, str(status)).inc()
        self.latency.labels(method, route).observe(seconds)
        if status >= 400:
            self.errors.labels(route, str(status)).inc()

    def text(self) -> bytes:
        return generate_latest(self.registry)


class RequestMetrics:
    """ASGI middleware: counts and times every request under its route template."""

    def __init__(self, app: ASGIApp, metrics: Metrics) -> None:
        self.app, self.metrics = app, metrics

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def watched(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = int(message["status"])
            await send(message)

        try:
            await self.app(scope, receive, watched)
        finally:
            route = _template(scope)
            self.metrics.observe(scope["method"], route, status, time.perf_counter() - start)


def _template(scope: Scope) -> str:
    """The route template a request matched (``/v1/domains/{domain}``), never its path:
    the router leaves the matched route in the scope."""
    route = scope.get("route")
    return str(getattr(route, "path", None) or "unmatched")
