"""The CLI through a knnvocab service: on the machine of an embedded home whose store a
running `knnvocab serve` owns (changes are forwarded to it, under the CLI user's name),
and against any service with ``--server URL`` / ``KNNVOCAB_SERVER_URL`` (reads and
segmentation, with the token in ``KNNVOCAB_TOKEN``)."""

from __future__ import annotations

from types import SimpleNamespace
from typing import TYPE_CHECKING, Annotated, Any

import typer

from knnvocab.cli.output import BarProgress, err, user
from knnvocab.config import Settings
from knnvocab.errors import ConfigError, KnnvocabError

if TYPE_CHECKING:
    from pathlib import Path

    from knnvocab.client import Client
    from knnvocab.embed.spec import EncoderSpec
    from knnvocab.ingest.types import IngestOptions


ServerOpt = Annotated[
    str | None,
    typer.Option(
        "--server",
        help="Ask this knnvocab service instead (default KNNVOCAB_SERVER_URL; token from "
        "KNNVOCAB_TOKEN); prints its JSON.",
    ),
]


def owner() -> Client | None:
    """A client of the service that owns this embedded home's store, if one runs."""
    from knnvocab.service.local import local_service

    found = local_service(Settings.from_env())
    if found is None:
        return None
    from knnvocab.client import Client

    err.print(f"[dim]the service at {found.url} owns this home's store: sending it the change[/]")
    return Client(found.url, found.secret, actor=user())


def server(url: str | None) -> Client | None:
    """A client of the service at ``url`` (or ``KNNVOCAB_SERVER_URL``), if one is named."""
    settings = Settings.from_env()
    url = url or settings.server_url
    if url is None:
        return None
    if settings.token is None:
        raise ConfigError(f"--server {url}: set KNNVOCAB_TOKEN to a token of that service")
    from knnvocab.client import Client

    return Client(url, settings.token)


class Record(SimpleNamespace):
    """A service answer as the object the CLI's printers read: its attributes are the
    JSON's keys, as the library's ``to_json`` wrote them."""

    def to_json(self) -> dict[str, Any]:
        return dict(self.__dict__)


def record(data: dict[str, Any]) -> Any:
    return Record(**data)


def ingest(
    client: Client,
    domain: str,
    path: Path,
    options: IngestOptions,
    spec: EncoderSpec | None,
) -> Any:
    """Run an ingest as a job of the owning service, with a progress bar; Ctrl-C cancels
    the job (its version is rolled back). Returns the summary."""
    if options.resume or options.wait:
        raise ConfigError(
            "--resume and --wait are not available while the service owns the store: the "
            "service resumes or rolls back its own jobs"
        )
    body: dict[str, Any] = {
        "format": options.format,
        "name": options.dataset_name,
        "message": options.message,
        "classes": list(options.classes) if options.classes is not None else None,
        "min_area": options.min_area,
        "batch_size": options.batch_size,
        "options": {k: str(v) for k, v in options.reader_options.items()},
        "templates": list(options.templates) if options.templates is not None else None,
    }
    if spec is not None:
        body |= {"model": spec.model, "pretrained": spec.pretrained, "checkpoint": spec.checkpoint}
    job = client.ingest(domain, dataset=str(path.resolve()), **body)
    bar = BarProgress(f"ingest {domain}")
    try:
        job = client.wait(job["id"], _follow(bar))
    except KeyboardInterrupt:
        client.cancel(job["id"])
        raise
    finally:
        bar.finish()
    if job["state"] != "succeeded":
        raise KnnvocabError(f"ingest job {job['id']} {job['state']}: {job['error']}")
    return record(job["result"])


def _follow(bar: BarProgress) -> Any:
    seen = {"started": False, "done": 0, "instances": 0}

    def show(job: dict[str, Any]) -> None:
        p = job.get("progress") or {}
        if "images" not in p:
            return
        if not seen["started"]:
            bar.start(int(p["images"]), int(p["done"]))
            seen.update(started=True, done=int(p["done"]))
        bar.advance(int(p["done"]) - seen["done"], int(p["instances"]) - seen["instances"])
        seen.update(done=int(p["done"]), instances=int(p["instances"]))

    return show


def segment_to(
    client: Client, domain: str, image: Path, out_dir: Path, query: dict[str, Any]
) -> Any:
    """Segment ``image`` with the service: ``<stem>.json`` (the service's JSON) and
    ``<stem>.png`` (its index PNG) under ``out_dir``; returns the JSON."""
    import json

    result = client.segment(domain, image, **query)
    index = client.segment(domain, image, png=True, **query)
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / f"{image.stem}.json").write_text(json.dumps(result, indent=1) + "\n")
    (out_dir / f"{image.stem}.png").write_bytes(index)
    return result
