"""Opening a portable archive for import: unpacked safely, every member checked.

The tar goes through `knnvocab.archives.extract_archive` (no absolute paths, ``..``,
links or special members; sizes bounded; nothing left behind on failure) into a scratch
folder. Then, before anything is written to the catalog or the store: the manifest's
format and version, the member list (nothing missing, nothing extra) and every member's
size and SHA-256. Any failure is one `InputError` naming the archive and the member.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from knnvocab.archives import ArchiveLimits, extract_archive
from knnvocab.errors import InputError
from knnvocab.portable.layout import (
    CATALOG_TABLES,
    FORMAT,
    FORMAT_VERSION,
    MANIFEST,
    catalog_member,
    sha256_file,
)

#: a domain archive may be large; a plain tar has no compression ratio to bound
LIMITS = ArchiveLimits(max_members=10_000, max_total_bytes=2**40, max_ratio=1e9)


@dataclass(frozen=True)
class Contents:
    """A checked archive: its manifest, catalog tables and Parquet files by collection."""

    sha256: str
    manifest: dict[str, Any]
    tables: dict[str, Any]
    points: dict[str, Path]  # collection -> unpacked Parquet file

    @property
    def domain(self) -> str:
        return str(self.manifest["domain"])


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*") if p.is_file()}


def _load_json(archive: Path, path: Path, member: str) -> Any:
    try:
        return json.loads(path.read_text())
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise InputError(archive, f"member {member}: not valid JSON ({exc})") from None


def _check_manifest(archive: Path, manifest: Any) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise InputError(archive, f"not a knnvocab domain archive ({MANIFEST} has no format)")
    version = manifest.get("format_version")
    if version != FORMAT_VERSION:
        raise InputError(
            archive,
            f"archive format version {version!r} is not supported by this knnvocab "
            f"(it reads version {FORMAT_VERSION}); use a knnvocab that writes it",
        )
    if not isinstance(manifest.get("members"), dict) or not isinstance(manifest.get("domain"), str):
        raise InputError(archive, f"{MANIFEST} lacks its members or domain")


def _check_members(archive: Path, root: Path, members: dict[str, Any]) -> None:
    present = _files(root) - {MANIFEST}
    for member in sorted(set(members) - present):
        raise InputError(archive, f"member {member} is missing (truncated archive?)")
    for member in sorted(present - set(members)):
        raise InputError(archive, f"member {member} is not listed in the manifest")
    for member, expected in sorted(members.items()):
        digest, size = sha256_file(root / member)
        if not isinstance(expected, dict) or (digest, size) != (
            expected.get("sha256"),
            expected.get("bytes"),
        ):
            raise InputError(
                archive,
                f"member {member} does not match its manifest checksum (damaged or altered)",
            )


def open_archive(archive: Path, scratch: Path) -> Contents:
    """Unpack ``archive`` into the new folder ``scratch`` and check it all (see the
    module docstring); the caller removes ``scratch``."""
    if not archive.is_file():
        raise InputError(archive, "no such file")
    root = extract_archive(archive, scratch, name=str(archive), limits=LIMITS)
    if root != scratch:
        raise InputError(archive, "not a knnvocab domain archive (one top-level folder)")
    if not (root / MANIFEST).is_file():
        raise InputError(archive, f"member {MANIFEST} is missing (truncated or not an archive)")
    manifest = _load_json(archive, root / MANIFEST, MANIFEST)
    _check_manifest(archive, manifest)
    _check_members(archive, root, manifest["members"])
    for table in CATALOG_TABLES:
        if catalog_member(table) not in manifest["members"]:
            raise InputError(archive, f"member {catalog_member(table)} is missing")
    tables = {
        table: _load_json(archive, root / catalog_member(table), catalog_member(table))
        for table in CATALOG_TABLES
    }
    points = {
        member[len("points/") : -len(".parquet")]: root / member
        for member in manifest["members"]
        if member.startswith("points/") and member.endswith(".parquet")
    }
    digest, _ = sha256_file(archive)
    return Contents(digest, manifest, tables, points)
