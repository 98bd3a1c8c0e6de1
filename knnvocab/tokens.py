"""Bearer tokens of the HTTP service: create, list, revoke, authenticate.

A token is ``knv_`` followed by 32 random bytes, URL-safe (``secrets.token_urlsafe``). It
is shown once, when created; the catalog keeps only its SHA-256 (a fast hash is right for
a random secret of 256 bits: there is nothing to guess). A token is for one domain, or
for every domain (a deployment token, ``domain`` None), with one scope of ``SCOPES``,
each allowing what the ones before it allow.
"""

from __future__ import annotations

import hashlib
import hmac
import math
import re
import secrets
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import or_, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import joinedload

from knnvocab.catalog import audit
from knnvocab.catalog.domains import find_domain, get_domain
from knnvocab.catalog.models import TOKEN_SCOPES, ApiToken, Domain, utcnow
from knnvocab.errors import ConfigError, KnnvocabError, NotFoundError
from knnvocab.faults import fault
from knnvocab.workspace import Workspace

#: ordered: each scope allows what the ones before it allow
SCOPES = TOKEN_SCOPES
PREFIX = "knv_"
_SECRET_BYTES = 32
_MAX_SECRET = 200
# a name never looks like an id, so `revoke ID_OR_NAME` is never ambiguous
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.:@-]{0,99}$")
_ID = re.compile(r"^[0-9a-f]{32}$")


class TokenError(KnnvocabError):
    """A token that is unknown, revoked, expired or of a deleted domain. The message is
    the same in every case, so a caller learns nothing about which."""

    def __init__(self) -> None:
        super().__init__("invalid, expired or revoked token")


@dataclass(frozen=True)
class TokenInfo:
    """A token as the catalog describes it (never its secret nor its hash). Times are
    aware UTC; ``domain`` None is a deployment token (every domain)."""

    id: str
    name: str
    domain: str | None
    scope: str
    created_at: datetime
    created_by: str
    expires_at: datetime | None
    revoked_at: datetime | None

    def __post_init__(self) -> None:
        check_scope(self.scope)

    @classmethod
    def from_row(cls, row: ApiToken) -> TokenInfo:
        return cls(
            id=row.id,
            name=row.name,
            domain=row.domain.name if row.domain is not None else None,
            scope=row.scope,
            created_at=row.created_at,
            created_by=row.created_by,
            expires_at=row.expires_at,
            revoked_at=row.revoked_at,
        )

    def state(self, now: datetime | None = None) -> str:
        """``revoked``, ``expired`` or ``active`` at ``now`` (aware UTC; default: now)."""
        if self.revoked_at is not None:
            return "revoked"
        if self.expires_at is not None and self.expires_at <= (now or utcnow()):
            return "expired"
        return "active"

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "domain": self.domain,
            "scope": self.scope,
            "expires": _iso(self.expires_at),
            "created": _iso(self.created_at),
            "created_by": self.created_by,
            "revoked": _iso(self.revoked_at),
        }


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def check_scope(scope: str) -> str:
    if scope not in SCOPES:
        raise ConfigError(f"invalid token scope {scope!r}: use one of {', '.join(SCOPES)}")
    return scope


def scope_allows(have: str, need: str) -> bool:
    """Whether a token of scope ``have`` may do what needs ``need`` (query ⊂ write ⊂ admin)."""
    return SCOPES.index(check_scope(have)) >= SCOPES.index(check_scope(need))


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("ascii")).hexdigest()


def _check_name(name: str) -> str:
    if not _NAME.match(name) or _ID.match(name):
        raise ConfigError(
            f"invalid token name {name!r}: use 1-100 letters, digits, '_', '.', ':', '@', '-', "
            "starting with a letter or digit (and not 32 hex digits, which is an id)"
        )
    return name


def _expiry(now: datetime, days: float | None) -> datetime | None:
    if days is None:
        return None
    if not (math.isfinite(days) and days > 0):
        raise ConfigError(f"a token's expiry must be a positive number of days, got {days}")
    try:
        return now + timedelta(days=days)
    except OverflowError:
        raise ConfigError(f"a token's expiry of {days} days is too far away") from None


