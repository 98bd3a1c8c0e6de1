"""`knnvocab segment` and `knnvocab explain`: per-domain segmentation with evidence."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.markup import escape
from rich.table import Table

from knnvocab.cli.output import BarProgress, err, out, print_json, workspace
from knnvocab.cli.remote import ServerOpt
from knnvocab.errors import ConfigError

VersionOpt = Annotated[int | None, typer.Option(help="Vocabulary version (default: the head).")]
KOpt = Annotated[int, typer.Option("--k", min=1, help="Neighbours per proposal.")]
TauOpt = Annotated[float, typer.Option("--tau", help="Softmax temperature over similarities.")]
ThresholdOpt = Annotated[
    float, typer.Option("--threshold", help="T: use retrieval where max P_ret >= T.")
]
LambdaOpt = Annotated[float, typer.Option("--lambda", help="λ: weight of P_ret in the fusion.")]
ProposalsOpt = Annotated[
    str, typer.Option("--proposals", help="slic, masks:DIR (your masks, e.g. SAM) or gt.")
]
SegmentsOpt = Annotated[int, typer.Option(help="SLIC: target number of superpixels.")]
ZeroShotOpt = Annotated[bool, typer.Option(help="Skip retrieval (the CLIP baseline).")]
ExactOpt = Annotated[
    bool, typer.Option(help="Exhaustive kNN (no HNSW): answers at a version never drift.")
]
DatasetOpt = Annotated[Path | None, typer.Option(help="Labelled dataset for --proposals gt.")]
FormatOpt = Annotated[str | None, typer.Option("--format", "-f", help="Its format.")]


def _params(**kwargs: Any) -> Any:
    from knnvocab.engine.params import SegmentParams

    return SegmentParams(**kwargs)


def _ground_truth(dataset: Path | None, format: str | None, proposals: str) -> Any:
    if proposals != "gt":
        return None
    if dataset is None or format is None:
        raise ConfigError("--proposals gt needs --dataset PATH and --format F")
    from knnvocab.datasets import open_dataset

    return open_dataset(format, dataset)


def segment(
    domain: Annotated[str, typer.Argument(help="The domain whose vocabulary to use.")],
    inputs: Annotated[list[Path], typer.Argument(help="Image files or folders of images.")],
    out_dir: Annotated[Path, typer.Option("--out", "-o", help="Output folder.")],
    version: VersionOpt = None,
    proposals: ProposalsOpt = "slic",
    k: KOpt = 10,
    tau: TauOpt = 0.1,
    threshold: ThresholdOpt = 0.5,
    lam: LambdaOpt = 0.7,
    n_segments: SegmentsOpt = 128,
    zero_shot_only: ZeroShotOpt = False,
    exact: ExactOpt = False,
    rle: Annotated[bool, typer.Option(help="Also write COCO RLE per segment.")] = False,
    evidence: Annotated[int, typer.Option(min=0, help="Neighbours kept per segment.")] = 5,
    dataset: DatasetOpt = None,
    format: FormatOpt = None,
    json_: Annotated[bool, typer.Option("--json", help="Print the results as JSON.")] = False,
    server: ServerOpt = None,
) -> None:
    """Segment images with DOMAIN's vocabulary: index, colour and overlay PNGs and a JSON
    per image with each segment's label, score, source and evidence (with --server: the
    service's JSON and index PNG per image)."""
    from knnvocab.cli import remote
    from knnvocab.engine.batch import expand_inputs, segment_files

    client = remote.server(server)
    if client is not None:
        if proposals != "slic":
            raise ConfigError("--server segments with slic proposals (the API takes masks)")
        query = {
            "version": version,
            "k": k,
            "tau": tau,
            "threshold": threshold,
            "lambda_": lam,
            "n_segments": n_segments,
            "zero_shot_only": zero_shot_only,
            "exact": exact,
            "evidence": evidence,
            "rle": rle,
        }
        with client:
            results = [
                remote.segment_to(client, domain, f, out_dir, query) for f in expand_inputs(inputs)
            ]
        if json_:
            print_json(results)
        else:
            out.print(f"segmented {len(results)} images into {escape(str(out_dir))}")
        return

    params = _params(
        k=k,
        tau=tau,
        threshold=threshold,
        lam=lam,
        proposals=proposals,
        n_segments=n_segments,
        zero_shot_only=zero_shot_only,
        exact=exact,
        evidence=evidence,
    )
    with workspace() as ws:
        outcomes = segment_files(
            ws,
            domain,
            inputs,
            out_dir,
            version,
            params,
            rle,
            _ground_truth(dataset, format, proposals),
            BarProgress(f"segment {domain}", "images", "segments"),
        )
    failed = [o for o in outcomes if o.error is not None]
    if any(o.result and not o.result.get("reproducible", True) for o in outcomes):
        err.print(
            "[bold yellow]warning:[/] this version is marked not reproducible (a purge "
            "deleted points it showed): the output differs from what it gave before"
        )
    for o in failed:
        err.print(f"[bold red]error:[/] {escape(o.error or '')}")
    if json_:
        print_json([o.to_json() for o in outcomes])
    else:
        done = len(outcomes) - len(failed)
        out.print(f"segmented {done} of {len(outcomes)} images into {escape(str(out_dir))}")
    if failed:
        raise typer.Exit(1)


