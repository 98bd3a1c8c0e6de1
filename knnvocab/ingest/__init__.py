"""Ingesting labelled datasets: a single pass that embeds every instance into the store."""

from knnvocab.ingest.run import ingest
from knnvocab.ingest.types import IngestOptions, IngestSummary
from knnvocab.lifecycle.rollback import rollback_pending

__all__ = ["IngestOptions", "IngestSummary", "ingest", "rollback_pending"]
