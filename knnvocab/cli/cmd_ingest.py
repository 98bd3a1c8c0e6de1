"""`knnvocab ingest`: a labelled dataset into a domain, as a new vocabulary version; and
`knnvocab reembed`: a domain's instances embedded again with a new encoder."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from knnvocab.cli.output import BarProgress, err, out, print_json, user, workspace
from knnvocab.errors import ConfigError


def encoder_options(
    model: str | None,
    pretrained: str | None,
    checkpoint: Path | None,
    untrained: bool,
    resolution: int | None,
) -> Any:
    """An EncoderSpec from the command line, or None to use the domain's own encoder."""
    from knnvocab.config import Settings
    from knnvocab.embed.spec import EncoderSpec

    if not any((model, pretrained, checkpoint, untrained, resolution)):
        return None
    settings = Settings.from_env()
    name = model or settings.model
    if name.startswith("local-dir:"):
        return EncoderSpec(name, resolution=resolution)
    if not (pretrained or checkpoint or untrained):
        pretrained = settings.pretrained
    return EncoderSpec(
        name,
        pretrained=pretrained,
        checkpoint=str(checkpoint) if checkpoint else None,
        untrained=untrained,
        resolution=resolution,
    )


def reader_options(pairs: list[str], named: dict[str, Any]) -> dict[str, Any]:
    options = {k: v for k, v in named.items() if v is not None}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise ConfigError(f"--option {pair!r}: expected KEY=VALUE")
        options[key.replace("-", "_")] = value
    return options


ModelOpt = Annotated[
    str | None,
    typer.Option(help="open_clip model name, local-dir:PATH, or a model config .json file."),
]
PretrainedOpt = Annotated[
    str | None, typer.Option(help="Hub weight tag of the model (e.g. openai, laion2b_s34b_b88k).")
]
CheckpointOpt = Annotated[
    Path | None, typer.Option(help="Local weights file (loaded with weights_only=True).")
]
UntrainedOpt = Annotated[
    bool, typer.Option("--untrained", help="Random weights (offline runs only; said loudly).")
]
ResolutionOpt = Annotated[
    int | None, typer.Option(help="Short image side fed to the encoder (default: native).")
]


