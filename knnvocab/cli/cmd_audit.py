"""`knnvocab audit`: the append-only log of every change."""

from __future__ import annotations

import json
from typing import Annotated

import typer
from rich.markup import escape

from knnvocab.cli.output import out, print_json, when, workspace
from knnvocab.cli.remote import ServerOpt
from knnvocab.errors import ConfigError


def audit(
    domain: Annotated[
        str | None, typer.Argument(help="Only this domain (also a deleted one).")
    ] = None,
    since: Annotated[
        str | None, typer.Option(help="Only events at or after this ISO date/time (UTC).")
    ] = None,
    action: Annotated[
        str | None, typer.Option(help="Only this action, or a family (e.g. purge, ingest).")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
) -> None:
    """The audit log, oldest first: every change (ingests, failed and rolled-back ones too,
    retire, restore, purge tombstones, domain create/delete, doctor repairs)."""
    from knnvocab.cli import remote
    from knnvocab.lifecycle import audit_log, parse_since

    client = remote.server(server)
    if client is not None:
        if domain is None:
            raise ConfigError("--server: name the DOMAIN whose audit log to read")
        with client:
            print_json(client.audit(domain, since, action))
        return

    start = parse_since(since) if since else None
    with workspace() as ws:
        records = audit_log(ws, domain, start, action)
    if json_:
        print_json([r.to_json() for r in records])
        return
    if not records:
        out.print("no audit events match")
    for r in records:
        where = f"{r.domain or '-'}" + (f" v{r.version}" if r.version is not None else "")
        detail = " ".join(f"{k}={_short(v)}" for k, v in r.detail.items() if v not in ("", None))
        out.print(
            f"{r.id:>5}  {when(r.at)}  {escape(r.actor)}@{escape(r.host)}  {escape(where)}  "
            f"[bold]{escape(r.action)}[/]  {escape(detail)}"
        )


def _short(value: object, limit: int = 60) -> str:
    text = value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def register(app: typer.Typer) -> None:
    app.command()(audit)
