"""Tokens in the library, on SQLite and Postgres: created with a secret shown once and a
hash kept, listed, revoked, and authenticated; every way a token is not valid gives the
same error, and every change is audited with its actor (never the secret)."""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
import sqlalchemy as sa

from knnvocab.errors import ConfigError, NotFoundError
from knnvocab.lifecycle import audit_log, delete_domain, new_domain
from knnvocab.tokens import (
    PREFIX,
    SCOPES,
    TokenError,
    TokenInfo,
    authenticate,
    create_token,
    list_tokens,
    revoke_token,
    scope_allows,
)
from knnvocab.workspace import Workspace

INVALID = "invalid, expired or revoked token"


@pytest.fixture
def shop(ws: Workspace) -> Workspace:
    new_domain(ws, "shop", actor="tester")
    return ws


def refused(ws: Workspace, secret: str, **kwargs: object) -> None:
    with pytest.raises(TokenError) as caught:
        authenticate(ws, secret, **kwargs)  # type: ignore[arg-type]
    assert str(caught.value) == INVALID


def test_scopes_nest() -> None:
    assert SCOPES == ("query", "write", "admin")
    allowed = {(have, need) for have in SCOPES for need in SCOPES if scope_allows(have, need)}
    assert allowed == {
        ("query", "query"),
        ("write", "query"),
        ("write", "write"),
        ("admin", "query"),
        ("admin", "write"),
        ("admin", "admin"),
    }
    with pytest.raises(ConfigError, match="query, write, admin"):
        scope_allows("root", "query")


def test_create_then_authenticate(shop: Workspace) -> None:
    info, secret = create_token(shop, "shop", "write", actor="alice", expires_days=30)
    assert secret.startswith(PREFIX) and len(secret) >= len(PREFIX) + 43  # 32 bytes, base64
    assert info.domain == "shop" and info.scope == "write" and info.created_by == "alice"
    assert info.name == f"shop-write-{info.id[:6]}" and len(info.id) == 32
    assert info.expires_at is not None
    assert timedelta(days=29.99) < info.expires_at - info.created_at <= timedelta(days=30)
    assert authenticate(shop, secret) == info
    assert set(info.to_json()) == {
        "id", "name", "domain", "scope", "expires", "created", "created_by", "revoked",
    }  # fmt: skip
    assert info.to_json()["revoked"] is None
    _, other = create_token(shop, "shop", "write", actor="alice")
    assert other != secret


def test_a_deployment_token(shop: Workspace) -> None:
    info, secret = create_token(shop, None, "admin", actor="root", name="ops")
    assert info.domain is None and info.name == "ops"
    assert authenticate(shop, secret).domain is None
    default, _ = create_token(shop, None, "query", actor="root")
    assert default.name.startswith("deployment-query-")


def test_list_and_revoke(shop: Workspace) -> None:
    new_domain(shop, "farm", actor="tester")
    a, _ = create_token(shop, "shop", "query", actor="alice", name="a")
    b, secret = create_token(shop, "farm", "write", actor="alice", name="b")
    c, _ = create_token(shop, None, "admin", actor="alice", name="c")
    assert [t.name for t in list_tokens(shop)] == ["a", "b", "c"]
    assert [t.name for t in list_tokens(shop, "farm")] == ["b"]
    revoked = revoke_token(shop, "b", actor="bob")
    assert revoked.revoked_at is not None and revoked.state() == "revoked"
    assert revoke_token(shop, a.id, actor="bob").name == "a"  # by id
    assert [t.state() for t in list_tokens(shop)] == ["revoked", "revoked", "active"]
    with pytest.raises(ConfigError, match=r"token 'b' was already revoked at .* by bob"):
        revoke_token(shop, b.id, actor="bob")
    with pytest.raises(NotFoundError, match="no token has the id or name 'nope'"):
        revoke_token(shop, "nope", actor="bob")
    with pytest.raises(NotFoundError, match="domain 'nope' does not exist"):
        list_tokens(shop, "nope")
    refused(shop, secret)
    assert c.state() == "active"


def test_every_invalid_token_is_refused_alike(shop: Workspace) -> None:
    _, revoked = create_token(shop, "shop", "query", actor="alice")
    revoke_token(shop, authenticate(shop, revoked).id, actor="alice")
    expiring, expiring_secret = create_token(shop, "shop", "query", actor="alice", expires_days=1)
    assert authenticate(shop, expiring_secret) == expiring
    assert expiring.expires_at is not None
    later = expiring.expires_at + timedelta(seconds=1)
    assert expiring.state(later) == "expired"
    _, forever = create_token(shop, "shop", "query", actor="alice")
    assert authenticate(shop, forever, now=later).name.startswith("shop-query-")
    for secret in (
        revoked,
        "",
        PREFIX,
        PREFIX + "x" * 43,
        forever[len(PREFIX) :],  # the secret without its prefix
        forever + "x",
        forever.upper(),
        "knv_é" + forever[5:],
        PREFIX + "x" * 1000,
        hashlib.sha256(forever.encode()).hexdigest(),  # the stored hash is not a token
    ):
        refused(shop, secret)
    refused(shop, expiring_secret, now=later)
    refused(shop, expiring_secret, now=expiring.expires_at)


