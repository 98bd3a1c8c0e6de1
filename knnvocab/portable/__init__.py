"""Portable domain archives: `export_domain` writes one domain's catalog history and
points as a versioned, checksummed tar (layout: `knnvocab.portable.layout`);
`import_domain` verifies and loads one into this deployment, resumably."""

from knnvocab.portable.export import ExportResult, export_domain
from knnvocab.portable.importing import ImportResult, import_domain

__all__ = ["ExportResult", "ImportResult", "export_domain", "import_domain"]
