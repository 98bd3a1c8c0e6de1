"""A domain's tokens, managed with an admin token of that domain (or a deployment admin):
``GET/POST /v1/domains/{domain}/tokens`` and ``DELETE .../tokens/{id_or_name}``."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, Request
from pydantic import BaseModel, Field

from knnvocab.service.auth import Admin
from knnvocab.service.errors import ApiError
from knnvocab.service.state import state_of
from knnvocab.tokens import create_token, list_tokens, revoke_token

router = APIRouter(prefix="/v1/domains/{domain}/tokens", tags=["tokens"])


class NewToken(BaseModel):
    scope: str = Field(description="query, write or admin")
    name: str | None = None
    expires_days: float | None = Field(default=None, gt=0)


@router.get("", summary="The domain's tokens (never their secrets)")
def tokens(domain: str, request: Request, _who: Admin) -> dict[str, Any]:
    infos = list_tokens(state_of(request).ws, domain)
    return {"domain": domain, "tokens": [t.to_json() for t in infos]}


@router.post("", status_code=201, summary="A new token of the domain, shown once")
def new_token(domain: str, body: NewToken, request: Request, who: Admin) -> dict[str, Any]:
    info, secret = create_token(
        state_of(request).ws,
        domain,
        body.scope,
        actor=who.name,
        name=body.name,
        expires_days=body.expires_days,
    )
    return {**info.to_json(), "token": secret}


@router.delete("/{id_or_name}", summary="Revoke one of the domain's tokens")
def revoke(domain: str, id_or_name: str, request: Request, who: Admin) -> dict[str, Any]:
    ws = state_of(request).ws
    mine = [t for t in list_tokens(ws, domain) if id_or_name in (t.id, t.name)]
    if not mine:
        raise ApiError(404, "not_found", f"token {id_or_name!r} does not exist")
    return revoke_token(ws, mine[0].id, actor=who.name).to_json()
