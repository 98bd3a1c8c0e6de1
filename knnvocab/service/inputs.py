"""Reading what a request sent: an image as a multipart field or a raw image body,
optional proposal masks, and the segmentation parameters of the query string."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Query, Request
from starlette.datastructures import UploadFile

from knnvocab.engine.params import SegmentParams
from knnvocab.service.errors import ApiError

#: documents the request body the segment and explain routes take
IMAGE_BODY: dict[str, Any] = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["image"],
                    "properties": {
                        "image": {"type": "string", "format": "binary"},
                        "masks": {
                            "type": "string",
                            "format": "binary",
                            "description": "with proposals=masks: an id PNG (0 = none) or "
                            "a JSON list of COCO RLE masks",
                        },
                    },
                }
            },
            "image/*": {"schema": {"type": "string", "format": "binary"}},
        },
    }
}


@dataclass(frozen=True)
class Upload:
    """An image as sent (bytes and the name it came with) and its optional masks."""

    image: bytes
    name: str
    masks: bytes | None = None


async def _field(form: Any, name: str) -> tuple[bytes, str] | None:
    value = form.get(name)
    if value is None:
        return None
    if isinstance(value, UploadFile):
        return await value.read(), value.filename or name
    return str(value).encode(), name


async def read_upload(request: Request) -> Upload:
    """The image (and masks) of a segment or explain request, or 400/415."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "multipart/form-data":
        try:
            form = await request.form(max_files=2, max_fields=8)
        except ApiError:
            raise
        except Exception as exc:  # python-multipart's and starlette's parse errors
            raise ApiError(400, "bad_request", f"malformed multipart body ({exc})") from None
        image = await _field(form, "image")
        if image is None:
            raise ApiError(400, "bad_request", "multipart body has no 'image' field")
        masks = await _field(form, "masks")
        upload = Upload(image[0], image[1], masks[0] if masks else None)
    elif kind.startswith("image/"):
        upload = Upload(await request.body(), "image")
    else:
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the image as multipart/form-data (field 'image') or as a raw body with an "
            f"image/* content type, not {kind or 'no content type'!r}",
        )
    if not upload.image:
        raise ApiError(400, "bad_request", "the image is empty")
    return upload


@dataclass(frozen=True)
class QueryParams:
    """The query string of segment and explain."""

    version: int | None
    proposals: str
    k: int
    tau: float
    threshold: float
    lam: float
    n_segments: int
    exact: bool
    zero_shot_only: bool
    evidence: int

    def params(self) -> SegmentParams:
        if self.proposals not in ("slic", "masks"):
            raise ApiError(
                400, "bad_request", f"proposals must be slic or masks, not {self.proposals!r}"
            )
        return SegmentParams(
            k=self.k,
            tau=self.tau,
            threshold=self.threshold,
            lam=self.lam,
            proposals=self.proposals,
            n_segments=self.n_segments,
            exact=self.exact,
            zero_shot_only=self.zero_shot_only,
            evidence=self.evidence,
        )


def query_params(
    version: Annotated[int | None, Query(description="Vocabulary version (default: head).")] = None,
    proposals: Annotated[str, Query(description="slic, or masks (send a 'masks' field).")] = "slic",
    k: Annotated[int, Query(description="Neighbours per proposal.")] = 10,
    tau: Annotated[float, Query(description="Softmax temperature over similarities.")] = 0.1,
    threshold: Annotated[float, Query(description="T: retrieval where max P_ret >= T.")] = 0.5,
    lam: Annotated[float, Query(alias="lambda", description="λ: weight of P_ret.")] = 0.7,
    n_segments: Annotated[int, Query(description="SLIC: target superpixels.")] = 128,
    exact: Annotated[bool, Query(description="Exhaustive kNN: never drifts.")] = False,
    zero_shot_only: Annotated[bool, Query(description="Skip retrieval.")] = False,
    evidence: Annotated[int, Query(description="Neighbours kept per segment.")] = 5,
) -> QueryParams:
    return QueryParams(
        version, proposals, k, tau, threshold, lam, n_segments, exact, zero_shot_only, evidence
    )
