"""Export a domain with a real history and import it into a fresh deployment, on SQLite
and on Postgres: the history, the audit log, the counts and every published version's
`segment --exact` output come back identical."""

from __future__ import annotations

import json
import tarfile
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from knnvocab.config import Settings
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import doctor
from knnvocab.portable import import_domain
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.portable.conftest import VERSIONS, audit_rows, run_cli

pytestmark = pytest.mark.slow

PHOTOS = Path(
    "/usr/share/doc/labelme-examples/examples/instance_segmentation/data_dataset_voc/JPEGImages"
)


def _manifest(archive: Path) -> bytes:
    with tarfile.open(archive) as tar:
        member = tar.extractfile("manifest.json")
        assert member is not None
        return member.read()


def history(settings: Settings, domain: str) -> list[dict[str, Any]]:
    with Workspace(settings) as ws:
        return [r.to_json() for r in version_log(ws, domain)]


def segments(settings: Settings, domain: str, photos: Path, out: Path) -> dict[str, Any]:
    """`segment --exact --version N` of every photo at every version: file -> JSON."""
    found: dict[str, Any] = {}
    for n in VERSIONS:
        folder = out / f"v{n}"
        args = ("segment", domain, photos, "--out", folder, "--exact", "--version", str(n))
        result = run_cli(settings, *args, "--n-segments", "24")
        assert result.exit_code == 0, result.output
        for path in sorted(folder.glob("*.json")):
            found[f"v{n}/{path.name}"] = path.read_bytes()
    assert len(found) == 3 * len(VERSIONS)
    return found


def renamed(files: dict[str, bytes], domain: str) -> dict[str, Any]:
    """Segment JSONs without the domain's name and the point ids (which include it)."""
    out = {}
    for name, raw in files.items():
        body = json.loads(raw)
        assert body.pop("domain") == domain
        for s in body["segments"]:
            for n in s["neighbours"]:
                n.pop("point_id")
        out[name] = body
    return out


def test_round_trip(source: Settings, archive: Path, target: Settings, tmp_path: Path) -> None:
    result = run_cli(target, "import", archive, "--json")
    assert result.exit_code == 0, result.output
    done = json.loads(result.stdout)
    assert (done["domain"], done["versions"], done["already"]) == ("k", 5, False)

    assert history(target, "k") == history(source, "k")
    imported = audit_rows(target, "k")
    assert imported[:-1] == audit_rows(source, "k")
    assert imported[-1]["action"] == "domain.import" and imported[-1]["actor"] == "importer"
    assert imported[-1]["detail"]["archive_sha256"] == done["archive_sha256"]
    with Workspace(target) as ws:
        assert doctor(ws).ok
    photos = PHOTOS
    # byte for byte, every photo at every published version
    assert segments(target, "k", photos, tmp_path / "t") == segments(
        source, "k", photos, tmp_path / "s"
    )

    again = run_cli(target, "import", archive)
    assert again.exit_code == 0, again.output
    assert "already imported" in again.output
    assert len(audit_rows(target, "k")) == len(imported)


def test_the_archive_is_open_to_any_parquet_reader(archive: Path, tmp_path: Path) -> None:
    with tarfile.open(archive) as tar:
        names = tar.getnames()
        assert names[-1] == "manifest.json" and names[0].startswith("catalog/")
        tar.extractall(tmp_path / "x", filter="data")
    manifest = json.loads((tmp_path / "x" / "manifest.json").read_text())
    assert (manifest["format"], manifest["format_version"]) == ("knnvocab-domain", 1)
    [member] = [m for m in manifest["members"] if m.startswith("points/")]
    table = pq.read_table(tmp_path / "x" / member)
    assert table.num_rows == sum(manifest["counts"]["points"].values())
    assert set(table.column("domain").to_pylist()) == {"k"}
    assert table.schema.field("vector").type.value_type == "float"


def test_import_as_another_name(
    source: Settings, archive: Path, target: Settings, tmp_path: Path
) -> None:
    with Workspace(target) as ws:
        import_domain(ws, archive, actor="importer", name="k2")
        assert doctor(ws).ok
    assert history(target, "k2") == history(source, "k")
    assert audit_rows(target, "k2")[:-1] == audit_rows(source, "k")
    photos = PHOTOS

    assert renamed(segments(target, "k2", photos, tmp_path / "t"), "k2") == renamed(
        segments(source, "k", photos, tmp_path / "s"), "k"
    )
    with Workspace(target) as ws:
        # ids were recomputed for the new name: an ingest of the same photos knows them
        again = ingest(
            ws,
            "k2",
            PHOTOS.parent,
            IngestOptions("voc", dataset_name="photos", min_area=1),
            actor="importer",
        )
        assert again.total_added == 0
        collection = next(iter(json.loads(_manifest(archive))["counts"]["points"]))
        copies = [
            p
            for p in ws.store.scroll(collection, PointFilter("k2"))
            if p.payload.restored_from is not None
        ]
        links = [str(p.payload.restored_from) for p in copies]
        assert copies and ws.store.existing(collection, "k2", links) == set(links)
    # the source's own deployment takes a copy under a new name beside the original
    with Workspace(source) as ws:
        import_domain(ws, archive, actor="importer", name="k3")
        assert doctor(ws).ok
    assert history(source, "k3") == history(source, "k")
