"""Ingesting labelled datasets: a single pass that embeds every instance into the store."""

from knnvocab.ingest.run import ingest, rollback_pending
from knnvocab.ingest.types import IngestOptions, IngestSummary, NoProgress, Progress

__all__ = ["IngestOptions", "IngestSummary", "NoProgress", "Progress", "ingest", "rollback_pending"]
