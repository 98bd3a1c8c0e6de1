"""Point and run ids of a domain imported under another name.

Point ids are UUIDv5 of (domain, dataset, image, instance key, encoder) (`point_id`), so
a renamed domain needs new ones, or a later ingest into it would not recognise the
instances it already has. An ingested point's instance key is its ``instance``; a
restore's copy is keyed ``<instance>@restored<version>`` (lifecycle/retirement.py) and
links to the point it copied by ``restored_from``, which is remapped the same way. An id
made by a rule this module does not know is mapped to a UUIDv5 of the new name and the
old id: still deterministic, so a re-run of the import writes the same points.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field

from knnvocab.store.base import point_id

_IMPORT_NAMESPACE = uuid.UUID("9b1f7f2e-44a4-4b8e-9a57-2b8d0f1c6e21")


@dataclass(frozen=True)
class IdMap:
    """Maps ids of domain ``source`` to ids of domain ``target`` (the same when equal)."""

    source: str
    target: str
    restores: tuple[int, ...] = field(default_factory=tuple)  # restore version numbers

    @classmethod
    def of(cls, source: str, target: str, restore_versions: Iterable[int]) -> IdMap:
        return cls(source, target, tuple(sorted(set(restore_versions))))

    @property
    def renamed(self) -> bool:
        return self.source != self.target

    def point(self, old: str, dataset: str, image: str, instance: str, encoder: str) -> str:
        """The id in ``target`` of the point ``old`` (or of a point with this provenance
        that ``old`` was restored from)."""
        if not self.renamed:
            return old
        keys = [instance, *(f"{instance}@restored{n}" for n in self.restores)]
        for key in keys:
            if point_id(self.source, dataset, image, key, encoder) == old:
                return point_id(self.target, dataset, image, key, encoder)
        return str(uuid.uuid5(_IMPORT_NAMESPACE, f"{self.target}\x1f{old}"))

    def run(self, old: str) -> str:
        """An ingest run's id in ``target`` (run ids are primary keys of the deployment)."""
        if not self.renamed:
            return old
        return str(uuid.uuid5(_IMPORT_NAMESPACE, f"{self.target}\x1frun\x1f{old}"))
