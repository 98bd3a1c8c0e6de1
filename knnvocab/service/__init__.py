"""The HTTP service (`knnvocab serve`): tenants' tokens, segment, reads, changes, jobs."""

from knnvocab.service.app import create_app

__all__ = ["create_app"]
