"""`knnvocab vocab …`: a domain's vocabulary history."""

from __future__ import annotations

import json
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from knnvocab.cli.output import err, out, print_json, user, when, workspace
from knnvocab.cli.remote import ServerOpt

app = typer.Typer(no_args_is_help=True, help="Vocabulary versions of a domain: history, state.")

DomainArg = Annotated[str, typer.Argument(help="The domain.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON.")]


def _counts(counts: dict[str, int], sign: str = "+", limit: int = 6) -> str:
    items = [f"{n} {sign}{c}" for n, c in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))]
    more = f", … ({len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _print_provenance(r: Any) -> None:
    if r.message:
        out.print(f"    message:  {escape(r.message)}")
    for what, name in r.target.items():
        out.print(f"    target:   {what} {escape(name)}")
    if r.dataset:
        d = r.dataset
        sha = (d["content_sha256"] or "pending")[:16]
        files = d["file_counts"].get("files", d["file_counts"].get("images"))
        line = f"{d['name']} ({d['format']}) {d['source']} sha256 {sha}… {files} files"
        out.print(f"    dataset:  {escape(line)}")
    e = r.encoder
    weights = e["pretrained"] or e["checkpoint"] or ""
    if e["source"] == "untrained":
        weights = f"UNTRAINED (seed {e['untrained_seed']})"
    line = (
        f"{e['model']} {weights} [{e['method']}, {e['resolution']}px, {e['dim']}-d] "
        f"fingerprint {e['fingerprint'][:12]}"
    )
    out.print(f"    encoder:  {escape(line)}")
    out.print(f"    templates: {escape(_templates_line(r.templates, r.prompt_rule))}")
    params = _params_line(r.params)
    if params:
        out.print(f"    params:   {escape(params)}")


def _templates_line(templates: list[str], rule: str) -> str:
    """The zero-shot prompts of a version: the default ensemble by name, others in full."""
    from knnvocab.embed.prompts import DEFAULT_NAME_RULE, DEFAULT_TEMPLATES

    if tuple(templates) == DEFAULT_TEMPLATES:
        line = f"default ensemble ({len(templates)})"
    else:
        quoted = " | ".join(json.dumps(t, ensure_ascii=False) for t in templates)
        line = f"{len(templates)} custom: {quoted}"
    return line if rule == DEFAULT_NAME_RULE else f"{line} (name rule {rule})"


def _params_line(params: dict[str, Any]) -> str:
    """The run's parameters as `key=value`, leaving out what is shown elsewhere or unset."""
    from knnvocab.history import user_params

    shown = {"message", "dataset_name", "class", "dataset"}
    items = [
        f"{k}={v}"
        for k, v in sorted(user_params(params).items())
        if k not in shown and v not in (None, {}, [], "")
    ]
    return " ".join(items)


def _print_changes(r: Any) -> None:
    for label, names in (
        ("added", r.classes_added),
        ("retired", r.classes_retired),
        ("restored", r.classes_restored),
        ("purged", r.classes_purged),
    ):
        if names:
            out.print(f"    classes {label}: {escape(', '.join(names))}")
    for label, counts, sign in (
        ("instances", r.instances_added, "+"),
        ("instances", r.instances_removed, "-"),
        ("points purged", r.points_purged, "-"),
    ):
        if counts:
            verb = "added" if sign == "+" else "removed"
            total = sum(counts.values())
            detail = escape(_counts(counts, sign))
            out.print(
                f"    {label}: {total}{'' if label != 'instances' else ' ' + verb} ({detail})"
            )
    changed = r.instances_added or r.instances_removed or r.classes_added or r.classes_purged
    if r.state == "published" and not (changed or r.classes_retired or r.classes_restored):
        out.print("    no change to the vocabulary")


def _print_record(r: Any) -> None:
    colour = {"published": "green", "pending": "yellow"}.get(r.state, "red")
    out.print(
        f"[bold]version {r.number}[/] [{colour}]{r.state.replace('_', ' ')}[/] {r.operation} "
        f"{when(r.created_at)} UTC by {escape(r.user)}@{escape(r.host)} "
        f"(knnvocab {r.tool_version})"
        + ("" if r.reproducible else " [red]not reproducible (points it showed are gone)[/]")
    )
    _print_provenance(r)
    _print_changes(r)
    if r.error:
        out.print(f"    [red]error:[/] {escape(r.error)}")


@app.command("log")
def log(domain: DomainArg, json_: JsonOpt = False, server: ServerOpt = None) -> None:
    """Every version of DOMAIN with its provenance, oldest first."""
    from knnvocab.cli import remote
    from knnvocab.history import version_log

    client = remote.server(server)
    if client is not None:
        with client:
            print_json({"domain": domain, "versions": client.versions(domain)})
        return

    with workspace() as ws:
        records = version_log(ws, domain)
    if json_:
        print_json({"domain": domain, "versions": [r.to_json() for r in records]})
        return
    if not records:
        out.print(f"domain {domain} has no versions yet")
    for record in records:
        _print_record(record)


