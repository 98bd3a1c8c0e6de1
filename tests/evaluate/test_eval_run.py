"""`knnvocab eval` and the continual protocol, end to end on real photos and components."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

from knnvocab.config import Settings
from knnvocab.datasets import open_dataset
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.params import SegmentParams
from knnvocab.evaluate.continual import run_continual, split_classes, split_images
from knnvocab.evaluate.run import evaluate
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.conftest import Run
from tests.data import index_dataset

ORACLE = SegmentParams(proposals="gt", k=1, lam=1.0, threshold=0.0)


@pytest.fixture
def settings(sqlite_settings: Settings) -> Settings:
    return sqlite_settings


def test_oracle_retrieval_scores_perfectly(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    """Own masks + retrieval alone on the ingested photos: every metric is 1."""
    reader = open_dataset("voc", labelme_voc)
    ingest(ws, "kitchen", reader, IngestOptions("voc", min_area=1), tiny_model, actor="tester")
    report = evaluate(ws, "kitchen", reader, params=ORACLE)
    assert report.semantic.miou == pytest.approx(1.0)
    assert report.semantic.pixel_accuracy == pytest.approx(1.0)
    assert (report.panoptic.all.pq, report.panoptic.all.sq, report.panoptic.all.rq) == (
        pytest.approx(1.0),
        pytest.approx(1.0),
        pytest.approx(1.0),
    )
    assert report.panoptic.things.n == 6 and report.panoptic.stuff.n == 1  # background is stuff
    mmseg = evaluate(ws, "kitchen", reader, params=ORACLE, convention="mmseg")
    assert mmseg.semantic.miou == pytest.approx(1.0)
    zero = evaluate(
        ws, "kitchen", reader, params=SegmentParams(proposals="gt", zero_shot_only=True)
    )
    assert zero.params["zero_shot_only"] is True
    assert 0.0 <= zero.semantic.miou <= 1.0


def test_eval_command_writes_metrics_and_chart(
    cli: Run, model_args: list[str], labelme_voc: Path, tmp_path: Path
) -> None:
    assert cli("ingest", "kitchen", labelme_voc, "--format", "voc", *model_args).exit_code == 0
    out = tmp_path / "report"
    result = cli(
        "eval", "kitchen", labelme_voc, "--format", "voc", "--out", out, "--n-segments", "32"
    )
    assert result.exit_code == 0, result.output
    assert "mIoU" in result.output and "person" in result.output
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["domain"] == "kitchen" and metrics["images"] == 3
    assert metrics["params"]["convention"] == "detectron2"
    assert 0.0 <= metrics["semantic"]["mIoU"] <= 1.0
    assert set(metrics["panoptic"]) == {"All", "Things", "Stuff", "per_class"}
    assert (out / "per-class-iou.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    as_json = cli(
        "eval",
        "run",
        "kitchen",
        labelme_voc,
        "--format",
        "voc",
        "--out",
        out,
        "--json",
        "--proposals",
        "gt",
        "--k",
        "1",
        "--lambda",
        "1",
        "--threshold",
        "0",
    )
    assert as_json.exit_code == 0, as_json.output
    assert json.loads(as_json.stdout)["semantic"]["mIoU"] == pytest.approx(1.0)


def test_splits_are_deterministic_and_complete() -> None:
    stages = split_classes(list(range(10)), 3, seed=7)
    assert stages == split_classes(list(range(10)), 3, seed=7)
    assert sorted(c for s in stages for c in s) == list(range(10))
    assert [len(s) for s in stages] == [4, 3, 3]
    assert stages != split_classes(list(range(10)), 3, seed=8)


def test_continual_protocol(ws: Workspace, tiny_model: EncoderSpec, tmp_path: Path) -> None:
    reader = open_dataset("index-masks", index_dataset(tmp_path / "data"))
    report = run_continual(
        ws,
        reader,
        2,
        tiny_model,
        domain="stages",
        seed=0,
        held_out=0.25,
        params=SegmentParams(n_segments=32),
        actor="tester",
    )
    _, test = split_images(reader.samples(), 0.25, 0)
    assert report.held_out == [r.key for r in test] and len(test) == 1
    assert [s.version for s in report.stages] == [1, 2]
    first, second = report.stages
    assert set(first.new_classes).isdisjoint(second.new_classes)
    assert second.seen_classes == len(first.new_classes) + len(second.new_classes)
    assert math.isnan(first.miou_old)  # no old classes at stage 1
    assert not math.isnan(second.miou_all)
    # the database never forgets: stage 1's instances are all still there at stage 2
    collection = ws.encoder(tiny_model).info.collection
    ids1 = tuple(c.class_id for c in _classes(ws, first.new_classes))
    counts = {
        v: ws.store.count(collection, PointFilter("stages", visible_at=v, class_ids=ids1))
        for v in (1, 2)
    }
    assert counts[1] == counts[2] == first.instances_added
    log = version_log(ws, "stages")
    assert [r.message for r in log] == ["continual stage 1/2", "continual stage 2/2"]
    assert json.dumps(report.to_json())  # serialisable, NaN as null


def _classes(ws: Workspace, names: list[str]) -> list[object]:
    from knnvocab.history import vocabulary

    return [c for c in vocabulary(ws, "stages").classes if c.name in names]


def test_continual_command(cli: Run, model_args: list[str], tmp_path: Path) -> None:
    data = index_dataset(tmp_path / "data")
    result = cli(
        "eval",
        "continual",
        data,
        "--format",
        "index-masks",
        "--stages",
        "2",
        *model_args,
        "--out",
        tmp_path / "out",
    )
    assert result.exit_code == 0, result.output
    assert "forgetting" in result.output and "held-out images" in result.output
    report = json.loads((tmp_path / "out" / "continual.json").read_text())
    assert len(report["stages"]) == 2
    too_many = cli(
        "eval", "continual", data, "--format", "index-masks", "--stages", "99", *model_args
    )
    assert too_many.exit_code == 1 and "--stages must be between 1 and" in too_many.output
