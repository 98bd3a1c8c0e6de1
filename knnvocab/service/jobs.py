"""Ingest jobs: an ingest request answers 202 at once and runs on the process's job
thread. The job's state lives in the catalog (``service_job``), so any worker can report
it and cancel it, and a restarted service sees what the last one left: a job it was
running is failed and its pending version rolled back, so it never blocks the domain."""

from __future__ import annotations

import logging
import os
import shutil
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from sqlalchemy import select

from knnvocab.catalog.audit import hostname
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.models import ServiceJob, utcnow
from knnvocab.catalog.versions import process_alive
from knnvocab.errors import KnnvocabError, NotFoundError
from knnvocab.ingest.types import IngestOptions
from knnvocab.workspace import Workspace

log = logging.getLogger(__name__)

#: seconds between progress writes (and cancellation checks) of a running job
_TICK = 0.5


class JobCancelledError(KnnvocabError):
    """The job was cancelled (``DELETE /v1/jobs/{id}``); its version is rolled back."""


@dataclass(frozen=True)
class IngestRequest:
    """What an ingest job reads and how: a dataset folder on the server and the options."""

    domain: str
    path: Path
    options: IngestOptions
    encoder: Any = None  # an EncoderSpec for a domain's first ingest
    upload: Path | None = None  # a folder of its own, removed if the job fails


def job_json(job: ServiceJob) -> dict[str, Any]:
    return {
        "id": job.id,
        "domain": job.domain.name if job.domain else None,
        "kind": job.kind,
        "state": job.state,
        "actor": job.actor,
        "request": job.request,
        "progress": job.progress,
        "result": job.result,
        "error": job.error,
        "version": job.version,
        "cancel_requested": job.cancel_requested,
        "created": job.created_at.isoformat(),
        "started": job.started_at.isoformat() if job.started_at else None,
        "finished": job.finished_at.isoformat() if job.finished_at else None,
    }


def _owner() -> str:
    return f"{hostname()}:{os.getpid()}"


class _JobProgress:
    """A `Progress` that writes the job's progress and stops it when it is cancelled."""

    def __init__(self, ws: Workspace, job_id: str) -> None:
        self.ws, self.job_id = ws, job_id
        self.total = self.done = self.instances = 0
        self._last = 0.0

    def start(self, total: int, done: int) -> None:
        self.total, self.done = total, done
        self._write(force=True)

    def advance(self, images: int, instances: int) -> None:
        self.done += images
        self.instances += instances
        self._write()

    def finish(self) -> None:
        self._write(force=True)

    def _write(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last < _TICK:
            return
        self._last = now
        with self.ws.catalog.session() as s:
            job = s.get_one(ServiceJob, self.job_id)
            job.progress = {"images": self.total, "done": self.done, "instances": self.instances}
            job.updated_at = utcnow()
            cancelled = job.cancel_requested
        if cancelled:
            raise JobCancelledError(f"job {self.job_id} was cancelled")


class JobRunner:
    """Runs one job at a time per process (an ingest already uses every core)."""

    def __init__(self, ws: Workspace) -> None:
        self.ws = ws
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="knnvocab-job")
        self.running = 0
        self._lock = threading.Lock()

    def submit(self, request: IngestRequest, actor: str, recorded: dict[str, Any]) -> str:
        with self.ws.catalog.session() as s:
            domain = get_domain(s, request.domain)
            job = ServiceJob(
                id=uuid.uuid4().hex,
                domain_id=domain.id,
                kind="ingest",
                state="queued",
                actor=actor,
                request=recorded,
                progress={},
                owner=_owner(),
                updated_at=utcnow(),
            )
            s.add(job)
            s.flush()
            job_id = job.id
        self.executor.submit(self._run, job_id, request, actor)
        return job_id

    def _run(self, job_id: str, request: IngestRequest, actor: str) -> None:
        from knnvocab.ingest import ingest

        if not self._start(job_id):
            return
        with self._lock:
            self.running += 1
        try:
            summary = ingest(
                self.ws,
                request.domain,
                request.path,
                request.options,
                request.encoder,
                _JobProgress(self.ws, job_id),
                actor=actor,
            )
        except JobCancelledError as exc:
            self._end(job_id, "cancelled", error=str(exc), upload=request.upload)
        except KnnvocabError as exc:
            self._end(job_id, "failed", error=str(exc), upload=request.upload)
        except Exception as exc:
            log.exception("job %s failed", job_id)
            self._end(job_id, "failed", error=f"internal error ({type(exc).__name__})")
        else:
            result = summary.to_json()
            self._end(job_id, "succeeded", result=result, version=summary.version)
        finally:
            with self._lock:
                self.running -= 1

    def _start(self, job_id: str) -> bool:
        with self.ws.catalog.session() as s:
            job = s.get_one(ServiceJob, job_id)
            if job.cancel_requested:
                job.state, job.finished_at = "cancelled", utcnow()
                job.error = "cancelled before it started"
                return False
            job.state, job.started_at, job.updated_at = "running", utcnow(), utcnow()
            job.owner = _owner()
        return True

    def _end(
        self,
        job_id: str,
        state: str,
        *,
        error: str | None = None,
        result: dict[str, Any] | None = None,
        version: int | None = None,
        upload: Path | None = None,
    ) -> None:
        if upload is not None:
            shutil.rmtree(upload, ignore_errors=True)
        with self.ws.catalog.session() as s:
            job = s.get_one(ServiceJob, job_id)
            job.state, job.error, job.result, job.version = state, error, result, version
            job.finished_at = job.updated_at = utcnow()

    def close(self) -> None:
        self.executor.shutdown(wait=True, cancel_futures=True)


