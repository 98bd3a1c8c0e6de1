"""Store identity: a catalog never works against a store it did not record.

The scenario of the issue: the catalog of a real domain with the vector store pointed at
an empty folder (a wrong ``KNNVOCAB_HOME``) or at another deployment's store. Before,
`doctor --repair` marked version 1 not reproducible and published an empty `repair`
version; now every command refuses and nothing changes. Both catalogs (SQLite, Postgres).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import replace
from pathlib import Path

import pytest
from qdrant_client import QdrantClient

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.segmenter import Segmenter
from knnvocab.errors import StoreIdentityError
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, doctor, retire
from knnvocab.store.base import PointFilter
from knnvocab.store.server import ServerStore
from knnvocab.workspace import Workspace
from tests.conftest import Run
from tests.lifecycle.helpers import class_id, collection_of


def _ingested(settings: Settings, labelme_voc: Path, tiny_model: EncoderSpec) -> str:
    with Workspace(settings) as ws:
        ingest(ws, "k", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
        return collection_of(ws, "k")


def _history(settings: Settings) -> list[tuple[int, str, str, bool]]:
    with Workspace(settings) as ws:
        return [(r.number, r.state, r.operation, r.reproducible) for r in version_log(ws, "k")]


def _elsewhere(settings: Settings, tmp_path: Path, name: str) -> Settings:
    """The same catalog with the vector store in another folder."""
    return replace(settings, home=tmp_path / name)


def test_an_empty_store_is_refused_and_doctor_changes_nothing(
    settings: Settings, labelme_voc: Path, tiny_model: EncoderSpec, tmp_path: Path
) -> None:
    collection = _ingested(settings, labelme_voc, tiny_model)
    before = _history(settings)
    wrong = _elsewhere(settings, tmp_path, "empty-home")
    with Workspace(wrong) as ws:
        report = doctor(ws, repair=True, actor="tester")
        assert not report.ok
        (finding,) = report.findings
        assert finding.kind == "store-missing" and not finding.repaired
        assert collection in finding.message and "wrong KNNVOCAB_HOME" in finding.message
        with pytest.raises(StoreIdentityError, match="is missing from"):
            Segmenter(ws, "k").segment(next(iter([_photo(labelme_voc)])))
        with pytest.raises(StoreIdentityError, match="is missing from"):
            retire(ws, "k", "person", actor="tester")
        with pytest.raises(StoreIdentityError, match="is missing from"):
            ingest(ws, "k", labelme_voc, IngestOptions("voc"), actor="tester")
    assert _history(settings) == before  # no repair version, still reproducible
    assert not (wrong.vectors_dir / collection).exists()  # nothing was created there
    with Workspace(settings) as ws:  # back on the right store: all is well
        assert doctor(ws, actor="tester").ok


def _photo(labelme_voc: Path) -> object:
    from knnvocab.imageio import load_rgb

    return load_rgb(next((labelme_voc / "JPEGImages").iterdir()), 10**8)


def test_another_deployments_store_is_refused_naming_both(
    settings: Settings, labelme_voc: Path, tiny_model: EncoderSpec, tmp_path: Path
) -> None:
    _ingested(settings, labelme_voc, tiny_model)
    other_home = tmp_path / "other"
    other = Settings(
        home=other_home, database_url=f"sqlite:///{other_home / 'c.sqlite3'}", user="o"
    )
    collection = _ingested(other, labelme_voc, tiny_model)  # same encoder, same collection
    before, other_before = _history(settings), _history(other)
    ours = json.loads((settings.vectors_dir / collection / "collection.json").read_text())
    theirs = json.loads((other.vectors_dir / collection / "collection.json").read_text())
    assert ours["identity"] != theirs["identity"]
    crossed = replace(settings, home=other_home)  # our catalog, their store
    with Workspace(crossed) as ws:
        with pytest.raises(StoreIdentityError) as refused:
            retire(ws, "k", "person", actor="tester")
        assert refused.value.kind == "mismatch"
        assert ours["identity"] in str(refused.value) and theirs["identity"] in str(refused.value)
        report = doctor(ws, repair=True, actor="tester")
        assert [f.kind for f in report.findings] == ["store-mismatch"] and not report.ok
    assert _history(settings) == before and _history(other) == other_before


def _forget_identities(settings: Settings, collection: str) -> None:
    """Make the store and the catalog look as they did before identities existed."""
    meta = settings.vectors_dir / collection / "collection.json"
    data = json.loads(meta.read_text())
    del data["identity"]
    meta.write_text(json.dumps(data))
    (settings.vectors_dir / "store.json").unlink()
    with Workspace(settings) as ws, ws.catalog.session() as s:
        from knnvocab.catalog.models import StoreIdentity

        s.query(StoreIdentity).delete()


def test_a_store_made_before_identities_is_adopted_when_its_counts_match(
    settings: Settings, labelme_voc: Path, tiny_model: EncoderSpec
) -> None:
    collection = _ingested(settings, labelme_voc, tiny_model)
    _forget_identities(settings, collection)
    with Workspace(settings) as ws:
        assert doctor(ws, actor="tester").ok  # adopted on first use: counts match
        (event,) = audit_log(ws, action="store.adopt")
        assert event.detail["collection"] == collection
        assert event.detail["catalog"] == event.detail["store"] == {"k": 15}
    meta = json.loads((settings.vectors_dir / collection / "collection.json").read_text())
    root = json.loads((settings.vectors_dir / "store.json").read_text())
    assert meta["identity"] == root["identity"]


def test_an_unrecorded_store_that_differs_needs_store_adopt(
    settings: Settings, labelme_voc: Path, tiny_model: EncoderSpec, cli: Run
) -> None:
    collection = _ingested(settings, labelme_voc, tiny_model)
    with Workspace(settings) as ws:  # the one car point lost from the store
        car = PointFilter("k", class_ids=(class_id(ws, "k", "car"),))
        (victim,) = list(ws.store.scroll(collection, car))
        ws.store.delete(collection, car)
    _forget_identities(settings, collection)
    before = _history(settings)
    result = cli("doctor", "--repair", "--json")
    assert result.exit_code == 1
    (finding,) = json.loads(result.output)["findings"]
    assert finding["kind"] == "store-unadopted" and not finding["repaired"]
    assert "knnvocab store adopt" in finding["message"]
    assert _history(settings) == before
    said = cli("store", "adopt")
    assert said.exit_code == 0, said.output
    assert "no identity" in said.output and "k: catalog 15, store 14" in said.output
    assert "(differs)" in said.output and _history(settings) == before
    done = cli("store", "adopt", "--yes")
    assert done.exit_code == 0 and "adopted" in done.output
    result = cli("doctor", "--json")  # now checked: the lost point is reported as such
    assert result.exit_code == 1
    (finding,) = json.loads(result.output)["findings"]
    assert finding["kind"] == "missing" and finding["classes"] == {victim.payload.label: 1}


@contextmanager
def _on(settings: Settings, store: ServerStore) -> Iterator[Workspace]:
    """A workspace on ``store`` that leaves the store open when it is done."""
    ws = Workspace(settings, store=store)
    try:
        yield ws
    finally:
        ws.catalog.close()


def test_server_collections_carry_their_own_identity(
    settings: Settings, labelme_voc: Path, tiny_model: EncoderSpec
) -> None:
    first, empty, third = (ServerStore(QdrantClient(location=":memory:")) for _ in range(3))
    with _on(settings, first) as ws:
        ingest(ws, "k", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
        collection = collection_of(ws, "k")
    state = first.describe(collection)
    assert state is not None and state.identity
    with _on(settings, empty) as ws, pytest.raises(StoreIdentityError, match="is missing from"):
        retire(ws, "k", "person", actor="tester")
    other = Settings(
        home=settings.home / "o", database_url=f"sqlite:///{settings.home}/o.sqlite3", user="o"
    )
    with _on(other, third) as ws:
        ingest(ws, "k", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    with _on(settings, third) as ws, pytest.raises(StoreIdentityError) as refused:
        retire(ws, "k", "person", actor="tester")
    assert refused.value.kind == "mismatch"
    with _on(settings, first) as ws:
        assert doctor(ws, actor="tester").ok
    for store in (first, empty, third):
        store.close()
