"""Try it: upload a photo, choose a version, see the overlay; each segment's label,
score, source and the neighbours behind it (the explain view), per segment. Runs the
service's own segment path (prepared vocabularies, the segment gate)."""

from __future__ import annotations

import base64
import io
import json
from dataclasses import dataclass
from typing import Annotated, Any

import numpy as np
from fastapi import APIRouter, Depends, Request
from starlette.datastructures import UploadFile
from starlette.responses import Response

from knnvocab.console.pages import open_domain, render
from knnvocab.console.session import Session, require
from knnvocab.engine.explain import Explanation, explain
from knnvocab.engine.output import overlay
from knnvocab.service.errors import ApiError
from knnvocab.service.inputs import QueryParams, Upload, query_params
from knnvocab.service.routes_segment import segment_upload
from knnvocab.service.state import ServiceState, state_of

router = APIRouter(prefix="/ui/domains/{domain}", include_in_schema=False)

Signed = Annotated[Session, Depends(require)]
#: columns of the segment map the page's script reads to point at segments
MAP_COLUMNS = 96


@dataclass(frozen=True)
class Tried:
    """What the page shows of one segmentation: the overlay (PNG as a data: URI), each
    segment laid out, a coarse segment-id map and its size."""

    version: int
    overlay_uri: str
    explanations: list[Explanation]
    width: int
    height: int
    segment_map: list[list[int]]


@router.get("/try", response_model=None)
def try_form(domain: str, request: Request, session: Signed) -> Response:
    row = open_domain(request, session, domain)
    return render(request, "try.html", session, domain=domain, head=row.head_version, tried=None)


async def _form(request: Request) -> tuple[Upload, str, str]:
    """The upload, the version field and the CSRF field of the try form, or 400."""
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as exc:
        raise ApiError(400, "bad_request", f"malformed form ({exc})") from None
    image = form.get("image")
    if not isinstance(image, UploadFile) or not image.filename:
        raise ApiError(400, "bad_request", "choose a photo to upload")
    data = await image.read()
    if not data:
        raise ApiError(400, "bad_request", "the uploaded file is empty")
    return Upload(data, image.filename), str(form.get("version") or ""), str(form.get("csrf", ""))


@router.post("/try", response_model=None)
async def try_photo(domain: str, request: Request, session: Signed) -> Response:
    row = open_domain(request, session, domain)
    upload, version_text, csrf = await _form(request)
    session.check_csrf(csrf)
    if version_text and not version_text.isdigit():
        raise ApiError(400, "bad_request", f"version must be a number, not {version_text!r}")
    version = int(version_text) if version_text else None
    state = state_of(request)
    q = query_params(version=version)
    tried = await state.gate.run(lambda: _run(state, domain, q, upload))
    return render(
        request,
        "try.html",
        session,
        domain=domain,
        head=row.head_version,
        tried=tried,
        map_json=map_json,
    )


def _run(state: ServiceState, domain: str, q: QueryParams, upload: Upload) -> Tried:
    seg, pixels = segment_upload(state, domain, q, upload)
    buffer = io.BytesIO()
    overlay(seg, pixels).save(buffer, format="PNG")
    uri = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()
    h, w = seg.shape
    step = max(1, -(-w // MAP_COLUMNS))
    coarse = seg.segment_map[::step, ::step]
    return Tried(
        seg.version,
        uri,
        [explain(seg, s) for s in seg.segments],
        w,
        h,
        np.asarray(coarse, dtype=np.int64).tolist(),
    )


def map_json(tried: Tried) -> str:
    """The segment-id map for the page's script (JSON)."""
    data: dict[str, Any] = {"w": tried.width, "h": tried.height, "rows": tried.segment_map}
    return json.dumps(data, separators=(",", ":"))