def get_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    with ws.catalog.session() as s:
        job = s.get(ServiceJob, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id!r} does not exist")
        return job_json(job)


def cancel_job(ws: Workspace, job_id: str) -> dict[str, Any]:
    """Ask the job to stop: a queued job never starts, a running one stops at its next
    progress write and its pending version is rolled back."""
    with ws.catalog.session() as s:
        job = s.get(ServiceJob, job_id)
        if job is None:
            raise NotFoundError(f"job {job_id!r} does not exist")
        if job.state in ("queued", "running"):
            job.cancel_requested, job.updated_at = True, utcnow()
        return job_json(job)


def job_domain(ws: Workspace, job_id: str) -> str | None:
    """The domain a job belongs to (None: no such job)."""
    with ws.catalog.session() as s:
        job = s.get(ServiceJob, job_id)
        return job.domain.name if job is not None and job.domain is not None else None


def recover(ws: Workspace, actor: str) -> list[str]:
    """Jobs a stopped service left queued or running on this host: failed, and their
    domains' pending versions rolled back when no live process holds them. Returns their
    ids. Run at start-up, before any new job."""
    from knnvocab.catalog.versions import pending_version
    from knnvocab.lifecycle import liveness, rollback_pending

    host = f"{hostname()}:"
    with ws.catalog.session() as s:
        jobs = s.scalars(
            select(ServiceJob).where(ServiceJob.state.in_(("queued", "running")))
        ).all()
        left = [(j.id, j.domain.name) for j in jobs if j.owner.startswith(host) and not _alive(j)]
        for job in jobs:
            if (job.id, job.domain.name) in left:
                job.state, job.finished_at = "failed", utcnow()
                job.error = "the service stopped while the job ran; its version was rolled back"
    for _, domain in left:
        with ws.catalog.session() as s:
            pending = pending_version(s, get_domain(s, domain))
            dead = pending is not None and not liveness(s, pending).alive
        if dead:
            try:
                rollback_pending(ws, domain, actor=actor, reason="the service stopped mid-job")
            except KnnvocabError as exc:
                log.warning("could not roll back %s after a stopped job: %s", domain, exc)
    return [job_id for job_id, _ in left]


def _alive(job: ServiceJob) -> bool:
    """Whether the process that ran ``job`` still runs (not this one: a pid reused)."""
    pid = int(job.owner.rsplit(":", 1)[1]) if ":" in job.owner else 0
    return 0 < pid != os.getpid() and process_alive(pid)
