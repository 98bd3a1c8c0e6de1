"""The service as a tenant sees it: a real `knnvocab serve` on loopback, httpx, on a SQLite
and on a Postgres catalog."""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from typer.testing import CliRunner

from knnvocab.cli import app
from knnvocab.client import Client, ServiceError
from knnvocab.tokens import create_token, revoke_token
from knnvocab.workspace import Workspace
from tests.service.conftest import Deployment

pytestmark = pytest.mark.slow


def _cli(d: Deployment, *args: str | Path) -> str:
    env = {
        "KNNVOCAB_HOME": str(d.settings.home),
        "KNNVOCAB_DATABASE_URL": d.settings.database_url,
        "KNNVOCAB_USER": "tester",
    }
    result = CliRunner().invoke(app, [str(a) for a in args], env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_segment_gives_the_labels_knnvocab_segment_gives(d: Deployment, tmp_path: Path) -> None:
    photo = d.photos[0]
    with d.client("street:query") as c:
        r = c.post(
            "/v1/domains/street/segment",
            params={"exact": "true"},
            files={"image": (photo.name, photo.read_bytes(), "image/jpeg")},
        )
        assert r.status_code == 200, r.text
        served = r.json()
        raw = c.post(
            "/v1/domains/street/segment",
            params={"exact": "true"},
            content=photo.read_bytes(),
            headers={"Content-Type": "image/jpeg", "Accept": "image/png"},
        )
    # the CLI may not open the store the service owns: segment from a copy of the home
    assert raw.headers["content-type"] == "image/png"
    served_png = np.asarray(Image.open(io.BytesIO(raw.content)))
    out = tmp_path / "out"
    copy = _home_copy(d, tmp_path)
    result = CliRunner().invoke(
        app, ["segment", "street", str(photo), "--out", str(out), "--exact"], env=copy
    )
    assert result.exit_code == 0, result.output
    written = json.loads((out / f"{photo.stem}.json").read_text())
    assert [s["label"] for s in served["segments"]] == [s["label"] for s in written["segments"]]
    assert served["segments"] == written["segments"]
    assert served["version"] == written["version"] == 1
    assert np.array_equal(served_png, np.asarray(Image.open(out / f"{photo.stem}.png")))


def _home_copy(d: Deployment, tmp_path: Path) -> dict[str, str]:
    """A copy of the deployment's home (SQLite) or of its store with the same Postgres
    catalog, read while the service holds the original."""
    import shutil

    home = tmp_path / "copy"
    shutil.copytree(d.settings.home, home, ignore=shutil.ignore_patterns("*.lock", "service.json"))
    db = d.settings.database_url
    if db.startswith("sqlite"):
        db = f"sqlite:///{home / 'catalog.sqlite3'}"
    return {"KNNVOCAB_HOME": str(home), "KNNVOCAB_DATABASE_URL": db, "KNNVOCAB_USER": "t"}


def test_reads(d: Deployment) -> None:
    with Client(d.url, d.tokens["street:query"]) as c:
        assert c.domain("street")["head_version"] == 1
        versions = c.versions("street")
        assert [(v["number"], v["state"]) for v in versions] == [(1, "published"), (2, "failed")]
        vocab = c.vocabulary("street", 1)
        assert {cl["name"] for cl in vocab["classes"]} >= {"person"}
        assert c.diff("street", 1, 1)["domain"] == "street"
        events = c.audit("street", action="ingest")
        assert [e["action"] for e in events] == ["ingest.begin", "ingest.publish"]
        assert [x["name"] for x in c.domains()] == ["street"]
    with d.client("street:query") as h:
        page = h.get("/v1/domains/street/audit", params={"limit": 1, "offset": 1}).json()
        assert page["limit"] == 1 and page["offset"] == 1 and len(page["items"]) == 1
        assert page["next"] == 2 and page["total"] >= 3
        first = h.get("/v1/domains/street/versions", params={"limit": 1}).json()
        last = h.get("/v1/domains/street/versions", params={"offset": 1}).json()
        assert [v["number"] for v in first["items"] + last["items"]] == [1, 2]
        assert (first["total"], first["next"], last["next"]) == (2, 1, None)


def test_explain_names_the_neighbours(d: Deployment) -> None:
    with Client(d.url, d.tokens["street:query"]) as c:
        seg = c.segment("street", d.photos[1])
        chosen = next(s for s in seg["segments"] if s["source"] == "retrieval")
        report = c.explain("street", d.photos[1], segment=chosen["id"])
    assert report["decision"]["label"] == chosen["label"]
    assert report["neighbours"] and all("dataset" in n for n in report["neighbours"])
    assert report["version"] == 1 and report["rule"].startswith("max P_ret")


def test_another_tenants_domain_is_indistinguishable_from_none(d: Deployment) -> None:
    with d.client("harbour:admin") as c:
        theirs = c.get("/v1/domains/street")
        missing = c.get("/v1/domains/nowhere")
        theirs_seg = c.post(
            "/v1/domains/street/segment", content=b"x", headers={"Content-Type": "image/png"}
        )
        missing_seg = c.post(
            "/v1/domains/nowhere/segment", content=b"x", headers={"Content-Type": "image/png"}
        )
    assert theirs.status_code == missing.status_code == 404
    assert theirs.content.replace(b"street", b"X") == missing.content.replace(b"nowhere", b"X")
    assert theirs_seg.content.replace(b"street", b"X") == missing_seg.content.replace(
        b"nowhere", b"X"
    )
    drop = {"content-length", "date"}
    assert {k: v for k, v in theirs.headers.items() if k not in drop} == {
        k: v for k, v in missing.headers.items() if k not in drop
    }


def test_tokens_scopes_and_revocation(d: Deployment) -> None:
    with d.client() as anonymous:
        assert anonymous.get("/v1/domains/street").status_code == 401
    with d.client("street:query") as c:
        r = c.post("/v1/domains/street/classes/person/retire", json={})
        assert r.status_code == 403 and r.json()["error"]["code"] == "forbidden"
        assert c.get("/metrics").status_code == 403
    with Workspace(d.settings) as ws:
        info, secret = create_token(ws, "street", "query", actor="t", name="short-lived")
        with Client(d.url, secret) as c:
            assert c.domain("street")["name"] == "street"
            revoke_token(ws, info.id, actor="t")
            with pytest.raises(ServiceError) as refused:
                c.domain("street")
        assert refused.value.status == 401
        _, expired = create_token(ws, "street", "query", actor="t", expires_days=1e-9)
    with Client(d.url, expired) as c, pytest.raises(ServiceError) as late:
        c.domain("street")
    assert late.value.status == 401
    with Client(d.url, "knv_" + "A" * 43) as c, pytest.raises(ServiceError) as bad:
        c.domain("street")
    assert bad.value.status == 401


def test_health_metrics_and_docs(d: Deployment) -> None:
    with d.client() as c:
        assert c.get("/healthz").json() == {"status": "ok"}
        assert c.get("/readyz").json()["status"] == "ready"
        assert c.get("/openapi.json").json()["info"]["title"] == "knnvocab"
        assert c.get("/docs").status_code == 200
    with d.client("deployment:query") as c:
        text = c.get("/metrics").text
    assert 'route="/v1/domains/{domain}"' in text
    assert "street" not in text and "harbour" not in text and "nowhere" not in text
    assert "knnvocab_segment_queue_depth" in text


def test_the_cli_reads_and_segments_through_a_server(d: Deployment, tmp_path: Path) -> None:
    env = {"KNNVOCAB_SERVER_URL": d.url, "KNNVOCAB_TOKEN": d.tokens["street:query"]}
    env |= {"KNNVOCAB_HOME": str(tmp_path / "elsewhere")}  # nothing local is read
    runner = CliRunner()
    log = runner.invoke(app, ["vocab", "log", "street"], env=env)
    assert log.exit_code == 0, log.output
    assert [v["number"] for v in json.loads(log.output)["versions"]] == [1, 2]
    shown = runner.invoke(app, ["vocab", "show", "street", "--version", "1"], env=env)
    assert json.loads(shown.output)["version"] == 1
    events = runner.invoke(app, ["audit", "street", "--action", "ingest"], env=env)
    assert [e["action"] for e in json.loads(events.output)] == ["ingest.begin", "ingest.publish"]
    out = tmp_path / "out"
    seg = runner.invoke(app, ["segment", "street", str(d.photos[0]), "-o", str(out)], env=env)
    assert seg.exit_code == 0, seg.output
    assert json.loads((out / f"{d.photos[0].stem}.json").read_text())["version"] == 1
    assert (out / f"{d.photos[0].stem}.png").read_bytes().startswith(b"\x89PNG")
    why = runner.invoke(app, ["explain", "street", str(d.photos[0]), "--segment", "1"], env=env)
    assert json.loads(why.output)["segment"]["id"] == 1, why.output
    other = runner.invoke(app, ["vocab", "log", "harbour"], env=env)
    assert other.exit_code == 1 and "domain 'harbour' does not exist" in other.output
