"""Checking that a domain answers the same in two deployments: the same versions with the
same states and counts per class, and for every published version the same `segment
--exact` JSON, byte for byte, on the same images."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from knnvocab.errors import KnnvocabError
from knnvocab.workspace import Workspace

#: images of the domain's own datasets segmented per version to compare two deployments
SAMPLE_IMAGES = 3


class VerificationError(KnnvocabError):
    """Two deployments answer differently for a domain; nothing was deleted."""


def _counts(ws: Workspace, domain: str) -> list[dict[str, Any]]:
    from knnvocab.history import version_log

    keep = ("number", "state", "operation", "counts", "reproducible", "classes_added")
    return [{k: v for k, v in r.to_json().items() if k in keep} for r in version_log(ws, domain)]


def sample_images(ws: Workspace, domain: str, limit: int = SAMPLE_IMAGES) -> list[Path]:
    """Up to ``limit`` images of the domain's recorded datasets that are still readable."""
    from knnvocab.catalog.domains import get_domain
    from knnvocab.catalog.models import Dataset
    from knnvocab.datasets import open_dataset

    with ws.catalog.session() as s:
        row = get_domain(s, domain)
        sources = [
            (d.format, d.source, dict(d.options))
            for d in s.query(Dataset).filter_by(domain_id=row.id)
        ]
    images: list[Path] = []
    for fmt, source, options in sources:
        try:
            refs = open_dataset(fmt, Path(source), **options).samples()
        except KnnvocabError:
            continue  # a source no longer readable here
        images += [ref.files[0] for ref in refs[: limit - len(images)]]
        if len(images) >= limit:
            break
    return images


def _stand_in(ws: Workspace) -> bool:
    """qdrant-client's local mode (tests only) scores in numpy: its similarities differ
    from Qdrant's engine in the 6th decimal."""
    url = ws.settings.qdrant_url or ""
    return url == ":memory:" or url.startswith("local:")


def _close(a: Any, b: Any, tolerance: float) -> bool:
    """Equal JSON values, numbers within ``tolerance`` (everything else exactly)."""
    if isinstance(a, float) or isinstance(b, float):
        both = isinstance(a, int | float) and isinstance(b, int | float)
        return both and abs(float(a) - float(b)) <= tolerance
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_close(a[k], b[k], tolerance) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_close(x, y, tolerance) for x, y in zip(a, b, strict=True))
    return bool(a == b)


def _loose(answer: str) -> Any:
    """A segmentation as the stand-in can match it: its decisions and the neighbours'
    similarities. Engines break exact ties between neighbours (duplicate vectors, e.g. one
    photo in two datasets under two class names) differently, also at the k-th place, and
    so which of two tied classes the retrieval branch names first."""
    data = json.loads(answer)
    for seg in data["segments"]:
        seg["neighbours"] = sorted((n["similarity"] for n in seg["neighbours"]), reverse=True)
        seg.pop("retrieval", None)
    return data


def _segmentations(ws: Workspace, domain: str, images: list[Path]) -> dict[int, list[str]]:
    from knnvocab.engine.params import SegmentParams
    from knnvocab.engine.segmenter import Segmenter
    from knnvocab.history import version_log
    from knnvocab.imageio import load_rgb

    pixels = [load_rgb(p, ws.settings.max_image_pixels) for p in images]
    answers: dict[int, list[str]] = {}
    for record in version_log(ws, domain):
        if record.state != "published":
            continue
        seg = Segmenter(ws, domain, record.number, SegmentParams(exact=True))
        answers[record.number] = [json.dumps(seg.segment(p).to_json()) for p in pixels]
    return answers


def verify_same(source: Workspace, target: Workspace, domain: str) -> dict[str, int]:
    """Raise `VerificationError` unless ``domain`` has the same versions, counts and
    `segment --exact` answers in both (the JSON byte for byte; against qdrant-client's
    local mode, a test-only stand-in for a server: decisions exact, numbers within 1e-5,
    neighbours by their similarities — see `_loose`); returns what was compared."""
    if _counts(source, domain) != _counts(target, domain):
        raise VerificationError(
            f"domain {domain!r}: versions or counts per class differ after the copy; the "
            "source is untouched"
        )
    images = sample_images(source, domain)
    before = _segmentations(source, domain, images)
    after = _segmentations(target, domain, images)
    # byte for byte between Qdrant engines; against the test-only stand-in, numbers
    # within 1e-5 and tied neighbours in any order
    loose = _stand_in(source) or _stand_in(target)
    for version, answers in before.items():
        theirs = after.get(version, [])
        same = (
            _close([_loose(a) for a in answers], [_loose(b) for b in theirs], 1e-5)
            if loose
            else theirs == answers
        )
        if not same:
            raise VerificationError(
                f"domain {domain!r}: `segment --exact` at version {version} differs after "
                "the copy; the source is untouched"
            )
    return {"versions": len(before), "images": len(images)}