def create_token(
    ws: Workspace,
    domain: str | None,
    scope: str,
    *,
    actor: str,
    name: str | None = None,
    expires_days: float | None = None,
) -> tuple[TokenInfo, str]:
    """A new token for ``domain`` (None: every domain), and its secret, which is not kept
    anywhere: this is the one time it is seen. Audited as ``token.create`` (without the
    secret or its hash). The name defaults to ``DOMAIN-SCOPE-ID6`` and is unique among
    all tokens, revoked or not."""
    check_scope(scope)
    now = utcnow()
    expires_at = _expiry(now, expires_days)
    token_id = uuid.uuid4().hex
    name = _check_name(
        name if name is not None else f"{domain or 'deployment'}-{scope}-{token_id[:6]}"
    )
    secret = PREFIX + secrets.token_urlsafe(_SECRET_BYTES)
    with ws.catalog.session() as s:
        row = find_domain(s, domain) if domain is not None else None
        if domain is not None and (row is None or row.deleted_at is not None):
            raise NotFoundError(f"domain {domain!r} does not exist")
        if s.scalar(select(ApiToken.id).where(ApiToken.name == name)) is not None:
            raise ConfigError(f"a token named {name!r} already exists (revoked or not)")
        token = ApiToken(
            id=token_id,
            name=name,
            domain_id=row.id if row is not None else None,
            domain=row,
            scope=scope,
            token_sha256=_digest(secret),
            created_at=now,
            created_by=actor,
            expires_at=expires_at,
        )
        s.add(token)
        try:
            s.flush()
        except IntegrityError:  # another process took the name since the check
            raise ConfigError(f"a token named {name!r} already exists (revoked or not)") from None
        detail = {"id": token_id, "name": name, "scope": scope, "expires": _iso(expires_at)}
        audit.record(s, "token.create", actor, domain=domain, detail=detail)
        s.flush()
        fault(ws.settings, "token.before_commit")
        return TokenInfo.from_row(token), secret


def list_tokens(ws: Workspace, domain: str | None = None) -> list[TokenInfo]:
    """Every token (active, expired and revoked) by creation time, or only ``domain``'s
    (not the deployment tokens, which are listed with ``domain`` None)."""
    query = select(ApiToken).order_by(ApiToken.created_at, ApiToken.id)
    with ws.catalog.session() as s:
        if domain is not None:
            query = query.where(ApiToken.domain_id == get_domain(s, domain).id)
        return [TokenInfo.from_row(row) for row in s.scalars(query)]


def revoke_token(ws: Workspace, id_or_name: str, *, actor: str) -> TokenInfo:
    """Revoke the token whose id or name is ``id_or_name``, for good (audited as
    ``token.revoke``); a revoked token stays listed."""
    query = (
        select(ApiToken)
        .where(or_(ApiToken.id == id_or_name, ApiToken.name == id_or_name))
        .with_for_update(of=ApiToken)  # so two revokes record one event
    )
    with ws.catalog.session() as s:
        row = s.scalar(query)
        if row is None:
            raise NotFoundError(f"no token has the id or name {id_or_name!r}")
        if row.revoked_at is not None:
            raise ConfigError(
                f"token {row.name!r} was already revoked at "
                f"{row.revoked_at.isoformat(timespec='seconds')} by {row.revoked_by}"
            )
        row.revoked_at, row.revoked_by = utcnow(), actor
        info = TokenInfo.from_row(row)
        detail = {"id": row.id, "name": row.name, "scope": row.scope}
        audit.record(s, "token.revoke", actor, domain=info.domain, detail=detail)
        return info


def authenticate(ws: Workspace, secret: str, now: datetime | None = None) -> TokenInfo:
    """The token whose secret is ``secret``, if it is valid at ``now`` (aware UTC; default:
    now): known, not revoked, not expired, and its domain not deleted. Otherwise
    TokenError, with the same message in every case. One indexed read, no writes: this
    runs on every request."""
    if not (secret.isascii() and secret.startswith(PREFIX) and len(secret) <= _MAX_SECRET):
        raise TokenError()
    digest = _digest(secret)
    with ws.catalog.session() as s:
        row = s.scalar(
            select(ApiToken)
            .where(ApiToken.token_sha256 == digest)
            .options(joinedload(ApiToken.domain).lazyload(Domain.encoder))  # not needed here
        )
        if row is None or not hmac.compare_digest(row.token_sha256, digest):
            raise TokenError()
        info = TokenInfo.from_row(row)
        domain = row.domain
        gone = row.domain_id is not None and (domain is None or domain.deleted_at is not None)
    if gone or info.state(now) != "active":
        raise TokenError()
    return info


def token_by_id(ws: Workspace, token_id: str, now: datetime | None = None) -> tuple[TokenInfo, str]:
    """The token ``token_id`` and its stored SHA-256, if it is valid at ``now`` under the
    rules of `authenticate` (the web console's session names its token by id and is
    signed with the hash, so a revoked token ends its sessions at once). Otherwise
    TokenError."""
    with ws.catalog.session() as s:
        row = s.scalar(
            select(ApiToken)
            .where(ApiToken.id == token_id)
            .options(joinedload(ApiToken.domain).lazyload(Domain.encoder))
        )
        if row is None:
            raise TokenError()
        info, digest = TokenInfo.from_row(row), row.token_sha256
        gone = row.domain_id is not None and (
            row.domain is None or row.domain.deleted_at is not None
        )
    if gone or info.state(now) != "active":
        raise TokenError()
    return info, digest
