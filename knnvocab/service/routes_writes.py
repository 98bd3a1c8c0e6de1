"""Changes through the service: ingest (a job), retire, restore and purge, and the jobs.

Every change is audited under the caller's token name. An ingest names a dataset folder
under the server's data root (``KNNVOCAB_DATA_ROOT``) or uploads a zip/tar archive.
"""

from __future__ import annotations

import json
import os
import shutil
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field, ValidationError
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import UploadFile
from starlette.responses import JSONResponse

from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest.types import IngestOptions
from knnvocab.lifecycle import purge, restore, retire
from knnvocab.service.auth import Admin, Caller, Principal, Writer, may_see
from knnvocab.service.errors import ApiError
from knnvocab.service.jobs import IngestRequest, cancel_job, get_job, job_domain
from knnvocab.service.state import ServiceState, state_of

router = APIRouter(prefix="/v1", tags=["changes"])

ARCHIVE_TYPES = (
    "application/zip",
    "application/x-zip-compressed",
    "application/x-tar",
    "application/gzip",
    "application/x-gzip",
    "application/octet-stream",
)


class IngestBody(BaseModel):
    """How to ingest: the dataset (a folder under the data root, unless an archive is
    uploaded), its format and the options of `knnvocab ingest`."""

    dataset: str | None = Field(default=None, description="Folder under the data root.")
    format: str
    name: str | None = Field(default=None, description="Dataset name recorded on points.")
    message: str = ""
    classes: list[str] | None = None
    min_area: int = Field(default=16, ge=0)
    batch_size: int = Field(default=8, ge=1, le=256)
    options: dict[str, str] = Field(default_factory=dict, description="Reader options.")
    templates: list[str] | None = None
    model: str | None = Field(default=None, description="Encoder of a domain's first ingest.")
    pretrained: str | None = None
    checkpoint: str | None = Field(default=None, description="Weights under the data root.")


def inside(state: ServiceState, who: Principal, text: str, what: str) -> Path:
    """A server-side path the caller may read: under the data root (the home's owner, the
    CLI on this machine, may name any path)."""
    path = Path(text).expanduser()
    if who.local:
        return path.resolve()
    root = state.settings.data_root
    if root is None:
        raise ApiError(
            400, "bad_request", f"this service has no data root: upload the {what} instead"
        )
    # lexical: ``..`` cannot leave the root, while links the operator put in it may
    inside = Path(os.path.normpath(root / path))
    if path.is_absolute() or not inside.is_relative_to(root):
        raise ApiError(400, "bad_request", f"{what} {text!r} is not inside the data root")
    return inside


def _encoder(state: ServiceState, who: Principal, body: IngestBody) -> EncoderSpec | None:
    if not (body.model or body.pretrained or body.checkpoint):
        return None
    name = body.model or state.settings.model
    checkpoint = str(inside(state, who, body.checkpoint, "checkpoint")) if body.checkpoint else None
    model = str(inside(state, who, name, "model config")) if name.endswith(".json") else name
    pretrained = body.pretrained or (None if checkpoint else state.settings.pretrained)
    return EncoderSpec(model, pretrained=pretrained, checkpoint=checkpoint)


def _options(body: IngestBody, dataset_name: str | None) -> IngestOptions:
    return IngestOptions(
        format=body.format,
        dataset_name=body.name or dataset_name,
        message=body.message,
        classes=tuple(body.classes) if body.classes is not None else None,
        min_area=body.min_area,
        batch_size=body.batch_size,
        reader_options=dict(body.options),
        templates=tuple(body.templates) if body.templates is not None else None,
    )


@dataclass(frozen=True)
class _Upload:
    """An unpacked archive: the dataset's root inside ``folder`` (``<home>/uploads/<id>``,
    the upload's own folder, kept as the dataset's recorded source)."""

    root: Path
    folder: Path


async def _read_ingest(request: Request, state: ServiceState) -> tuple[IngestBody, _Upload | None]:
    """The body and, for an upload, where it was unpacked."""
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind == "application/json":
        return _parse(await request.body()), None
    if kind != "multipart/form-data":
        raise ApiError(
            415,
            "unsupported_media_type",
            "send JSON naming a dataset under the data root, or multipart/form-data with an "
            "'archive' file and a 'request' JSON field",
        )
    try:
        form = await request.form(max_files=1, max_fields=4)
    except Exception as exc:
        raise ApiError(400, "bad_request", f"malformed multipart body ({exc})") from None
    archive, raw = form.get("archive"), form.get("request")
    if not isinstance(archive, UploadFile):
        raise ApiError(400, "bad_request", "multipart body has no 'archive' file")
    body = _parse(raw if isinstance(raw, str) else b"{}")
    folder = state.settings.home / "uploads" / uuid.uuid4().hex
    root = await run_in_threadpool(_unpack, archive, folder)
    return body, _Upload(root, folder)


