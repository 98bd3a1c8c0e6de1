"""Changes through the service — ingest jobs (a dataset under the data root, an uploaded
archive), cancel, retire, restore, purge — audited under the token's name; and the CLI's
changes on the same embedded home while the service owns its store (real processes)."""

from __future__ import annotations

import json
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from knnvocab.client import Client, ServiceError
from tests.service.conftest import Deployment
from tests.service.server import knnvocab_env

pytestmark = pytest.mark.slow


def _actors(c: Client, action: str) -> list[str]:
    return [e["actor"] for e in c.audit("street", action=action)]


def test_ingest_jobs_and_lifecycle_through_the_api(d: Deployment, tmp_path: Path) -> None:
    with Client(d.url, d.tokens["street:write"]) as c:
        job = c.ingest("street", dataset="voc", format="voc", min_area=1, message="via api")
        assert job["state"] in ("queued", "running") and job["domain"] == "street"
        done = c.wait(job["id"], timeout=120)
        assert done["state"] == "succeeded", done
        assert done["result"]["version"] == done["version"] == 3
        assert done["progress"]["done"] == done["progress"]["images"] == 3
        assert "street-write" in _actors(c, "ingest.publish")

        archive = tmp_path / "voc.zip"
        with zipfile.ZipFile(archive, "w") as z:
            for f in sorted(Path(d.data_root / "voc").resolve().rglob("*")):
                if f.is_file():
                    z.write(f, f"voc/{f.relative_to((d.data_root / 'voc').resolve())}")
        uploads = d.settings.home / "uploads"
        kept = set(uploads.iterdir()) if uploads.exists() else set()
        wrong = c.wait(c.ingest("street", archive=archive, format="coco")["id"], timeout=120)
        assert wrong["state"] == "failed" and wrong["error"]
        assert set(uploads.iterdir()) == kept  # a failed job's upload is removed whole
        uploaded = c.wait(c.ingest("street", archive=archive, format="voc", name="again")["id"])
        assert uploaded["state"] == "succeeded", uploaded
        assert uploaded["result"]["dataset"] == "again"

        retired = c.retire("street", "person", "not needed")
        restored = c.restore("street", "person")
        assert restored["version"] == retired["version"] + 1
        assert _actors(c, "retire.publish") == ["street-write"]
        with pytest.raises(ServiceError) as refused:
            c.purge("street", class_name="person")
        assert refused.value.status == 403
    with Client(d.url, d.tokens["harbour:write"]) as other:
        with pytest.raises(ServiceError) as hidden:
            other.job(job["id"])
        assert hidden.value.status == 404
    with Client(d.url, d.tokens["street:admin"]) as admin:
        purged = admin.purge("street", dataset="again")
        assert purged["operation"] == "purge" and purged["points"] > 0
        assert set(_actors(admin, "purge")) == {"street-admin"}


def test_a_queued_job_cancelled_never_runs(d: Deployment) -> None:
    with Client(d.url, d.tokens["street:write"]) as c:
        first = c.ingest("street", dataset="voc", format="voc", batch_size=1, name="first")
        second = c.ingest("street", dataset="voc", format="voc", name="second")
        c.cancel(second["id"])
        assert c.wait(second["id"], timeout=120)["state"] == "cancelled"
        assert c.wait(first["id"], timeout=120)["state"] == "succeeded"
        versions = c.versions("street")
    assert not [v for v in versions if v["state"] == "pending"]


def _cli(d: Deployment, *args: str) -> subprocess.CompletedProcess[str]:
    env = knnvocab_env(d.settings.home, d.settings.database_url, KNNVOCAB_USER="carol")
    command = [sys.executable, "-m", "knnvocab", *args]
    return subprocess.run(command, env=env, capture_output=True, text=True, timeout=300)


def test_the_cli_changes_an_embedded_home_the_service_owns(d: Deployment) -> None:
    voc = str((d.data_root / "voc").resolve())
    ingested = _cli(d, "ingest", "street", voc, "--format", "voc", "--dataset-name", "cli")
    assert ingested.returncode == 0, ingested.stderr
    assert "published street version" in ingested.stdout
    retired = _cli(d, "vocab", "retire", "street", "person", "-m", "from the cli")
    assert retired.returncode == 0, retired.stderr
    refused = _cli(d, "vocab", "purge", "street", "--dataset", "cli")
    assert refused.returncode == 1 and "--yes" in refused.stderr
    assert d.server.alive()
    with Client(d.url, d.tokens["street:query"]) as c:
        assert "carol" in _actors(c, "ingest.publish")
        assert _actors(c, "retire.publish")[-1] == "carol"
        seg = c.segment("street", d.photos[0])
    assert f"version {seg['version']}: class 'person' retired" in retired.stdout
    assert "person" not in {s["label"] for s in seg["segments"]}


def test_an_admin_token_manages_its_domains_tokens(d: Deployment) -> None:
    with d.client("street:admin") as admin:
        made = admin.post("/v1/domains/street/tokens", json={"scope": "query", "name": "kiosk"})
        assert made.status_code == 201, made.text
        secret = made.json()["token"]
        listed = admin.get("/v1/domains/street/tokens").json()["tokens"]
        assert "kiosk" in {t["name"] for t in listed} and "token" not in listed[0]
        with Client(d.url, secret) as kiosk:
            assert kiosk.domain("street")["name"] == "street"
            assert admin.delete("/v1/domains/street/tokens/kiosk").json()["revoked"]
            with pytest.raises(ServiceError) as revoked:
                kiosk.domain("street")
            assert revoked.value.status == 401
        assert admin.delete("/v1/domains/street/tokens/harbour-query").status_code == 404
    with d.client("street:query") as reader:
        assert reader.get("/v1/domains/street/tokens").status_code == 403
    with d.client("harbour:admin") as other:
        assert other.get("/v1/domains/street/tokens").status_code == 404


def test_a_backup_through_the_service_while_an_ingest_runs(d: Deployment, tmp_path: Path) -> None:
    with Client(d.url, d.tokens["street:write"]) as c:
        job = c.ingest("street", dataset="voc", format="voc", batch_size=1, name="during")
        folder = tmp_path / "backup"
        made = _cli(d, "backup", "create", str(folder), "--json")  # sent to the service
        assert made.returncode == 0, made.stderr
        assert c.wait(job["id"], timeout=120)["state"] == "succeeded"
    manifest = json.loads((folder / "backup.json").read_text())
    assert set(manifest["domains"]) == {"street", "harbour"}
    home = tmp_path / "restored"
    env = knnvocab_env(home, f"sqlite:///{home / 'catalog.sqlite3'}")
    restored = subprocess.run(
        [sys.executable, "-m", "knnvocab", "backup", "restore", str(folder)],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert restored.returncode == 0, restored.stderr
    head = manifest["domains"]["street"]["head_version"]
    shown = subprocess.run(
        [
            sys.executable,
            "-m",
            "knnvocab",
            "vocab",
            "show",
            "street",
            "--version",
            str(head),
            "--json",
        ],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    with Client(d.url, d.tokens["street:query"]) as c:
        assert json.loads(shown.stdout)["classes"] == c.vocabulary("street", head)["classes"]
