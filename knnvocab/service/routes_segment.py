"""``POST /v1/domains/{domain}/segment`` and ``.../explain``: the CLI's `segment` and
`explain`, one image per request, through the segment gate."""

from __future__ import annotations

import io
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from starlette.responses import JSONResponse, Response

from knnvocab.engine.explain import explain as lay_out
from knnvocab.engine.output import index_png, rle_json
from knnvocab.engine.proposals import GivenMasks
from knnvocab.engine.result import Segmentation
from knnvocab.imageio import load_rgb
from knnvocab.service.auth import Reader
from knnvocab.service.errors import ApiError
from knnvocab.service.inputs import IMAGE_BODY, QueryParams, Upload, query_params, read_upload
from knnvocab.service.state import ServiceState, state_of
from knnvocab.types import ImageArray

router = APIRouter(prefix="/v1/domains/{domain}", tags=["segment"])


def segment_upload(
    state: ServiceState, domain: str, q: QueryParams, upload: Upload
) -> tuple[Segmentation, ImageArray]:
    """Decode, build the proposals and segment (runs on a segment thread): the
    segmentation and the decoded (H, W, 3) uint8 image it was made from."""
    params = q.params()
    max_pixels = state.settings.max_image_pixels
    if params.proposals == "masks":
        if upload.masks is None:
            raise ApiError(400, "bad_request", "proposals=masks needs a 'masks' field")
        proposals = GivenMasks(upload.masks, "masks", max_pixels)
    elif upload.masks is not None:
        raise ApiError(400, "bad_request", "a 'masks' field needs proposals=masks")
    else:
        proposals = None
    pixels = load_rgb(upload.name, max_pixels, upload.image)
    return state.segmenter(domain, q.version, params, proposals).segment(pixels), pixels


def _wants_png(request: Request) -> bool:
    accept = request.headers.get("accept", "")
    return "image/png" in accept and "application/json" not in accept


@router.post(
    "/segment",
    openapi_extra=IMAGE_BODY,
    summary="Segment one image with the domain's vocabulary",
    response_description="The JSON `knnvocab segment` writes, or the index PNG (Accept: image/png)",
)
async def segment(
    domain: str,
    request: Request,
    _who: Reader,
    q: Annotated[QueryParams, Depends(query_params)],
    rle: Annotated[bool, Query(description="Add COCO RLE per segment.")] = False,
) -> Response:
    state = state_of(request)
    upload = await read_upload(request)
    seg, _ = await state.gate.run(lambda: segment_upload(state, domain, q, upload))
    if _wants_png(request):
        buffer = io.BytesIO()
        index_png(seg, buffer)
        return Response(buffer.getvalue(), media_type="image/png")
    body: dict[str, Any] = {"image": upload.name, **seg.to_json(q.evidence)}
    if rle:
        body["rle"] = rle_json(seg)
    return JSONResponse(body)


@router.post(
    "/explain",
    openapi_extra=IMAGE_BODY,
    summary="Why one segment got its label: neighbours, zero-shot scores, fusion",
)
async def explain(
    domain: str,
    request: Request,
    _who: Reader,
    q: Annotated[QueryParams, Depends(query_params)],
    segment: Annotated[int | None, Query(description="Segment id (from segment).")] = None,
    x: Annotated[int | None, Query(description="A pixel column in the segment.")] = None,
    y: Annotated[int | None, Query(description="A pixel row in the segment.")] = None,
) -> Response:
    if (segment is None) == (x is None or y is None):
        raise ApiError(400, "bad_request", "give exactly one of segment=ID or x=X&y=Y")
    state = state_of(request)
    upload = await read_upload(request)
    seg, _ = await state.gate.run(lambda: segment_upload(state, domain, q, upload))
    chosen = _pick(seg, segment, x, y)
    report = lay_out(seg, chosen).to_json()
    return JSONResponse({"domain": seg.domain, "version": seg.version, **report})


def _pick(seg: Segmentation, segment: int | None, x: int | None, y: int | None) -> Any:
    if segment is not None:
        if not 1 <= segment <= len(seg.segments):
            raise ApiError(
                422, "bad_request", f"segment {segment} does not exist (1..{len(seg.segments)})"
            )
        return seg.segments[segment - 1]
    try:
        chosen = seg.segment_at(int(x or 0), int(y or 0))
    except ValueError as exc:
        raise ApiError(422, "bad_request", str(exc)) from None
    if chosen is None:
        raise ApiError(422, "bad_request", f"no segment covers pixel ({x}, {y})")
    return chosen
