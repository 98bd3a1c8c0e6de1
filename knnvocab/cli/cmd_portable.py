"""`knnvocab export DOMAIN FILE` and `knnvocab import FILE [--as NAME]`: a domain as a
portable archive, and back."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from knnvocab.cli.output import BarProgress, out, print_json, user, workspace


def export(
    domain: Annotated[str, typer.Argument(help="The domain to export.")],
    file: Annotated[Path, typer.Argument(help="The archive to write (a tar).")],
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Write DOMAIN's whole catalog history (versions, classes, datasets, audit events)
    and its points (Parquet) as one checksummed archive FILE, atomically. A domain with
    a pending version is refused: finish or roll back the change first."""
    from knnvocab.portable import export_domain

    with workspace() as ws:
        result = export_domain(ws, domain, file, BarProgress("export", "points", "points"))
    if json_:
        print_json(result.to_json())
        return
    points = sum(result.counts["points"].values())
    out.print(
        f"exported {escape(domain)}: {result.counts['versions']} versions, {points} points "
        f"-> {escape(str(result.path))} ({result.bytes:,} bytes, sha256 {result.sha256[:12]})"
    )


def import_(
    file: Annotated[Path, typer.Argument(help="An archive written by `knnvocab export`.")],
    as_: Annotated[
        str | None, typer.Option("--as", help="Import under this name (default: the archive's).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Import a domain archive into this deployment: every member's checksum is verified
    before anything is written; an existing domain of that name is refused (use --as);
    re-running the same import finishes an interrupted one or says it is done."""
    from knnvocab.portable import import_domain

    with workspace() as ws:
        result = import_domain(
            ws, file, actor=user(), name=as_, progress=BarProgress("import", "points", "points")
        )
    if json_:
        print_json(result.to_json())
        return
    if result.already:
        out.print(f"{escape(result.domain)}: already imported from this archive; nothing to do")
        return
    points = sum(result.points.values())
    out.print(
        f"imported {escape(result.source_domain)} as {escape(result.domain)}: "
        f"{result.versions} versions, {points} points"
    )


def register(app: typer.Typer) -> None:
    app.command("export")(export)
    app.command("import")(import_)
