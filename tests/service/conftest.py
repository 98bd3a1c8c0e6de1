"""A real `knnvocab serve` on loopback over a home with one ingested domain (``street``,
the three labelme VOC photos, the tiny real model) and an empty one (``harbour``), on
a SQLite and on a Postgres catalog; tokens of each scope."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from knnvocab.changes import versioned_change
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle.domains import new_domain
from knnvocab.tokens import create_token
from knnvocab.workspace import Workspace
from tests.service.server import Server, knnvocab_env


@dataclass
class Deployment:
    """A running service and what the tests need to talk to it."""

    server: Server
    settings: Settings
    tokens: dict[str, str]  # "street:query", "harbour:write", "deployment:admin", …
    photos: list[Path]
    data_root: Path

    @property
    def url(self) -> str:
        return self.server.url

    def client(self, token: str | None = None) -> httpx.Client:
        headers = {"Authorization": f"Bearer {self.tokens[token]}"} if token else {}
        return httpx.Client(base_url=self.url, headers=headers, timeout=60)


def build_home(settings: Settings, tiny_model: EncoderSpec, labelme_voc: Path) -> dict[str, str]:
    """Ingest ``street`` (v1; v2 failed), make ``harbour`` (empty) and a token of every
    kind (named ``<domain>-<scope>``)."""
    tokens = {}
    with Workspace(settings) as ws:
        ingest(ws, "street", labelme_voc, IngestOptions("voc", min_area=1), tiny_model, actor="t")
        with contextlib.suppress(RuntimeError), versioned_change(ws, "street", "retire", "t"):
            raise RuntimeError("a change that failed: version 2 is not published")
        new_domain(ws, "harbour", actor="tester")
        for domain in ("street", "harbour"):
            for scope in ("query", "write", "admin"):
                name = f"{domain}-{scope}"
                _, secret = create_token(ws, domain, scope, actor="tester", name=name)
                tokens[f"{domain}:{scope}"] = secret
        _, tokens["deployment:admin"] = create_token(ws, None, "admin", actor="tester")
        _, tokens["deployment:query"] = create_token(ws, None, "query", actor="tester")
    return tokens


@pytest.fixture(scope="module")
def server_env() -> dict[str, str]:
    """More settings of the module's service (a module overrides this fixture)."""
    return {}


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def deployment(
    request: pytest.FixtureRequest,
    server_env: dict[str, str],
    tmp_path_factory: pytest.TempPathFactory,
    tiny_model: EncoderSpec,
    labelme_voc: Path,
) -> Iterator[Deployment]:
    root = tmp_path_factory.mktemp(f"serve-{request.param}")
    home = root / "home"
    if request.param == "sqlite":
        url = f"sqlite:///{home / 'catalog.sqlite3'}"
    else:
        url = request.getfixturevalue("pg_module_url")
    settings = Settings(home=home, database_url=url, user="tester")
    tokens = build_home(settings, tiny_model, labelme_voc)
    data = root / "data"
    data.mkdir()
    (data / "voc").symlink_to(labelme_voc, target_is_directory=True)
    env = knnvocab_env(
        home, url, KNNVOCAB_DATA_ROOT=str(data), KNNVOCAB_REQUEST_TIMEOUT="120", **server_env
    )
    with Server(env, root / "serve.log") as server:
        yield Deployment(
            server,
            settings,
            tokens,
            sorted((labelme_voc / "JPEGImages").glob("*.jpg")),
            data,
        )


@pytest.fixture
def d(deployment: Deployment) -> Deployment:
    """The module's running deployment (short name for the tests)."""
    assert deployment.server.alive(), "the service died during an earlier test"
    return deployment
