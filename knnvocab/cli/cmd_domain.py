"""`knnvocab domain …`: create, list, show, set quotas of and delete domains (tenants)."""

from __future__ import annotations

from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from knnvocab.cli.cmd_ingest import (
    CheckpointOpt,
    ModelOpt,
    PretrainedOpt,
    ResolutionOpt,
    UntrainedOpt,
    encoder_options,
)
from knnvocab.cli.output import out, print_json, user, when, workspace

app = typer.Typer(
    no_args_is_help=True, help="Domains (tenants): create, list, show, set a quota, delete."
)

NameArg = Annotated[str, typer.Argument(help="The domain.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]
MaxInstancesOpt = Annotated[
    int | None,
    typer.Option(
        "--max-instances",
        metavar="N",
        help="Quota: at most N (>= 1) instances visible at the head; an ingest that would "
        "exceed it is refused before embedding anything.",
    ),
]


def _usage(d: Any) -> str:
    """Instances at the head against the quota: ``180 / 200``, or ``180``."""
    return str(d.instances) if d.max_instances is None else f"{d.instances} / {d.max_instances}"


def _instances(d: Any) -> str:
    if d.max_instances is None:
        return f"{d.instances} (visible at the head; no quota)"
    over = d.instances - d.max_instances
    return f"{_usage(d)} (quota{f', {over} over' if over > 0 else ''}; visible at the head)"


def _print_info(d: Any) -> None:
    table = Table(show_header=False, box=None, title=f"domain {escape(d.name)}")
    versions = ", ".join(f"{n} {s.replace('_', ' ')}" for s, n in d.versions.items()) or "none"
    classes = ", ".join(f"{n} {s}" for s, n in d.classes.items())
    rows = {
        "description": d.description or "-",
        "created": f"{when(d.created_at)} UTC by {d.created_by}",
        "head version": str(d.head_version),
        "pending version": str(d.pending_version or "-"),
        "versions": versions,
        "classes": classes,
        "instances": _instances(d),
        "datasets": str(d.datasets),
        "encoder": d.encoder or "none yet (bound by the first ingest)",
    }
    for key, value in rows.items():
        table.add_row(f"[bold]{key}[/]", escape(value))
    out.print(table)


@app.command("create")
def create(
    name: NameArg,
    description: Annotated[str, typer.Option(help="What the domain is for.")] = "",
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    checkpoint: CheckpointOpt = None,
    untrained: UntrainedOpt = False,
    resolution: ResolutionOpt = None,
    max_instances: MaxInstancesOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Create an empty domain, bound to an encoder if encoder options are given (else its
    first ingest binds it), with a quota if --max-instances is given."""
    from knnvocab.lifecycle import new_domain

    spec = encoder_options(model, pretrained, checkpoint, untrained, resolution)
    with workspace() as ws:
        info = new_domain(ws, name, description, spec, max_instances, actor=user())
    if json_:
        print_json(info.to_json())
        return
    out.print(f"[bold green]created[/] domain {escape(name)}")
    _print_info(info)


@app.command("list")
def list_(json_: JsonOpt = False) -> None:
    """Every domain with its head version, counts and encoder."""
    from knnvocab.lifecycle import domain_infos

    with workspace() as ws:
        infos = domain_infos(ws)
    if json_:
        print_json([i.to_json() for i in infos])
        return
    table = Table("domain", "head", "pending", "classes", "instances", "encoder", "description")
    for d in infos:
        table.add_row(
            escape(d.name),
            str(d.head_version),
            str(d.pending_version or ""),
            str(d.classes["live"]),
            _usage(d),
            escape((d.encoder_fingerprint or "-")[:12]),
            escape(d.description),
        )
    out.print(table if infos else "no domains yet")


@app.command("show")
def show(name: NameArg, json_: JsonOpt = False) -> None:
    """One domain: versions per state, classes (live, retired, purged), instances at the
    head, datasets and encoder."""
    from knnvocab.lifecycle import domain_info

    with workspace() as ws:
        info = domain_info(ws, name)
    if json_:
        print_json(info.to_json())
    else:
        _print_info(info)


@app.command("set")
def set_(
    name: NameArg,
    max_instances: MaxInstancesOpt = None,
    no_limit: Annotated[bool, typer.Option("--no-limit", help="Remove the quota.")] = False,
    json_: JsonOpt = False,
) -> None:
    """Set a domain's quota (--max-instances N) or remove it (--no-limit). Audited; a quota
    below the current usage only stops the domain from growing."""
    from knnvocab.errors import ConfigError
    from knnvocab.lifecycle import set_quota

    if no_limit == (max_instances is not None):
        raise ConfigError("give exactly one of --max-instances N and --no-limit")
    with workspace() as ws:
        info = set_quota(ws, name, max_instances, actor=user())
    if json_:
        print_json(info.to_json())
        return
    quota = "no quota" if info.max_instances is None else f"quota {info.max_instances} instances"
    out.print(f"[bold green]set[/] domain {escape(name)}: {quota} ({_usage(info)} in use)")


@app.command("delete")
def delete(
    name: NameArg,
    yes: Annotated[bool, typer.Option("--yes", help="Confirm: everything is deleted.")] = False,
    message: Annotated[str, typer.Option("--message", "-m", help="Why (recorded).")] = "",
    json_: JsonOpt = False,
) -> None:
    """Delete a domain for good: its points and its catalog rows. The audit log keeps a
    tombstone. Needs --yes."""
    from knnvocab.errors import ConfigError
    from knnvocab.lifecycle import delete_domain, domain_info

    with workspace() as ws:
        if not yes:
            info = domain_info(ws, name)
            raise ConfigError(
                f"deleting domain {name!r} removes its {sum(info.versions.values())} versions, "
                f"{sum(info.classes.values())} classes and all its points for good; "
                "pass --yes to confirm"
            )
        info = delete_domain(ws, name, message, actor=user())
    if json_:
        print_json({"deleted": info.to_json()})
    else:
        head = info.head_version
        out.print(f"[bold red]deleted[/] domain {escape(name)} (head was version {head})")


@app.command("move")
def move(
    names: Annotated[list[str] | None, typer.Argument(help="Domains to move.")] = None,
    all_: Annotated[bool, typer.Option("--all", help="Every domain.")] = False,
    to_database: Annotated[
        str, typer.Option("--to-database", help="The target's catalog URL.")
    ] = "",
    to_qdrant: Annotated[
        str | None,
        typer.Option("--to-qdrant", help="The target's Qdrant URL (none: embedded target)."),
    ] = None,
    to_home: Annotated[
        str | None, typer.Option("--to-home", help="The target's home (an embedded target).")
    ] = None,
    delete_source: Annotated[
        bool, typer.Option("--delete-source", help="Delete each domain here once verified.")
    ] = False,
    json_: JsonOpt = False,
) -> None:
    """Move domains to another deployment (embedded → Postgres + Qdrant server, and back):
    each is exported, imported there and verified — counts per version and class, and
    `segment --exact` at every published version on images of its own datasets, byte for
    byte — before it is reported moved. The source stays unless --delete-source.
    Resumable: run the same command again."""
    from dataclasses import replace
    from pathlib import Path

    from knnvocab.cli.output import BarProgress
    from knnvocab.config import Settings, check_qdrant_url
    from knnvocab.errors import ConfigError
    from knnvocab.lifecycle import domain_infos
    from knnvocab.portable.move import move_domain
    from knnvocab.workspace import Workspace

    if not to_database:
        raise ConfigError("--to-database URL is required (the target's catalog)")
    if bool(names) == all_:
        raise ConfigError("name the domains to move, or --all")
    here = Settings.from_env()
    if to_qdrant is None and to_home is None:
        raise ConfigError("an embedded target needs --to-home DIR (or give --to-qdrant URL)")
    there = replace(
        here,
        home=Path(to_home).expanduser().resolve() if to_home else here.home,
        database_url=to_database,
        qdrant_url=check_qdrant_url(to_qdrant, "--to-qdrant") if to_qdrant else None,
    )
    if (there.database_url, there.qdrant_url, there.home) == (
        here.database_url,
        here.qdrant_url,
        here.home,
    ):
        raise ConfigError("the target is this deployment")
    results = []
    with workspace() as source, Workspace(there) as target:
        chosen = names or [i.name for i in domain_infos(source)]
        for name in chosen:
            result = move_domain(
                source,
                target,
                name,
                actor=user(),
                delete_source=delete_source,
                progress=BarProgress(f"move {name}", "points", "points"),
            )
            results.append(result)
            if not json_:
                kept = "deleted here" if result.deleted_source else "kept here"
                copied = (
                    "already there"
                    if result.already
                    else f"{sum(result.points.values())} points copied"
                )
                out.print(
                    f"[bold green]moved[/] {escape(name)}: {copied}, {result.versions} "
                    f"published versions verified on {result.images} images; source {kept}"
                )
    if json_:
        print_json([r.to_json() for r in results])
