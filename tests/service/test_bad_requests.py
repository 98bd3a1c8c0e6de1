"""Every bad request gets a JSON error with the right status; the service stays alive and
nothing stored changes (a real `knnvocab serve` on a SQLite catalog)."""

from __future__ import annotations

import io
import tarfile
import zipfile
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest
from PIL import Image

from knnvocab.tokens import create_token, revoke_token
from knnvocab.workspace import Workspace
from tests.service.conftest import Deployment

#: one catalog (SQLite) here: the catalog's part of these refusals (unknown domains,
#: another tenant's domain, revoked tokens, scopes) test_api.py checks on SQLite and Postgres
pytestmark = [pytest.mark.slow, pytest.mark.parametrize("deployment", ["sqlite"], indirect=True)]

SEGMENT = "/v1/domains/street/segment"


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """A 2 MB body limit keeps the oversized-body cases small."""
    return {"KNNVOCAB_MAX_BODY_MB": "2", "KNNVOCAB_MAX_UPLOAD_MB": "4"}


def _state(d: Deployment) -> Any:
    """What is stored, as the service reports it."""
    with d.client("deployment:admin") as c:
        versions = c.get("/v1/domains/street/versions").json()["items"]
        audit = c.get("/v1/domains/street/audit", params={"limit": 1}).json()["total"]
        head = c.get("/v1/domains/street/vocabulary").json()
    return versions, audit, head


@pytest.fixture
def refused(d: Deployment) -> Iterator[Callable[..., httpx.Response]]:
    """Send a request; check it got a JSON error with ``status``, the service is alive
    and nothing stored changed."""
    before = _state(d)

    def send(status: int, method: str, path: str, token: str | None = "street:admin", **kw: Any):
        with d.client(token) as c:
            r = c.request(method, path, **kw)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert set(error) == {"code", "message"} and error["message"]
        assert "Traceback" not in r.text
        return r

    yield send
    assert d.server.alive()
    with d.client() as c:
        assert c.get("/healthz").status_code == 200
    assert _state(d) == before


def _jpeg(d: Deployment) -> bytes:
    return d.photos[0].read_bytes()