def ingest(
    domain: Annotated[str, typer.Argument(help="Domain (tenant) to ingest into.")],
    path: Annotated[Path, typer.Argument(help="Dataset folder (or file, for some formats).")],
    format: Annotated[str, typer.Option("--format", "-f", help="Dataset format (`formats`).")],
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    checkpoint: CheckpointOpt = None,
    untrained: UntrainedOpt = False,
    resolution: ResolutionOpt = None,
    message: Annotated[str, typer.Option("--message", "-m", help="Why this version.")] = "",
    resume: Annotated[bool, typer.Option(help="Continue the domain's pending ingest.")] = False,
    wait: Annotated[bool, typer.Option(help="Wait for another process's pending version.")] = False,
    dataset_name: Annotated[str | None, typer.Option(help="Name recorded on every point.")] = None,
    classes: Annotated[
        str | None, typer.Option(help="Comma-separated dataset classes to ingest (default all).")
    ] = None,
    min_area: Annotated[int, typer.Option(help="Skip instances below this many pixels.")] = 16,
    templates: Annotated[
        Path | None,
        typer.Option(
            help="Zero-shot prompt templates file: one per line with {} for the class name "
            "(# comments). Default: keep the head version's.",
        ),
    ] = None,
    batch_size: Annotated[int, typer.Option(min=1, help="Images per encoder forward.")] = 8,
    checkpoint_every: Annotated[
        float, typer.Option(min=0.0, help="Seconds between durable progress checkpoints.")
    ] = 10.0,
    images_dir: Annotated[str | None, typer.Option(help="Reader option: images folder.")] = None,
    masks_dir: Annotated[str | None, typer.Option(help="Reader option: masks folder.")] = None,
    class_names: Annotated[str | None, typer.Option(help="Reader option: class list file.")] = None,
    split: Annotated[str | None, typer.Option(help="Reader option: split name.")] = None,
    annotations: Annotated[str | None, typer.Option(help="Reader option: annotation file.")] = None,
    option: Annotated[
        list[str] | None, typer.Option("--option", "-o", help="Other reader option KEY=VALUE.")
    ] = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Embed every instance of a labelled dataset into DOMAIN as a new vocabulary version."""
    from knnvocab.embed.prompts import load_templates
    from knnvocab.ingest import IngestOptions
    from knnvocab.ingest import ingest as run_ingest

    spec = encoder_options(model, pretrained, checkpoint, untrained, resolution)
    named = {
        "images_dir": images_dir,
        "masks_dir": masks_dir,
        "class_names": class_names,
        "split": split,
        "annotations": annotations,
    }
    options = IngestOptions(
        format=format,
        dataset_name=dataset_name,
        message=message,
        resume=resume,
        wait=wait,
        classes=tuple(c.strip() for c in classes.split(",") if c.strip()) if classes else None,
        min_area=min_area,
        batch_size=batch_size,
        checkpoint_seconds=checkpoint_every,
        reader_options=reader_options(option or [], named),
        templates=load_templates(templates) if templates is not None else None,
    )
    from knnvocab.cli import remote

    client = remote.owner()
    if client is not None:
        with client:
            summary = remote.ingest(client, domain, path, options, spec)
    else:
        with workspace() as ws:
            bar = BarProgress(f"ingest {domain}")
            summary = run_ingest(ws, domain, path, options, spec, bar, actor=user())
    if json_:
        print_json(summary.to_json())
        return
    _print_summary(summary)


def _print_summary(summary: Any) -> None:
    resumed = " (resumed)" if summary.resumed else ""
    out.print(
        f"[bold green]published[/] {escape(summary.domain)} version {summary.version}{resumed}: "
        f"{summary.total_added} new instances from {summary.images} images of "
        f"{escape(summary.dataset)!r} in {summary.seconds:.1f} s"
    )
    if summary.classes_added:
        names = ", ".join(summary.classes_added)
        out.print(f"classes added ({len(summary.classes_added)}): {escape(names)}")
    counts = {n: c for n, c in summary.instances_added.items() if c}
    if counts:
        table = Table("class", "instances added")
        for name, count in counts.items():
            table.add_row(escape(name), str(count))
        out.print(table)
    empty = len(summary.instances_added) - len(counts)
    if empty:
        out.print(f"{empty} classes got no new instances")
    skipped = ", ".join(f"{n} {why}" for why, n in sorted(summary.skipped.items()) if n)
    if skipped:
        err.print(f"instances not added: {escape(skipped)}")


def reembed(
    domain: Annotated[str, typer.Argument(help="Domain whose instances are embedded again.")],
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    checkpoint: CheckpointOpt = None,
    untrained: UntrainedOpt = False,
    resolution: ResolutionOpt = None,
    drop_missing: Annotated[
        bool,
        typer.Option(help="Leave out datasets whose source is missing or changed (counted)."),
    ] = False,
    resume: Annotated[bool, typer.Option(help="Continue the domain's pending reembed.")] = False,
    message: Annotated[str, typer.Option("--message", "-m", help="Why this version.")] = "",
    batch_size: Annotated[int, typer.Option(min=1, help="Images per encoder forward.")] = 8,
    json_: Annotated[bool, typer.Option("--json", help="Print the summary as JSON.")] = False,
) -> None:
    """Embed DOMAIN's instances with a new encoder, from their recorded datasets, as one
    new version; earlier versions keep their encoder and answers."""
    from knnvocab.lifecycle.reembed import ReembedOptions
    from knnvocab.lifecycle.reembed import reembed as run_reembed

    spec = encoder_options(model, pretrained, checkpoint, untrained, resolution)
    if spec is None:
        raise ConfigError(
            "reembed needs the new encoder: --model with --pretrained, --checkpoint or --untrained"
        )
    options = ReembedOptions(
        message=message, drop_missing=drop_missing, resume=resume, batch_size=batch_size
    )
    with workspace() as ws:
        bar = BarProgress(f"reembed {domain}")
        summary = run_reembed(ws, domain, spec, options, bar, actor=user())
    if json_:
        print_json(summary.to_json())
        return
    resumed = " (resumed)" if summary.resumed else ""
    out.print(
        f"[bold green]published[/] {escape(summary.domain)} version {summary.version}"
        f"{resumed}: {summary.points} instances embedded with encoder "
        f"{summary.encoder[:12]} (was {summary.previous_encoder[:12]}), "
        f"{summary.retired_points} of retired classes kept, in {summary.seconds:.1f} s"
    )
    for name, dropped in sorted(summary.dropped.items()):
        err.print(
            f"dropped dataset {escape(name)!r}: {dropped['instances']} instances "
            f"({escape(str(dropped['reason']))})"
        )


def register(app: typer.Typer) -> None:
    app.command()(ingest)
    app.command()(reembed)
