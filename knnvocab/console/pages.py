"""Rendering the console's pages: one Jinja2 environment over ``templates/``, the page
every error answers with, and the guard every domain page starts with."""

from __future__ import annotations

from functools import cache
from pathlib import Path
from typing import Any
from urllib.parse import quote, urlencode

import jinja2
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from knnvocab.catalog.domains import find_domain
from knnvocab.catalog.models import Domain
from knnvocab.console.session import Session, session_of
from knnvocab.engine.output import colour
from knnvocab.history import user_params
from knnvocab.service.auth import may_see
from knnvocab.service.errors import ApiError
from knnvocab.service.state import state_of

TEMPLATES = Path(__file__).with_name("templates")
STATIC = Path(__file__).with_name("static")
#: what a domain the session may not see and one that does not exist both answer
NO_DOMAIN = "There is no domain by that name here."


@cache
def environment() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(TEMPLATES),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters["q"] = lambda value: quote(str(value), safe="")
    env.filters["when"] = lambda t: t.strftime("%Y-%m-%d %H:%M:%S UTC") if t else "—"
    env.globals["query"] = lambda **kw: urlencode({k: v for k, v in kw.items() if v is not None})
    env.globals["user_params"] = user_params
    env.globals["colour"] = lambda class_id: "#{:02x}{:02x}{:02x}".format(*colour(class_id))
    return env


def render(
    request: Request,
    template: str,
    session: Session | None,
    status: int = 200,
    **context: Any,
) -> HTMLResponse:
    """``template`` with ``context``, the session (for the header) and the page's path."""
    html = (
        environment()
        .get_template(template)
        .render(session=session, path=request.url.path, **context)
    )
    headers = {"Cache-Control": "no-store", "X-Frame-Options": "DENY"}
    return HTMLResponse(html, status, headers=headers)


def error_page(request: Request, err: ApiError) -> Response:
    """Every error under /ui as a page: 401 sends the browser to sign in; the rest show
    the message (never a traceback) with the status."""
    session = session_of(request)
    if err.status == 401 and request.method == "GET":
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/ui/sign-in?{urlencode({'next': target})}", 303)
    titles = {401: "Sign in again", 403: "Not allowed", 404: "Not found"}
    title = titles.get(err.status, "Could not do that" if err.status < 500 else "Error")
    return render(request, "error.html", session, err.status, title=title, message=err.message)


def open_domain(request: Request, session: Session, domain: str) -> Domain:
    """The domain a page shows (detached from its session: its columns are loaded), if
    the session may see it; another tenant's domain and a missing one both answer 404
    with the same page."""
    if not may_see(session.who, domain):
        raise ApiError(404, "not_found", NO_DOMAIN)
    with state_of(request).ws.catalog.session() as s:
        row = find_domain(s, domain)
        if row is None:
            raise ApiError(404, "not_found", NO_DOMAIN)
        s.expunge(row)
    return row
