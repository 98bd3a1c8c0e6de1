"""Segmenting many image files: outputs per image, one bad file never stops the rest."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knnvocab.datasets.base import IMAGE_SUFFIXES, DatasetReader
from knnvocab.engine.output import Written, write
from knnvocab.engine.params import SegmentParams
from knnvocab.engine.proposals import make_proposals
from knnvocab.errors import InputError, KnnvocabError
from knnvocab.imageio import load_rgb
from knnvocab.progress import NoProgress, Progress
from knnvocab.types import Instances
from knnvocab.workspace import Workspace


@dataclass(frozen=True)
class ImageOutcome:
    """What happened to one input file."""

    source: Path
    files: Written | None = None
    segments: int = 0
    error: str | None = None
    result: dict[str, Any] | None = None

    def to_json(self) -> dict[str, Any]:
        if self.error is not None:
            return {"image": str(self.source), "error": self.error}
        return self.result or {}


def expand_inputs(inputs: list[Path]) -> list[Path]:
    """Files as given; folders replaced by the images directly inside them, sorted."""
    files: list[Path] = []
    for item in inputs:
        if item.is_dir():
            found = sorted(p for p in item.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
            if not found:
                raise InputError(item, "no images in this folder")
            files.extend(found)
        else:
            files.append(item)
    return files


def unique_stems(files: list[Path]) -> list[str]:
    """Output names: the file stem, suffixed -2, -3, … when two inputs share it."""
    seen: dict[str, int] = {}
    stems = []
    for f in files:
        n = seen.get(f.stem, 0) + 1
        seen[f.stem] = n
        stems.append(f.stem if n == 1 else f"{f.stem}-{n}")
    return stems


def ground_truth_lookup(reader: DatasetReader) -> Callable[[Path | None], Instances]:
    """Instances of a dataset image, found by its path (the oracle proposals)."""
    refs = {ref.files[0].resolve(): ref for ref in reader.samples()}

    def lookup(path: Path | None) -> Instances:
        ref = refs.get(path.resolve()) if path is not None else None
        if ref is None:
            raise InputError(path or "image", f"not an image of the dataset {reader.root}")
        return reader.load(ref).instances

    return lookup


def segment_files(
    ws: Workspace,
    domain: str,
    inputs: list[Path],
    out_dir: Path,
    version: int | None = None,
    params: SegmentParams | None = None,
    rle: bool = False,
    ground_truth: DatasetReader | None = None,
    progress: Progress | None = None,
) -> list[ImageOutcome]:
    """Segment every input image into ``out_dir``; failures are reported per file."""
    from knnvocab.engine.segmenter import Segmenter

    params = params or SegmentParams()
    files = expand_inputs(inputs)
    lookup = ground_truth_lookup(ground_truth) if ground_truth is not None else None
    proposals = make_proposals(params.proposals, params.n_segments, params.compactness, lookup)
    segmenter = Segmenter(ws, domain, version, params, proposals)
    progress = progress or NoProgress()
    progress.start(len(files), 0)
    outcomes = []
    for path, stem in zip(files, unique_stems(files), strict=True):
        try:
            image = load_rgb(path, ws.settings.max_image_pixels)
            seg = segmenter.segment(image, path)
            written = write(seg, image, out_dir, stem, str(path), rle, params.evidence)
            body = {"image": str(path), **seg.to_json(params.evidence), "files": written.to_json()}
            outcomes.append(ImageOutcome(path, written, len(seg.segments), result=body))
        except KnnvocabError as exc:
            outcomes.append(ImageOutcome(path, error=str(exc)))
        progress.advance(1, outcomes[-1].segments)
    progress.finish()
    return outcomes
