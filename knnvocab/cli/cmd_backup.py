"""`knnvocab backup create|restore DIR`: a whole deployment as portable archives."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.markup import escape

from knnvocab.cli.output import BarProgress, out, print_json, user, workspace

app = typer.Typer(no_args_is_help=True, help="Back up a whole deployment, and restore it.")

DirArg = Annotated[Path, typer.Argument(help="The backup folder.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


@app.command("create")
def create(folder: DirArg, json_: JsonOpt = False) -> None:
    """Export every domain at its latest published version into DIR (new, or an
    unfinished backup to complete), with a manifest written last."""
    from knnvocab.cli import remote
    from knnvocab.portable.backup import create_backup

    client = remote.owner()  # a service owns this home's store: it makes the backup
    if client is not None:
        with client:
            answer = client.backup(str(folder.resolve()))
        domains = answer["domains"]
    else:
        with workspace() as ws:
            progress = BarProgress("backup", "points", "points")
            domains = create_backup(ws, folder, progress=progress).domains
    if json_:
        print_json({"folder": str(folder), "domains": domains})
        return
    out.print(f"[bold green]backed up[/] {len(domains)} domains into {escape(str(folder))}")


@app.command("restore")
def restore(folder: DirArg, json_: JsonOpt = False) -> None:
    """Import every domain of the backup in DIR into this deployment (which must not hold
    them yet); every archive's sha256 is checked first. Resumable: run it again."""
    from knnvocab.portable.backup import restore_backup

    with workspace() as ws:
        result = restore_backup(
            ws, folder, actor=user(), progress=BarProgress("restore", "points", "points")
        )
    if json_:
        print_json(result.to_json())
        return
    out.print(f"[bold green]restored[/] {len(result.domains)} domains from {escape(str(folder))}")
