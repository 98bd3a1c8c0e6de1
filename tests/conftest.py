"""Fixtures shared by every test: real Postgres, real qdrant-edge, a tiny real open_clip
model saved to a checkpoint file, and real labelled photos.

Postgres is not optional: if it is unreachable the tests fail, they do not skip.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
import sqlalchemy as sa
from typer.testing import CliRunner, Result

from knnvocab.catalog.database import Catalog
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.workspace import Workspace

POSTGRES_ADMIN_URL = os.environ.get(
    "KNNVOCAB_TEST_POSTGRES_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
)
EXAMPLES = Path("/usr/share/doc/labelme-examples/examples")
LABELME_VOC = EXAMPLES / "instance_segmentation" / "data_dataset_voc"

#: a real open_clip ViT config, small enough for CPU tests
TINY_CONFIG = {
    "embed_dim": 64,
    "vision_cfg": {"image_size": 64, "layers": 2, "width": 64, "patch_size": 16, "head_width": 32},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 64, "heads": 2, "layers": 2},
}


def _admin_engine() -> sa.Engine:
    engine = sa.create_engine(POSTGRES_ADMIN_URL, isolation_level="AUTOCOMMIT")
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("select 1"))
    except sa.exc.OperationalError as exc:
        pytest.fail(
            f"PostgreSQL at {POSTGRES_ADMIN_URL} is unreachable ({exc.orig}); the catalog "
            "tests need a real Postgres: start it (`make postgres`) or set "
            "KNNVOCAB_TEST_POSTGRES_URL",
            pytrace=False,
        )
    return engine


@pytest.fixture(scope="session")
def pg_template() -> Iterator[str]:
    """A migrated Postgres database used as the template of every test database."""
    admin = _admin_engine()
    name = f"knnvocab_tpl_{uuid.uuid4().hex[:8]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    Catalog(url).close()
    yield name
    with admin.connect() as conn:
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
    admin.dispose()


@contextmanager
def template_copy(template: str, prefix: str) -> Iterator[str]:
    """A fresh Postgres database copied from ``template`` (migrated already): its URL,
    dropped afterwards."""
    admin = _admin_engine()
    name = f"{prefix}{uuid.uuid4().hex[:10]}"
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}" TEMPLATE "{template}"'))
    try:
        url = sa.make_url(POSTGRES_ADMIN_URL).set(database=name)
        yield url.render_as_string(hide_password=False)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()


@pytest.fixture
def pg_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database for one test (copied from the template)."""
    with template_copy(pg_template, "knnvocab_t_") as url:
        yield url


@pytest.fixture(scope="module")
def pg_module_url(pg_template: str) -> Iterator[str]:
    """A fresh, migrated Postgres database shared by one test module (a running service)."""
    with template_copy(pg_template, "knnvocab_m_") as url:
        yield url


@pytest.fixture(params=["sqlite", "postgres"])
def catalog_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    """Each test using this runs twice: on a SQLite file and on a real Postgres."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'catalog.sqlite3'}"
    return str(request.getfixturevalue("pg_url"))


@pytest.fixture
def settings(tmp_path: Path, catalog_url: str) -> Settings:
    return Settings(home=tmp_path / "home", database_url=catalog_url, user="tester")


@pytest.fixture
def sqlite_settings(tmp_path: Path) -> Settings:
    home = tmp_path / "home"
    return Settings(home=home, database_url=f"sqlite:///{home / 'catalog.sqlite3'}", user="tester")


@pytest.fixture
def ws(settings: Settings) -> Iterator[Workspace]:
    with Workspace(settings) as workspace:
        yield workspace


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> EncoderSpec:
    """A tiny open_clip ViT: its config as a JSON file, its weights as a real checkpoint."""
    import open_clip
    import torch

    folder = tmp_path_factory.mktemp("model")
    config = folder / "knnvocab-tiny.json"
    config.write_text(json.dumps(TINY_CONFIG))
    open_clip.add_model_config(config)
    torch.manual_seed(1234)
    model = open_clip.create_model("knnvocab-tiny")
    checkpoint = folder / "knnvocab-tiny.pt"
    torch.save(model.state_dict(), checkpoint)
    return EncoderSpec(model=str(config), checkpoint=str(checkpoint))


@pytest.fixture(scope="session")
def labelme_voc() -> Path:
    """Three real Pascal VOC photos with class and object masks (Debian labelme-examples)."""
    if not LABELME_VOC.is_dir():
        pytest.fail(
            f"{LABELME_VOC} is missing: install the Debian package labelme-examples "
            "(`make test` does)",
            pytrace=False,
        )
    return LABELME_VOC


Run = Callable[..., Result]


@pytest.fixture
def cli(settings: Settings) -> Run:
    """``cli("vocab", "log", "d")`` runs the real command in-process against the test
    settings (typer's CliRunner)."""
    from knnvocab.cli import app

    env = {
        "KNNVOCAB_HOME": str(settings.home),
        "KNNVOCAB_DATABASE_URL": settings.database_url,
        "KNNVOCAB_USER": settings.user,
        "KNNVOCAB_QDRANT_URL": "",
    }

    def run(*args: str | Path) -> Result:
        return CliRunner().invoke(app, [str(a) for a in args], env=env)

    return run


@pytest.fixture
def model_args(tiny_model: EncoderSpec) -> list[str]:
    """The tiny model's encoder options for `knnvocab ingest`."""
    return ["--model", tiny_model.model, "--checkpoint", str(tiny_model.checkpoint)]
