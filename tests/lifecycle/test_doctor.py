"""`doctor` finds planted drift between the catalog and the store, and `--repair` fixes
it (each fix audited): a deleted point, orphan and unknown points, a hidden point of a
failed version, a crashed pending version, a shard of a domain the catalog lacks."""

from __future__ import annotations

import json
import os
import subprocess
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np

from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.versions import begin_version, close_version
from knnvocab.embed.spec import EncoderSpec
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, doctor, retire, rollback_pending
from knnvocab.store.base import PointFilter, StoredPoint
from knnvocab.workspace import Workspace
from tests.cli.conftest import Run
from tests.lifecycle.helpers import assert_every_version_matches, class_id, collection_of


def dead_pid() -> int:
    proc = subprocess.run(["true"], check=True)
    del proc
    child = subprocess.Popen(["true"])
    child.wait()
    return child.pid


def open_version(ws: Workspace, state: str | None, pid: int) -> int:
    """A retire version left ``pending`` by process ``pid``, or closed as ``state``."""
    with ws.catalog.session() as s:
        domain = get_domain(s, "k")
        assert domain.encoder is not None
        v = begin_version(s, domain, "retire", domain.encoder, "x", params={"pid": pid})
        if state is not None:
            close_version(s, domain, v, state, "planted")
        return v.number


def plant(
    ws: Workspace, collection: str, p: StoredPoint, tag: str = "beef", **payload: Any
) -> StoredPoint:
    """A copy of ``p`` (id ending in ``tag``) with other payload values, inserted."""
    point = replace(p, id=f"{p.id[:-4]}{tag}", payload=replace(p.payload, **payload))
    ws.store.insert(collection, point.payload.domain, [point])
    return point


def plant_drift(ws: Workspace) -> None:
    collection = collection_of(ws, "k")
    points = list(ws.store.scroll(collection, PointFilter("k", live=True), with_vectors=True))
    by_label = {p.payload.label: p for p in points}

    def of(label: str) -> PointFilter:
        return PointFilter("k", class_ids=(by_label[label].payload.class_id,), live=True)

    persons = [p for p in points if p.payload.label == "person"]
    ws.store.delete(collection, of("person"))
    ws.store.insert(collection, "k", persons[1:])  # one person point is lost
    failed = open_version(ws, "failed", os.getpid())  # version 3
    plant(ws, collection, by_label["chair"], added_in=failed)  # an orphan
    ws.store.set_removed_in(collection, of("bus"), failed)  # hidden by it
    plant(ws, collection, by_label["bottle"], added_in=42)  # of no version
    plant(ws, collection, by_label["sofa"], class_id=999)  # of no class
    crashed = open_version(ws, None, dead_pid())  # version 4, its process is gone
    plant(ws, collection, by_label["_background_"], added_in=crashed)
    ws.store.set_removed_in(collection, of("sofa"), crashed)
    plant(ws, collection, by_label["sofa"], "babe", domain="ghost")  # a domain the catalog lacks
    ws.store.flush()


def test_doctor_finds_and_repairs_planted_drift(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, cli: Run
) -> None:
    ingest(
        ws,
        "k",
        labelme_voc,
        IngestOptions("voc", dataset_name="photos"),
        tiny_model,
        actor="tester",
    )
    retire(ws, "k", "car", actor="tester")
    assert doctor(ws, actor="tester").findings == []
    plant_drift(ws)
    report = doctor(ws, actor="tester")
    kinds = sorted((f.kind, f.version) for f in report.findings)
    assert kinds == [
        ("dangling-removal", 3),
        ("dead-pending", 4),
        ("missing", 1),
        ("missing", 2),
        ("orphan", 3),
        ("unknown-class", None),
        ("unknown-domain", None),
        ("unknown-version", 42),
    ]
    assert not report.ok
    missing = [f for f in report.findings if f.kind == "missing"]
    assert all(f.classes == {"person": 1} for f in missing)
    ws.close()  # the embedded store serves one workspace at a time: the CLI's now

    found = cli("doctor", "--json")
    assert found.exit_code == 1, found.output
    assert json.loads(found.stdout)["ok"] is False
    repaired = cli("doctor", "--repair")
    assert repaired.exit_code == 0, repaired.output
    assert "roll it back: done" in repaired.stdout
    again = cli("doctor")
    assert (again.exit_code, "consistent: k" in again.stdout) == (0, True), again.output

    check_repaired(ws)


def check_repaired(ws: Workspace) -> None:
    log = version_log(ws, "k")
    assert [(r.state, r.reproducible) for r in log] == [
        ("published", False),
        ("published", False),
        ("failed", True),
        ("rolled_back", True),
        ("published", True),  # the repair version: the store's counts, one person less
    ]
    assert log[-1].operation == "repair" and log[-1].instances_removed == {"person": 1}
    assert_every_version_matches(ws, "k")
    collection = collection_of(ws, "k")
    assert ws.store.count(collection, PointFilter("k", live=False)) == 1  # the retired car
    assert ws.store.domains(collection) == ["k"]
    repairs = audit_log(ws, action="doctor.repair")
    assert len(repairs) == 8
    assert [e.version for e in audit_log(ws, "k", action="repair.publish")] == [5]
    assert {e.detail["what"] for e in repairs} >= {"missing", "orphan", "unknown-domain"}

    live = open_version(ws, None, os.getpid())  # a live pending version is left alone
    report = doctor(ws, "k", repair=True, actor="tester")
    assert [(f.kind, f.problem, f.repaired) for f in report.findings] == [("pending", False, False)]
    assert report.ok and version_log(ws, "k")[-1].state == "pending"
    assert live == 6
    np.testing.assert_equal(len(audit_log(ws, action="doctor.repair")), 8)
    rollback_pending(ws, "k", actor="tester")


def test_a_lost_point_is_not_counted_again_by_later_versions(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    photos = IngestOptions("voc", dataset_name="photos")
    ingest(ws, "k", labelme_voc, photos, tiny_model, actor="tester")
    collection = collection_of(ws, "k")
    persons = PointFilter("k", class_ids=(class_id(ws, "k", "person"),))
    kept = list(ws.store.scroll(collection, persons, with_vectors=True))[1:]
    ws.store.delete(collection, persons)
    ws.store.insert(collection, "k", kept)  # one person point is lost
    ws.store.flush()
    assert [f.kind for f in doctor(ws, "k", repair=True, actor="tester").findings] == ["missing"]
    assert [r.operation for r in version_log(ws, "k")] == ["ingest", "repair"]
    # the same photos again: the lost instance is embedded anew, nothing else
    again = ingest(ws, "k", labelme_voc, photos, actor="tester")
    assert (again.version, again.total_added) == (3, 1)
    assert doctor(ws, "k", actor="tester").findings == []
    assert [r.reproducible for r in version_log(ws, "k")] == [False, True, True]
    assert_every_version_matches(ws, "k")