def test_not_an_image(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    r = refused(422, "POST", SEGMENT, files={"image": ("notes.jpg", b"hello, world", "image/jpeg")})
    assert "not an image" in r.json()["error"]["message"]


def test_truncated_image(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    half = _jpeg(d)[: len(_jpeg(d)) // 2]
    refused(422, "POST", SEGMENT, content=half, headers={"Content-Type": "image/jpeg"})


def test_decompression_bomb(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    buffer = io.BytesIO()
    Image.new("1", (12_000, 12_000)).save(buffer, "PNG")  # 144 Mpx in ~20 kB
    r = refused(
        422, "POST", SEGMENT, content=buffer.getvalue(), headers={"Content-Type": "image/png"}
    )
    assert "pixels" in r.json()["error"]["message"]


def test_empty_body(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    refused(400, "POST", SEGMENT, content=b"", headers={"Content-Type": "image/jpeg"})
    refused(400, "POST", SEGMENT, files={"other": ("x", b"1")})


def test_wrong_content_type(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    refused(415, "POST", SEGMENT, content=_jpeg(d), headers={"Content-Type": "text/plain"})
    refused(
        415, "POST", "/v1/domains/street/ingest", content=b"x", headers={"Content-Type": "text/csv"}
    )


def test_oversized_body(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    big = b"\xff" * (3 * 2**20)
    r = refused(413, "POST", SEGMENT, content=big, headers={"Content-Type": "image/jpeg"})
    assert "2,097,152 bytes" in r.json()["error"]["message"]

    def chunks() -> Iterator[bytes]:  # no Content-Length: counted as it streams
        for _ in range(48):
            yield b"\xff" * 2**16

    refused(413, "POST", SEGMENT, content=chunks(), headers={"Content-Type": "image/jpeg"})


def test_unknown_domain(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    refused(404, "GET", "/v1/domains/atlantis", token="deployment:admin")
    refused(
        404,
        "POST",
        "/v1/domains/atlantis/segment",
        token="deployment:admin",
        content=_jpeg(d),
        headers={"Content-Type": "image/jpeg"},
    )


@pytest.mark.parametrize(
    ("version", "status", "words"),
    [
        ("2", 409, "failed, not published"),
        ("99", 404, "no version 99"),
        ("0", 404, "no version 0"),
        ("-1", 404, "no version -1"),
        ("one", 422, "valid integer"),
    ],
)
def test_bad_versions(
    d: Deployment, refused: Callable[..., httpx.Response], version: str, status: int, words: str
) -> None:
    r = refused(
        status,
        "POST",
        SEGMENT,
        params={"version": version},
        content=_jpeg(d),
        headers={"Content-Type": "image/jpeg"},
    )
    assert words in r.json()["error"]["message"]
    refused(status, "GET", "/v1/domains/street/vocabulary", params={"version": version})


def test_unknown_class(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    r = refused(404, "POST", "/v1/domains/street/classes/unicorn/retire", json={})
    assert "unicorn" in r.json()["error"]["message"]


def test_malformed_json(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    refused(
        422,
        "POST",
        "/v1/domains/street/purge",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )
    refused(
        422,
        "POST",
        "/v1/domains/street/ingest",
        content=b"{not json",
        headers={"Content-Type": "application/json"},
    )


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as z:
        for name, data in members.items():
            z.writestr(name, data)
    return buffer.getvalue()


def _tar_with_link(target: str) -> bytes:
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:gz") as t:
        info = tarfile.TarInfo("data/escape")
        info.type, info.linkname = tarfile.SYMTYPE, target
        t.addfile(info)
    return buffer.getvalue()


@pytest.mark.parametrize(
    "archive",
    [
        _zip({"../evil.txt": b"x"}),
        _zip({"/etc/evil.txt": b"x"}),
        _tar_with_link("/etc/passwd"),
        _zip({"zeros.bin": bytes(3 * 2**20)}),  # unpacks ~1000x its size
    ],
    ids=["dotdot", "absolute", "link", "bomb"],
)
def test_hostile_archives(
    d: Deployment, refused: Callable[..., httpx.Response], archive: bytes
) -> None:
    refused(
        422,
        "POST",
        "/v1/domains/street/ingest",
        token="street:write",
        files={"archive": ("data.bin", archive)},
        data={"request": '{"format": "voc"}'},
    )
    assert not any((d.settings.home / "uploads").glob("*/data"))


def test_another_domains_token(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    refused(404, "GET", "/v1/domains/street", token="harbour:admin")
    refused(404, "POST", "/v1/domains/street/classes/person/retire", token="harbour:admin", json={})


@pytest.fixture
def dead_tokens(d: Deployment) -> list[str]:
    """An expired and a revoked token of ``street`` (made before `refused` looks)."""
    with Workspace(d.settings) as ws:
        _, expired = create_token(ws, "street", "admin", actor="t", expires_days=1e-9)
        info, revoked = create_token(ws, "street", "admin", actor="t")
        revoke_token(ws, info.id, actor="t")
    return [expired, revoked]


def test_expired_and_revoked_tokens(
    d: Deployment, dead_tokens: list[str], refused: Callable[..., httpx.Response]
) -> None:
    for secret in dead_tokens:
        d.tokens["tmp"] = secret
        r = refused(401, "POST", "/v1/domains/street/classes/person/retire", token="tmp", json={})
        assert r.headers["www-authenticate"] == "Bearer"


def test_a_write_with_a_query_token(d: Deployment, refused: Callable[..., httpx.Response]) -> None:
    refused(403, "POST", "/v1/domains/street/classes/person/retire", token="street:query", json={})
    refused(
        403,
        "POST",
        "/v1/domains/street/ingest",
        token="street:query",
        json={"dataset": "voc", "format": "voc"},
    )
    refused(
        403,
        "POST",
        "/v1/domains/street/purge",
        token="street:write",
        json={"class": "person", "confirm": "street"},
    )
