"""Zero-shot prompt templates are part of a version: recorded when it is taken, inherited
by later versions until an ingest names new ones, and used whenever it is read."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from knnvocab.embed.prompts import DEFAULT_TEMPLATES, PromptSet, load_templates
from knnvocab.embed.spec import EncoderSpec
from knnvocab.engine.batch import segment_files
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.segmenter import Segmenter
from knnvocab.errors import ConfigError
from knnvocab.history import version_log
from knnvocab.imageio import load_rgb
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import retire
from knnvocab.workspace import Workspace
from tests.conftest import Run

CUSTOM = ("a photo of a {}.", "itap of a {}.")
CUSTOM_FILE = "# templates for the kitchen\n\na photo of a {}.\n  itap of a {}.  \n"
EXACT = SegmentParams(exact=True, n_segments=32)
ZERO_SHOT = SegmentParams(zero_shot_only=True, n_segments=32)


@pytest.fixture
def photos(labelme_voc: Path) -> list[Path]:
    return sorted((labelme_voc / "JPEGImages").glob("*.jpg"))


@pytest.fixture
def templates_file(tmp_path: Path) -> Path:
    path = tmp_path / "templates.txt"
    path.write_text(CUSTOM_FILE)
    return path


def outputs(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.iterdir())}


def test_each_version_answers_with_its_own_templates(
    ws: Workspace,
    tiny_model: EncoderSpec,
    labelme_voc: Path,
    photos: list[Path],
    templates_file: Path,
    tmp_path: Path,
) -> None:
    ingest(ws, "kitchen", labelme_voc, IngestOptions("voc", min_area=1), tiny_model, actor="tester")
    before = segment_files(ws, "kitchen", photos, tmp_path / "before", 1, EXACT)
    custom = IngestOptions("voc", min_area=1, templates=load_templates(templates_file))
    assert custom.templates == CUSTOM
    ingest(ws, "kitchen", labelme_voc, custom, actor="tester")
    after = segment_files(ws, "kitchen", photos, tmp_path / "after", 1, EXACT)
    assert all(o.error is None for o in before + after)
    assert len(outputs(tmp_path / "before")) == 4 * len(photos)  # json + 3 PNGs each
    assert outputs(tmp_path / "before") == outputs(tmp_path / "after")

    v1, v2 = (Segmenter(ws, "kitchen", v, ZERO_SHOT) for v in (1, 2))
    assert v1.class_ids == v2.class_ids  # the same vocabulary, other prompts
    names = [v2.names[c] for c in v2.class_ids]
    encoder = ws.encoder(tiny_model)
    expected = encoder.embed_texts(names, PromptSet(CUSTOM))
    np.testing.assert_array_equal(v2.text, expected)
    image = load_rgb(photos[0])
    first, second = v1.segment(image, photos[0]), v2.segment(image, photos[0])
    assert first.segments and len(first.segments) == len(second.segments)
    p1 = np.stack([s.p_base for s in first.segments])
    p2 = np.stack([s.p_base for s in second.segments])
    assert not np.allclose(p1, p2)


def test_later_versions_keep_the_templates_until_an_ingest_names_new_ones(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    ingest(ws, "kitchen", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    ingest(ws, "kitchen", labelme_voc, IngestOptions("voc", templates=CUSTOM), actor="tester")
    retire(ws, "kitchen", "person", actor="tester")
    ingest(ws, "kitchen", labelme_voc, IngestOptions("voc"), actor="tester")
    ingest(ws, "other", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    log = version_log(ws, "kitchen")
    assert [(r.operation, tuple(r.templates)) for r in log] == [
        ("ingest", DEFAULT_TEMPLATES),
        ("ingest", CUSTOM),
        ("retire", CUSTOM),
        ("ingest", CUSTOM),
    ]
    assert {r.prompt_rule for r in log} == {"words-v1"}
    assert "templates" not in log[1].params  # recorded once, with the version
    assert len({r.encoder["fingerprint"] for r in log}) == 1  # one collection for all
    [other] = version_log(ws, "other")
    assert tuple(other.templates) == DEFAULT_TEMPLATES


def test_the_library_refuses_bad_templates() -> None:
    for bad in ((), ("a photo",), ("a {} and a {}",), ("a {0}",), ("{name}",), ("a {}}",)):
        with pytest.raises(ConfigError, match="template"):
            IngestOptions("voc", templates=bad)


BAD_FILES = {
    "": "no prompt templates",
    "# only a comment\n\n": "no prompt templates",
    "a photo of a {}.\na photo\n": "line 2",
    "# two names\nthe {} and the {}\n": "line 2",
    "a photo of a {0}.\n": "line 1",
    "a photo of a {name}.\n": "line 1",
    "a {{}} photo\n": "line 1",
    "a photo of a {}.\n\na photo of a {}.\n": "line 3: 'a photo of a {}.' repeats line 1",
}


def test_bad_templates_files_are_refused_before_anything_runs(
    cli: Run, model_args: list[str], labelme_voc: Path, tmp_path: Path
) -> None:
    ok = cli("ingest", "kitchen", labelme_voc, "-f", "voc", *model_args)
    assert ok.exit_code == 0, ok.output
    missing = tmp_path / "missing.txt"
    cases: dict[str | None, str] = {**BAD_FILES, None: "cannot read"}
    for n, (text, reason) in enumerate(cases.items()):
        path = missing
        if text is not None:
            path = tmp_path / f"bad{n}.txt"
            path.write_text(text)
        # a model that cannot load: the templates are refused before it is tried
        for domain in ("kitchen", "new"):
            args = ["-f", "voc", "--model", "/none.json", "--templates", path]
            result = cli("ingest", domain, labelme_voc, *args)
            assert result.exit_code == 1, (text, result.output)
            assert "Traceback" not in result.output
            [line] = [ln for ln in result.output.splitlines() if ln.startswith("error:")]
            assert f"{path}: " in line and reason in line, (text, line)
    log = json.loads(cli("vocab", "log", "kitchen", "--json").stdout)
    assert [v["number"] for v in log["versions"]] == [1]
    assert cli("vocab", "log", "new").exit_code == 1  # the domain was never created


def test_vocab_log_shows_the_templates(
    cli: Run, model_args: list[str], labelme_voc: Path, templates_file: Path
) -> None:
    first = cli("ingest", "kitchen", labelme_voc, "-f", "voc", *model_args)
    assert first.exit_code == 0, first.output
    second = cli("ingest", "kitchen", labelme_voc, "-f", "voc", "--templates", templates_file)
    assert second.exit_code == 0, second.output
    log = json.loads(cli("vocab", "log", "kitchen", "--json").stdout)
    assert [v["templates"] for v in log["versions"]] == [list(DEFAULT_TEMPLATES), list(CUSTOM)]
    assert {v["prompt_rule"] for v in log["versions"]} == {"words-v1"}
    text = cli("vocab", "log", "kitchen")
    assert text.exit_code == 0, text.output
    lines = [ln.strip() for ln in text.output.splitlines() if "templates:" in ln]
    assert lines == [
        "templates: default ensemble (7)",
        'templates: 2 custom: "a photo of a {}." | "itap of a {}."',
    ]
