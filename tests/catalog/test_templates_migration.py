"""Revision 0003 records each version's zero-shot prompts: versions written before it get
the default ensemble they were read with, and a downgrade never drops other ones."""

from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from knnvocab.catalog.database import current_revision, downgrade, head_revision, upgrade
from knnvocab.embed.prompts import DEFAULT_TEMPLATES
from knnvocab.embed.spec import EncoderSpec
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.workspace import Workspace


def columns(engine: sa.Engine) -> set[str]:
    return {c["name"] for c in sa.inspect(engine).get_columns("vocab_version")}


def test_versions_from_before_0003_get_the_default_templates(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    ingest(ws, "k", labelme_voc, IngestOptions("voc"), tiny_model, actor="tester")
    engine = ws.catalog.engine
    downgrade(engine, "0002")
    assert current_revision(engine) == "0002"
    assert not {"templates", "prompt_rule"} & columns(engine)
    upgrade(engine)
    assert current_revision(engine) == head_revision()
    [record] = version_log(ws, "k")
    assert (tuple(record.templates), record.prompt_rule) == (DEFAULT_TEMPLATES, "words-v1")


def test_downgrade_below_0003_keeps_recorded_templates(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    ingest(
        ws,
        "k",
        labelme_voc,
        IngestOptions("voc", templates=("itap of a {}.",)),
        tiny_model,
        actor="tester",
    )
    engine = ws.catalog.engine
    with pytest.raises(RuntimeError, match="holds 1 versions with their own prompt templates"):
        downgrade(engine, "0002")
    assert current_revision(engine) == head_revision()
    assert [r.templates for r in version_log(ws, "k")] == [["itap of a {}."]]
