"""`knnvocab token …`: create, list and revoke the HTTP service's bearer tokens."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated

import typer
from rich import box
from rich.markup import escape
from rich.table import Table

from knnvocab.cli.output import err, out, print_json, user, workspace

app = typer.Typer(
    no_args_is_help=True,
    help="Bearer tokens of the HTTP service: create (shown once), list, revoke.",
)

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
ALL_DOMAINS = "(all domains)"


def _minute(value: datetime) -> str:
    return value.strftime("%Y-%m-%d %H:%M")


def _expiry(value: datetime | None) -> str:
    return f"{_minute(value)} UTC" if value is not None else "never"


@app.command("create")
def create(
    scope: Annotated[
        str,
        typer.Option(
            "--scope",
            metavar="query|write|admin",
            help="What the token may do: query; write (also ingest, retire, …); admin (also "
            "manage domains with --all-domains).",
        ),
    ],
    domain: Annotated[str | None, typer.Argument(help="The domain the token is for.")] = None,
    all_domains: Annotated[
        bool,
        typer.Option("--all-domains", help="A deployment token, for every domain (no DOMAIN)."),
    ] = False,
    name: Annotated[
        str | None, typer.Option("--name", help="A unique name (default DOMAIN-SCOPE-ID).")
    ] = None,
    expires: Annotated[
        float | None,
        typer.Option("--expires", metavar="DAYS", help="Expire after DAYS days (default never)."),
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Create a token for DOMAIN (or, with --all-domains, every domain). The token is shown
    once, alone on the last line of output; the catalog keeps only its hash."""
    from knnvocab.errors import ConfigError
    from knnvocab.tokens import create_token

    if all_domains == (domain is not None):
        raise ConfigError("give exactly one of DOMAIN and --all-domains")
    with workspace() as ws:
        info, secret = create_token(
            ws, domain, scope, actor=user(), name=name, expires_days=expires
        )
    if json_:
        keys = ("id", "name", "domain", "scope", "expires")
        data = info.to_json()
        print_json({**{k: data[k] for k in keys}, "token": secret})
        return
    out.print(
        f"[bold green]created[/] token {escape(info.name)} (id {info.id}) for "
        f"{escape(info.domain or ALL_DOMAINS)}, scope {info.scope}, "
        f"expires {_expiry(info.expires_at)}"
    )
    err.print("[bold yellow]this token is shown only once: store it now[/]")
    print(secret)


@app.command("list")
def list_(
    domain: Annotated[
        str | None, typer.Argument(help="Only this domain's tokens (default: every token).")
    ] = None,
    json_: JsonOpt = False,
) -> None:
    """Every token (or DOMAIN's): name, domain, id (its first 12 digits; --json has it whole
    and who created it), scope, state (active, expired or revoked) and dates. Secrets are
    never shown: they are not kept."""
    from knnvocab.tokens import list_tokens

    with workspace() as ws:
        infos = list_tokens(ws, domain)
    if json_:
        print_json([{**i.to_json(), "state": i.state()} for i in infos])
        return
    table = Table(box=box.SIMPLE_HEAD)
    for column in ("name", "domain"):  # what `revoke` and `list` take: folded, never cut
        table.add_column(column, min_width=7, overflow="fold")
    for column in ("id", "scope", "state"):
        table.add_column(column, min_width=len(column))
    for column in ("created (UTC)", "expires (UTC)"):
        table.add_column(column, min_width=len("2026-01-01"))
    for i in infos:
        table.add_row(
            escape(i.name),
            escape(i.domain or ALL_DOMAINS),
            i.id[:12],
            i.scope,
            i.state(),
            _minute(i.created_at),
            _minute(i.expires_at) if i.expires_at is not None else "never",
        )
    out.print(table if infos else "no tokens yet")


@app.command("revoke")
def revoke(
    id_or_name: Annotated[str, typer.Argument(help="The token's id or name.")],
    json_: JsonOpt = False,
) -> None:
    """Revoke a token for good (audited); it stays listed as revoked."""
    from knnvocab.tokens import revoke_token

    with workspace() as ws:
        info = revoke_token(ws, id_or_name, actor=user())
    if json_:
        print_json(info.to_json())
        return
    out.print(
        f"[bold red]revoked[/] token {escape(info.name)} (id {info.id}, "
        f"{escape(info.domain or ALL_DOMAINS)}, scope {info.scope})"
    )
