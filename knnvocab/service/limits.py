"""Body limits per route, answered cleanly: a body over its route's limit gets a 413 that
the client can read — the rest of the body is read and dropped first (up to a bound;
past it the connection closes after the answer)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from knnvocab.service.errors import ApiError, respond

MB = 2**20
#: how much of an oversized body is read and dropped so the client sees the 413
_DRAIN = 256 * MB


@dataclass(frozen=True)
class BodyLimits:
    """Largest request body per kind of route, in bytes."""

    images: int = 32 * MB  # segment, explain, the console's try page
    uploads: int = 2048 * MB  # dataset archives
    other: int = 1 * MB  # JSON

    def of(self, path: str) -> int:
        if re.fullmatch(r"/v1/domains/[^/]+/(segment|explain)|/ui/domains/[^/]+/try", path):
            return self.images
        if re.fullmatch(r"/v1/domains/[^/]+/ingest", path):
            return self.uploads
        return self.other


class _TooLargeError(Exception):
    pass


class BodyLimit:
    """ASGI middleware enforcing `BodyLimits` on declared and on streamed bodies."""

    def __init__(self, app: ASGIApp, limits: BodyLimits) -> None:
        self.app, self.limits = app, limits

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.limits.of(scope["path"])
        declared = _content_length(scope)
        if declared is not None and declared > limit:
            if declared <= limit + _DRAIN:
                await _drain(receive)
            await _refuse(scope, receive, send, limit)
            return
        seen = 0
        started = False

        async def counted() -> Message:
            nonlocal seen
            message = await receive()
            if message["type"] == "http.request":
                seen += len(message.get("body", b""))
                if seen > limit:
                    if message.get("more_body", False):
                        await _drain(receive, _DRAIN)
                    raise _TooLargeError
            return message

        async def watched(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, counted, watched)
        except _TooLargeError:
            if not started:
                await _refuse(scope, receive, send, limit)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", []):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None


async def _drain(receive: Receive, budget: int = _DRAIN) -> None:
    read = 0
    while read <= budget:
        message = await receive()
        if message["type"] != "http.request":
            return
        read += len(message.get("body", b""))
        if not message.get("more_body", False):
            return


async def _refuse(scope: Scope, receive: Receive, send: Send, limit: int) -> None:
    """The 413, as JSON or, under the console, as its error page (`errors.respond`)."""
    message = f"request body is larger than this route's limit of {limit:,} bytes"
    answer = respond(Request(scope), ApiError(413, "too_large", message))
    answer.headers["connection"] = "close"
    await answer(scope, receive, send)
