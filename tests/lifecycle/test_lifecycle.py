"""The whole lifecycle on SQLite and Postgres: ingest v1, ingest v2, retire, restore, purge
a dataset, purge a class — with `vocab show` / `vocab diff` and the store's visible counts
checked against the catalog at every version."""

from __future__ import annotations

import json
from pathlib import Path

from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.segmenter import Segmenter
from knnvocab.history import count_versions, version_log, vocab_diff, vocabulary
from knnvocab.imageio import load_rgb
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, doctor, purge, restore, retire
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.cli.conftest import Run
from tests.data import voc_dataset
from tests.lifecycle.helpers import assert_every_version_matches, collection_of


def live(ws: Workspace, version: int) -> dict[str, int]:
    return {c.name: c.instances for c in vocabulary(ws, "k", version).live}


PHOTO = Path(
    "/usr/share/doc/labelme-examples/examples/instance_segmentation/data_dataset_voc/JPEGImages/2011_000006.jpg"
)


def neighbour_sets(body: dict[str, object]) -> list[list[tuple[object, ...]]]:
    keys = ("label", "similarity", "dataset", "image", "instance")
    segments = body["segments"]
    assert isinstance(segments, list)
    return [sorted(tuple(n[k] for k in keys) for n in s["neighbours"]) for s in segments]


def segment_at(ws: Workspace, version: int) -> dict[str, object]:
    """`segment --version N` of a real photo, checked against the vocabulary at N: only
    its live classes are predicted, and the neighbours (k above the domain's size, so all
    of them) are exactly the points visible at N."""
    params = SegmentParams(threshold=0.0, k=500, n_segments=24)
    seg = Segmenter(ws, "k", version, params).segment(load_rgb(PHOTO), PHOTO)
    names = set(live(ws, version))
    visible = ws.store.count(collection_of(ws, "k"), PointFilter("k", visible_at=version))
    assert {s.label for s in seg.segments} <= names
    for s in seg.segments:
        assert len(s.neighbours) == visible, (version, s.id)
        assert all(n.added_in <= version and n.label in names for n in s.neighbours)
    body: dict[str, object] = seg.to_json(evidence=500)
    return body


def test_full_lifecycle(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, tmp_path: Path, cli: Run
) -> None:
    v1 = ingest(
        ws,
        "k",
        labelme_voc,
        IngestOptions("voc", dataset_name="photos"),
        tiny_model,
        actor="tester",
    )
    v2 = ingest(
        ws,
        "k",
        voc_dataset(tmp_path / "voc"),
        IngestOptions("voc", dataset_name="more"),
        actor="tester",
    )
    assert (v1.version, v2.version) == (1, 2)
    person = v1.instances_added["person"] + v2.instances_added["person"]
    assert live(ws, 2)["person"] == person
    before = assert_every_version_matches(ws, "k")
    at2 = segment_at(ws, 2)
    assert any(n["label"] == "person" for s in at2["segments"] for n in s["neighbours"])  # type: ignore[attr-defined]

    # retire: hidden from version 3 on, still there at version 2
    retired = retire(ws, "k", "person", "consent withdrawn", actor="tester")
    assert (retired.version, retired.points) == (3, person)
    assert "person" not in live(ws, 3) and live(ws, 2)["person"] == person
    d = vocab_diff(ws, "k", 2, 3)
    assert (d.retired, d.added, d.restored, d.removed) == (["person"], [], [], [])
    assert d.count_changes == {"person": (person, 0)}
    seen = assert_every_version_matches(ws, "k")
    assert seen[2] == before[2]
    assert segment_at(ws, 2) == at2  # time travel: version 2 is exactly as it was
    segment_at(ws, 3)  # no person predicted, no person neighbour

    # restore: visible again from version 4, as new points; version 3 unchanged
    restored = restore(ws, "k", "person", "consent given again", actor="tester")
    assert (restored.version, restored.points) == (4, person)
    assert live(ws, 4) == live(ws, 2)
    assert vocab_diff(ws, "k", 3, 4).restored == ["person"]
    d = vocab_diff(ws, "k", 2, 4)
    assert (d.retired, d.restored, d.count_changes) == ([], [], {})
    seen = assert_every_version_matches(ws, "k")
    assert seen[4] == seen[2] and seen[3] != seen[2]
    check_restored_points(ws, person)
    at4 = segment_at(ws, 4)
    assert segment_at(ws, 2) == at2
    # the restored copies stand in for the originals: same classes, same similarities
    # (ties between identical photos of two datasets may come back in another order)
    assert neighbour_sets(at4) == neighbour_sets(at2)

    # purge a dataset: gone from every version; versions that showed it are flagged
    photos = purge(ws, "k", dataset="photos", message="request #42", actor="tester")
    assert photos.version == 5
    # its points, and the restored copies of its person points
    assert photos.points == v1.total_added + v1.instances_added["person"]
    assert photos.versions_not_reproducible == [1, 2, 3, 4]
    after = segment_at(ws, 2)
    assert after["reproducible"] is False and at2["reproducible"] is True
    segment_at(ws, 5)
    assert live(ws, 5)["person"] == v2.instances_added["person"]
    d = vocab_diff(ws, "k", 4, 5)
    assert d.removed == [] and d.count_changes["person"] == (person, v2.instances_added["person"])

    # purge a class: it leaves the vocabulary at version 6; earlier versions still list it
    bus = purge(ws, "k", class_name="bus", actor="tester")
    assert (bus.version, bus.per_class) == (6, {"bus": v2.instances_added["bus"]})
    assert bus.versions_not_reproducible == [2, 3, 4, 5]
    assert "bus" not in {c.name for c in vocabulary(ws, "k", 6).classes}
    assert "bus" in live(ws, 5)
    assert vocab_diff(ws, "k", 5, 6).removed == ["bus"]
    assert vocab_diff(ws, "k", 1, 6).removed == ["bus"]
    assert_every_version_matches(ws, "k")

    # re-ingesting the dataset adds nothing: its points are stored, its buses purged
    again = ingest(
        ws, "k", tmp_path / "voc", IngestOptions("voc", dataset_name="more"), actor="tester"
    )
    assert (again.version, again.total_added) == (7, 0)
    assert again.skipped["retired class"] == v2.instances_added["bus"]
    assert "bus" not in {c.name for c in vocabulary(ws, "k", 7).classes}
    assert_every_version_matches(ws, "k")

    check_log_and_audit(ws, cli)
    assert doctor(ws, "k", actor="tester").findings == []


