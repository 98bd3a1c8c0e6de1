"""Segmenting images in one domain at one version: proposals -> embeddings -> filtered kNN
(one batch per image) and zero-shot -> fusion -> a `Segmentation`."""

from __future__ import annotations

import copy
from pathlib import Path

import numpy as np
from scipy.ndimage import find_objects

from knnvocab.catalog.classes import live_classes
from knnvocab.catalog.domains import get_domain
from knnvocab.catalog.versions import readable_version, version_prompts
from knnvocab.embed.dense import pool_weights, segment_weights
from knnvocab.embed.openclip import OpenClipEncoder
from knnvocab.embed.text_cache import TextCache
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.proposals import ProposalSource, make_proposals
from knnvocab.engine.result import UNLABELLED, Neighbour, Segment, Segmentation
from knnvocab.engine.scoring import Probs, fuse, retrieval, zero_shot
from knnvocab.errors import NotFoundError
from knnvocab.store.base import Hit, PointFilter
from knnvocab.types import ImageArray, check_image
from knnvocab.workspace import Workspace


class Segmenter:
    """Everything one (domain, version) needs, loaded once: encoder, vocabulary, text
    embeddings. ``version=None`` means the head at construction time."""

    def __init__(
        self,
        ws: Workspace,
        domain: str,
        version: int | None = None,
        params: SegmentParams | None = None,
        proposals: ProposalSource | None = None,
    ) -> None:
        self.ws = ws
        self.params = params or SegmentParams()
        with ws.catalog.session() as s:
            row = get_domain(s, domain)
            v = readable_version(s, row, version)
            classes = live_classes(s, v)
            self.reproducible = v.reproducible
            self.prompts = version_prompts(v)  # the version's own, never today's defaults
            encoder_row = v.encoder  # the version's: time travel crosses encoder changes
        if not classes:
            raise NotFoundError(f"domain {domain!r} has no classes at version {v.number}")
        self.domain, self.version = domain, v.number
        self.class_ids = [c.class_id for c in classes]
        self.names = {c.class_id: c.name for c in classes}
        self.column = {cid: i for i, cid in enumerate(self.class_ids)}
        self.encoder: OpenClipEncoder = ws.encoder_of(encoder_row)
        self.collection = encoder_row.collection
        self.text = TextCache(self.encoder, ws.settings.cache_dir / "text", self.prompts).embed(
            [c.name for c in classes]
        )
        self.proposals = proposals or make_proposals(
            self.params.proposals, self.params.n_segments, self.params.compactness
        )

    def with_params(
        self, params: SegmentParams, proposals: ProposalSource | None = None
    ) -> Segmenter:
        """This vocabulary with other parameters: shares the encoder and the text
        embeddings (what a service prepares once per version)."""
        other = copy.copy(self)
        other.params = params
        other.proposals = proposals or make_proposals(
            params.proposals, params.n_segments, params.compactness
        )
        return other

    def recorded_params(self) -> dict[str, object]:
        return {**self.params.to_json(), "proposals": self.proposals.name}

    def segment(self, image: ImageArray, path: Path | None = None) -> Segmentation:
        """Segment one (H, W, 3) uint8 image."""
        check_image(image)
        segment_map = self.proposals(image, path)
        n = int(segment_map.max(initial=0))
        features = self.encoder.dense_features([image])[0]
        weights = segment_weights(segment_map, n, (features.shape[0], features.shape[1]))
        p_base = zero_shot(features, self.text, weights, self.encoder.logit_scale)
        hits: list[list[Hit]] = [[] for _ in range(n)]
        if not self.params.zero_shot_only and n:
            queries = pool_weights(features, weights)  # the pooling ingest uses
            flt = PointFilter(self.domain, visible_at=self.version)
            hits = self.ws.store.search(
                self.collection, flt, queries, self.params.k, self.params.exact
            )
        p_ret, hit_weights = retrieval(hits, self.column, self.params.tau)
        p_final, used = fuse(p_base, p_ret, self.params.threshold, self.params.lam)
        areas = np.bincount(segment_map.ravel(), minlength=n + 1)
        boxes = find_objects(segment_map, max_label=n)
        neighbours = self._neighbours(hits, hit_weights)
        segments = [
            self._segment(
                i,
                int(areas[i + 1]),
                _bbox(boxes[i]),
                p_base[i],
                p_ret[i],
                p_final[i],
                bool(used[i]),
                neighbours[i],
            )
            for i in range(n)
        ]
        lut = np.array([UNLABELLED] + [s.class_id for s in segments], np.int32)
        return Segmentation(
            domain=self.domain,
            version=self.version,
            encoder=self.encoder.info.fingerprint,
            params=self.recorded_params(),
            labels=lut[segment_map],
            segment_map=segment_map,
            segments=segments,
            class_ids=self.class_ids,
            names=self.names,
            reproducible=self.reproducible,
        )

    def _segment(
        self,
        index: int,
        area: int,
        bbox: tuple[int, int, int, int],
        p_base: Probs,
        p_ret: Probs,
        p_final: Probs,
        used: bool,
        neighbours: list[Neighbour],
    ) -> Segment:
        best = int(np.argmax(p_final))
        return Segment(
            id=index + 1,
            class_id=self.class_ids[best],
            label=self.names[self.class_ids[best]],
            score=float(p_final[best]),
            source="retrieval" if used else "zero-shot",
            area=area,
            bbox=bbox,
            p_base=p_base,
            p_ret=p_ret,
            p_final=p_final,
            neighbours=neighbours,
        )

    def _neighbours(self, hits: list[list[Hit]], weights: list[Probs]) -> list[list[Neighbour]]:
        """Per proposal its neighbours, with their provenance."""
        return [
            [self._neighbour(h, float(w)) for h, w in zip(hs, ws, strict=True)]
            for hs, ws in zip(hits, weights, strict=True)
        ]

    def _neighbour(self, hit: Hit, weight: float) -> Neighbour:
        p = hit.payload
        if p is None:  # pragma: no cover - searched with payloads
            raise ValueError(f"neighbour {hit.id} has no payload")
        return Neighbour(
            point_id=hit.id,
            similarity=hit.score,
            weight=weight,
            class_id=p.class_id,
            label=p.label,
            dataset=p.dataset,
            image=p.image,
            instance=p.instance,
            added_in=p.added_in,
        )


def _bbox(box: tuple[slice, slice] | None) -> tuple[int, int, int, int]:
    """x, y, width, height of a `find_objects` slice pair (zeros for an empty segment)."""
    if box is None:
        return (0, 0, 0, 0)
    rows, cols = box
    return (
        int(cols.start),
        int(rows.start),
        int(cols.stop - cols.start),
        int(rows.stop - rows.start),
    )
