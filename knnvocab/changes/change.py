"""One versioned-change mechanism for every operation that changes a domain.

Ingest, retire, restore, purge, repair and rollback all run the same three steps:

1. **begin** (`versioned_change`): the domain's collection is opened for writing in this
   process (the embedded store takes the shard's lock, so a store busy in another process
   is refused before anything else), then one short catalog transaction takes version
   N + 1 as the domain's pending version (its write lock, held by a unique index) and runs
   the operation's own checks under that lock;
2. the operation writes to the store, every point it adds tagged ``added_in = N`` and
   every point it hides ``removed_in = N`` — those tags are how the change is undone;
3. **publish** (`Change.publish`) in a second transaction, or, if the body raises,
   **fail**: the points tagged N are deleted or made live again and the version is closed
   as ``failed`` (an interrupted resumable change stays pending instead). A process that
   dies in between leaves a pending version that `rollback_pending` (or doctor) undoes
   the same way.

Who made the change (``actor``) is an argument: the CLI passes the login or
``KNNVOCAB_USER``, a service the token's name.
"""

from __future__ import annotations

import logging
import os
import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any, TypeVar

from sqlalchemy.orm import Session

from knnvocab.catalog import audit
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import Domain, Encoder, VocabVersion
from knnvocab.catalog.versions import (
    ClassChange,
    begin_version,
    close_version,
    get_version,
    pending_version,
    publish_version,
)
from knnvocab.embed.prompts import PromptSet
from knnvocab.errors import (
    CatalogError,
    DomainBusyError,
    NotFoundError,
    StoreBusyError,
    VersionStateError,
)
from knnvocab.faults import fault
from knnvocab.store.base import PointFilter
from knnvocab.workspace import Workspace

log = logging.getLogger(__name__)
T = TypeVar("T")

#: runs inside the transaction that takes (or resumes) the version, under its lock; gets
#: the change's run id
Prepare = Callable[[Session, Domain, VocabVersion, str], None]
#: runs inside the transaction that publishes, fails or interrupts the version
Finish = Callable[[Session, Domain, VocabVersion], None]


@dataclass
class Change:
    """A domain's pending version while one operation works on it."""

    ws: Workspace
    actor: str
    domain: str
    domain_id: int
    version_id: int
    number: int
    head: int  # the published version this change builds on
    operation: str
    collection: str
    fingerprint: str
    run_id: str
    resumed: bool = False
    undoable: bool = True
    published: bool = False
    #: catalog work done in the transaction that ends the change without publishing:
    #: called with the session, the end (failed, interrupted, rolled_back) and the reason
    on_fail: list[Callable[[Session, str, str], None]] = field(default_factory=list)

    def load(self, s: Session) -> tuple[Domain, VocabVersion]:
        """The domain and version rows in session ``s``."""
        return s.get_one(Domain, self.domain_id), s.get_one(VocabVersion, self.version_id)

    def publish(
        self,
        changes: Mapping[int, ClassChange],
        summary: dict[str, Any],
        detail: dict[str, Any],
        *,
        action: str | None = None,
        then: Finish | None = None,
    ) -> None:
        """Publish the version: its class counts are the head's with ``changes`` (keyed by
        class primary key) applied; ``then`` adds the operation's own catalog updates to
        the same transaction; the audit event (``action``, default ``<operation>.publish``)
        carries ``detail``."""
        self.ws.store.flush()  # nothing is published that is not durable
        fault(self.ws.settings, "change.before_publish")
        with self.ws.catalog.session() as s:
            domain, version = self.load(s)
            if then is not None:
                then(s, domain, version)
            publish_version(s, domain, version, changes, summary)
            audit.record(
                s,
                action or f"{self.operation}.publish",
                self.actor,
                domain=self.domain,
                version=self.number,
                detail={**detail, "run": self.run_id},
            )
        self.published = True


