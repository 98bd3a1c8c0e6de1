"""Console sessions and CSRF tokens: a signed cookie naming a token by id.

The cookie is ``<token id>.<expiry (unix s)>.<mac>``, the mac an HMAC-SHA256 under the
home's console key over the id, the expiry and the token's stored SHA-256: it carries
no secret, and a revoked, expired or deleted token ends its sessions at the next
request (the token is looked up on every page, as a bearer token is). The CSRF token of
a session is an HMAC of its cookie, sent back in a hidden field of every form that
changes something.
"""

from __future__ import annotations

import contextlib
import hashlib
import hmac
import os
import secrets
import time
from dataclasses import dataclass
from pathlib import Path

from starlette.requests import Request

from knnvocab.service.auth import Principal
from knnvocab.service.errors import ApiError
from knnvocab.service.state import state_of

COOKIE = "knnvocab_session"
#: the longest a console session lasts (a token's own expiry ends it sooner)
LIFETIME_S = 8 * 3600
_KEY_FILE = "console.key"


def load_key(home: Path) -> bytes:
    """The home's console key (32 random bytes in ``<home>/console.key``, mode 0600),
    made once; every worker of a deployment reads the same file."""
    path = home / _KEY_FILE
    if not path.exists():
        home.mkdir(parents=True, exist_ok=True)
        tmp = home / f".{_KEY_FILE}.{os.getpid()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as out:
            out.write(secrets.token_bytes(32))
        with contextlib.suppress(FileExistsError):  # another worker made it first
            os.link(tmp, path)
        tmp.unlink()
    key = path.read_bytes()
    if len(key) < 32:
        raise ApiError(500, "internal", f"console key {path} is too short")
    return key


def _key(request: Request) -> bytes:
    app_state = request.app.state
    key: bytes | None = getattr(app_state, "console_key", None)
    if key is None:
        key = load_key(state_of(request).settings.home)
        app_state.console_key = key
    return key


def _mac(key: bytes, token_id: str, expires: int, digest: str) -> str:
    message = f"{token_id}.{expires}.{digest}".encode()
    return hmac.new(key, message, hashlib.sha256).hexdigest()


def new_cookie(request: Request, secret: str) -> tuple[str, int]:
    """A session cookie for bearer ``secret`` and its lifetime in seconds, or 401."""
    from knnvocab.tokens import TokenError, authenticate, token_by_id

    ws = state_of(request).ws
    try:
        info = authenticate(ws, secret)
        _, digest = token_by_id(ws, info.id)
    except TokenError:
        raise ApiError(401, "unauthorized", "invalid, expired or revoked token") from None
    lifetime = LIFETIME_S
    if info.expires_at is not None:
        lifetime = min(lifetime, int(info.expires_at.timestamp() - time.time()))
    expires = int(time.time()) + lifetime
    return f"{info.id}.{expires}.{_mac(_key(request), info.id, expires, digest)}", lifetime


@dataclass(frozen=True)
class Session:
    """A signed-in console user: who (as the API would see the token) and the CSRF token
    of the session."""

    who: Principal
    csrf: str

    def check_csrf(self, sent: str | None) -> None:
        """403 unless ``sent`` is this session's CSRF token."""
        if not sent or not hmac.compare_digest(sent.encode(), self.csrf.encode()):
            raise ApiError(403, "csrf", "the form's CSRF token is missing or wrong; reload it")


def session_of(request: Request) -> Session | None:
    """The request's valid session, or None (no cookie, a bad mac, expired, revoked)."""
    from knnvocab.tokens import TokenError, token_by_id

    cookie = request.cookies.get(COOKIE, "")
    token_id, _, rest = cookie.partition(".")
    expires_text, _, mac = rest.partition(".")
    if not (token_id and expires_text.isdigit() and mac) or int(expires_text) < time.time():
        return None
    try:
        info, digest = token_by_id(state_of(request).ws, token_id)
    except TokenError:
        return None
    key = _key(request)
    if not hmac.compare_digest(mac, _mac(key, token_id, int(expires_text), digest)):
        return None
    csrf = hmac.new(key, f"csrf.{cookie}".encode(), hashlib.sha256).hexdigest()[:32]
    return Session(Principal(info.name, info.domain, info.scope), csrf)


def require(request: Request) -> Session:
    """Dependency: the session, or 401 (the console answers it with the sign-in page)."""
    session = session_of(request)
    if session is None:
        raise ApiError(401, "unauthorized", "sign in with a token")
    return session
