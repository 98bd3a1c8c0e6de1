"""The engine's defining properties, on real photos and real components."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from qdrant_client import QdrantClient

from knnvocab.config import Settings
from knnvocab.datasets import open_dataset
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.batch import ground_truth_lookup, segment_files
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.proposals import GroundTruth
from knnvocab.engine.segmenter import Segmenter
from knnvocab.evaluate import SemanticConfusion
from knnvocab.history import vocabulary
from knnvocab.imageio import load_rgb
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.store.server import ServerStore
from knnvocab.workspace import Workspace
from tests.data import index_dataset

RETRIEVAL_ONLY = SegmentParams(proposals="gt", k=1, lam=1.0, threshold=0.0)


def test_self_retrieval_gives_every_segment_its_own_label(
    kitchen: Workspace, labelme_voc: Path
) -> None:
    """Segment the ingested photos with their own masks and retrieval alone: mIoU = 1."""
    reader = open_dataset("voc", labelme_voc)
    lookup = ground_truth_lookup(reader)
    segmenter = Segmenter(kitchen, "kitchen", None, RETRIEVAL_ONLY, GroundTruth(lookup))
    ids = {name: i for i, name in enumerate(reader.class_names)}
    by_name = {c.class_id: c.name for c in vocabulary(kitchen, "kitchen").classes}
    confusion = SemanticConfusion(len(reader.class_names), ignore_index=255)
    for ref in reader.samples():
        sample = reader.load(ref)
        seg = segmenter.segment(sample.image, ref.files[0])
        assert all(s.source == "retrieval" for s in seg.segments)
        assert all(s.neighbours[0].similarity > 0.9999 for s in seg.segments)
        pred = np.vectorize(lambda c: ids[by_name[c]] if c else 255)(seg.labels)
        confusion.update(pred, sample.instances.semantic_map(ignore_index=255))
    result = confusion.result()
    assert result.miou == pytest.approx(1.0)
    assert result.pixel_accuracy == pytest.approx(1.0)


@pytest.fixture(params=["edge", "server"])
def two_tenants(
    request: pytest.FixtureRequest, settings: Settings, tiny_model: EncoderSpec, tmp_path: Path
) -> Iterator[Workspace]:
    """The same photos in domains ``a`` (VOC names) and ``b`` (every name prefixed b-)."""
    store = ServerStore(QdrantClient(location=":memory:")) if request.param == "server" else None
    data_a = index_dataset(tmp_path / "a")
    data_b = index_dataset(tmp_path / "b")
    names = (data_b / "class_names.txt").read_text().split()
    (data_b / "class_names.txt").write_text("\n".join(f"b-{n}" for n in names) + "\n")
    with Workspace(settings, store=store) as ws:
        ingest(
            ws,
            "a",
            data_a,
            IngestOptions("index-masks", dataset_name="set-a"),
            tiny_model,
            actor="tester",
        )
        ingest(
            ws,
            "b",
            data_b,
            IngestOptions("index-masks", dataset_name="set-b"),
            tiny_model,
            actor="tester",
        )
        yield ws


def test_tenants_only_ever_see_their_own_classes_and_neighbours(
    two_tenants: Workspace, photos: list[Path]
) -> None:
    for domain, dataset in (("a", "set-a"), ("b", "set-b")):
        segmenter = Segmenter(
            two_tenants, domain, None, SegmentParams(threshold=0.0, k=20, n_segments=48)
        )
        own = {c.name for c in vocabulary(two_tenants, domain).classes}
        for photo in photos:
            seg = segmenter.segment(load_rgb(photo), photo)
            assert {s.label for s in seg.segments} <= own
            neighbours = [n for s in seg.segments for n in s.neighbours]
            assert neighbours, "retrieval returned nothing"
            assert {n.dataset for n in neighbours} == {dataset}
            assert {n.label for n in neighbours} <= own


def test_a_class_outside_the_version_is_never_predicted(
    kitchen: Workspace, tmp_path: Path, photos: list[Path]
) -> None:
    # version 2 adds `track` and many car instances from the video frames
    video = Path("/usr/share/doc/labelme-examples/examples/video_annotation/data_dataset_voc")
    ingest(kitchen, "kitchen", video, IngestOptions("voc"), actor="tester")
    v1 = {c.class_id for c in vocabulary(kitchen, "kitchen", 1).live}
    track = next(c.class_id for c in vocabulary(kitchen, "kitchen", 2).live if c.name == "track")
    assert track not in v1
    v2 = {c.class_id for c in vocabulary(kitchen, "kitchen", 2).live}
    params = SegmentParams(threshold=0.0, lam=1.0, k=30, n_segments=48)
    newest: dict[int, int] = {}
    for version, allowed in ((1, v1), (2, v2)):
        segmenter = Segmenter(kitchen, "kitchen", version, params)
        for photo in photos:
            seg = segmenter.segment(load_rgb(photo), photo)
            predicted = set(np.unique(seg.labels).tolist()) - {0}
            assert predicted and predicted <= allowed
            neighbours = [n for s in seg.segments for n in s.neighbours]
            assert all(n.class_id in allowed for n in neighbours)
            newest[version] = max([newest.get(version, 0), *(n.added_in for n in neighbours)])
            if version == 1:
                assert all(n.label != "track" for n in neighbours)
    # each version reads exactly its own points: version 2's neighbours include its own
    assert newest == {1: 1, 2: 2}


def test_output_at_a_version_is_byte_identical_after_later_ingests(
    kitchen: Workspace, tmp_path: Path, photos: list[Path]
) -> None:
    before = segment_files(kitchen, "kitchen", photos, tmp_path / "before", version=1, rle=True)
    video = Path("/usr/share/doc/labelme-examples/examples/video_annotation/data_dataset_voc")
    ingest(kitchen, "kitchen", video, IngestOptions("voc"), actor="tester")
    after = segment_files(kitchen, "kitchen", photos, tmp_path / "after", version=1, rle=True)
    head = segment_files(kitchen, "kitchen", photos, tmp_path / "head", version=2)
    assert all(o.error is None for o in before + after + head)
    names = sorted(p.name for p in (tmp_path / "before").iterdir())
    assert len(names) == 5 * len(photos)
    for name in names:
        assert (tmp_path / "before" / name).read_bytes() == (
            tmp_path / "after" / name
        ).read_bytes(), name
    assert '"version": 2' in (tmp_path / "head" / f"{photos[0].stem}.json").read_text()
