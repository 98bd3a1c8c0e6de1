"""A class's page (its instances, paged, as thumbnails cropped from their sources), the
thumbnails themselves, and its retire / restore buttons (write tokens only, CSRF
checked, the same library calls as ``POST /v1/…/retire`` and ``…/restore``)."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import quote

from fastapi import APIRouter, Depends, Form, Query, Request
from starlette.responses import RedirectResponse, Response

from knnvocab.console import reads
from knnvocab.console.pages import open_domain, render
from knnvocab.console.session import Session, require
from knnvocab.console.thumbs import Thumbnails
from knnvocab.lifecycle import restore, retire
from knnvocab.service.errors import ApiError
from knnvocab.service.state import state_of

router = APIRouter(prefix="/ui/domains/{domain}", include_in_schema=False)

Signed = Annotated[Session, Depends(require)]


def thumbnails(request: Request) -> Thumbnails:
    """The process's thumbnail maker (made at the first thumbnail)."""
    made: Thumbnails | None = getattr(request.app.state, "console_thumbnails", None)
    if made is None:
        state = state_of(request)
        made = Thumbnails(state.ws, state.settings.max_image_pixels)
        request.app.state.console_thumbnails = made
    return made


@router.get("/classes/{name:path}", response_model=None)
def class_page(
    domain: str,
    name: str,
    request: Request,
    session: Signed,
    offset: Annotated[int, Query(ge=0)] = 0,
    limit: Annotated[int, Query(ge=1, le=200)] = 24,
    done: str | None = None,
) -> Response:
    row = open_domain(request, session, domain)
    ws = state_of(request).ws
    with ws.catalog.session() as s:
        cls = reads.find_class(s, row, name)
        state = next((c for c in reads.head_classes(s, row) if c.class_id == cls.class_id), None)
        if state is None:  # added by a change not yet published
            raise ApiError(404, "not_found", f"class {name!r} is not in a published version")
        ranges = reads.lived_in(s, cls)
        head = row.head_version
    points, more = reads.instances_page(ws, domain, state.class_id, offset, limit)
    readable = thumbnails(request).readable(domain, {p.payload.dataset for p in points})
    return render(
        request,
        "class.html",
        session,
        domain=domain,
        cls=state,
        ranges=ranges,
        head=head,
        points=points,
        readable=readable,
        offset=offset,
        limit=limit,
        more=more,
        can_write=session.who.allows("write"),
        done=done,
    )


@router.get("/thumbnail", response_model=None)
def thumbnail(
    domain: str, dataset: str, image: str, instance: str, request: Request, session: Signed
) -> Response:
    """The PNG of one stored instance, named by its provenance."""
    open_domain(request, session, domain)
    png = thumbnails(request).png(domain, dataset, image, instance)
    return Response(png, media_type="image/png", headers={"Cache-Control": "private, max-age=3600"})


#: the class changes the class page's buttons post, by the path's last part
CHANGES = {"retire": retire, "restore": restore}


def _change(
    request: Request, session: Session, domain: str, name: str, form: tuple[str, str], what: str
) -> Response:
    """``what`` (retire or restore) the class ``name`` from a form with ``(csrf, message)``,
    as the session's token, then back to the class page."""
    csrf, message = form
    open_domain(request, session, domain)
    session.check_csrf(csrf)
    if not session.who.allows("write"):
        raise ApiError(403, "forbidden", "this needs a token with write scope")
    CHANGES[what](state_of(request).ws, domain, name, message, actor=session.who.name)
    page = f"/ui/domains/{quote(domain)}/classes/{quote(name)}"
    return RedirectResponse(f"{page}?done={what}d", 303)


@router.post("/classes/{name:path}/retire", response_model=None)
def retire_class(
    domain: str,
    name: str,
    request: Request,
    session: Signed,
    csrf: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    return _change(request, session, domain, name, (csrf, message), "retire")


@router.post("/classes/{name:path}/restore", response_model=None)
def restore_class(
    domain: str,
    name: str,
    request: Request,
    session: Signed,
    csrf: Annotated[str, Form()] = "",
    message: Annotated[str, Form()] = "",
) -> Response:
    return _change(request, session, domain, name, (csrf, message), "restore")
