"""What a service process keeps for its lifetime: the workspace (catalog, store, warm
encoders), the prepared vocabularies, the segment gate, the jobs and the metrics."""

from __future__ import annotations

import contextlib
import secrets
import threading
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from starlette.requests import HTTPConnection

from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.versions import readable_version
from knnvocab.config import Settings
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.segmenter import Segmenter
from knnvocab.service.gate import SegmentGate
from knnvocab.service.metrics import Metrics
from knnvocab.workspace import Workspace

if TYPE_CHECKING:
    from knnvocab.engine.proposals import ProposalSource
    from knnvocab.service.jobs import JobRunner

#: prepared (domain, version) vocabularies a process keeps warm
_VOCABULARIES = 64


@dataclass
class ServiceState:
    """Long-lived resources of one service process; requests pass their own context down."""

    settings: Settings
    ws: Workspace
    gate: SegmentGate
    metrics: Metrics
    local_secret: str | None = None
    jobs: JobRunner | None = None
    _segmenters: OrderedDict[tuple[int, int, bool], Segmenter] = field(default_factory=OrderedDict)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    warmed: threading.Event = field(default_factory=threading.Event)
    encoders: dict[str, str] = field(default_factory=dict)  # fingerprint -> state

    @classmethod
    def open(cls, settings: Settings, metrics: Metrics | None = None) -> ServiceState:
        ws = Workspace(settings)
        ws.catalog  # noqa: B018 - open (and migrate) the catalog before the first request
        ws.store  # noqa: B018
        metrics = metrics or Metrics()
        gate = SegmentGate(
            settings.segment_threads, settings.segment_queue, settings.request_timeout, metrics
        )
        local = secrets.token_urlsafe(32) if settings.qdrant_url is None else None
        return cls(settings, ws, gate, metrics, local)

    def segmenter(
        self,
        domain: str,
        version: int | None,
        params: SegmentParams,
        proposals: ProposalSource | None = None,
    ) -> Segmenter:
        """A segmenter of ``domain`` at ``version`` (None: the head now) with ``params``
        (and ``proposals``, else those ``params`` name).

        The vocabulary, encoder and text embeddings of a published version never change,
        so they are prepared once per (domain, version) and kept (a bounded cache); the
        version's reproducibility is read every time (a purge can change it)."""
        with self.ws.catalog.session() as s:
            row = get_domain(s, domain)
            v = readable_version(s, row, version)
            key = (row.id, v.number, v.reproducible)
        with self._lock:
            base = self._segmenters.get(key)
            if base is not None:
                self._segmenters.move_to_end(key)
        if base is None:
            base = Segmenter(self.ws, domain, key[1], SegmentParams())
            with self._lock:
                self._segmenters[key] = base
                while len(self._segmenters) > _VOCABULARIES:
                    self._segmenters.popitem(last=False)
        return base.with_params(params, proposals)

    def warm(self) -> None:
        """Load the encoders of the domains' heads and prepare the heads' vocabularies
        (their text embeddings take seconds per class on a CPU), at start-up on a thread
        of its own, as many as stay warm; readiness waits for it."""
        from knnvocab.catalog.domains import list_domains
        from knnvocab.workspace import MAX_ENCODERS

        try:
            with self.ws.catalog.session() as s:
                domains = list_domains(s)
                rows = {d.encoder.fingerprint: d.encoder for d in domains if d.encoder}
                heads = [d.name for d in domains if d.head_version > 0]
                s.expunge_all()
            for fingerprint, row in list(rows.items())[:MAX_ENCODERS]:
                try:
                    self.ws.encoder_of(row)
                    self.encoders[fingerprint[:12]] = "loaded"
                except Exception as exc:
                    self.encoders[fingerprint[:12]] = f"failed: {exc}"
            for name in heads[:_VOCABULARIES]:  # text embeddings of each head's classes
                with contextlib.suppress(Exception):  # a request reports what fails
                    self.segmenter(name, None, SegmentParams())
        finally:
            self.warmed.set()

    def forget(self) -> None:
        """Drop every prepared vocabulary (a domain was deleted: its id may return)."""
        with self._lock:
            self._segmenters.clear()

    def close(self) -> None:
        if self.jobs is not None:
            self.jobs.close()
        self.gate.close()
        self.ws.close()


def state_of(conn: HTTPConnection) -> ServiceState:
    state: ServiceState = conn.app.state.service
    return state
