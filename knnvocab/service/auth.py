"""Who is asking: a bearer token (per domain, or the deployment's), or the home's owner.

Scopes nest: ``query`` ⊂ ``write`` ⊂ ``admin``. A token asking for another domain gets
what a domain that does not exist gets, so a tenant cannot learn which domains exist. The
home's owner is the CLI on the machine of an embedded deployment, forwarding its writes
to the service that owns the store (`knnvocab.service.local`); it acts for the user the
CLI names.
"""

from __future__ import annotations

import hmac
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request

from knnvocab.service.errors import ApiError, domain_not_found, unauthorized
from knnvocab.service.state import ServiceState, state_of

#: header naming the user a home-owner request acts for (ignored from any other caller)
ACTOR_HEADER = "X-Knnvocab-Actor"


@dataclass(frozen=True)
class Principal:
    """The caller of one request: the actor its changes are audited under, the domain it
    may see (None: every domain) and its scope."""

    name: str
    domain: str | None
    scope: str
    local: bool = False

    def allows(self, need: str) -> bool:
        from knnvocab.tokens import scope_allows

        return scope_allows(self.scope, need)


def _bearer(request: Request) -> str:
    header = request.headers.get("authorization", "")
    kind, _, secret = header.partition(" ")
    if kind.lower() != "bearer" or not secret.strip():
        raise unauthorized("missing bearer token (Authorization: Bearer <token>)")
    return secret.strip()


def authenticate(state: ServiceState, request: Request) -> Principal:
    """The caller, or 401. Looked up on every request, so a revocation applies at once."""
    from knnvocab.tokens import TokenError
    from knnvocab.tokens import authenticate as lookup

    secret = _bearer(request)
    if state.local_secret and hmac.compare_digest(secret, state.local_secret):
        actor = request.headers.get(ACTOR_HEADER, "").strip()[:200] or "local"
        return Principal(actor, None, "admin", local=True)
    try:
        token = lookup(state.ws, secret)
    except TokenError:
        raise unauthorized() from None
    return Principal(token.name, token.domain, token.scope)


def caller(request: Request) -> Principal:
    """Dependency: the authenticated caller of any /v1 route."""
    return authenticate(state_of(request), request)


def deployment(need: str) -> Callable[[Principal], Principal]:
    """Dependency: a deployment token (every domain) with scope ``need``."""

    def check(who: Annotated[Principal, Depends(caller)]) -> Principal:
        if who.domain is not None or not who.allows(need):
            raise ApiError(403, "forbidden", f"this needs a deployment token with {need} scope")
        return who

    return check


def on_domain(need: str) -> Callable[[str, Principal], Principal]:
    """Dependency: a caller that may act on the path's ``domain`` with scope ``need``.
    Another tenant's domain answers exactly as a missing one does (404)."""

    def check(domain: str, who: Annotated[Principal, Depends(caller)]) -> Principal:
        if not may_see(who, domain):
            raise domain_not_found(domain)
        if not who.allows(need):
            raise ApiError(403, "forbidden", f"this needs a token with {need} scope")
        return who

    return check


def may_see(who: Principal, domain: str) -> bool:
    """The tenant rule: a domain token sees its own domain, a deployment token every one."""
    return who.domain is None or who.domain == domain


#: route parameters: the caller, checked for the path's domain and a scope
Caller = Annotated[Principal, Depends(caller)]
Reader = Annotated[Principal, Depends(on_domain("query"))]
Writer = Annotated[Principal, Depends(on_domain("write"))]
Admin = Annotated[Principal, Depends(on_domain("admin"))]
DeploymentAdmin = Annotated[Principal, Depends(deployment("admin"))]