def _parse(raw: str | bytes) -> IngestBody:
    try:
        return IngestBody.model_validate(json.loads(raw))
    except ValueError as exc:  # json.JSONDecodeError and pydantic's ValidationError
        if isinstance(exc, ValidationError):
            detail = "; ".join(
                f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
            )
        else:
            detail = str(exc)
        raise ApiError(422, "invalid_request", f"invalid ingest request ({detail})") from None


def _unpack(archive: UploadFile, folder: Path) -> Path:
    from knnvocab.archives import extract_archive

    folder.mkdir(parents=True)
    source = folder / "archive"
    try:
        with source.open("wb") as f:
            shutil.copyfileobj(archive.file, f, 2**20)
        return extract_archive(source, folder / "data", archive.filename or "archive")
    except BaseException:
        shutil.rmtree(folder, ignore_errors=True)
        raise
    finally:
        source.unlink(missing_ok=True)


@router.post("/domains/{domain}/ingest", status_code=202, summary="Ingest a dataset (a job)")
async def ingest(domain: str, request: Request, who: Writer) -> JSONResponse:
    state = state_of(request)
    if state.jobs is None:  # pragma: no cover - set by the lifespan
        raise ApiError(503, "unavailable", "jobs are not running")
    body, upload = await _read_ingest(request, state)
    try:
        if upload is None and body.dataset is None:
            raise ApiError(400, "bad_request", "name a 'dataset' folder or upload an 'archive'")
        if upload is not None:
            path, folder = upload.root, upload.folder
        else:
            path, folder = inside(state, who, str(body.dataset), "dataset"), None
        job = IngestRequest(
            domain, path, _options(body, path.name), _encoder(state, who, body), folder
        )
        recorded = body.model_dump(exclude_none=True) | {"uploaded": upload is not None}
        job_id = await run_in_threadpool(state.jobs.submit, job, who.name, recorded)
    except BaseException:
        if upload is not None:
            shutil.rmtree(upload.folder, ignore_errors=True)
        raise
    answer = await run_in_threadpool(get_job, state.ws, job_id)
    return JSONResponse(answer, 202, headers={"Location": f"/v1/jobs/{job_id}"})


def _job_of(state: ServiceState, who: Principal, job_id: str) -> str:
    domain = job_domain(state.ws, job_id)
    if domain is None or not may_see(who, domain):
        raise ApiError(404, "not_found", f"job {job_id!r} does not exist")
    return domain


@router.get("/jobs/{job_id}", summary="A job's state, progress and result")
def show_job(job_id: str, request: Request, who: Caller) -> dict[str, Any]:
    state = state_of(request)
    _job_of(state, who, job_id)
    return get_job(state.ws, job_id)


@router.delete("/jobs/{job_id}", summary="Cancel a job (its pending version is rolled back)")
def stop_job(job_id: str, request: Request, who: Caller) -> dict[str, Any]:
    state = state_of(request)
    _job_of(state, who, job_id)
    if not who.allows("write"):
        raise ApiError(403, "forbidden", "this needs a token with write scope")
    return cancel_job(state.ws, job_id)


class Change(BaseModel):
    message: str = ""


@router.post("/domains/{domain}/classes/{name}/retire", summary="Retire a class")
def retire_class(
    domain: str,
    name: str,
    request: Request,
    who: Writer,
    body: Change | None = None,
) -> dict[str, Any]:
    ws = state_of(request).ws
    return retire(ws, domain, name, (body or Change()).message, actor=who.name).to_json()


@router.post("/domains/{domain}/classes/{name}/restore", summary="Restore a retired class")
def restore_class(
    domain: str,
    name: str,
    request: Request,
    who: Writer,
    body: Change | None = None,
) -> dict[str, Any]:
    ws = state_of(request).ws
    return restore(ws, domain, name, (body or Change()).message, actor=who.name).to_json()


class Purge(BaseModel):
    """Delete a class or a dataset's points for good; ``confirm`` must be the domain."""

    class_: Annotated[str | None, Field(alias="class")] = None
    dataset: str | None = None
    confirm: str = Field(description="The domain's name: purging cannot be undone.")
    message: str = ""


@router.post("/domains/{domain}/purge", summary="Delete a class or a dataset for good (admin)")
def purge_points(domain: str, body: Purge, request: Request, who: Admin) -> dict[str, Any]:
    if (body.class_ is None) == (body.dataset is None):
        raise ApiError(400, "bad_request", "give exactly one of 'class' or 'dataset'")
    if body.confirm != domain:
        raise ApiError(
            400, "confirmation_required", f"a purge cannot be undone: send confirm={domain!r}"
        )
    state = state_of(request)
    result = purge(
        state.ws,
        domain,
        actor=who.name,
        class_name=body.class_,
        dataset=body.dataset,
        message=body.message,
    )
    return result.to_json()
