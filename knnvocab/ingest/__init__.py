"""Ingesting labelled datasets: a single pass that embeds every instance into the store."""

from knnvocab.ingest.run import ingest
from knnvocab.ingest.types import IngestOptions, IngestSummary, NoProgress, Progress
from knnvocab.lifecycle.rollback import rollback_pending

__all__ = ["IngestOptions", "IngestSummary", "NoProgress", "Progress", "ingest", "rollback_pending"]
