"""`knnvocab serve`: the multi-tenant HTTP service on uvicorn."""

from __future__ import annotations

from typing import Annotated

import typer

from knnvocab.cli.output import err


def serve(
    host: Annotated[str, typer.Option(help="Address to listen on.")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=1, max=65535, help="Port to listen on.")] = 8000,
    workers: Annotated[
        int, typer.Option(min=1, help="Worker processes (scaled deployment only).")
    ] = 1,
    log_level: Annotated[str, typer.Option(help="uvicorn's log level.")] = "info",
) -> None:
    """Serve the HTTP API (/v1, OpenAPI at /openapi.json, docs at /docs): per-domain
    tokens (`knnvocab token create`), segment, reads, ingest jobs, /metrics."""
    import uvicorn

    from knnvocab.config import get_settings
    from knnvocab.errors import ConfigError

    settings = get_settings()
    if workers > 1 and settings.qdrant_url is None:
        raise ConfigError(
            f"--workers {workers}: the embedded store is owned by one process, so the "
            "embedded deployment serves with one worker; run several workers on the scaled "
            "deployment (KNNVOCAB_DATABASE_URL + KNNVOCAB_QDRANT_URL)"
        )
    err.print(
        f"knnvocab serve on http://{host}:{port} ({settings.catalog_backend} catalog, "
        f"{settings.store_backend} store, {workers} worker(s))"
    )
    if workers > 1:
        uvicorn.run(
            "knnvocab.service.app:factory",
            factory=True,
            host=host,
            port=port,
            workers=workers,
            log_level=log_level,
        )
        return
    from knnvocab.service import create_app

    app = create_app(settings, url=f"http://{host}:{port}")
    uvicorn.run(app, host=host, port=port, log_level=log_level, timeout_graceful_shutdown=30)


def register(app: typer.Typer) -> None:
    app.command()(serve)