def head_encoder(s: Session, domain: Domain) -> Encoder:
    """The encoder of the domain's head version: the one a change builds on."""
    if domain.head_version == 0:
        raise NotFoundError(f"domain {domain.name!r} has no published version yet")
    return get_version(s, domain, domain.head_version).encoder


@dataclass(frozen=True)
class Opening:
    """How a change takes its version: the encoder (None: the head version's), and what
    the version records."""

    encoder: Encoder | None = None
    message: str = ""
    params: dict[str, Any] = field(default_factory=dict)
    prompts: PromptSet | None = None
    #: a failed change's store writes are undone by their version tags; a purge tags
    #: nothing and its deletions cannot be undone
    undoable: bool = True


@contextmanager
def versioned_change(
    ws: Workspace,
    domain: str,
    operation: str,
    actor: str,
    opening: Opening | None = None,
    *,
    prepare: Prepare | None = None,
    resume: bool = False,
    resumable: bool = False,
    wait: float | None = None,
) -> Iterator[Change]:
    """Take version N + 1 of ``domain`` for ``operation`` (or, with ``resume``, the pending
    version of that operation), yield it, and fail it if the body raises.

    The body publishes with `Change.publish`; a body that returns without publishing is
    a bug and fails the version. ``resumable``: an interruption (Ctrl-C, SIGTERM) leaves
    the version pending for a later ``resume``. ``wait``: seconds to wait for another
    process's pending version or busy store instead of failing at once.
    """
    how = opening or Opening()
    change = retry_while_busy(
        lambda: _begin(ws, domain, operation, actor, how, prepare, resume), wait
    )
    try:
        yield change
        if not change.published:
            raise VersionStateError(f"{operation} of {domain!r} ended without publishing")
    except BaseException as exc:
        try:
            if resumable and isinstance(exc, KeyboardInterrupt | SystemExit):
                interrupt(change, exc)
            else:
                fail(change, exc)
        except CatalogError as lost:  # the catalog went away: nothing could be recorded
            raise CatalogError(f"{lost}; {left_pending(change, resumable)}") from exc
        raise


def left_pending(change: Change, resumable: bool) -> str:
    """What to do about a version whose end could not be recorded."""
    resume = f"continue it with `knnvocab {change.operation} … --resume` or " if resumable else ""
    return (
        f"{change.operation} version {change.number} of {change.domain!r} was left pending: "
        f"{resume}roll it back with `knnvocab vocab rollback {change.domain}` (or "
        "`knnvocab doctor --repair`)"
    )


def retry_while_busy(begin: Callable[[], T], wait: float | None) -> T:
    """``begin()``; while the domain or the store is busy, retried for up to ``wait``
    seconds (None: not at all)."""
    deadline = time.monotonic() + (wait or 0.0)
    delay, told = 0.5, False
    while True:
        try:
            return begin()
        except (DomainBusyError, StoreBusyError) as exc:
            if wait is None or time.monotonic() > deadline:
                raise
            if not told:  # say once why nothing happens
                log.warning("waiting (--wait): %s", exc)
                told = True
            time.sleep(delay)
            delay = min(delay * 1.5, 5.0)


def _collection(ws: Workspace, domain: str, opening: Opening) -> str:
    if opening.encoder is not None:
        return opening.encoder.collection
    with ws.catalog.session() as s:
        return head_encoder(s, get_domain(s, domain)).collection


def _begin(
    ws: Workspace,
    domain: str,
    operation: str,
    actor: str,
    opening: Opening,
    prepare: Prepare | None,
    resume: bool,
) -> Change:
    collection = _collection(ws, domain, opening)
    ws.store.open_domain(collection, domain)  # a busy store is refused before any version
    run_id = str(uuid.uuid4())
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        encoder = opening.encoder or head_encoder(s, row)
        if resume:
            version = _resumable(s, row, operation)
        else:
            version = begin_version(
                s,
                row,
                operation,
                encoder,
                actor,
                message=opening.message,
                params={**opening.params, "run": run_id, "pid": os.getpid()},
                prompts=opening.prompts,
            )
        if prepare is not None:  # checked under the lock: a refusal takes no version
            prepare(s, row, version, run_id)
        change = _change_of(ws, actor, row, version, run_id)
        change.resumed, change.undoable = resume, opening.undoable
        return change


