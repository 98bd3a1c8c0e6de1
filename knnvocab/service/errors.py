"""Library errors as HTTP answers, in one place: ``{"error": {"code", "message"}}``.

Not found → 404, busy → 409, bad input → 400/413/415/422, a store or catalog that cannot
be reached → 503, a full disk → 507. The body names nothing the caller did not send: a
domain the token may not see gets exactly the answer of a domain that does not exist.
"""

from __future__ import annotations

import logging
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from sqlalchemy.exc import InterfaceError, OperationalError
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.responses import JSONResponse, Response

from knnvocab import errors as e

log = logging.getLogger(__name__)


class ApiError(Exception):
    """An answer other than 2xx, raised anywhere below a route."""

    def __init__(
        self, status: int, code: str, message: str, headers: dict[str, str] | None = None
    ) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message
        self.headers = headers or {}


def domain_not_found(domain: str) -> ApiError:
    """What a nonexistent domain and another tenant's domain both answer, byte for byte."""
    return ApiError(404, "not_found", f"domain {domain!r} does not exist")


def unauthorized(message: str = "invalid, expired or revoked token") -> ApiError:
    return ApiError(401, "unauthorized", message, {"WWW-Authenticate": "Bearer"})


def unavailable(message: str, retry_after: int = 1) -> ApiError:
    return ApiError(503, "unavailable", message, {"Retry-After": str(retry_after)})


#: library error -> (status, code); the first matching class wins (subclasses first)
STATUS: list[tuple[type[e.KnnvocabError], int, str]] = [
    (e.DomainNotFoundError, 404, "not_found"),
    (e.NotFoundError, 404, "not_found"),
    (e.DomainBusyError, 409, "busy"),
    (e.StoreBusyError, 503, "unavailable"),
    (e.QuotaExceededError, 409, "quota_exceeded"),
    (e.VersionStateError, 409, "version_state"),
    (e.ImageError, 422, "bad_image"),
    (e.InputError, 422, "bad_input"),
    (e.EncoderError, 500, "encoder"),
    (e.StoreError, 503, "unavailable"),
    (e.DiskFullError, 507, "disk_full"),
    (e.CatalogError, 503, "unavailable"),
    (e.ConfigError, 400, "bad_request"),
]


def from_library(exc: e.KnnvocabError) -> ApiError:
    if isinstance(exc, e.DomainNotFoundError):
        return domain_not_found(exc.domain)
    for kind, status, code in STATUS:
        if isinstance(exc, kind):
            headers = {"Retry-After": "5"} if status == 503 else None
            return ApiError(status, code, str(exc), headers)
    return ApiError(400, "bad_request", str(exc))


def body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def answer(err: ApiError) -> JSONResponse:
    return JSONResponse(body(err.code, err.message), err.status, headers=err.headers)


def respond(request: Request, err: ApiError) -> Response:
    """``err`` as JSON, or as a page where the app has pages for the request's path (the
    web console registers ``app.state.error_pages = (prefix, render)``)."""
    pages = getattr(request.app.state, "error_pages", None)
    if pages is not None and request.url.path.startswith(pages[0]):
        page: Response = pages[1](request, err)
        return page
    return answer(err)


def _validation_message(exc: RequestValidationError) -> str:
    parts = []
    for item in exc.errors():
        where = ".".join(str(p) for p in item.get("loc", ()) if p not in ("body", "query"))
        parts.append(f"{where}: {item.get('msg', 'invalid')}" if where else item.get("msg", ""))
    return "; ".join(parts) or "invalid request"


def install(app: FastAPI) -> None:
    """Every error the app can raise answers as JSON; nothing answers with a traceback."""

    @app.exception_handler(ApiError)
    async def api_error(request: Request, exc: ApiError) -> Response:
        return respond(request, exc)

    @app.exception_handler(e.KnnvocabError)
    async def library_error(request: Request, exc: e.KnnvocabError) -> Response:
        return respond(request, from_library(exc))

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        return respond(request, ApiError(422, "invalid_request", _validation_message(exc)))

    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        code = {404: "not_found", 405: "method_not_allowed"}.get(exc.status_code, "http_error")
        err = ApiError(exc.status_code, code, str(exc.detail), dict(exc.headers or {}))
        return respond(request, err)

    async def catalog_down(request: Request, exc: Exception) -> Response:
        # a restarted or unreachable database, a locked SQLite file: try again later
        log.warning("catalog error answering %s: %s", request.url.path, exc)
        return respond(request, unavailable("the catalog is unreachable or busy; retry later", 5))

    for kind in (OperationalError, InterfaceError):  # the connection, not the request
        app.add_exception_handler(kind, catalog_down)

    @app.exception_handler(Exception)
    async def bug(request: Request, exc: Exception) -> Response:
        log.exception("unexpected error answering %s %s", request.method, request.url.path)
        return respond(request, ApiError(500, "internal", "internal error (logged by the service)"))
