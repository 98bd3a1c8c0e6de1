"""The console's reading pages: sign-in, the domains, a domain's overview, its versions,
a diff between two versions and its audit log. Routes are thin: each reads through the
library (or `knnvocab.console.reads`) and renders one template."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from knnvocab.console import chart, reads
from knnvocab.console.pages import open_domain, render
from knnvocab.console.session import COOKIE, Session, new_cookie, require, session_of
from knnvocab.history import vocab_diff
from knnvocab.lifecycle import parse_since
from knnvocab.lifecycle.domains import domain_info, domain_infos
from knnvocab.service.errors import ApiError
from knnvocab.service.state import state_of

router = APIRouter(prefix="/ui", include_in_schema=False)

Offset = Annotated[int, Query(ge=0)]
Limit = Annotated[int, Query(ge=1, le=200)]
Signed = Annotated[Session, Depends(require)]


def _next(target: str | None) -> str:
    """Where sign-in goes on to: a console path, never another site."""
    if target and target.startswith("/ui/") and not target.startswith("//"):
        return target
    return "/ui/domains"


@router.get("/", response_model=None)
@router.get("", response_model=None)
def home() -> Response:
    return RedirectResponse("/ui/domains", 303)


@router.get("/sign-in", response_model=None)
def sign_in_form(request: Request, next: str | None = None) -> Response:
    return render(request, "sign_in.html", session_of(request), next=_next(next), error=None)


def _cross_site(request: Request) -> bool:
    """Whether a browser sent the request from another site (``Sec-Fetch-Site``, or an
    ``Origin`` that is not this one). Clients that are not browsers send neither."""
    site = request.headers.get("sec-fetch-site")
    if site is not None:
        return site not in ("same-origin", "none")
    origin = request.headers.get("origin")
    return origin is not None and origin != f"{request.url.scheme}://{request.url.netloc}"


@router.post("/sign-in", response_model=None)
def sign_in(
    request: Request,
    token: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "",
) -> Response:
    # no session yet, so no CSRF token: a form posted from another site is refused by
    # its origin instead (it could sign a victim in as the attacker's token)
    if _cross_site(request):
        raise ApiError(403, "csrf", "sign in from the console's own page")
    try:
        cookie, lifetime = new_cookie(request, token.strip())
    except ApiError as exc:
        return render(request, "sign_in.html", None, 401, next=_next(next), error=exc.message)
    answer = RedirectResponse(_next(next), 303)
    answer.set_cookie(
        COOKIE,
        cookie,
        max_age=lifetime,
        path="/ui",
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
    )
    return answer


@router.post("/sign-out", response_model=None)
def sign_out(session: Signed, csrf: Annotated[str, Form()] = "") -> Response:
    session.check_csrf(csrf)
    answer = RedirectResponse("/ui/sign-in", 303)
    answer.delete_cookie(COOKIE, path="/ui")
    return answer


@router.get("/domains", response_model=None)
def domains(request: Request, session: Signed) -> Response:
    if session.who.domain is not None:
        return RedirectResponse(f"/ui/domains/{session.who.domain}", 303)
    infos = domain_infos(state_of(request).ws)
    return render(request, "domains.html", session, domains=infos)


@router.get("/domains/{domain}", response_model=None)
def overview(domain: str, request: Request, session: Signed) -> Response:
    row = open_domain(request, session, domain)
    ws = state_of(request).ws
    info = domain_info(ws, domain)
    with ws.catalog.session() as s:
        classes = reads.head_classes(s, row)
        numbers, series = reads.chart_series(s, row, classes)
    ids = {c.name: c.class_id for c in classes}
    drawn = chart.build(numbers, series, ids)
    return render(
        request, "overview.html", session, domain=domain, info=info, classes=classes, chart=drawn
    )


@router.get("/domains/{domain}/versions", response_model=None)
def versions(
    domain: str, request: Request, session: Signed, offset: Offset = 0, limit: Limit = 25
) -> Response:
    row = open_domain(request, session, domain)
    with state_of(request).ws.catalog.session() as s:
        rows, page = reads.versions_page(s, row, offset, limit)
        changes = reads.version_changes(s, rows)
        return render(
            request,
            "versions.html",
            session,
            domain=domain,
            versions=rows,
            changes=changes,
            page=page,
            head=row.head_version,
        )


@router.get("/domains/{domain}/diff", response_model=None)
def diff(
    domain: str,
    request: Request,
    session: Signed,
    from_: Annotated[int | None, Query(alias="from")] = None,
    to: Annotated[int | None, Query()] = None,
) -> Response:
    row = open_domain(request, session, domain)
    a = from_ if from_ is not None else max(1, row.head_version - 1)
    b = to if to is not None else row.head_version
    result = vocab_diff(state_of(request).ws, domain, a, b) if row.head_version else None
    return render(request, "diff.html", session, domain=domain, a=a, b=b, diff=result)


@router.get("/domains/{domain}/audit", response_model=None)
def audit(
    domain: str,
    request: Request,
    session: Signed,
    action: str | None = None,
    actor: str | None = None,
    since: str | None = None,
    offset: Offset = 0,
    limit: Limit = 50,
) -> Response:
    open_domain(request, session, domain)
    action, actor, since = action or None, actor or None, since or None
    when = parse_since(since) if since else None
    with state_of(request).ws.catalog.session() as s:
        records, page = reads.audit_page(s, domain, offset, limit, action, actor, when)
    return render(
        request,
        "audit.html",
        session,
        domain=domain,
        records=records,
        page=page,
        action=action,
        actor=actor,
        since=since,
    )
