"""A lifecycle operation that fails or dies half-way leaves nothing half-done; wrong
requests are refused before anything changes; a busy domain is refused clearly."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import (
    ConfigError,
    DomainBusyError,
    NotFoundError,
    StoreError,
    VersionStateError,
)
from knnvocab.history import version_log, vocabulary
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, purge, restore, retire, rollback_pending
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.lifecycle.helpers import assert_every_version_matches, class_id, collection_of


@pytest.fixture
def kitchen(settings: Settings, tiny_model: EncoderSpec, labelme_voc: Path) -> Iterator[Workspace]:
    """Domain ``k`` with version 1: the three labelme photos (6 persons, 2 buses, …)."""
    with Workspace(settings) as ws:
        ingest(
            ws,
            "k",
            labelme_voc,
            IngestOptions("voc", dataset_name="photos"),
            tiny_model,
            actor="tester",
        )
        yield ws


def states(ws: Workspace) -> list[tuple[int, str]]:
    return [(r.number, r.state) for r in version_log(ws, "k")]


def broken(*args: Any, **kwargs: Any) -> None:
    raise RuntimeError("catalog went away")


def test_a_failed_retire_or_restore_is_undone(
    kitchen: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, collection = kitchen, collection_of(kitchen, "k")
    with monkeypatch.context() as m:
        m.setattr("knnvocab.changes.change.publish_version", broken)
        with pytest.raises(RuntimeError, match="went away"):
            retire(ws, "k", "person", actor="tester")
    assert states(ws) == [(1, "published"), (2, "failed")]
    assert ws.store.count(collection, PointFilter("k", live=False)) == 0
    assert vocabulary(ws, "k").version == 1
    retire(ws, "k", "person", actor="tester")  # version 3
    with monkeypatch.context() as m:
        m.setattr("knnvocab.changes.change.publish_version", broken)
        with pytest.raises(RuntimeError, match="went away"):
            restore(ws, "k", "person", actor="tester")
    assert states(ws)[-1] == (4, "failed")
    assert ws.store.count(collection, PointFilter("k", added_in=4)) == 0
    assert restore(ws, "k", "person", actor="tester").version == 5
    assert_every_version_matches(ws, "k")
    failures = [e.action for e in audit_log(ws, "k") if e.action.endswith(".fail")]
    assert failures == ["retire.fail", "restore.fail"]
    assert version_log(ws, "k")[1].error == "RuntimeError: catalog went away"


def test_a_change_killed_half_way_is_rolled_back(
    kitchen: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The process dies after changing the store (no clean-up runs): rollback undoes it."""
    ws, collection = kitchen, collection_of(kitchen, "k")
    monkeypatch.setattr("knnvocab.changes.change.fail", lambda *a: None)
    for operation, number, touched in (
        (retire, 2, PointFilter("k", removed_in=2)),
        (restore, 4, PointFilter("k", added_in=4)),
    ):
        if operation is restore:
            retire(ws, "k", "person", actor="tester")  # version 3, for the restore to undo
        with monkeypatch.context() as m:
            m.setattr("knnvocab.changes.change.publish_version", broken)
            with pytest.raises(RuntimeError):
                operation(ws, "k", "person", actor="tester")
        assert states(ws)[-1] == (number, "pending")
        assert ws.store.count(collection, touched) == 6
        assert rollback_pending(ws, "k", actor="tester") == number
        assert ws.store.count(collection, touched) == 0
        assert states(ws)[-1] == (number, "rolled_back")
        assert_every_version_matches(ws, "k")
    rollbacks = audit_log(ws, "k", action="version.rollback")
    assert [(e.version, e.detail["operation"]) for e in rollbacks] == [
        (2, "retire"),
        (4, "restore"),
    ]


def test_a_purge_failing_half_way_says_so(
    kitchen: Workspace, monkeypatch: pytest.MonkeyPatch
) -> None:
    ws, collection = kitchen, collection_of(kitchen, "k")
    real_delete = ws.store.delete
    person = class_id(ws, "k", "person")

    def half_delete(coll: str, flt: PointFilter) -> None:
        real_delete(coll, replace(flt, class_ids=(person,)))
        raise StoreError("Qdrant delete failed: connection reset")

    monkeypatch.setattr(ws.store, "delete", half_delete)
    with pytest.raises(StoreError, match="version 2 is marked failed — run the purge again"):
        purge(ws, "k", dataset="photos", actor="tester")
    monkeypatch.undo()
    assert states(ws) == [(1, "published"), (2, "failed")]
    assert [r.reproducible for r in version_log(ws, "k")] == [False, True]
    assert ws.store.count(collection, PointFilter("k")) == 15 - 6
    partial = audit_log(ws, "k", action="purge.partial")[0]
    assert partial.detail["points"] == 15 and "connection reset" in partial.detail["error"]
    again = purge(ws, "k", dataset="photos", actor="tester")
    assert (again.version, again.points) == (3, 9)
    assert ws.store.count(collection, PointFilter("k")) == 0
    # the retry's counts include the persons the failed attempt deleted
    assert sum(c.instances for c in vocabulary(ws, "k").classes) == 0
    assert_every_version_matches(ws, "k")


def test_wrong_requests_change_nothing(kitchen: Workspace) -> None:
    ws = kitchen
    cases: list[tuple[Any, type[Exception], str]] = [
        (
            lambda: retire(ws, "k", "unicorn", actor="tester"),
            NotFoundError,
            "has no class 'unicorn'",
        ),
        (
            lambda: restore(ws, "k", "person", actor="tester"),
            VersionStateError,
            "is live at version 1",
        ),
        (
            lambda: purge(ws, "k", actor="tester"),
            ConfigError,
            "exactly one of a class or a dataset",
        ),
        (
            lambda: purge(ws, "k", class_name="bus", dataset="photos", actor="tester"),
            ConfigError,
            "exactly one",
        ),
        (lambda: purge(ws, "k", dataset="nope", actor="tester"), NotFoundError, "known: photos"),
        (lambda: retire(ws, "nowhere", "person", actor="tester"), NotFoundError, "does not exist"),
    ]
    for call, error, message in cases:
        with pytest.raises(error, match=message):
            call()
    assert states(ws) == [(1, "published")]
    retire(ws, "k", "person", actor="tester")
    with pytest.raises(VersionStateError, match="is retired at version 2"):
        retire(ws, "k", "person", actor="tester")
    purge(ws, "k", class_name="bus", actor="tester")
    for call in (
        lambda: restore(ws, "k", "bus", actor="tester"),
        lambda: purge(ws, "k", class_name="bus", actor="tester"),
    ):
        with pytest.raises(VersionStateError, match="purged"):
            call()
    assert states(ws) == [(1, "published"), (2, "published"), (3, "published")]
    check_busy(ws)


def check_busy(ws: Workspace) -> None:
    """Another operation holds the domain's pending version: refused, naming it."""
    from knnvocab.catalog.domains import get_domain
    from knnvocab.catalog.versions import begin_version

    with ws.catalog.session() as s:
        domain = get_domain(s, "k")
        assert domain.encoder is not None
        begin_version(s, domain, "retire", domain.encoder, "alice", params={"class": "car"})
    for call in (
        lambda: retire(ws, "k", "car", actor="tester"),
        lambda: restore(ws, "k", "person", actor="tester"),
        lambda: purge(ws, "k", class_name="car", actor="tester"),
    ):
        with pytest.raises(DomainBusyError, match="has pending version 4: retire by alice@"):
            call()
    assert states(ws)[-1] == (4, "pending")
