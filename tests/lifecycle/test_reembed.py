"""`reembed`: a domain's instances written with a second encoder as one new version, on
SQLite and Postgres, with real qdrant-edge and two tiny open_clip checkpoints. Earlier
versions keep their encoder and byte-identical answers; a retired class can be restored
after the reembed; a changed or missing source is refused (or dropped and counted); an
interrupted reembed resumes or rolls back."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knnvocab.catalog.domains import get_domain
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.segmenter import Segmenter
from knnvocab.errors import ConfigError, DomainBusyError
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import doctor, purge, restore, retire, rollback_pending
from knnvocab.lifecycle.reembed import ReembedOptions, reembed
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.conftest import TINY_CONFIG, Run
from tests.lifecycle.helpers import (
    assert_every_version_matches,
    catalog_counts,
    class_id,
    version_collection,
)

D = "street"


@pytest.fixture(scope="module")
def second_model(tmp_path_factory: pytest.TempPathFactory, tiny_model: EncoderSpec) -> EncoderSpec:
    """The tiny model's config with other weights (another torch seed): another
    fingerprint, so another collection."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("model2")
    assert json.loads(Path(tiny_model.model).read_text()) == TINY_CONFIG
    torch.manual_seed(4321)
    model = open_clip.create_model("knnvocab-tiny")
    checkpoint = folder / "knnvocab-tiny-2.pt"
    torch.save(model.state_dict(), checkpoint)
    return EncoderSpec(model=tiny_model.model, checkpoint=str(checkpoint))


@pytest.fixture
def voc_copy(tmp_path: Path, labelme_voc: Path) -> Path:
    """The VOC photos copied where a test may change or remove them."""
    return Path(shutil.copytree(labelme_voc, tmp_path / "voc"))


def _image(root: Path) -> np.ndarray:
    return np.array(Image.open(root / "JPEGImages" / "2011_000006.jpg").convert("RGB"))


def _answer(ws: Workspace, version: int, image: np.ndarray) -> str:
    result = Segmenter(ws, D, version, SegmentParams(exact=True)).segment(image)
    return json.dumps(result.to_json(), sort_keys=True)


def _collection(ws: Workspace, version: int) -> str:
    return version_collection(ws, D, version)


@pytest.mark.slow
def test_reembed_keeps_history_and_restore_works(
    ws: Workspace, tiny_model: EncoderSpec, second_model: EncoderSpec, voc_copy: Path
) -> None:
    ingest(ws, D, voc_copy, IngestOptions("voc"), tiny_model, actor="alice")
    retire(ws, D, "bus", actor="alice")
    restore(ws, D, "bus", actor="alice")  # live copies with restored_from links
    retire(ws, D, "person", actor="alice")
    image = _image(voc_copy)
    before = {v: _answer(ws, v, image) for v in (1, 4)}
    summary = reembed(ws, D, second_model, ReembedOptions(message="new clip"), actor="bob")
    assert summary.version == 5 and summary.datasets == ["voc"] and not summary.dropped
    log = version_log(ws, D)
    assert [r.operation for r in log][3:] == ["retire", "reembed"]
    assert log[4].message == "new clip" and log[4].user == "bob"
    assert summary.encoder != summary.previous_encoder
    assert _collection(ws, 5) != _collection(ws, 4)
    with ws.catalog.session() as s:
        bound = get_domain(s, D).encoder
        assert bound is not None and bound.fingerprint == summary.encoder
    # time travel: earlier versions read their own encoder and collection, unchanged
    assert {v: _answer(ws, v, image) for v in (1, 4)} == before
    assert json.loads(_answer(ws, 5, image))["encoder"] == summary.encoder
    assert json.loads(before[4])["encoder"] == summary.previous_encoder
    assert catalog_counts(ws, D, 5) == catalog_counts(ws, D, 4)
    at1, person_id, bus_id = (
        catalog_counts(ws, D, 1),
        class_id(ws, D, "person"),
        class_id(ws, D, "bus"),
    )
    assert summary.points == sum(catalog_counts(ws, D, 4).values())
    # retired: person's points (for a restore) and the bus points the live copies link to
    assert summary.retired_points == at1[person_id] + at1[bus_id]
    new = {p.id: p.payload for p in ws.store.scroll(_collection(ws, 5), PointFilter(D))}
    links = {p.restored_from for p in new.values() if p.restored_from is not None}
    assert len(links) == at1[bus_id] and links <= set(new)  # remapped, and they resolve
    assert_every_version_matches(ws, D)
    assert doctor(ws, actor="x").ok
    # a class retired before the reembed comes back with its instances, in the new collection
    restored = restore(ws, D, "person", actor="alice")
    assert restored.points == at1[person_id] > 0
    assert catalog_counts(ws, D, 6) == at1
    assert json.loads(_answer(ws, 6, image))["encoder"] == summary.encoder
    # a purge deletes from both collections and marks every version that showed them
    person = PointFilter(D, class_ids=(person_id,))
    purged = purge(ws, D, class_name="person", actor="alice")
    assert purged.versions_not_reproducible == [1, 2, 3, 6]  # retired at 4 and 5
    for collection in {_collection(ws, 1), _collection(ws, 5)}:
        assert ws.store.count(collection, person) == 0
    assert doctor(ws, actor="x").ok
    assert_every_version_matches(ws, D)


