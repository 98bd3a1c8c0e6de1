"""The web console: server-rendered pages under ``/ui`` of `knnvocab serve` (Jinja2
templates, a little vanilla JavaScript, everything served by knnvocab, offline).

Sign in with a token (``/ui/sign-in``); its domain and scope decide what is shown. See
the README's "The web console".
"""

from __future__ import annotations

from fastapi import FastAPI
from starlette.staticfiles import StaticFiles

from knnvocab.console.pages import STATIC, error_page

__all__ = ["mount"]


def mount(app: FastAPI) -> None:
    """Add the console's routes and static files to ``app``; its errors answer as pages."""
    from knnvocab.console import routes_class, routes_pages, routes_try

    app.include_router(routes_pages.router)
    app.include_router(routes_class.router)
    app.include_router(routes_try.router)
    app.mount("/ui/static", StaticFiles(directory=STATIC), name="console-static")
    app.state.error_pages = ("/ui", error_page)