def test_a_deleted_domain_takes_its_tokens_along(shop: Workspace) -> None:
    _, secret = create_token(shop, "shop", "admin", actor="alice")
    _, deployment = create_token(shop, None, "admin", actor="alice")
    delete_domain(shop, "shop", actor="alice")
    refused(shop, secret)
    assert [t.domain for t in list_tokens(shop)] == [None]
    assert authenticate(shop, deployment).domain is None
    new_domain(shop, "shop", actor="tester")  # the same name is another domain
    refused(shop, secret)


def test_a_soft_deleted_domain_refuses_its_tokens(shop: Workspace) -> None:
    _, secret = create_token(shop, "shop", "query", actor="alice")
    with shop.catalog.engine.begin() as conn:
        conn.execute(sa.text("UPDATE domain SET deleted_at = CURRENT_TIMESTAMP"))
    refused(shop, secret)
    with pytest.raises(NotFoundError, match="domain 'shop' does not exist"):
        create_token(shop, "shop", "query", actor="alice")


def test_only_a_hash_is_stored(shop: Workspace) -> None:
    info, secret = create_token(shop, "shop", "admin", actor="alice", name="kept")
    revoke_token(shop, "kept", actor="bob")
    digest = hashlib.sha256(secret.encode()).hexdigest()
    with shop.catalog.engine.connect() as conn:
        (row,) = conn.execute(sa.text("SELECT * FROM api_token")).mappings().all()
        tokens = repr(conn.execute(sa.text("SELECT * FROM api_token")).all())
        events = repr(conn.execute(sa.text("SELECT * FROM audit_event")).all())
    assert row["token_sha256"] == digest and row["id"] == info.id
    body = secret[len(PREFIX) :]
    assert body not in tokens and body not in events
    assert digest not in events
    assert body[:16] not in tokens + events


def test_changes_are_audited_with_their_actor(shop: Workspace) -> None:
    info, _ = create_token(shop, "shop", "write", actor="alice", name="w", expires_days=2)
    create_token(shop, None, "admin", actor="root", name="ops")
    revoke_token(shop, "w", actor="bob")
    events = [e for e in audit_log(shop, action="token")]
    assert [(e.action, e.actor, e.domain) for e in events] == [
        ("token.create", "alice", "shop"),
        ("token.create", "root", None),
        ("token.revoke", "bob", "shop"),
    ]
    assert events[0].detail == {
        "id": info.id,
        "name": "w",
        "scope": "write",
        "expires": info.to_json()["expires"],
    }
    assert events[2].detail == {"id": info.id, "name": "w", "scope": "write"}


def test_bad_requests_are_refused_and_leave_nothing(shop: Workspace) -> None:
    create_token(shop, "shop", "query", actor="alice", name="taken")
    revoke_token(shop, "taken", actor="alice")
    with pytest.raises(ConfigError, match="a token named 'taken' already exists"):
        create_token(shop, None, "admin", actor="alice", name="taken")
    with pytest.raises(ConfigError, match="invalid token scope 'root': use one of query, wr"):
        create_token(shop, "shop", "root", actor="alice")
    with pytest.raises(NotFoundError, match="domain 'nope' does not exist"):
        create_token(shop, "nope", "query", actor="alice")
    for days in (0.0, -1.0, float("nan"), float("inf")):
        with pytest.raises(ConfigError, match="positive number of days"):
            create_token(shop, "shop", "query", actor="alice", expires_days=days)
    with pytest.raises(ConfigError, match="too far away"):
        create_token(shop, "shop", "query", actor="alice", expires_days=1e9)
    for name in ("", " x", "a b", "x" * 101, "0123456789abcdef0123456789abcdef"):
        with pytest.raises(ConfigError, match="invalid token name"):
            create_token(shop, "shop", "query", actor="alice", name=name)
    assert [t.name for t in list_tokens(shop)] == ["taken"]
    actions = [e.action for e in audit_log(shop, action="token")]
    assert actions == ["token.create", "token.revoke"]


def test_token_info_validates_its_scope(shop: Workspace) -> None:
    info, _ = create_token(shop, "shop", "query", actor="alice")
    with pytest.raises(ConfigError, match="invalid token scope"):
        TokenInfo(**{**info.__dict__, "scope": "root"})
