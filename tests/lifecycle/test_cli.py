"""The lifecycle commands as a user meets them: `domain create/list/show/delete`, `vocab
retire/restore/purge`, `audit`, and refusals as one-line errors with exit code 1."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import Result

from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.versions import begin_version, close_version
from knnvocab.config import Settings
from knnvocab.workspace import Workspace
from tests.cli.conftest import Run
from tests.data import index_dataset
from tests.lifecycle.helpers import collection_of


@pytest.fixture(scope="module")
def photos(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return index_dataset(tmp_path_factory.mktemp("photos"))


def ok(result: Result) -> Result:
    assert result.exit_code == 0, result.output
    return result


def refused(result: Result, *parts: str) -> None:
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    lines = [line for line in result.output.splitlines() if line.startswith("error:")]
    assert len(lines) == 1, result.output
    for part in parts:
        assert part in lines[0], lines[0]


def pending(settings: Settings, domain: str, close: str | None = None) -> int:
    """A retire version of this (live) process, left pending or closed as ``close``."""
    with Workspace(settings) as ws, ws.catalog.session() as s:
        row = get_domain(s, domain)
        assert row.encoder is not None
        v = begin_version(s, row, "retire", row.encoder, "bob", params={"pid": os.getpid()})
        if close:
            close_version(s, row, v, close, "planted")
        return v.number


def test_domains_from_create_to_delete(
    cli: Run, model_args: list[str], photos: Path, settings: Settings
) -> None:
    ok(cli("domain", "create", "shop", "--description", "the shop floor"))
    refused(cli("domain", "create", "shop"), "domain 'shop' already exists")
    refused(cli("domain", "create", "Shop Floor"), "invalid domain name")
    ok(cli("domain", "create", "lab", *model_args))
    lab = json.loads(ok(cli("domain", "show", "lab", "--json")).stdout)
    assert lab["encoder_fingerprint"] and lab["head_version"] == 0
    # the domain's own encoder is used: no encoder options needed
    ok(cli("ingest", "lab", photos, "--format", "index-masks", "--dataset-name", "photos"))
    listed = {d["name"]: d for d in json.loads(ok(cli("domain", "list", "--json")).stdout)}
    assert listed["shop"]["description"] == "the shop floor"
    assert listed["shop"]["encoder_fingerprint"] is None
    assert (listed["lab"]["instances"], listed["lab"]["versions"]) == (15, {"published": 1})
    assert "lab" in ok(cli("domain", "list")).stdout

    number = pending(settings, "lab")
    refused(cli("domain", "delete", "lab", "--yes"), f"has pending version {number}")
    with Workspace(settings) as ws:
        from knnvocab.lifecycle import rollback_pending

        rollback_pending(ws, "lab", actor="tester")
    refused(cli("domain", "delete", "lab"), "pass --yes to confirm")
    with Workspace(settings) as ws:
        collection = collection_of(ws, "lab")
        assert ws.store.domains(collection) == ["lab"]
    ok(cli("domain", "delete", "lab", "--yes", "-m", "project ended"))
    with Workspace(settings) as ws:
        assert ws.store.domains(collection) == []
    refused(cli("domain", "show", "lab"), "domain 'lab' does not exist")
    events = json.loads(ok(cli("audit", "lab", "--json")).stdout)
    assert events[0]["action"] == "domain.create"
    tombstone = events[-1]
    assert tombstone["action"] == "domain.delete"
    assert tombstone["detail"]["points"] == 15 and tombstone["detail"]["reason"] == "project ended"
    assert tombstone["actor"] == "tester"


def test_vocab_changes_and_refusals(
    cli: Run, model_args: list[str], photos: Path, settings: Settings
) -> None:
    args = ("--format", "index-masks", *model_args, "--dataset-name", "p", "--json")
    added = json.loads(ok(cli("ingest", "shop", photos, *args)).stdout)["instances_added"]
    person, bus = added["person"], added["bus"]
    refused(cli("vocab", "purge", "shop", "--class", "person"), f"delete {person} points", "--yes")
    refused(cli("vocab", "purge", "shop", "--dataset", "p"), "would delete 15 points")
    refused(cli("vocab", "purge", "shop", "--yes"), "exactly one of a class or a dataset")
    refused(cli("vocab", "retire", "shop", "unicorn"), "has no class 'unicorn'")
    retired = json.loads(ok(cli("vocab", "retire", "shop", "person", "--json")).stdout)
    assert (retired["version"], retired["points"]) == (2, person)
    restored = ok(cli("vocab", "restore", "shop", "person")).stdout
    assert f"class 'person' restored ({person} points)" in restored
    purged = ok(cli("vocab", "purge", "shop", "--class", "bus", "--yes", "-m", "request 7"))
    assert "versions no longer reproducible: 1, 2, 3" in purged.stdout
    log = ok(cli("vocab", "log", "shop")).stdout
    assert "purge" in log and "classes purged: bus" in log and "target:   class bus" in log
    assert "params:   batch_size=" in log and "min_area=" in log  # the ingest's parameters
    # time travel: only published versions can be read
    failed = pending(settings, "shop", close="rolled_back")
    refused(cli("vocab", "show", "shop", "--version", "99"), "has no version 99 (head is 4)")
    refused(
        cli("vocab", "show", "shop", "--version", str(failed)),
        f"version {failed} of domain 'shop' is rolled back, not published",
    )
    refused(cli("vocab", "diff", "shop", "1", str(failed)), "not published")
    shown = ok(cli("vocab", "show", "shop", "--version", "1"))
    assert "no longer reproducible" in shown.output
    # the audit log: every change, filtered by domain, time and action
    actions = [e["action"] for e in json.loads(ok(cli("audit", "shop", "--json")).stdout)]
    assert actions[:3] == ["domain.create", "ingest.begin", "ingest.publish"]
    assert {"retire.publish", "restore.publish", "purge"} <= set(actions)
    tomb = json.loads(ok(cli("audit", "--action", "purge", "--json")).stdout)
    assert tomb[-1]["detail"]["message"] == "request 7" and tomb[-1]["detail"]["points"] == bus
    assert "no audit events match" in ok(cli("audit", "--since", "2999-01-01")).stdout
    refused(cli("audit", "--since", "yesterday"), "--since 'yesterday'")
    assert "purge" in ok(cli("audit", "shop")).stdout
