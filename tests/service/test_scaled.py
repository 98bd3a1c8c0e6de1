"""The service on the scaled deployment's code path: a Postgres catalog and the Qdrant
server API (qdrant-client's local mode stands in for a server: none runs here), with a
domain created, ingested and segmented through the API alone."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
from typer.testing import CliRunner

from knnvocab.cli import app
from knnvocab.client import Client, ServiceError
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.tokens import create_token
from knnvocab.workspace import Workspace
from tests.service.server import Server, knnvocab_env

pytestmark = pytest.mark.slow


@pytest.fixture
def scaled(
    tmp_path: Path, pg_url: str, tiny_model: EncoderSpec, labelme_voc: Path
) -> Iterator[tuple[Server, str, Path]]:
    data = tmp_path / "data"
    shutil.copytree(labelme_voc, data / "voc")
    shutil.copy(tiny_model.model, data / "tiny.json")
    shutil.copy(str(tiny_model.checkpoint), data / "tiny.pt")
    home = tmp_path / "home"
    with Workspace(Settings(home=home, database_url=pg_url, qdrant_url=":memory:")) as ws:
        _, ops = create_token(ws, None, "admin", actor="tester", name="ops")
    env = knnvocab_env(home, pg_url, KNNVOCAB_QDRANT_URL=":memory:", KNNVOCAB_DATA_ROOT=str(data))
    with Server(env, tmp_path / "serve.log") as server:
        yield server, ops, data


def test_a_domain_made_ingested_and_segmented_through_the_api(
    scaled: tuple[Server, str, Path],
) -> None:
    server, ops, data = scaled
    with Client(server.url, ops) as c:
        assert c.ready()["store"] == "qdrant server"
        c.create_domain("port", "made over HTTP")
        job = c.ingest("port", dataset="voc", format="voc", model="tiny.json", checkpoint="tiny.pt")
        done = c.wait(job["id"], timeout=300)
        assert done["state"] == "succeeded", done
        seg = c.segment("port", data / "voc" / "JPEGImages" / "2011_000003.jpg")
        assert seg["version"] == 1 and seg["segments"]
        assert [e["actor"] for e in c.audit("port", action="ingest.publish")] == ["ops"]
        # only an embedded home's owner announces itself to the CLI
        assert not (Path(server.env["KNNVOCAB_HOME"]) / "service.json").exists()


def test_several_workers_are_refused_on_the_embedded_store(tmp_path: Path) -> None:
    env = {"KNNVOCAB_HOME": str(tmp_path), "KNNVOCAB_QDRANT_URL": ""}
    result = CliRunner().invoke(app, ["serve", "--workers", "2"], env=env)
    assert result.exit_code == 1
    assert "the embedded store is owned by one process" in result.output


def test_a_catalog_that_goes_away_is_503_and_comes_back_without_a_restart(
    scaled: tuple[Server, str, Path], pg_url: str
) -> None:
    import sqlalchemy as sa

    from tests.conftest import POSTGRES_ADMIN_URL

    server, ops, _ = scaled
    name = sa.make_url(pg_url).database
    admin = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")

    def connections(allowed: bool) -> None:
        with admin.connect() as conn:
            conn.execute(
                sa.text(f'ALTER DATABASE "{name}" ALLOW_CONNECTIONS {str(allowed).lower()}')
            )
            if not allowed:
                conn.execute(
                    sa.text(
                        "SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = :d"
                    ),
                    {"d": name},
                )

    with Client(server.url, ops) as c:
        assert c.domains() == []
        connections(False)
        try:
            with pytest.raises(ServiceError) as down:
                c.domains()
            assert down.value.status == 503 and down.value.code == "unavailable"
        finally:
            connections(True)
        assert c.domains() == []
    admin.dispose()
    assert server.alive()
