"""Reads of a domain — ``GET /v1/domains/{domain}``, its versions, vocabulary, diffs and
audit log — and the deployment's domain list, creation and deletion."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, Field

from knnvocab.history import count_versions, version_log, vocab_diff, vocabulary
from knnvocab.lifecycle import parse_since
from knnvocab.lifecycle.auditlog import AuditFilter, audit_page
from knnvocab.lifecycle.domains import delete_domain, domain_info, domain_infos, new_domain
from knnvocab.service.auth import Caller, DeploymentAdmin, Reader, may_see
from knnvocab.service.errors import ApiError
from knnvocab.service.state import state_of

router = APIRouter(prefix="/v1", tags=["domains"])

Offset = Annotated[int, Query(ge=0, description="Items to skip.")]
Limit = Annotated[int, Query(ge=1, le=1000, description="Items per page.")]


def paged(chosen: list[Any], offset: int, limit: int, total: int) -> dict[str, Any]:
    """The page ``chosen`` (already cut at ``offset``) of ``total`` items."""
    after = offset + len(chosen)
    return {
        "items": [i.to_json() for i in chosen],
        "total": total,
        "offset": offset,
        "limit": limit,
        "next": after if after < total else None,
    }


@router.get("/domains", summary="The domains this token may see")
def list_domains(request: Request, who: Caller) -> dict[str, Any]:
    infos = domain_infos(state_of(request).ws)
    return {"domains": [i.to_json() for i in infos if may_see(who, i.name)]}


class NewDomain(BaseModel):
    name: str
    description: str = ""
    max_instances: int | None = Field(default=None, ge=1)


@router.post("/domains", status_code=201, summary="Create a domain (deployment admin)")
def create_domain(request: Request, body: NewDomain, who: DeploymentAdmin) -> dict[str, Any]:
    ws = state_of(request).ws
    info = new_domain(
        ws, body.name, body.description, max_instances=body.max_instances, actor=who.name
    )
    return info.to_json()


@router.delete("/domains/{domain}", summary="Delete a domain for good (deployment admin)")
def remove_domain(
    domain: str,
    request: Request,
    who: DeploymentAdmin,
    confirm: Annotated[str, Query(description="The domain's name again.")] = "",
    reason: Annotated[str, Query(description="Why (recorded).")] = "",
) -> dict[str, Any]:
    if confirm != domain:
        raise ApiError(400, "confirmation_required", f"add confirm={domain} to delete it")
    state = state_of(request)
    info = delete_domain(state.ws, domain, reason, actor=who.name)
    state.forget()
    return info.to_json()


@router.get("/domains/{domain}", summary="A domain with its counts at the head")
def show_domain(domain: str, request: Request, _who: Reader) -> dict[str, Any]:
    return domain_info(state_of(request).ws, domain).to_json()


@router.get("/domains/{domain}/versions", summary="Every version with its provenance (paged)")
def versions(
    domain: str,
    request: Request,
    _who: Reader,
    offset: Offset = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    ws = state_of(request).ws
    total = count_versions(ws, domain)
    records = version_log(ws, domain, offset, limit)
    return {"domain": domain, **paged(records, offset, limit, total)}


@router.get("/domains/{domain}/vocabulary", summary="The vocabulary at a version")
def vocab(
    domain: str,
    request: Request,
    _who: Reader,
    version: Annotated[int | None, Query(description="Version (default: head).")] = None,
) -> dict[str, Any]:
    return vocabulary(state_of(request).ws, domain, version).to_json()


@router.get("/domains/{domain}/diff", summary="What changed from one version to another")
def diff(
    domain: str,
    request: Request,
    _who: Reader,
    from_: Annotated[int, Query(alias="from", description="Earlier version.")],
    to: Annotated[int, Query(description="Later version.")],
) -> dict[str, Any]:
    return vocab_diff(state_of(request).ws, domain, from_, to).to_json()


@router.get("/domains/{domain}/audit", summary="The domain's audit log, oldest first (paged)")
def audit(
    domain: str,
    request: Request,
    _who: Reader,
    since: Annotated[str | None, Query(description="ISO date or date-time (UTC).")] = None,
    action: Annotated[str | None, Query(description="An action or a family.")] = None,
    offset: Offset = 0,
    limit: Limit = 100,
) -> dict[str, Any]:
    ws = state_of(request).ws
    domain_info(ws, domain)  # a missing domain is a 404, not an empty log
    which = AuditFilter(domain, parse_since(since) if since else None, action)
    with ws.catalog.session() as s:
        records, total = audit_page(s, which, offset, limit)
    return {"domain": domain, **paged(records, offset, limit, total)}
