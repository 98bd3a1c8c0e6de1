"""The knnvocab HTTP service: one FastAPI app per process.

Long-lived resources (catalog, store, warm encoders, prepared vocabularies, the segment
gate, jobs) live in `ServiceState` for the process; routes are as thin as CLI commands.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from fastapi import FastAPI, Request
from starlette.concurrency import run_in_threadpool
from starlette.responses import JSONResponse, Response

from knnvocab import __version__, console
from knnvocab.config import Settings, get_settings
from knnvocab.service import errors, local
from knnvocab.service.auth import Caller
from knnvocab.service.errors import ApiError, unavailable
from knnvocab.service.jobs import JobRunner, recover
from knnvocab.service.limits import MB, BodyLimit, BodyLimits
from knnvocab.service.metrics import Metrics, RequestMetrics
from knnvocab.service.state import ServiceState, state_of

log = logging.getLogger(__name__)


def create_app(settings: Settings | None = None, url: str | None = None) -> FastAPI:
    """The app; ``url``: where it listens, announced to the CLI on an embedded home."""
    settings = settings or get_settings()
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        state = await run_in_threadpool(ServiceState.open, settings, metrics)
        app.state.service = state
        state.jobs = JobRunner(state.ws)
        threading.Thread(target=state.warm, name="knnvocab-warm", daemon=True).start()
        left = await run_in_threadpool(recover, state.ws, "knnvocab serve")
        if left:
            log.warning("failed %d job(s) a stopped service left running", len(left))
        if url is not None and state.local_secret is not None:
            local.announce(settings, url, state.local_secret)
        try:
            yield
        finally:
            local.withdraw(settings)
            await run_in_threadpool(state.close)

    app = FastAPI(
        title="knnvocab",
        version=__version__,
        summary="Training-free, continually expanding open-vocabulary segmentation (kNN-CLIP)",
        lifespan=lifespan,
    )
    errors.install(app)
    _routes(app)
    console.mount(app)
    limits = BodyLimits(settings.max_body_mb * MB, settings.max_upload_mb * MB)
    app.add_middleware(BodyLimit, limits=limits)
    app.add_middleware(RequestMetrics, metrics=metrics)
    return app


def _routes(app: FastAPI) -> None:
    from knnvocab.service import (
        routes_backup,
        routes_reads,
        routes_segment,
        routes_tokens,
        routes_writes,
    )

    app.include_router(routes_reads.router)
    app.include_router(routes_segment.router)
    app.include_router(routes_writes.router)
    app.include_router(routes_tokens.router)
    app.include_router(routes_backup.router)

    @app.get("/healthz", tags=["health"], summary="The process is alive")
    def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], summary="Catalog and store reachable, encoder loaded")
    def readyz(request: Request) -> Response:
        try:
            checks = _readiness(state_of(request))
        except ApiError as exc:
            return errors.answer(exc)
        return JSONResponse({"status": "ready", **checks})

    @app.get("/metrics", tags=["health"], summary="Prometheus metrics (deployment token)")
    def metrics(request: Request, who: Caller) -> Response:
        if who.domain is not None:
            raise ApiError(403, "forbidden", "metrics need a deployment token")
        state = state_of(request)
        state.metrics.jobs.set(state.jobs.running if state.jobs else 0)
        return Response(state.metrics.text(), media_type="text/plain; version=0.0.4")


def _readiness(state: ServiceState) -> dict[str, Any]:
    """Ready when the catalog answers, the store opens and the head encoders load."""
    from sqlalchemy import text

    try:
        with state.ws.catalog.session() as s:
            s.execute(text("select 1"))
    except Exception as exc:
        raise unavailable(f"catalog unreachable ({type(exc).__name__})", 5) from None
    if not state.warmed.is_set():
        raise unavailable("loading the domains' encoders", 2)
    return {
        "catalog": state.settings.catalog_backend,
        "store": state.settings.store_backend,
        "encoders": state.encoders,
    }


def factory() -> FastAPI:
    """For ``uvicorn --factory`` with several workers (the scaled deployment)."""
    return create_app()
