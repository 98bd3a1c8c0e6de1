"""`knnvocab store adopt`: record an unrecorded vector store as this catalog's."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape

from knnvocab.cli.output import BarProgress, out, print_json, workspace

if TYPE_CHECKING:
    from knnvocab.store.adoption import AdoptionReport

app = typer.Typer(no_args_is_help=True, help="The vector store the catalog writes to.")

_SAYS = {
    "recorded": "[green]recorded[/]: the store's identity is the one the catalog recorded",
    "missing": "[red]missing[/] from the store: nothing to adopt (wrong store?)",
    "no-identity": "has no identity (made before identities existed)",
    "foreign-identity": "carries an identity this catalog never recorded",
}


@app.command()
def adopt(
    yes: Annotated[
        bool, typer.Option("--yes", help="Record what was found (without it: only say).")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Say, per collection, whether the store is the one the catalog recorded and what it
    holds against the catalog's counts; with --yes, record every present collection as
    this catalog's (audited). For a store made before identities existed, or one you have
    checked is right although its counts differ."""
    from knnvocab.cli.output import user
    from knnvocab.store.adoption import adopt_store

    with workspace() as ws:
        reports = adopt_store(ws, user(), apply=yes)
    if json_:
        print_json([r.to_json() for r in reports])
        return
    for r in reports:
        _print(r)
    todo = [r for r in reports if r.state in ("no-identity", "foreign-identity") and not r.adopted]
    if not reports:
        out.print("the catalog has no collections yet")
    elif todo:
        out.print(
            f"{len(todo)} collection(s) not recorded: `knnvocab store adopt --yes` records them"
        )


def _print(r: AdoptionReport) -> None:
    line = f"{escape(r.collection)}: {_SAYS[r.state]}"
    if r.survey is not None:
        line += f"; {escape(r.survey.describe())}"
        line += " [green](matches)[/]" if r.survey.matches else " [yellow](differs)[/]"
    if r.adopted:
        line += f"; [green]adopted[/] as identity {r.identity}"
    out.print(line)


@app.command()
def upgrade(json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False) -> None:
    """Move an embedded store written with one shard per domain (older knnvocab) to one
    shard per collection, in place: every point copied unchanged, counts verified per
    domain before the old shards are deleted. Resumable; a Qdrant server needs nothing."""
    from knnvocab.config import Settings
    from knnvocab.store.edge import EdgeStore
    from knnvocab.store.upgrade import upgrade_store

    settings = Settings.from_env()
    if settings.qdrant_url is not None:
        out.print("a Qdrant server keeps one collection per encoder already: nothing to do")
        return
    store = EdgeStore(settings.vectors_dir, wait=settings.store_wait)
    try:
        reports = upgrade_store(store, BarProgress("upgrade", "points", "points"))
    finally:
        store.close()
    if json_:
        print_json([r.to_json() for r in reports])
        return
    for r in reports:
        if r.moved:
            moved = ", ".join(f"{d} {n}" for d, n in r.moved.items())
            out.print(f"{escape(r.collection)}: moved to one shard ({escape(moved)} points)")
        else:
            out.print(f"{escape(r.collection)}: already one shard per collection")
    if not reports:
        out.print(f"no collections in {escape(str(settings.vectors_dir))}")