def explain(
    domain: Annotated[str, typer.Argument(help="The domain.")],
    image: Annotated[Path, typer.Argument(help="The image file.")],
    segment_id: Annotated[
        int | None, typer.Option("--segment", help="Segment id (from the JSON output).")
    ] = None,
    at: Annotated[str | None, typer.Option("--at", help="A pixel X,Y in the segment.")] = None,
    version: VersionOpt = None,
    proposals: ProposalsOpt = "slic",
    k: KOpt = 10,
    tau: TauOpt = 0.1,
    threshold: ThresholdOpt = 0.5,
    lam: LambdaOpt = 0.7,
    n_segments: SegmentsOpt = 128,
    exact: ExactOpt = False,
    json_: Annotated[bool, typer.Option("--json", help="Print JSON.")] = False,
    server: ServerOpt = None,
) -> None:
    """The neighbours behind one decision, their provenance and similarities, the
    zero-shot scores, and how the two were fused."""
    from knnvocab.cli import remote

    client = remote.server(server)
    if client is not None:
        if (segment_id is None) == (at is None):
            raise ConfigError("give exactly one of --segment ID or --at X,Y")
        point = _xy(at) if at is not None else None
        with client:
            print_json(
                client.explain(
                    domain,
                    image,
                    segment=segment_id,
                    at=point,
                    version=version,
                    k=k,
                    tau=tau,
                    threshold=threshold,
                    lambda_=lam,
                    n_segments=n_segments,
                    exact=exact,
                )
            )
        return
    from knnvocab.engine.explain import explain as lay_out
    from knnvocab.engine.segmenter import Segmenter
    from knnvocab.imageio import load_rgb

    if (segment_id is None) == (at is None):
        raise ConfigError("give exactly one of --segment ID or --at X,Y")
    params = _params(
        k=k,
        tau=tau,
        threshold=threshold,
        lam=lam,
        proposals=proposals,
        n_segments=n_segments,
        exact=exact,
        evidence=k,
    )
    with workspace() as ws:
        pixels = load_rgb(image, ws.settings.max_image_pixels)
        seg = Segmenter(ws, domain, version, params).segment(pixels, image)
    chosen = _pick(seg, segment_id, at)
    report = lay_out(seg, chosen)
    if json_:
        print_json(report.to_json())
        return
    _print_explanation(report, seg.version)


def _pick(seg: Any, segment_id: int | None, at: str | None) -> Any:
    if segment_id is not None:
        if not 1 <= segment_id <= len(seg.segments):
            raise ConfigError(f"segment {segment_id} does not exist (1..{len(seg.segments)})")
        return seg.segments[segment_id - 1]
    x, y = _xy(at or "")
    try:
        chosen = seg.segment_at(x, y)
    except ValueError as exc:
        raise ConfigError(str(exc)) from None
    if chosen is None:
        raise ConfigError(f"no segment covers pixel ({x}, {y})")
    return chosen


def _xy(at: str) -> tuple[int, int]:
    try:
        x, y = (int(v) for v in at.split(","))
    except ValueError:
        raise ConfigError(f"--at {at!r}: expected X,Y pixel coordinates") from None
    return x, y


def _print_explanation(report: Any, version: int) -> None:
    s = report.segment
    out.print(
        f"[bold]segment {s.id}[/] ({s.area} px, bbox {list(s.bbox)}) at version {version}: "
        f"[bold]{escape(s.label)}[/] {s.score:.3f} from {s.source}"
    )
    out.print(f"fusion: {escape(report.rule)}")
    for title, items in (
        ("zero-shot", report.zero_shot),
        ("retrieval", report.retrieval),
        ("fused", report.fused),
    ):
        line = ", ".join(f"{n} {p:.3f}" for n, p in items) or "-"
        out.print(f"  {title:9s}: {escape(line)}")
    table = Table("#", "sim", "weight", "label", "dataset", "image", "instance", "v")
    for i, n in enumerate(s.neighbours, 1):
        table.add_row(
            str(i),
            f"{n.similarity:.4f}",
            f"{n.weight:.3f}",
            escape(n.label),
            escape(n.dataset),
            escape(n.image),
            escape(n.instance),
            str(n.added_in),
        )
    out.print(table)


def register(app: typer.Typer) -> None:
    app.command()(segment)
    app.command()(explain)
