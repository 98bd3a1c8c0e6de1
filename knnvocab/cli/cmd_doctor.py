"""`knnvocab doctor`: check the catalog against the vector store, and repair."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated

import typer
from rich.markup import escape
from rich.table import Table

from knnvocab.cli.output import out, print_json, user, workspace

if TYPE_CHECKING:
    from knnvocab.lifecycle import DoctorReport


def doctor(
    domain: Annotated[str | None, typer.Argument(help="Only this domain (default all).")] = None,
    repair: Annotated[
        bool, typer.Option("--repair", help="Fix what can be fixed (each fix is audited).")
    ] = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
) -> None:
    """Compare catalog counts with the store per domain, version and class; find points of
    failed or rolled-back versions, points the catalog does not know and dead pending
    versions. Exit code 1 while something is wrong and not repaired."""
    from knnvocab.lifecycle import doctor as run

    with workspace() as ws:
        report = run(ws, domain, repair, actor=user())
    if json_:
        print_json(report.to_json())
    else:
        _print_report(report)
    if not report.ok:
        raise typer.Exit(1)


def _print_report(report: DoctorReport) -> None:
    checked = ", ".join(report.domains) or "no domains"
    if report.findings:
        table = Table("domain", "version", "finding", "points", "repair")
        for f in report.findings:
            status = "[green]done[/]" if f.repaired else ("-" if not f.problem else "[red]no[/]")
            action = f"{escape(f.action)}: {status}" if f.action else status
            classes = ", ".join(f"{n} {c}" for n, c in f.classes.items())
            detail = f.message + (f" ({classes})" if classes else "")
            table.add_row(
                escape(f.domain), str(f.version or ""), escape(detail), str(f.points), action
            )
        out.print(table)
    remaining = len(report.remaining)
    if remaining:
        hint = "" if report.repair else "; `knnvocab doctor --repair` fixes what it can"
        out.print(f"[red]{remaining} problem(s) left[/] (checked {escape(checked)}){hint}")
    else:
        out.print(f"[green]consistent[/]: {escape(checked)}")


def register(app: typer.Typer) -> None:
    app.command()(doctor)
