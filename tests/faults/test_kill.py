"""Kill -9 at a deterministic point (``KNNVOCAB_FAULT``, knnvocab/faults.py) inside every
operation that changes a deployment, in a real process: nothing is published half-way,
the documented recovery (one `doctor --repair`, or the same command again) finishes or
undoes it, `doctor` then finds the deployment consistent, the published versions are
untouched, and the head's counts equal those of an uninterrupted run.

One embedded deployment (SQLite catalog, qdrant-edge store) is built once per module and
copied per test; ingest, import, domain move, reembed and backup create are also killed
by the tests named in the README's fault matrix."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

import pytest

from knnvocab.client import Client
from knnvocab.config import Settings
from knnvocab.embed.spec import EncoderSpec
from knnvocab.ingest import IngestOptions, ingest
from knnvocab.lifecycle import audit_log, domain_infos, new_domain, retire
from knnvocab.portable.backup import create_backup
from knnvocab.tokens import create_token, list_tokens
from knnvocab.workspace import Workspace
from tests.faults.helpers import (
    KILLED,
    assert_consistent,
    cli,
    copy_home,
    data_root,
    env_of,
    head_classes,
    knnvocab,
    ok,
    one_line_error,
    published,
    sqlite_home,
    versions,
)
from tests.service.server import Server

pytestmark = pytest.mark.slow

D = "k"
RETIRE = ("vocab", "retire", D, "bus", "-m", "not needed")
RESTORE = ("vocab", "restore", D, "person", "-m", "consent given")
PURGE = ("vocab", "purge", D, "--class", "bus", "--yes", "-m", "request #7")
ROLLBACK = ("vocab", "rollback", D)
REPAIR = ("doctor", "--repair")
#: {voc} is the labelme photos' folder
INGEST = ("ingest", D, "{voc}", "--format", "voc", "--dataset-name", "more", "--min-area", "1")
BEFORE_PUBLISH = "change.before_publish"


@pytest.fixture(scope="module")
def baseline(
    tmp_path_factory: pytest.TempPathFactory, tiny_model: EncoderSpec, labelme_voc: Path
) -> Settings:
    """Domain ``k``: version 1 ingests the three labelme photos (6 persons, 2 buses, …),
    version 2 retires ``person``; domain ``j`` is empty."""
    settings = sqlite_home(tmp_path_factory.mktemp("kill") / "home")
    with Workspace(settings) as ws:
        options = IngestOptions("voc", dataset_name="photos", min_area=1)
        ingest(ws, D, labelme_voc, options, tiny_model, actor="alice")
        retire(ws, D, "person", "consent withdrawn", actor="alice")
        new_domain(ws, "j", actor="alice")
    return settings


@dataclass(frozen=True)
class Case:
    """An operation killed at ``kills`` (each a command and its fault point, run in turn,
    each dying), then recovered by ``recovery``; ``again``: the kill undid the operation,
    so ``command`` runs once more. The end equals ``command`` run once, uninterrupted."""

    command: tuple[str, ...]
    kills: tuple[tuple[tuple[str, ...], str], ...]
    recovery: tuple[tuple[str, ...], ...]
    again: bool = True


CASES = {
    "ingest": Case(INGEST, ((INGEST, BEFORE_PUBLISH),), ((*INGEST, "--resume"),), again=False),
    "retire": Case(RETIRE, ((RETIRE, BEFORE_PUBLISH),), (REPAIR,)),
    "class restore": Case(RESTORE, ((RESTORE, BEFORE_PUBLISH),), (REPAIR,)),
    "purge": Case(PURGE, ((PURGE, BEFORE_PUBLISH),), (REPAIR,), again=False),
    "purge, rolled back": Case(PURGE, ((PURGE, BEFORE_PUBLISH),), (ROLLBACK, REPAIR)),
    "rollback": Case(
        RETIRE, ((RETIRE, BEFORE_PUBLISH), (ROLLBACK, "rollback.after_undo")), (ROLLBACK,)
    ),
    "doctor --repair": Case(
        PURGE, ((PURGE, BEFORE_PUBLISH), (REPAIR, "doctor.after_repair")), (REPAIR,), False
    ),
    "doctor --repair version": Case(
        PURGE, ((PURGE, BEFORE_PUBLISH), (REPAIR, BEFORE_PUBLISH)), (REPAIR,), False
    ),
}


def _args(command: tuple[str, ...], voc: Path) -> list[str]:
    return [a.format(voc=voc) for a in command]


@pytest.fixture(scope="module")
def uninterrupted(
    baseline: Settings, tmp_path_factory: pytest.TempPathFactory, labelme_voc: Path
) -> dict[tuple[str, ...], dict[str, tuple[bool, int]]]:
    """The head's classes after each case's command ran once, uninterrupted (filled on
    first use)."""
    cache: dict[tuple[str, ...], dict[str, tuple[bool, int]]] = {}

    class Lazy(dict[tuple[str, ...], dict[str, tuple[bool, int]]]):
        def __missing__(self, command: tuple[str, ...]) -> dict[str, tuple[bool, int]]:
            twin = copy_home(baseline, tmp_path_factory.mktemp("twin") / "home")
            cli(twin, *_args(command, labelme_voc))
            cache[command] = head_classes(twin, D)
            return cache[command]

    return Lazy()


@pytest.mark.parametrize("operation", list(CASES))
def test_kill_9(
    operation: str,
    baseline: Settings,
    uninterrupted: dict[tuple[str, ...], dict[str, tuple[bool, int]]],
    tmp_path: Path,
    labelme_voc: Path,
) -> None:
    case = CASES[operation]
    home = copy_home(baseline, tmp_path / "home")
    before = published(baseline, D)
    for i, (command, point) in enumerate(case.kills):
        killed = knnvocab(home, *_args(command, labelme_voc), fault=point)
        assert killed.returncode == KILLED, killed.stderr
        now = published(home, D)
        assert {n: now[n] for n in before} == before  # no published data lost
        if i == 0:  # nothing published half-way (a later kill is in its recovery)
            assert now == before and head_classes(home, D) == head_classes(baseline, D)
        assert [s for _, s, _ in versions(home, D)].count("pending") <= 1
    for command in case.recovery:
        cli(home, *_args(command, labelme_voc))
    assert_consistent(home)  # after at most one doctor --repair
    assert "pending" not in [s for _, s, _ in versions(home, D)]
    if case.again:
        cli(home, *_args(case.command, labelme_voc))
    assert head_classes(home, D) == uninterrupted[case.command]
    if case.command == PURGE and not case.again:  # finished: its tombstone counts all
        with Workspace(home) as ws:
            assert audit_log(ws, D, action="purge")[-1].detail["points"] == 2
    after = published(home, D)
    assert {n: after[n] for n in before} == before  # no published data lost
    assert_consistent(home)


def test_kill_9_in_token_create(baseline: Settings, tmp_path: Path) -> None:
    """Token create is one transaction: killed before it commits, there is no token and no
    audit event; created again, there is one."""
    home = copy_home(baseline, tmp_path / "home")
    create = ("token", "create", D, "--scope", "query", "--name", "kiosk")
    killed = knnvocab(home, *create, fault="token.before_commit")
    assert killed.returncode == KILLED, killed.stderr
    assert "tok_" not in killed.stdout  # no secret was shown
    with Workspace(home) as ws:
        assert [t.name for t in list_tokens(ws)] == []
        assert audit_log(ws, D, action="token.create") == []
    made = ok(knnvocab(home, *create))
    assert made.stdout.strip().splitlines()[-1]  # the secret, shown once
    with Workspace(home) as ws:
        assert [t.name for t in list_tokens(ws)] == ["kiosk"]
        assert len(audit_log(ws, D, action="token.create")) == 1
    assert_consistent(home)


def test_kill_9_in_backup_restore_between_domains(baseline: Settings, tmp_path: Path) -> None:
    """A restore killed after its first domain (``j``) finishes when run again: both
    domains as in the source, consistent."""
    folder = tmp_path / "backup"
    with Workspace(baseline) as ws:
        create_backup(ws, folder)
    target = sqlite_home(tmp_path / "target", user="restorer")
    killed = knnvocab(target, "backup", "restore", folder, fault="backup.restore_after_domain")
    assert killed.returncode == KILLED, killed.stderr
    with Workspace(target) as ws:
        assert [d.name for d in domain_infos(ws)] == ["j"]
    ok(knnvocab(target, "backup", "restore", folder))
    for domain in ("j", D):
        assert versions(target, domain) == versions(baseline, domain)
    assert published(target, D) == published(baseline, D)
    assert_consistent(target)
    shutil.rmtree(folder)


def test_kill_9_of_the_service_with_a_job_running(
    baseline: Settings, tmp_path: Path, labelme_voc: Path
) -> None:
    """`knnvocab serve` killed while its ingest job holds the pending version (about to
    publish): restarted on the same home, it reports the job failed, its version rolled
    back, and the domain takes the next change."""
    home = copy_home(baseline, tmp_path / "home")
    with Workspace(home) as ws:
        _, secret = create_token(ws, D, "write", actor="tester", name="writer")
    env = env_of(home, KNNVOCAB_DATA_ROOT=str(data_root(tmp_path, labelme_voc)))
    log = tmp_path / "serve.log"
    dying = Server({**env, "KNNVOCAB_FAULT": BEFORE_PUBLISH}, log).start()
    try:
        with Client(dying.url, secret) as c:
            job = c.ingest(D, dataset="voc", format="voc", name="more", min_area=1)
        assert dying.process is not None and dying.process.wait(120) == KILLED
    finally:
        dying.stop()
    assert versions(home, D)[-1] == (3, "pending", "ingest")
    # the CLI takes the dead service's announcement for what it is, and the dead job's
    # version is named until a restart (or doctor --repair) ends it
    one_line_error(knnvocab(home, *RETIRE), "pending version 3: ingest by writer@")
    with Server(env, log) as server, Client(server.url, secret) as c:
        failed = c.job(job["id"])
        assert failed["state"] == "failed" and "stopped" in failed["error"], failed
        assert c.retire(D, "bus")["version"] == 4  # the domain is not blocked
    assert versions(home, D)[2:] == [(3, "rolled_back", "ingest"), (4, "published", "retire")]
    now = published(home, D)
    assert {n: now[n] for n in published(baseline, D)} == published(baseline, D)
    assert_consistent(home)