def check_restored_points(ws: Workspace, person: int) -> None:
    collection = collection_of(ws, "k")
    copies = list(ws.store.scroll(collection, PointFilter("k", added_in=4), with_vectors=True))
    originals = {p.id: p for p in ws.store.scroll(collection, PointFilter("k", removed_in=3))}
    assert len(copies) == len(originals) == person
    for copy in copies:
        assert copy.payload.restored_from is not None
        original = originals[copy.payload.restored_from]
        assert copy.id not in originals
        assert copy.payload.removed_in is None
        same = ("class_id", "label", "dataset", "image", "instance")
        assert {k: getattr(copy.payload, k) for k in same} == {
            k: getattr(original.payload, k) for k in same
        }


def check_log_and_audit(ws: Workspace, cli: Run) -> None:
    log = version_log(ws, "k")
    assert [(r.operation, r.reproducible) for r in log] == [
        ("ingest", False),
        ("ingest", False),
        ("retire", False),
        ("restore", False),
        ("purge", False),
        ("purge", True),
        ("ingest", True),
    ]
    assert (log[2].classes_retired, log[3].classes_restored) == (["person"], ["person"])
    assert log[2].target == {"class": "person"} and log[4].target == {"dataset": "photos"}
    assert log[5].classes_purged == ["bus"] and log[5].points_purged["bus"] > 0
    # a page of the log is that slice of the whole log (diffs from the version before it)
    for offset in range(len(log)):
        assert version_log(ws, "k", offset, 2) == log[offset : offset + 2]
    assert count_versions(ws, "k") == len(log)
    tombstones = audit_log(ws, "k", action="purge")
    purges = [e for e in tombstones if e.action == "purge"]
    assert [e.detail["name"] for e in purges] == ["photos", "bus"]
    assert purges[0].detail["message"] == "request #42"
    assert purges[0].detail["versions_not_reproducible"] == [1, 2, 3, 4]
    assert all(e.actor == "tester" for e in tombstones)
    # the CLI shows the same (catalog only: the store stays open in this process)
    shown = json.loads(cli("vocab", "show", "k", "--version", "3", "--json").stdout)
    assert "person" not in {c["name"] for c in shown["classes"] if c["live"]}
    logged = json.loads(cli("vocab", "log", "k", "--json").stdout)["versions"]
    assert [v["operation"] for v in logged] == [r.operation for r in log]
    text = cli("vocab", "log", "k").stdout
    assert "classes purged: bus" in text and "not reproducible" in text
    diff = cli("vocab", "diff", "k", "5", "6").stdout
    assert "purged (1): bus" in diff
