"""Per-domain quotas (``max_instances``), on SQLite and Postgres with the real tiny model and
real photos (the VOC folder holds 15 instances: person 6, _background_ 3, bus 2, bottle,
car, chair and sofa 1 each): an ingest that would exceed the quota is refused before
anything is embedded or a version is taken, instances already stored do not count again,
the quota is checked again under the domain's write lock, and retiring frees room."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from knnvocab.embed.openclip import OpenClipEncoder
from knnvocab.embed.spec import EncoderSpec
from knnvocab.errors import ConfigError, QuotaExceededError
from knnvocab.history import version_log
from knnvocab.ingest import IngestOptions, ingest, run
from knnvocab.lifecycle import audit_log, domain_info, new_domain, retire, set_quota
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace
from tests.cli.conftest import Run
from tests.lifecycle.helpers import collection_of
from tests.lifecycle.test_cli import ok, refused

FIRST_IMAGE = "2011_000003"  # 4 instances: 2 person, bottle, _background_
ADVICE = "over the quota — raise it with `knnvocab domain set shop --max-instances N`"


def voc(name: str, **options: Any) -> IngestOptions:
    return IngestOptions("voc", dataset_name=name, **options)


def no_embedding(monkeypatch: pytest.MonkeyPatch) -> None:
    """Any forward pass of the encoder fails the test."""

    def refuse(*_: object) -> None:
        raise AssertionError("the encoder ran although the quota refuses the ingest")

    monkeypatch.setattr(OpenClipEncoder, "dense_features", refuse)


def stored(ws: Workspace) -> int:
    return ws.store.count(collection_of(ws, "shop"), PointFilter("shop"))


def actions(ws: Workspace) -> list[str]:
    return [e.action for e in audit_log(ws, "shop")]


def test_refused_before_embedding_with_the_numbers(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_domain(ws, "shop", encoder=tiny_model, max_instances=20, actor="alice")
    part = ingest(ws, "shop", labelme_voc, voc("photos", only_keys=(FIRST_IMAGE,)), actor="alice")
    assert part.total_added == 4
    set_quota(ws, "shop", 5, actor="alice")
    no_embedding(monkeypatch)
    before = actions(ws)
    with pytest.raises(QuotaExceededError) as refusal:
        ingest(ws, "shop", labelme_voc, voc("photos"), actor="alice")
    assert str(refusal.value) == (
        "domain 'shop' holds 4 of its 5 instances; this ingest would add 11 (4 already "
        f"stored are not counted): 10 {ADVICE}"
    )
    assert [r.number for r in version_log(ws, "shop")] == [1]  # no version taken
    assert actions(ws) == before  # no ingest.begin, nothing else
    assert stored(ws) == 4 and domain_info(ws, "shop").datasets == 1
    monkeypatch.undo()
    set_quota(ws, "shop", 15, actor="alice")  # raising it lets the ingest through
    rest = ingest(ws, "shop", labelme_voc, voc("photos"), actor="alice")
    assert (rest.version, rest.total_added, rest.skipped["already stored"]) == (2, 11, 4)
    info = domain_info(ws, "shop")
    assert (info.instances, info.max_instances) == (15, 15)


def test_stored_instances_do_not_count_again(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_domain(ws, "shop", encoder=tiny_model, max_instances=15, actor="alice")
    assert ingest(ws, "shop", labelme_voc, voc("photos"), actor="alice").total_added == 15
    again = ingest(ws, "shop", labelme_voc, voc("photos"), actor="alice")  # full, adds nothing
    assert (again.version, again.total_added) == (2, 0)
    no_embedding(monkeypatch)
    with pytest.raises(QuotaExceededError, match="holds 15 of its 15 instances; this ingest "):
        ingest(ws, "shop", labelme_voc, voc("other"), actor="alice")
    assert stored(ws) == 15 and [r.number for r in version_log(ws, "shop")] == [1, 2]


def test_retiring_frees_room(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_domain(ws, "shop", encoder=tiny_model, max_instances=15, actor="alice")
    ingest(ws, "shop", labelme_voc, voc("photos"), actor="alice")
    more = voc("more", classes=("bottle", "bus", "car"))
    with pytest.raises(QuotaExceededError, match=r"holds 15 of its 15 .* would add 4: 4 over"):
        ingest(ws, "shop", labelme_voc, more, actor="alice")
    retire(ws, "shop", "person", actor="alice")
    assert domain_info(ws, "shop").instances == 9  # visible at the head
    assert ingest(ws, "shop", labelme_voc, more, actor="alice").total_added == 4
    assert domain_info(ws, "shop").instances == 13


def racing(monkeypatch: pytest.MonkeyPatch, rival: Callable[[], object]) -> Callable[..., object]:
    """Makes ``rival`` publish between an ingest's pre-pass (which passes) and the moment
    it takes its version, as another process could."""
    real = run.count_for_quota

    def counted_then_overtaken(*args: Any) -> object:
        check = real(*args)
        monkeypatch.setattr(run, "count_for_quota", real)
        rival()
        return check

    monkeypatch.setattr(run, "count_for_quota", counted_then_overtaken)
    return counted_then_overtaken


def test_the_lock_checks_again(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    new_domain(ws, "shop", encoder=tiny_model, max_instances=20, actor="alice")
    racing(monkeypatch, lambda: ingest(ws, "shop", labelme_voc, voc("rival"), actor="bob"))
    with pytest.raises(QuotaExceededError) as refusal:
        ingest(ws, "shop", labelme_voc, voc("mine"), actor="alice")
    assert str(refusal.value) == (
        f"domain 'shop' holds 15 of its 20 instances; this ingest would add 15: 10 {ADVICE}"
    )
    assert [(r.number, r.user) for r in version_log(ws, "shop")] == [(1, "bob")]
    assert actions(ws).count("ingest.begin") == 1 and stored(ws) == 15


def test_the_lock_asks_the_store_again(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two ingests of the same dataset: what the first stored is not new to the second."""
    new_domain(ws, "shop", encoder=tiny_model, max_instances=15, actor="alice")
    racing(monkeypatch, lambda: ingest(ws, "shop", labelme_voc, voc("photos"), actor="bob"))
    late = ingest(ws, "shop", labelme_voc, voc("photos"), actor="alice")
    assert (late.version, late.total_added, late.skipped["already stored"]) == (2, 0, 15)