@app.command("show")
def show(
    domain: DomainArg,
    version: Annotated[int | None, typer.Option(help="Version (default: the head).")] = None,
    json_: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """The vocabulary of DOMAIN as it was at a version: classes and instance counts."""
    from knnvocab.cli import remote
    from knnvocab.history import vocabulary

    client = remote.server(server)
    if client is not None:
        with client:
            print_json(client.vocabulary(domain, version))
        return

    with workspace() as ws:
        snap = vocabulary(ws, domain, version)
    if json_:
        print_json(snap.to_json())
        return
    table = Table(
        "id",
        "class",
        "state",
        "instances",
        "since version",
        title=(
            f"{domain} at version {snap.version}: {len(snap.live)} live classes, "
            f"{sum(c.instances for c in snap.live)} instances"
        ),
    )
    for c in snap.classes:
        table.add_row(
            str(c.class_id),
            c.name,
            "live" if c.live else "[red]retired[/]",
            str(c.instances),
            str(c.added_in),
        )
    out.print(table)
    if not snap.reproducible:
        err.print(
            f"[yellow]note:[/] version {snap.version} is no longer reproducible: points it "
            "showed were purged or lost since (see `knnvocab vocab log`)"
        )


@app.command("diff")
def diff(
    domain: DomainArg,
    a: Annotated[int, typer.Argument(help="From version.")],
    b: Annotated[int, typer.Argument(help="To version.")],
    json_: JsonOpt = False,
    server: ServerOpt = None,
) -> None:
    """What changed in DOMAIN's vocabulary from version A to version B."""
    from knnvocab.cli import remote
    from knnvocab.history import vocab_diff

    client = remote.server(server)
    if client is not None:
        with client:
            print_json(client.diff(domain, a, b))
        return

    with workspace() as ws:
        d = vocab_diff(ws, domain, a, b)
    if json_:
        print_json(d.to_json())
        return
    out.print(f"[bold]{domain}[/]: version {a} -> {b}")
    for label, names, colour in (
        ("added", d.added, "green"),
        ("retired", d.retired, "red"),
        ("restored", d.restored, "green"),
        ("purged", d.removed, "red"),
    ):
        if names:
            out.print(f"  [{colour}]{label}[/] ({len(names)}): {escape(', '.join(names))}")
    for name, (before, after) in d.count_changes.items():
        out.print(f"  {escape(name)}: {before} -> {after} instances ({after - before:+d})")
    if not (d.added or d.retired or d.restored or d.removed or d.count_changes):
        out.print("  no changes")


@app.command("rollback")
def rollback(domain: DomainArg) -> None:
    """Roll back DOMAIN's pending version (a crashed or abandoned ingest or change)."""
    from knnvocab.lifecycle import rollback_pending

    with workspace() as ws:
        number = rollback_pending(ws, domain, actor=user())
    out.print(f"rolled back pending version {number} of {domain}")


ClassArg = Annotated[str, typer.Argument(help="The class name.")]
MessageOpt = Annotated[str, typer.Option("--message", "-m", help="Why (recorded).")]


def _report(result: Any, verb: str, json_: bool) -> None:
    """What a retire, restore or purge did: JSON, or a line for people."""
    if json_:
        print_json(result.to_json())
        return
    target = ", ".join(f"{k} {v!r}" for k, v in result.target.items())
    out.print(
        f"[bold green]published[/] {escape(result.domain)} version {result.version}: "
        f"{escape(target)} {verb} ({result.points} points)"
    )
    if result.versions_not_reproducible:
        listed = ", ".join(map(str, result.versions_not_reproducible))
        out.print(f"versions no longer reproducible: {listed}")


@app.command("retire")
def retire(
    domain: DomainArg, name: ClassArg, message: MessageOpt = "", json_: JsonOpt = False
) -> None:
    """Retire class NAME in a new version: its instances are excluded from every query at or
    after it; earlier versions still see them (undo with `vocab restore`)."""
    from knnvocab.cli import remote
    from knnvocab.lifecycle import retire as run

    client = remote.owner()
    if client is not None:
        with client:
            result = remote.record(client.retire(domain, name, message))
    else:
        with workspace() as ws:
            result = run(ws, domain, name, message, actor=user())
    _report(result, "retired", json_)


@app.command("restore")
def restore(
    domain: DomainArg, name: ClassArg, message: MessageOpt = "", json_: JsonOpt = False
) -> None:
    """Restore retired class NAME in a new version: its instances are visible again from
    that version on; the versions in between stay as they were."""
    from knnvocab.cli import remote
    from knnvocab.lifecycle import restore as run

    client = remote.owner()
    if client is not None:
        with client:
            result = remote.record(client.restore(domain, name, message))
    else:
        with workspace() as ws:
            result = run(ws, domain, name, message, actor=user())
    _report(result, "restored", json_)


@app.command("purge")
def purge(
    domain: DomainArg,
    class_name: Annotated[str | None, typer.Option("--class", help="Purge this class.")] = None,
    dataset: Annotated[str | None, typer.Option(help="Purge the points of this dataset.")] = None,
    yes: Annotated[
        bool, typer.Option("--yes", help="Confirm: the points are deleted for good.")
    ] = False,
    message: MessageOpt = "",
    json_: JsonOpt = False,
) -> None:
    """Delete the points of a class or dataset for good (a data-protection request): a new
    version, a tombstone in the audit log, and earlier versions that showed them marked not
    reproducible. Needs --yes."""
    from knnvocab.cli import remote
    from knnvocab.errors import ConfigError
    from knnvocab.lifecycle import plan_purge
    from knnvocab.lifecycle import purge as run

    client = remote.owner()
    if client is not None:
        if not yes:
            raise ConfigError("a purge deletes points for good: pass --yes to confirm")
        with client:
            answer = client.purge(domain, class_name=class_name, dataset=dataset, message=message)
        _report(remote.record(answer), "purged", json_)
        return
    with workspace() as ws:
        if not yes:
            plan = plan_purge(ws, domain, class_name=class_name, dataset=dataset)
            versions = ", ".join(map(str, plan.versions_not_reproducible)) or "none"
            raise ConfigError(
                f"purge of {plan.what} {plan.name!r} would delete {plan.points} points of "
                f"{domain!r} for good (versions no longer reproducible: {versions}); "
                "pass --yes to confirm"
            )
        result = run(
            ws, domain, actor=user(), class_name=class_name, dataset=dataset, message=message
        )
    _report(result, "purged", json_)