def _change_of(
    ws: Workspace, actor: str, row: Domain, version: VocabVersion, run_id: str
) -> Change:
    return Change(
        ws=ws,
        actor=actor,
        domain=row.name,
        domain_id=row.id,
        version_id=version.id,
        number=version.number,
        head=row.head_version,
        operation=version.operation,
        collection=version.encoder.collection,
        fingerprint=version.encoder.fingerprint,
        run_id=run_id,
    )


def _resumable(s: Session, domain: Domain, operation: str) -> VocabVersion:
    version = pending_version(s, domain)
    if version is None or version.operation != operation:
        raise VersionStateError(f"domain {domain.name!r} has no pending {operation} to resume")
    return version


def undo_store(
    ws: Workspace, collection: str, domain: str, number: int, operation: str = ""
) -> None:
    """Undo what version ``number`` did to the store: the points it added are deleted and
    the points it hid are live again (a purge's deletions cannot be undone).

    A ``reembed`` writes into a collection that held none of the domain's points (it
    refuses any other), and some of what it writes keeps its original ``added_in`` (the
    retired points a later restore needs), so its undo deletes all of the domain's points
    there."""
    if operation == "reembed":
        ws.store.delete(collection, PointFilter(domain))
        ws.store.flush()
        return
    ws.store.delete(collection, PointFilter(domain, added_in=number))
    ws.store.set_removed_in(collection, PointFilter(domain, removed_in=number), None)
    ws.store.flush()


def _reason(exc: BaseException) -> str:
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def fail(change: Change, exc: BaseException) -> None:
    """Undo the change's store writes, then close its version as failed (audited). If the
    undo itself fails the version stays pending: `knnvocab vocab rollback` or `doctor
    --repair` finishes the job."""
    reason = _reason(exc)
    try:
        if change.undoable:
            undo_store(change.ws, change.collection, change.domain, change.number, change.operation)
    except Exception as cleanup:
        log.error(
            "could not undo %s version %s of %r (%s); it stays pending: roll it back with "
            "`knnvocab vocab rollback %s`",
            change.operation,
            change.number,
            change.domain,
            cleanup,
            change.domain,
        )
        return
    close(change, "failed", reason, f"{change.operation}.fail", {"error": reason})


def interrupt(change: Change, exc: BaseException) -> None:
    """Leave the version pending (a resume continues it) and say why in the audit log."""
    change.ws.store.flush()
    reason = _reason(exc)
    with change.ws.catalog.session() as s:
        for hook in change.on_fail:
            hook(s, "interrupted", reason)
        audit.record(
            s,
            f"{change.operation}.interrupt",
            change.actor,
            domain=change.domain,
            version=change.number,
            detail={"run": change.run_id, "reason": reason},
        )


def close(change: Change, state: str, reason: str, action: str, detail: dict[str, Any]) -> None:
    """End the pending version as ``failed`` or ``rolled_back`` after its store writes
    were undone; classes it introduced go (audited as ``action`` with ``detail``)."""
    with change.ws.catalog.session() as s:
        domain, version = change.load(s)
        if version.state != "pending":
            raise VersionStateError(
                f"version {change.number} of {change.domain!r} is {version.state}, not pending"
            )
        close_version(s, domain, version, state, reason)
        for hook in change.on_fail:
            hook(s, state, reason)
        audit.record(
            s,
            action,
            change.actor,
            domain=change.domain,
            version=change.number,
            detail={"run": change.run_id, **detail},
        )


def attach(ws: Workspace, domain: str, actor: str) -> Change:
    """The domain's pending version, of any operation, as a change (to roll it back)."""
    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        version = pending_version(s, row)
        if version is None:
            raise VersionStateError(f"domain {domain!r} has no pending version")
        return _change_of(ws, actor, row, version, str(version.params.get("run", "")))