class StopAfterFirstImage:
    """A `Progress` that stops the ingest like Ctrl-C after the first image."""

    def start(self, total: int, done: int) -> None:
        pass

    def advance(self, images: int, instances: int) -> None:
        raise SystemExit("stopped")

    def finish(self) -> None:
        pass


def test_a_resume_counts_its_pending_version(
    ws: Workspace, tiny_model: EncoderSpec, labelme_voc: Path
) -> None:
    new_domain(ws, "shop", encoder=tiny_model, actor="alice")
    options = voc("photos", batch_size=1, checkpoint_seconds=0.0)
    with pytest.raises(SystemExit):
        ingest(ws, "shop", labelme_voc, options, None, StopAfterFirstImage(), actor="alice")
    assert [(r.number, r.state) for r in version_log(ws, "shop")] == [(1, "pending")]
    assert stored(ws) == 4
    set_quota(ws, "shop", 14, actor="alice")
    resume = voc("photos", resume=True)
    with pytest.raises(QuotaExceededError) as refusal:
        ingest(ws, "shop", labelme_voc, resume, actor="alice")
    assert str(refusal.value) == (
        "domain 'shop' holds 4 of its 14 instances (with pending version 1); this ingest "
        f"would add 11 (4 already stored are not counted): 1 {ADVICE}"
    )
    assert version_log(ws, "shop")[0].state == "pending"  # left as it was
    set_quota(ws, "shop", 15, actor="alice")
    done = ingest(ws, "shop", labelme_voc, resume, actor="alice")
    assert (done.version, done.resumed, done.total_added) == (1, True, 15)


def test_set_quota_is_audited_and_checked(ws: Workspace) -> None:
    new_domain(ws, "shop", max_instances=10, actor="alice")
    assert set_quota(ws, "shop", 25, actor="bob").max_instances == 25
    assert set_quota(ws, "shop", None, actor="carol").max_instances is None
    for bad in (0, -3):
        with pytest.raises(ConfigError, match=f"must be at least 1, got {bad}"):
            set_quota(ws, "shop", bad, actor="bob")
    with pytest.raises(ConfigError, match="must be at least 1"):
        new_domain(ws, "lab", max_instances=0, actor="bob")
    events = [e for e in audit_log(ws, "shop") if e.action == "domain.quota"]
    assert [(e.actor, e.detail["old"], e.detail["new"]) for e in events] == [
        ("bob", 10, 25),
        ("carol", 25, None),
    ]
    created = next(e for e in audit_log(ws, "shop") if e.action == "domain.create")
    assert created.detail["max_instances"] == 10


def test_quota_from_the_command_line(cli: Run, model_args: list[str], labelme_voc: Path) -> None:
    ok(cli("domain", "create", "shop", "--max-instances", "10", *model_args))
    refused(
        cli("ingest", "shop", labelme_voc, "--format", "voc"),
        f"error: domain 'shop' holds 0 of its 10 instances; this ingest would add 15: 5 {ADVICE}",
    )
    shown = json.loads(ok(cli("domain", "show", "shop", "--json")).stdout)
    assert (shown["instances"], shown["max_instances"], shown["versions"]) == (0, 10, {})
    events = json.loads(ok(cli("audit", "shop", "--json")).stdout)
    assert [e["action"] for e in events] == ["domain.create"]  # no ingest.begin

    refused(cli("domain", "set", "shop", "--max-instances", "-3"), "at least 1, got -3")
    refused(cli("domain", "set", "shop", "--max-instances", "0"), "got 0", "--no-limit")
    refused(cli("domain", "set", "shop"), "exactly one of --max-instances N and --no-limit")
    refused(cli("domain", "create", "lab", "--max-instances", "-3"), "at least 1, got -3")
    refused(cli("domain", "show", "lab"), "domain 'lab' does not exist")
    assert "quota 15 instances" in ok(cli("domain", "set", "shop", "--max-instances", "15")).stdout
    ok(cli("ingest", "shop", labelme_voc, "--format", "voc"))
    shown = json.loads(ok(cli("domain", "show", "shop", "--json")).stdout)
    assert (shown["instances"], shown["max_instances"]) == (15, 15)
    assert "15 / 15 (quota; visible at the head)" in ok(cli("domain", "show", "shop")).stdout
    assert "15 / 15" in ok(cli("domain", "list")).stdout
    ok(cli("domain", "set", "shop", "--no-limit"))
    listed = json.loads(ok(cli("domain", "list", "--json")).stdout)
    assert [(d["name"], d["instances"], d["max_instances"]) for d in listed] == [("shop", 15, None)]
    quota = json.loads(ok(cli("audit", "--action", "domain.quota", "--json")).stdout)
    assert [(e["actor"], e["detail"]["old"], e["detail"]["new"]) for e in quota] == [
        ("tester", 10, 15),
        ("tester", 15, None),
    ]
