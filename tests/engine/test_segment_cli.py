"""`knnvocab segment` / `explain` as a user runs them: outputs, image modes, bad input."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.workspace import Workspace
from tests.cli.conftest import Run
from tests.data import index_dataset, sources

FAST = ["--n-segments", "32"]


@pytest.fixture
def domain(ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path) -> str:
    ingest(ws, "kitchen", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    ws.close()  # release the domain's shard: the commands below open their own
    return "kitchen"


def clean_error(result: object, *parts: str) -> None:
    output = result.output  # type: ignore[attr-defined]
    assert result.exit_code == 1, output  # type: ignore[attr-defined]
    assert "Traceback" not in output
    errors = [line for line in output.splitlines() if line.startswith("error:")]
    assert errors, output
    for part in parts:
        assert any(part in e for e in errors), (part, errors)


def test_segment_writes_every_output(
    cli: Run, domain: str, photos: list[Path], tmp_path: Path
) -> None:
    out = tmp_path / "out"
    result = cli("segment", domain, photos[0], "--out", out, "--rle", "--json", *FAST)
    assert result.exit_code == 0, result.output
    [body] = json.loads(result.stdout)
    stem = photos[0].stem
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{stem}{suffix}"
        for suffix in (".png", ".colour.png", ".overlay.png", ".json", ".rle.json")
    )
    assert body == json.loads((out / f"{stem}.json").read_text())
    assert (body["domain"], body["version"]) == (domain, 1)
    assert body["params"]["proposals"] == "slic" and body["params"]["k"] == 10
    with Image.open(out / f"{stem}.png") as index, Image.open(photos[0]) as photo:
        assert index.mode == "P" and index.size == photo.size
        labels = np.asarray(index)
    assert set(np.unique(labels).tolist()) <= {int(k) for k in body["classes"]}
    for segment in body["segments"]:
        assert segment["source"] in ("retrieval", "zero-shot")
        assert segment["label"] == body["classes"][str(segment["class_id"])]
        for n in segment["neighbours"]:
            assert n["dataset"] == "data_dataset_voc" and n["image"].startswith("2011_")
    rle = json.loads((out / f"{stem}.rle.json").read_text())
    assert len(rle) == len(body["segments"])
    # --exact (exhaustive kNN) is recorded; on a domain this small the answers agree
    exact = cli("segment", domain, photos[0], "--out", tmp_path / "exact", "--exact", *FAST)
    assert exact.exit_code == 0, exact.output
    again = json.loads((tmp_path / "exact" / f"{stem}.json").read_text())
    assert (body["params"]["exact"], again["params"]["exact"]) == (False, True)
    assert [s["label"] for s in again["segments"]] == [s["label"] for s in body["segments"]]


def test_explain_by_segment_and_by_pixel(cli: Run, domain: str, photos: list[Path]) -> None:
    by_id = cli("explain", domain, photos[0], "--segment", "3", "--json", *FAST)
    assert by_id.exit_code == 0, by_id.output
    report = json.loads(by_id.stdout)
    assert report["segment"]["id"] == 3
    assert len(report["neighbours"]) == 10
    assert report["rule"].startswith("max P_ret")
    x, y, w, h = report["segment"]["bbox"]
    text = cli("explain", domain, photos[0], "--at", f"{x + w // 2},{y + h // 2}", *FAST)
    assert text.exit_code == 0, text.output
    assert "fusion:" in text.output and "weight" in text.output
    clean_error(cli("explain", domain, photos[0], "--at", "99999,1", *FAST), "outside")
    clean_error(cli("explain", domain, photos[0], *FAST), "exactly one of --segment")


def write_variants(photo: Path, folder: Path) -> dict[str, Path]:
    """The same real photo as CMYK, 16-bit grey, 8-bit grey, palette, RGBA PNG."""
    folder.mkdir()
    with Image.open(photo) as img:
        rgb = img.convert("RGB")
    files = {
        "cmyk": folder / "cmyk.jpg",
        "grey16": folder / "grey16.png",
        "grey": folder / "grey.jpg",
        "palette": folder / "palette.png",
        "rgba": folder / "rgba.png",
    }
    rgb.convert("CMYK").save(files["cmyk"])
    grey = np.asarray(rgb.convert("L")).astype(np.uint16) * 257
    Image.fromarray(grey).save(files["grey16"])
    rgb.convert("L").save(files["grey"])
    rgb.convert("P", palette=Image.Palette.ADAPTIVE).save(files["palette"])
    rgb.convert("RGBA").save(files["rgba"])
    return files


def test_every_photo_mode_is_segmented_not_refused(
    cli: Run, domain: str, photos: list[Path], tmp_path: Path
) -> None:
    files = write_variants(photos[0], tmp_path / "modes")
    result = cli("segment", domain, tmp_path / "modes", "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    with Image.open(photos[0]) as photo:
        size = photo.size
    for path in files.values():
        with Image.open(tmp_path / "out" / f"{path.stem}.png") as index:
            assert index.size == size, path.name


def test_exif_rotation_is_applied(
    cli: Run, domain: str, photos: list[Path], tmp_path: Path
) -> None:
    with Image.open(photos[0]) as img:
        rgb = img.convert("RGB")
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: the viewer rotates 90° clockwise
    tagged, upright = tmp_path / "in" / "tagged.png", tmp_path / "in" / "upright.png"
    tagged.parent.mkdir()
    rgb.save(tagged, exif=exif)
    rgb.transpose(Image.Transpose.ROTATE_270).save(upright)
    result = cli("segment", domain, tagged, upright, "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    a = np.asarray(Image.open(tmp_path / "out" / "tagged.png"))
    b = np.asarray(Image.open(tmp_path / "out" / "upright.png"))
    assert a.shape == (rgb.width, rgb.height)
    assert np.array_equal(a, b)


def test_a_bad_file_in_a_folder_is_reported_and_the_rest_processed(
    cli: Run, domain: str, photos: list[Path], tmp_path: Path
) -> None:
    folder = tmp_path / "in"
    folder.mkdir()
    for p in photos[:2]:
        shutil.copy(p, folder)
    (folder / "broken.jpg").write_text("not a jpeg at all")
    truncated = folder / "truncated.jpg"
    truncated.write_bytes(photos[2].read_bytes()[:4000])
    result = cli("segment", domain, folder, "--out", tmp_path / "out", *FAST)
    clean_error(result, "broken.jpg: not an image", "truncated.jpg: cannot decode image")
    assert "segmented 2 of 4 images" in result.output
    assert {p.name for p in (tmp_path / "out").glob("*.json")} == {
        f"{p.stem}.json" for p in photos[:2]
    }


def test_refusals(
    cli: Run, domain: str, photos: list[Path], tmp_path: Path, settings: Settings
) -> None:
    out = tmp_path / "out"
    clean_error(cli("segment", "nope", photos[0], "--out", out), "domain 'nope' does not exist")
    clean_error(cli("segment", domain, photos[0], "--out", out, "--version", "7"), "no version 7")
    clean_error(
        cli("segment", domain, photos[0], "--out", out, "--k", "3", "--lambda", "2"), "lambda"
    )
    clean_error(
        cli("segment", domain, photos[0], "--out", out, "--proposals", "magic"), "unknown proposals"
    )
    clean_error(cli("segment", domain, tmp_path / "missing.jpg", "--out", out), "missing.jpg")


def test_pixel_limit_refuses_large_images(
    domain: str, photos: list[Path], tmp_path: Path, settings: Settings
) -> None:
    from typer.testing import CliRunner

    from knnvocab.cli import app

    env = {
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": settings.database_url,
        "KNNVOCAB_MAX_IMAGE_PIXELS": "10000",
    }
    result = CliRunner().invoke(
        app, ["segment", domain, str(photos[0]), "--out", str(tmp_path / "o")], env=env
    )
    clean_error(result, "above the limit of 10,000")


def test_an_empty_domain_is_refused(
    cli: Run, model_args: list[str], tmp_path: Path, photos: list[Path]
) -> None:
    empty = tmp_path / "empty"
    (empty / "images").mkdir(parents=True)
    (empty / "masks").mkdir()
    (empty / "class_names.txt").write_text("a\n")
    bad = index_dataset(tmp_path / "bad")
    (bad / "images" / "2011_000003.jpg").write_text("broken")
    assert cli("ingest", "fresh", bad, "--format", "index-masks", *model_args).exit_code == 1
    clean_error(cli("segment", "fresh", photos[0], "--out", tmp_path / "o"), "no published version")


def test_user_masks_as_png_and_rle(
    cli: Run, domain: str, photos: list[Path], tmp_path: Path
) -> None:
    from pycocotools import mask as mask_utils

    src = next(s for s in sources() if s.key == photos[0].stem)
    masks = tmp_path / "masks"
    masks.mkdir()
    Image.fromarray(src.objects.clip(0, 254).astype(np.uint8)).save(masks / f"{photos[0].stem}.png")
    other = next(s for s in sources() if s.key == photos[1].stem)
    rles = []
    for obj in (1, 2):
        rle = mask_utils.encode(np.asfortranarray((other.objects == obj).astype(np.uint8)))
        rles.append({"size": rle["size"], "counts": rle["counts"].decode()})
    (masks / f"{photos[1].stem}.json").write_text(json.dumps(rles))
    result = cli(
        "segment",
        domain,
        photos[0],
        photos[1],
        "--out",
        tmp_path / "out",
        "--proposals",
        f"masks:{masks}",
        "--json",
    )
    assert result.exit_code == 0, result.output
    first, second = json.loads(result.stdout)
    assert len(first["segments"]) == len(np.unique(src.objects.clip(0, 254))) - 1
    assert len(second["segments"]) == 2
    assert first["params"]["proposals"] == f"masks:{masks}"
    missing = cli(
        "segment", domain, photos[2], "--out", tmp_path / "o2", "--proposals", f"masks:{masks}"
    )
    clean_error(missing, "no proposal masks")


def test_uint16_index_png_beyond_255_classes(
    cli: Run, model_args: list[str], tmp_path: Path, photos: list[Path]
) -> None:
    data = index_dataset(tmp_path / "big")
    names = (data / "class_names.txt").read_text().split()
    extra = [f"thing-{i}" for i in range(300)]
    (data / "class_names.txt").write_text("\n".join(names + extra) + "\n")
    assert cli("ingest", "many", data, "--format", "index-masks", *model_args).exit_code == 0
    result = cli("segment", "many", photos[0], "--out", tmp_path / "out", *FAST)
    assert result.exit_code == 0, result.output
    with Image.open(tmp_path / "out" / f"{photos[0].stem}.png") as index:
        assert index.mode in ("I;16", "I")
    body = json.loads((tmp_path / "out" / f"{photos[0].stem}.json").read_text())
    assert len(body["classes"]) == len(names) + 300 + 1
