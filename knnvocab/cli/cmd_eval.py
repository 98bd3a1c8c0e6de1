"""`knnvocab eval`: metrics of a domain on a labelled dataset, and the continual protocol."""

from __future__ import annotations

import math
import tempfile
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table
from typer.core import TyperGroup

from knnvocab.cli.cmd_ingest import (
    CheckpointOpt,
    ModelOpt,
    PretrainedOpt,
    ResolutionOpt,
    UntrainedOpt,
    encoder_options,
    reader_options,
)
from knnvocab.cli.cmd_segment import (
    ExactOpt,
    KOpt,
    LambdaOpt,
    ProposalsOpt,
    SegmentsOpt,
    TauOpt,
    ThresholdOpt,
    VersionOpt,
)
from knnvocab.cli.output import BarProgress, out, print_json, workspace


class _RunByDefault(TyperGroup):
    """`knnvocab eval DOMAIN PATH …` means `knnvocab eval run DOMAIN PATH …`."""

    def resolve_command(self, ctx: Any, args: list[str]) -> Any:
        if args and args[0] not in self.commands and not args[0].startswith("-"):
            args = ["run", *args]
        return super().resolve_command(ctx, args)


app = typer.Typer(
    cls=_RunByDefault,
    no_args_is_help=True,
    help="Evaluate: `knnvocab eval DOMAIN PATH` (= `eval run`) or `knnvocab eval continual PATH`.",
)

FormatOpt = Annotated[str, typer.Option("--format", "-f", help="Dataset format.")]
SplitOpt = Annotated[str | None, typer.Option(help="Reader option: split name.")]
OptionOpt = Annotated[
    list[str] | None, typer.Option("--option", help="Other reader option KEY=VALUE.")
]
OutOpt = Annotated[Path, typer.Option("--out", "-o", help="Folder for the JSON and chart.")]
JsonOpt = Annotated[bool, typer.Option("--json", help="Print the metrics as JSON.")]


def pct(value: float | None) -> str:
    return (
        "-"
        if value is None or (isinstance(value, float) and math.isnan(value))
        else f"{100 * value:.1f}"
    )


