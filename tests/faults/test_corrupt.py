"""Fault matrix, a store file truncated or overwritten: opening the shard, or a query that
reads the damaged file, is refused with one line naming the shard (no traceback, no crash);
`doctor` names every domain of that shard and repairs nothing; another collection (another
encoder's shard) answers as before.

Two domains (``farm``, ``shop``) share the tiny encoder's shard; ``port`` uses a second
encoder (the same tiny model with other weights), so it lives in another shard.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from knnvocab.cli import app
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.workspace import Workspace
from tests.data import index_dataset
from tests.faults.helpers import copy_home, knnvocab, one_line_error, sqlite_home

pytestmark = pytest.mark.slow


@dataclass
class Homes:
    home: Path  # three domains, two shards: copied, never damaged itself
    photo: Path
    shard: Path  # farm's and shop's shard, relative to a home


@pytest.fixture(scope="module")
def homes(tmp_path_factory: pytest.TempPathFactory, tiny_model: EncoderSpec) -> Iterator[Homes]:
    root = tmp_path_factory.mktemp("corrupt")
    state = torch.load(tiny_model.checkpoint, weights_only=True)
    first = next(iter(state))
    state[first] = state[first] + 0.01  # other weights: another fingerprint, another shard
    torch.save(state, root / "other.pt")
    other = EncoderSpec(model=tiny_model.model, checkpoint=str(root / "other.pt"))
    data = index_dataset(root / "data")
    home = root / "home"
    settings = Settings(home, f"sqlite:///{home / 'catalog.sqlite3'}", user="tester")
    with Workspace(settings) as ws:
        for domain, encoder in (("farm", tiny_model), ("shop", tiny_model), ("port", other)):
            ingest(ws, domain, data, IngestOptions("index-masks"), encoder, actor="tester")
        shard = ws.store.shard_path(ws.encoder(tiny_model).info.collection)
    yield Homes(home, next((data / "images").iterdir()), shard.relative_to(home))


def _truncate_wal(shard: Path) -> None:
    (shard / "wal" / "open-1").write_bytes(b"")


def _truncate_vectors(shard: Path) -> None:
    for chunk in shard.glob("segments/*/vector_storage/vectors/chunk_0.mmap"):
        with chunk.open("r+b") as f:
            f.truncate(100)


@pytest.mark.parametrize(
    ("damage", "query"),
    [(_truncate_wal, False), (_truncate_vectors, True)],
    ids=["wal-truncated-open", "vectors-truncated-query"],
)
def test_a_damaged_shard_is_refused_and_named(
    homes: Homes, tmp_path: Path, damage: Callable[[Path], None], query: bool
) -> None:
    settings = copy_home(sqlite_home(homes.home), tmp_path / "home")
    home = settings.home
    shard = home / homes.shard
    damage(shard)
    db = f"sqlite:///{home / 'catalog.sqlite3'}"
    out = tmp_path / "out"
    out.mkdir()

    def command(domain: str) -> list[str | Path]:
        return ["segment", domain, homes.photo, "--out", out / domain] if query else [
            "export", domain, out / f"{domain}.knnvocab.tar"
        ]  # fmt: skip

    done = knnvocab(settings, *command("farm"))
    one_line_error(done, f"vector shard {shard} is damaged")

    done = knnvocab(settings, "doctor", "--repair", "--json")
    assert done.returncode == 1 and "Traceback" not in done.stderr, done.stderr[-3000:]
    report = json.loads(done.stdout)
    damaged = {f["domain"] for f in report["findings"] if f["kind"] == "store-damaged"}
    assert damaged == {"farm", "shop"}, report
    assert not any(f["repaired"] for f in report["findings"]), report  # nothing "repaired"
    assert {f["domain"] for f in report["findings"] if f["problem"]} == {"farm", "shop"}

    # the other encoder's shard answers as before (doctor read all of it back, too)
    env = {"KNNVOCAB_HOME": str(home), "KNNVOCAB_DATABASE_URL": db, "KNNVOCAB_USER": "tester"}
    result = CliRunner().invoke(app, [str(a) for a in command("port")], env=env)
    assert result.exit_code == 0, result.output
