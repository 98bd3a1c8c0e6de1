"""The console's boundaries: the session cookie, CSRF, another tenant's domain, a
revoked token."""

from __future__ import annotations

import httpx
import pytest

from tests.console.helpers import session_client
from tests.service.conftest import Deployment

pytestmark = pytest.mark.slow

PAGES = [
    "",
    "/versions",
    "/versions?offset=0&limit=5",
    "/diff?from=1&to=1",
    "/audit?action=ingest",
    "/classes/person",
    "/try",
    "/thumbnail?dataset=voc&image=2011_000003&instance=obj1",
]


def _csrf(text: str) -> str:
    return text.split('name="csrf" value="')[1].split('"')[0]


def test_the_session_cookie(console: Deployment) -> None:
    with session_client(console, "street:query") as client:
        answer = client.post("/ui/sign-in", data={"token": console.tokens["street:query"]})
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "path=/ui" in cookie
    assert console.tokens["street:query"].lower() not in cookie


def test_a_sign_in_posted_from_another_site_is_refused(console: Deployment) -> None:
    """No session yet, so no CSRF token: the browser's origin headers decide."""
    data = {"token": console.tokens["street:query"]}
    with httpx.Client(base_url=console.url) as client:
        for headers in ({"Sec-Fetch-Site": "cross-site"}, {"Origin": "http://evil.example"}):
            answer = client.post("/ui/sign-in", data=data, headers=headers)
            assert answer.status_code == 403 and "set-cookie" not in answer.headers
            assert "sign in from the console&#39;s own page" in answer.text
        same = {"Sec-Fetch-Site": "same-origin", "Origin": console.url}
        assert client.post("/ui/sign-in", data=data, headers=same).status_code == 303


def test_a_body_over_the_limit_is_a_page(console: Deployment) -> None:
    with httpx.Client(base_url=console.url) as client:
        answer = client.post("/ui/sign-in", data={"token": "x" * (2 * 2**20)})
    assert answer.status_code == 413 and answer.headers["content-type"].startswith("text/html")
    assert "larger than this route&#39;s limit of 1,048,576 bytes" in answer.text


def test_a_wrong_token_is_refused(console: Deployment) -> None:
    with session_client(console, "street:query") as client:
        answer = client.post("/ui/sign-in", data={"token": "knv_not-a-token"})
        assert answer.status_code == 401 and "invalid, expired or revoked" in answer.text
        client.cookies.clear()
        page = client.get("/ui/domains/street")
    assert page.status_code == 303 and page.headers["location"].startswith("/ui/sign-in")


def test_another_tenants_domain_answers_as_a_missing_one(console: Deployment) -> None:
    with session_client(console, "harbour:admin") as client:
        for page in PAGES:
            other = client.get(f"/ui/domains/street{page}")
            missing = client.get(f"/ui/domains/no-such-domain{page}")
            assert other.status_code == missing.status_code == 404, page
            assert other.text == missing.text, page
            assert "street" not in other.text
        csrf = _csrf(client.get("/ui/domains/harbour").text)
        for verb in ("retire", "restore"):
            other = client.post(f"/ui/domains/street/classes/person/{verb}", data={"csrf": csrf})
            missing = client.post(
                f"/ui/domains/no-such-domain/classes/person/{verb}", data={"csrf": csrf}
            )
            assert other.status_code == missing.status_code == 404
            assert other.text == missing.text


def test_a_change_without_its_csrf_token_is_refused(console: Deployment) -> None:
    with session_client(console, "street:write") as client:
        page = client.get("/ui/domains/street/classes/person").text
        assert 'id="retire-button"' in page
        for data in ({}, {"csrf": "0" * 32}, {"csrf": ""}):
            answer = client.post("/ui/domains/street/classes/person/retire", data=data)
            assert answer.status_code == 403, data
            assert "CSRF" in answer.text
        again = client.get("/ui/domains/street/classes/person").text
    assert 'id="class-state">live<' in again  # nothing changed


def test_a_revoked_token_ends_its_sessions(console: Deployment) -> None:
    admin = console.client("street:admin")
    made = admin.post("/v1/domains/street/tokens", json={"scope": "query", "name": "brief"})
    assert made.status_code == 201, made.text
    secret = made.json()["token"]
    with session_client(console, "street:query") as client:
        client.cookies.clear()
        assert client.post("/ui/sign-in", data={"token": secret}).status_code == 303
        assert client.get("/ui/domains/street").status_code == 200
        assert admin.delete("/v1/domains/street/tokens/brief").status_code == 200
        after = client.get("/ui/domains/street")
    admin.close()
    assert after.status_code == 303 and after.headers["location"].startswith("/ui/sign-in")


def test_a_deployment_token_sees_every_domain_and_signs_out(console: Deployment) -> None:
    with session_client(console, "deployment:query") as client:
        listing = client.get("/ui/domains")
        assert listing.status_code == 200
        assert 'href="/ui/domains/street"' in listing.text
        assert 'href="/ui/domains/harbour"' in listing.text
        for domain in ("street", "harbour"):
            assert client.get(f"/ui/domains/{domain}").status_code == 200
        refused = client.post("/ui/sign-out", data={})
        assert refused.status_code == 403  # signing out is a change too
        out = client.post("/ui/sign-out", data={"csrf": _csrf(listing.text)})
        assert out.status_code == 303
        assert not client.cookies.get("knnvocab_session")
        assert client.get("/ui/domains").status_code == 303  # back to the sign-in page