@app.command("run")
def run(
    domain: Annotated[str, typer.Argument(help="The domain to evaluate.")],
    path: Annotated[Path, typer.Argument(help="Labelled dataset.")],
    format: FormatOpt,
    version: VersionOpt = None,
    proposals: ProposalsOpt = "slic",
    zero_shot_only: Annotated[bool, typer.Option(help="The CLIP baseline (no retrieval).")] = False,
    convention: Annotated[
        str, typer.Option(help="mIoU convention: detectron2 or mmseg.")
    ] = "detectron2",
    k: KOpt = 10,
    tau: TauOpt = 0.1,
    threshold: ThresholdOpt = 0.5,
    lam: LambdaOpt = 0.7,
    n_segments: SegmentsOpt = 128,
    exact: ExactOpt = False,
    out_dir: OutOpt = Path("eval-output"),
    split: SplitOpt = None,
    option: OptionOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Segment every image of a labelled dataset in DOMAIN and report mIoU, pixel
    accuracy, per-class IoU and PQ/SQ/RQ; writes metrics.json and a per-class IoU chart."""
    from knnvocab.datasets import open_dataset
    from knnvocab.engine.params import SegmentParams
    from knnvocab.errors import ConfigError
    from knnvocab.evaluate import iou_bar_chart
    from knnvocab.evaluate.run import evaluate

    if convention not in ("detectron2", "mmseg"):
        raise ConfigError(f"--convention {convention!r}: use detectron2 or mmseg")
    params = SegmentParams(
        k=k,
        tau=tau,
        threshold=threshold,
        lam=lam,
        proposals=proposals,
        n_segments=n_segments,
        zero_shot_only=zero_shot_only,
        exact=exact,
    )
    with workspace() as ws:
        reader = open_dataset(
            format,
            path,
            max_pixels=ws.settings.max_image_pixels,
            **reader_options(option or [], {"split": split}),
        )
        report = evaluate(
            ws,
            domain,
            reader,
            version,
            params,
            convention,  # type: ignore[arg-type]
            BarProgress(f"eval {domain}", "images", "segments"),
        )
    out_dir.mkdir(parents=True, exist_ok=True)
    import json

    (out_dir / "metrics.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    iou_bar_chart(
        report.semantic,
        report.class_names,
        out_dir / "per-class-iou.png",
        title=f"{domain} v{report.version} on {path.name}",
    )
    if json_:
        print_json(report.to_json())
        return
    _print_report(report, out_dir)


def _print_report(report: Any, out_dir: Path) -> None:
    sem, pan = report.semantic, report.panoptic
    method = "zero-shot only" if report.params["zero_shot_only"] else "kNN-CLIP"
    out.print(
        f"[bold]{escape(report.domain)}[/] version {report.version} on {report.images} images "
        f"({report.params['proposals']}, {method}): mIoU {pct(sem.miou)} "
        f"({report.params['convention']}), pixel accuracy {pct(sem.pixel_accuracy)}"
    )
    out.print(
        f"PQ {pct(pan.all.pq)} (SQ {pct(pan.all.sq)}, RQ {pct(pan.all.rq)}); "
        f"things PQ {pct(pan.things.pq)}, stuff PQ {pct(pan.stuff.pq)}"
    )
    table = Table("class", "IoU %", "accuracy %", "PQ %")
    for i, name in enumerate(report.class_names):
        if not sem.present[i] and math.isnan(sem.per_class_iou[i]):
            continue
        cpq = pan.per_class.get(i)
        table.add_row(
            escape(name),
            pct(sem.per_class_iou[i]),
            pct(sem.per_class_accuracy[i]),
            pct(cpq.pq) if cpq is not None and cpq.counted else "-",
        )
    out.print(table)
    out.print(f"wrote {escape(str(out_dir / 'metrics.json'))} and per-class-iou.png")


@app.command("continual")
def continual(
    path: Annotated[Path, typer.Argument(help="Labelled dataset.")],
    format: FormatOpt,
    stages: Annotated[int, typer.Option(min=1, help="Number of class stages.")] = 3,
    seed: Annotated[int, typer.Option(help="Seed of the class and image splits.")] = 0,
    held_out: Annotated[float, typer.Option(help="Fraction of images held out.")] = 0.25,
    domain: Annotated[
        str | None,
        typer.Option(
            help="Keep the run as this new domain of the configured workspace "
            "(default: a throw-away workspace)."
        ),
    ] = None,
    model: ModelOpt = None,
    pretrained: PretrainedOpt = None,
    checkpoint: CheckpointOpt = None,
    untrained: UntrainedOpt = False,
    resolution: ResolutionOpt = None,
    proposals: ProposalsOpt = "slic",
    k: KOpt = 10,
    tau: TauOpt = 0.1,
    threshold: ThresholdOpt = 0.5,
    lam: LambdaOpt = 0.7,
    out_dir: OutOpt = Path("eval-output"),
    split: SplitOpt = None,
    option: OptionOpt = None,
    json_: JsonOpt = False,
) -> None:
    """Classes arrive in stages: ingest each stage into a fresh domain, then score held-out
    images on old and new classes, kNN-CLIP against zero-shot, and report forgetting."""
    import json

    from knnvocab.config import Settings
    from knnvocab.datasets import open_dataset
    from knnvocab.embed.spec import EncoderSpec
    from knnvocab.engine.params import SegmentParams
    from knnvocab.evaluate.continual import run_continual
    from knnvocab.workspace import Workspace

    settings = Settings.from_env()
    spec = encoder_options(model, pretrained, checkpoint, untrained, resolution) or EncoderSpec(
        settings.model, pretrained=settings.pretrained
    )
    params = SegmentParams(k=k, tau=tau, threshold=threshold, lam=lam, proposals=proposals)
    with tempfile.TemporaryDirectory(prefix="knnvocab-continual-") as tmp:
        if domain is None:
            settings = Settings(
                home=Path(tmp),
                database_url=f"sqlite:///{Path(tmp) / 'catalog.sqlite3'}",
                user=settings.user,
                device=settings.device,
                max_image_pixels=settings.max_image_pixels,
            )
        with Workspace(settings) as ws:
            reader = open_dataset(
                format,
                path,
                max_pixels=settings.max_image_pixels,
                **reader_options(option or [], {"split": split}),
            )
            report = run_continual(
                ws,
                reader,
                stages,
                spec,
                domain or "continual",
                seed,
                held_out,
                params,
                BarProgress("continual", "stages", "instances"),
                actor=settings.user,
            )
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "continual.json").write_text(json.dumps(report.to_json(), indent=1) + "\n")
    if json_:
        print_json(report.to_json())
        return
    _print_continual(report, out_dir)


def _print_continual(report: Any, out_dir: Path) -> None:
    table = Table(
        "stage",
        "seen",
        "+inst",
        "all",
        "old",
        "new",
        "all",
        "old",
        "new",
        title="mIoU % on held-out images: kNN-CLIP (left), zero-shot (right)",
    )
    for s in report.stages:
        table.add_row(
            str(s.stage),
            str(s.seen_classes),
            str(s.instances_added),
            pct(s.miou_all),
            pct(s.miou_old),
            pct(s.miou_new),
            pct(s.zero_shot_all),
            pct(s.zero_shot_old),
            pct(s.zero_shot_new),
        )
    out.print(table)
    for s in report.stages:
        out.print(f"stage {s.stage} (version {s.version}) adds: {escape(', '.join(s.new_classes))}")
    out.print(
        "forgetting (mean drop on classes of earlier stages, best earlier IoU − final IoU): "
        f"kNN-CLIP {pct(report.forgetting)} points, "
        f"zero-shot {pct(report.zero_shot_forgetting)} points"
    )
    out.print(f"held-out images: {escape(', '.join(report.held_out))}; seed {report.seed}")
    out.print(f"wrote {escape(str(out_dir / 'continual.json'))}")