def test_a_changed_source_is_refused_and_nothing_changes(
    ws: Workspace,
    tiny_model: EncoderSpec,
    second_model: EncoderSpec,
    voc_copy: Path,
    labelme_voc: Path,
    cli: Run,
) -> None:
    ingest(ws, D, voc_copy, IngestOptions("voc"), tiny_model, actor="alice")
    changed = voc_copy / "JPEGImages" / "2011_000003.jpg"
    with changed.open("ab") as fh:
        fh.write(b"\0")
    with pytest.raises(ConfigError, match=r"dataset 'voc': its source .* changed"):
        reembed(ws, D, second_model, actor="bob")
    assert [r.state for r in version_log(ws, D)] == ["published"]
    assert ws.store.describe(ws.encoder(second_model).info.collection) is None  # no writes
    total = sum(catalog_counts(ws, D, 1).values())
    ws.store.close()  # the CLI is another workspace: one holder of a shard at a time
    args = ["--model", second_model.model, "--checkpoint", str(second_model.checkpoint)]
    result = cli("reembed", D, *args)
    assert result.exit_code == 1
    assert "dataset 'voc'" in result.output and "Traceback" not in result.output
    shutil.copyfile(labelme_voc / "JPEGImages" / "2011_000003.jpg", changed)  # as ingested
    result = cli("reembed", D, *args, "-m", "new clip", "--json")
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    assert summary["version"] == 2 and summary["points"] == total > 0
    assert summary["retired_points"] == 0 and summary["dropped"] == {}
    with Workspace(ws.settings) as again:
        log = version_log(again, D)
        assert [r.operation for r in log] == ["ingest", "reembed"]
        assert log[1].message == "new clip" and log[1].state == "published"
        assert log[1].encoder != log[0].encoder
        assert doctor(again, actor="x").ok


@pytest.mark.slow
def test_drop_missing_leaves_a_removed_dataset_out_and_counts_it(
    ws: Workspace,
    tiny_model: EncoderSpec,
    second_model: EncoderSpec,
    voc_copy: Path,
    tmp_path: Path,
) -> None:
    other = Path(shutil.copytree(voc_copy, tmp_path / "more"))
    ingest(ws, D, voc_copy, IngestOptions("voc", only_keys=("2011_000003",)), tiny_model, actor="a")
    ingest(ws, D, other, IngestOptions("voc", only_keys=("2011_000025",)), actor="a")
    shutil.rmtree(other)
    with pytest.raises(ConfigError, match=r"dataset 'more': its source .* is missing"):
        reembed(ws, D, second_model, actor="bob")
    assert len(version_log(ws, D)) == 2
    more = ws.store.count(_collection(ws, 2), PointFilter(D, dataset="more"))
    summary = reembed(ws, D, second_model, ReembedOptions(drop_missing=True), actor="bob")
    assert summary.version == 3 and summary.datasets == ["voc"]
    assert summary.dropped["more"]["instances"] == summary.instances_dropped == more > 0
    assert "missing" in summary.dropped["more"]["reason"]
    assert sum(catalog_counts(ws, D, 3).values()) == sum(catalog_counts(ws, D, 2).values()) - more
    assert version_log(ws, D)[2].params["dropped"]["more"]["instances"] == more
    assert_every_version_matches(ws, D)
    assert doctor(ws, actor="x").ok


