"""Options and the result of an ingest."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from knnvocab.embed.prompts import PromptSet


@dataclass(frozen=True)
class IngestOptions:
    """How to read and embed a dataset.

    Attributes:
        format: dataset reader (``knnvocab formats`` lists them).
        dataset_name: name recorded on every point (default: the folder name); a purge by
            dataset uses it.
        message: why this version exists, recorded in the history.
        resume: continue the domain's pending ingest instead of starting a new one.
        wait: wait for another process's pending version instead of failing.
        classes: only these dataset classes enter the vocabulary (None: all).
        min_area: instances smaller than this many pixels are skipped.
        batch_size: images per encoder forward.
        reader_options: format-specific options (folders, class list, split, …).
        checkpoint_seconds: how often progress is made durable (store flush + catalog);
            a resume redoes at most this much work.
        only_keys: ingest only these image keys (None: every image of the dataset).
        templates: zero-shot prompt templates of the new version, each with one ``{}``
            for the class name (None: keep the head version's; the default ensemble for
            a new domain). Recorded with the version, not in its parameters.
    """

    format: str
    dataset_name: str | None = None
    message: str = ""
    resume: bool = False
    wait: bool = False
    wait_timeout: float = 3600.0
    classes: tuple[str, ...] | None = None
    min_area: int = 16
    batch_size: int = 8
    reader_options: dict[str, Any] = field(default_factory=dict)
    checkpoint_seconds: float = 10.0
    only_keys: tuple[str, ...] | None = None
    templates: tuple[str, ...] | None = None

    def __post_init__(self) -> None:
        if self.templates is not None:
            PromptSet(tuple(self.templates))  # refuse bad templates before anything runs

    def recorded(self) -> dict[str, Any]:
        """The parameters recorded with the version and run."""
        data = asdict(self)
        data.pop("resume")
        data.pop("wait")
        data.pop("wait_timeout")
        data.pop("checkpoint_seconds")
        data.pop("templates")
        data["classes"] = list(self.classes) if self.classes else None
        data["only_keys"] = list(self.only_keys) if self.only_keys is not None else None
        data["reader_options"] = {k: str(v) for k, v in self.reader_options.items()}
        return data


@dataclass(frozen=True)
class IngestSummary:
    """What an ingest did: the published version and the instances it added per class."""

    domain: str
    version: int
    dataset: str
    images: int
    instances_added: dict[str, int]
    classes_added: list[str]
    skipped: dict[str, int]
    resumed: bool
    seconds: float

    @property
    def total_added(self) -> int:
        return sum(self.instances_added.values())

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["total_added"] = self.total_added
        return data
