"""Bad input to `knnvocab ingest`: a one-line error naming the file and the reason, exit
code 1, no traceback, and nothing already stored lost or half-written."""

from __future__ import annotations

import json
import shutil
from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import select

from knnvocab.catalog.models import VocabVersion
from knnvocab.config import Settings
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.cli.conftest import Run
from tests.data import index_dataset
from tests.lifecycle.helpers import collection_of


def truncate_image(root: Path) -> str:
    path = root / "images" / "2011_000006.jpg"
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    return "2011_000006.jpg: cannot decode image"


def resize_mask(root: Path) -> str:
    from PIL import Image

    path = root / "masks" / "2011_000025.png"
    with Image.open(path) as img:
        img.resize((img.width // 2, img.height // 2), Image.Resampling.NEAREST).save(path)
    return "2011_000025.png: mask is 250x187 but its image is 500x375"


def unknown_class(root: Path) -> str:
    names = root / "class_names.txt"
    names.write_text("\n".join(names.read_text().splitlines()[:10]) + "\n")  # drop person…
    return "class id 15 is not in the class list (10 classes)"


def empty_dataset(root: Path) -> str:
    for f in (root / "images").iterdir():
        f.unlink()
    return "images: no samples found (empty index-masks dataset)"


def missing_class_names(root: Path) -> str:
    (root / "class_names.txt").unlink()
    return "class_names.txt: class names file not found"


def not_an_image(root: Path) -> str:
    (root / "images" / "2011_000003.jpg").write_text("this is not a jpeg")
    return "2011_000003.jpg: not an image"


CASES: dict[str, Callable[[Path], str]] = {
    "truncated image": truncate_image,
    "mask size": resize_mask,
    "class id not in class list": unknown_class,
    "empty dataset": empty_dataset,
    "missing class names": missing_class_names,
    "not an image": not_an_image,
}


@pytest.fixture(scope="module")
def good_data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_dataset(tmp_path_factory.mktemp("good"))


def assert_clean_failure(result: object, *parts: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    lines = [line for line in output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, output
    for part in parts:
        assert part in lines[0], lines[0]


@pytest.mark.parametrize("case", CASES)
def test_bad_dataset_is_refused_and_nothing_is_lost(
    case: str,
    cli: Run,
    model_args: list[str],
    settings: Settings,
    good_data: Path,
    tmp_path: Path,
) -> None:
    ok = cli("ingest", "shop", good_data, "--format", "index-masks", *model_args, "--json")
    assert ok.exit_code == 0, ok.output
    stored = json.loads(ok.stdout)["total_added"]
    assert stored == 15
    bad = shutil.copytree(good_data, tmp_path / "bad")
    expected = CASES[case](bad)
    result = cli("ingest", "shop", bad, "--format", "index-masks", "--dataset-name", "bad")
    assert_clean_failure(result, expected)
    with Workspace(settings) as ws:
        with ws.catalog.session() as s:
            states = dict(s.execute(select(VocabVersion.number, VocabVersion.state)).all())
        assert states[1] == "published"
        assert all(state == "failed" for n, state in states.items() if n > 1)
        collection = collection_of(ws, "shop")
        assert ws.store.count(collection, PointFilter("shop", dataset="bad")) == 0
        assert ws.store.count(collection, PointFilter("shop", visible_at=1)) == stored
    log = json.loads(cli("vocab", "log", "shop", "--json").output)
    assert log["versions"][0]["state"] == "published"


def test_malformed_coco_json(cli: Run, model_args: list[str], tmp_path: Path) -> None:
    root = tmp_path / "coco"
    root.mkdir()
    (root / "annotations.json").write_text('{"images": [], "annotations": [')
    result = cli("ingest", "shop", root, "--format", "coco", *model_args)
    assert_clean_failure(result, "annotations.json", "line 1")


def test_path_escaping_the_dataset_root(cli: Run, model_args: list[str], tmp_path: Path) -> None:
    from tests.data import sources

    root = tmp_path / "coco"
    root.mkdir()
    (tmp_path / "outside.jpg").write_bytes(sources()[0].jpeg)
    (root / "annotations.json").write_text(
        json.dumps(
            {
                "images": [{"id": 1, "file_name": "../outside.jpg", "height": 338, "width": 500}],
                "annotations": [],
                "categories": [{"id": 1, "name": "person"}],
            }
        )
    )
    result = cli("ingest", "shop", root, "--format", "coco", *model_args)
    assert_clean_failure(result, "outside.jpg", "escapes the dataset root")


def test_unknown_format_and_reader_option(cli: Run, good_data: Path) -> None:
    assert_clean_failure(
        cli("ingest", "shop", good_data, "--format", "nope"), "unknown dataset format 'nope'"
    )
    assert_clean_failure(
        cli("ingest", "shop", good_data, "--format", "voc", "--masks-dir", "x"),
        "format 'voc' has no option masks_dir",
    )


def test_missing_dataset_folder(cli: Run, tmp_path: Path) -> None:
    assert_clean_failure(
        cli("ingest", "shop", tmp_path / "nowhere", "--format", "index-masks"),
        "nowhere: dataset not found",
    )


def test_invalid_domain_name(cli: Run, good_data: Path) -> None:
    assert_clean_failure(
        cli("ingest", "Bad Name", good_data, "--format", "index-masks"), "invalid domain name"
    )


def test_offline_hub_model_is_a_clear_error(cli: Run, good_data: Path) -> None:
    result = cli("ingest", "shop", good_data, "--format", "index-masks", "--pretrained", "openai")
    assert_clean_failure(result, "--checkpoint FILE", "--untrained")
