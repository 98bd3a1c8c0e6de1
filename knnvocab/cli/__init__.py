"""The `knnvocab` command: a thin layer over the library.

Each command parses its options, calls one library function and prints. A KnnvocabError
becomes a one-line message and exit code 1.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from knnvocab.errors import KnnvocabError


class _Group(TyperGroup):
    """Turns library errors into clean messages, wherever in the command tree they rise."""

    def invoke(self, ctx: Any) -> Any:  # a click Context (typer vendors click)
        from knnvocab.cli.output import err

        try:
            return super().invoke(ctx)
        except KnnvocabError as exc:
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False, markup=True)
            raise typer.Exit(1) from None
        except OSError as exc:  # a full disk where no library step expected to write
            from knnvocab.diskspace import free_bytes, is_disk_full
            from knnvocab.errors import DiskFullError

            if not is_disk_full(exc):
                raise
            from knnvocab.config import Settings

            where = Path(exc.filename) if exc.filename else Settings.from_env().home
            full = DiskFullError(where, free_bytes(where.absolute()))
            err.print(f"[bold red]error:[/] {escape(str(full))}", highlight=False, markup=True)
            raise typer.Exit(1) from None
        except KeyboardInterrupt:
            err.print("[bold red]interrupted[/]")
            raise typer.Exit(130) from None


app = typer.Typer(
    cls=_Group,
    no_args_is_help=True,
    add_completion=False,
    help="Training-free, continually expanding open-vocabulary segmentation (kNN-CLIP) "
    "with an audited vocabulary history per domain.",
    pretty_exceptions_enable=False,
)


@app.callback()
def _root(
    verbose: Annotated[bool, typer.Option("--verbose", "-v", help="Log what happens.")] = False,
) -> None:
    from knnvocab.cli.output import install_warning_banner, setup_logging

    setup_logging(verbose)
    install_warning_banner()


def _register() -> None:
    from knnvocab.cli import cmd_eval, cmd_ingest, cmd_segment, cmd_system, cmd_vocab

    cmd_system.register(app)
    cmd_ingest.register(app)
    cmd_segment.register(app)
    app.add_typer(cmd_eval.app, name="eval")
    app.add_typer(cmd_vocab.app, name="vocab")
    from knnvocab.cli import cmd_audit, cmd_doctor, cmd_domain, cmd_store, cmd_token

    app.add_typer(cmd_domain.app, name="domain")
    app.add_typer(cmd_store.app, name="store")
    app.add_typer(cmd_token.app, name="token")
    cmd_audit.register(app)
    cmd_doctor.register(app)
    from knnvocab.cli import cmd_serve

    cmd_serve.register(app)
    from knnvocab.cli import cmd_portable

    cmd_portable.register(app)
    from knnvocab.cli import cmd_backup

    app.add_typer(cmd_backup.app, name="backup")


_register()


def main() -> None:
    app()
