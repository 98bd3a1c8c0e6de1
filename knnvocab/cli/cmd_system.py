"""`knnvocab info`, `formats`, `models` and `db`: what is configured and available."""

from __future__ import annotations

from typing import Annotated

import typer
from rich.table import Table

from knnvocab.cli.output import out, print_json

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of a table.")]

db_app = typer.Typer(no_args_is_help=True, help="The catalog database schema (Alembic).")


def info(json_: JsonOpt = False) -> None:
    """Show the settings in effect: home, catalog, vector store, default model."""
    from knnvocab import __version__
    from knnvocab.catalog.database import safe_url
    from knnvocab.config import Settings

    s = Settings.from_env()
    data = {
        "version": __version__,
        "home": str(s.home),
        "catalog": safe_url(s.database_url),
        "catalog_backend": s.catalog_backend,
        "vector_store": s.qdrant_url or str(s.vectors_dir),
        "vector_store_backend": s.store_backend,
        "default_model": s.model,
        "default_pretrained": s.pretrained,
        "device": s.device,
        "max_image_pixels": s.max_image_pixels,
        "user": s.user,
    }
    if json_:
        print_json(data)
        return
    table = Table(show_header=False, box=None)
    for key, value in data.items():
        table.add_row(f"[bold]{key}[/]", str(value))
    out.print(table)


def formats(json_: JsonOpt = False) -> None:
    """List the dataset formats `ingest` reads."""
    from knnvocab.datasets import list_formats

    _print_registry(list_formats(), json_, ("format", "layout"))


def models(
    json_: JsonOpt = False,
    pretrained: Annotated[
        bool, typer.Option("--pretrained", help="Also list each model's hub weight tags.")
    ] = False,
    sources: Annotated[
        bool,
        typer.Option("--sources", help="List the weight sources an encoder loads from instead."),
    ] = False,
) -> None:
    """List the open_clip model names an encoder can use (or, with --sources, where its
    weights can come from)."""
    import open_clip

    if sources:
        _weight_sources(json_)
        return
    names = open_clip.list_models()
    tags = {n: open_clip.list_pretrained_tags_by_model(n) for n in names} if pretrained else {}
    if json_:
        print_json({n: tags.get(n, []) for n in names} if pretrained else names)
        return
    for name in names:
        out.print(f"{name}  {' '.join(tags.get(name, []))}".rstrip())


def _weight_sources(json_: bool) -> None:
    from knnvocab.embed.sources import list_sources

    _print_registry(list_sources(), json_, ("source", "weights"))


def _print_registry(data: dict[str, str], json_: bool, headers: tuple[str, str]) -> None:
    """A registry's ``list_*()``: names and descriptions, as a table or JSON."""
    if json_:
        print_json(data)
        return
    table = Table(*headers)
    for name, description in data.items():
        table.add_row(name, description)
    out.print(table)


@db_app.command("upgrade")
def db_upgrade() -> None:
    """Migrate the catalog to the latest schema."""
    from knnvocab.catalog.database import (
        create_catalog_engine,
        current_revision,
        safe_url,
        upgrade,
    )
    from knnvocab.config import Settings

    s = Settings.from_env()
    engine = create_catalog_engine(s.database_url)
    upgrade(engine)
    out.print(f"catalog {safe_url(s.database_url)} at revision {current_revision(engine)}")
    engine.dispose()


@db_app.command("current")
def db_current() -> None:
    """Show the catalog's schema revision and the latest one."""
    from knnvocab.catalog.database import (
        create_catalog_engine,
        current_revision,
        head_revision,
        safe_url,
    )
    from knnvocab.config import Settings

    s = Settings.from_env()
    engine = create_catalog_engine(s.database_url)
    out.print(
        f"catalog {safe_url(s.database_url)}: revision {current_revision(engine) or 'none'} "
        f"(latest {head_revision()})"
    )
    engine.dispose()


def register(app: typer.Typer) -> None:
    app.command()(info)
    app.command()(formats)
    app.command()(models)
    app.add_typer(db_app, name="db")
