"""The versioned-change mechanism on its own: what a body that raises, forgets to
publish, is refused under the lock or is interrupted leaves behind (both catalogs)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy.orm import Session

from knnvocab.catalog.models import Domain, VocabVersion
from knnvocab.changes import Opening, versioned_change
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import ConfigError, VersionStateError
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, doctor, rollback_pending
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.lifecycle.helpers import collection_of


@pytest.fixture
def kitchen(settings: Settings, tiny_model: EncoderSpec, labelme_voc: Path) -> Iterator[Workspace]:
    with Workspace(settings) as ws:
        ingest(ws, "k", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
        yield ws


def states(ws: Workspace) -> list[tuple[int, str]]:
    return [(r.number, r.state) for r in version_log(ws, "k")]


def _copy_one(ws: Workspace, number: int) -> None:
    """Write what a change writes: a point added in ``number``, points hidden by it."""
    collection = collection_of(ws, "k")
    p = next(iter(ws.store.scroll(collection, PointFilter("k", live=True), with_vectors=True)))
    added = replace(p, id=f"{p.id[:-4]}cafe", payload=replace(p.payload, added_in=number))
    ws.store.insert(collection, "k", [added])
    ws.store.set_removed_in(collection, PointFilter("k", visible_at=number - 1), number)


def test_a_body_that_raises_is_undone_and_fails_the_version(kitchen: Workspace) -> None:
    ws = kitchen
    with pytest.raises(RuntimeError, match="boom"), versioned_change(ws, "k", "retire", "ann") as c:
        _copy_one(ws, c.number)
        raise RuntimeError("boom")
    assert states(ws) == [(1, "published"), (2, "failed")]
    collection = collection_of(ws, "k")
    assert ws.store.count(collection, PointFilter("k", added_in=2)) == 0
    assert ws.store.count(collection, PointFilter("k", live=False)) == 0
    (event,) = audit_log(ws, "k", action="retire.fail")
    assert event.actor == "ann" and event.detail["error"] == "RuntimeError: boom"
    assert doctor(ws).ok


def test_a_body_that_does_not_publish_fails(kitchen: Workspace) -> None:
    refused = pytest.raises(VersionStateError, match="without publishing")
    with refused, versioned_change(kitchen, "k", "retire", "ann"):
        pass
    assert states(kitchen)[-1] == (2, "failed")


def test_a_refusal_under_the_lock_takes_no_version(kitchen: Workspace) -> None:
    def refuse(_s: Session, _d: Domain, _v: VocabVersion, _run: str) -> None:
        raise ConfigError("not now")

    with pytest.raises(ConfigError), versioned_change(kitchen, "k", "retire", "a", prepare=refuse):
        raise AssertionError("the body must not run")
    assert states(kitchen) == [(1, "published")]
    assert not audit_log(kitchen, "k", action="retire.begin")


def test_an_interrupted_resumable_change_stays_pending_until_rolled_back(
    kitchen: Workspace,
) -> None:
    ws = kitchen
    opening = Opening(message="long work")
    change_of = versioned_change(ws, "k", "retire", "ann", opening, resumable=True)
    with pytest.raises(KeyboardInterrupt), change_of as change:
        _copy_one(ws, change.number)
        raise KeyboardInterrupt
    assert states(ws)[-1] == (2, "pending")
    assert [e.action for e in audit_log(ws, "k")][-1] == "retire.interrupt"
    refused = pytest.raises(VersionStateError, match="has no pending ingest")
    with refused, versioned_change(ws, "k", "ingest", "ann", resume=True):
        pass
    assert rollback_pending(ws, "k", actor="bob") == 2
    assert states(ws)[-1] == (2, "rolled_back")
    assert ws.store.count(collection_of(ws, "k"), PointFilter("k", visible_at=1)) == 15
    (event,) = audit_log(ws, "k", action="version.rollback")
    assert event.actor == "bob" and event.detail["operation"] == "retire"