class _Interrupt:
    """A progress bar that stops the process (Ctrl-C) after the first batch."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, images: int, instances: int) -> None:
        raise KeyboardInterrupt

    def finish(self) -> None:
        pass


@pytest.mark.slow
def test_an_interrupted_reembed_resumes_or_rolls_back(
    ws: Workspace, tiny_model: EncoderSpec, second_model: EncoderSpec, voc_copy: Path
) -> None:
    ingest(ws, D, voc_copy, IngestOptions("voc"), tiny_model, actor="alice")
    one = ReembedOptions(batch_size=1)
    with pytest.raises(KeyboardInterrupt):
        reembed(ws, D, second_model, one, _Interrupt(), actor="bob")
    (record,) = [r for r in version_log(ws, D) if r.number == 2]
    assert record.state == "pending" and record.operation == "reembed"
    new = _collection(ws, 2)
    partial = ws.store.count(new, PointFilter(D))
    assert 0 < partial < sum(catalog_counts(ws, D, 1).values())
    with pytest.raises(DomainBusyError, match=r"knnvocab reembed … --resume"):
        reembed(ws, D, second_model, actor="carol")
    # rolled back: nothing of the domain is left in the new collection
    assert rollback_pending(ws, D, actor="bob") == 2
    assert ws.store.count(new, PointFilter(D)) == 0
    with pytest.raises(KeyboardInterrupt):
        reembed(ws, D, second_model, one, _Interrupt(), actor="bob")
    first = {p.id: p.payload.run_id for p in ws.store.scroll(new, PointFilter(D))}
    summary = reembed(ws, D, second_model, ReembedOptions(resume=True), actor="bob")
    after = {p.id: p.payload.run_id for p in ws.store.scroll(new, PointFilter(D))}
    assert {i: after[i] for i in first} == first  # what was stored is neither redone nor lost
    assert len(set(after.values())) == 2  # the interrupted run's points and the resume's
    assert summary.resumed and summary.version == 3
    assert [r.state for r in version_log(ws, D)] == ["published", "rolled_back", "published"]
    assert catalog_counts(ws, D, 3) == catalog_counts(ws, D, 1)
    assert ws.store.count(new, PointFilter(D, visible_at=3)) == summary.points
    assert_every_version_matches(ws, D)
    assert doctor(ws, actor="x").ok


@pytest.mark.slow
def test_a_reembed_killed_mid_way_resumes_to_what_an_uninterrupted_one_gives(
    sqlite_settings: Settings,
    tiny_model: EncoderSpec,
    second_model: EncoderSpec,
    labelme_voc: Path,
    tmp_path: Path,
) -> None:
    import subprocess
    import sys

    with Workspace(sqlite_settings) as ws:
        options = IngestOptions("voc", min_area=1)
        ingest(ws, D, labelme_voc, options, tiny_model, actor="alice")
    twin = tmp_path / "twin"  # the same home, reembedded without a kill
    shutil.copytree(sqlite_settings.home, twin)
    args = ["reembed", D, "--model", second_model.model, "--checkpoint"]
    args += [str(second_model.checkpoint), "--batch-size", "1"]

    def run(home: Path, *extra: str, **env: str) -> subprocess.CompletedProcess[str]:
        environment = {
            "PATH": "/usr/bin:/bin",
            "KNNVOCAB_HOME": str(home),
            "KNNVOCAB_USER": "bob",
            **env,
        }
        command = [sys.executable, "-m", "knnvocab", *args, *extra]
        return subprocess.run(command, env=environment, capture_output=True, text=True)

    killed = run(sqlite_settings.home, KNNVOCAB_FAULT="reembed.after_batch")
    assert killed.returncode == -9, killed.stderr
    resumed = run(sqlite_settings.home, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert run(twin).returncode == 0
    uninterrupted = Settings(twin, f"sqlite:///{twin / 'catalog.sqlite3'}", user="t")
    image = _image(labelme_voc)
    with Workspace(sqlite_settings) as a, Workspace(uninterrupted) as b:
        counts = [
            [(r.number, r.state, r.instances_added, r.instances_removed) for r in version_log(w, D)]
            for w in (a, b)
        ]
        assert counts[0] == counts[1]
        assert _answer(a, 2, image) == _answer(b, 2, image)
        assert doctor(a, D).ok
