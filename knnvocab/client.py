"""A Python client of the knnvocab service (`knnvocab serve`), on httpx.

    from knnvocab.client import Client
    with Client("http://127.0.0.1:8000", token) as c:
        result = c.segment("street", Path("photo.jpg"))
        print([s["label"] for s in result["segments"]])

The verbs are the CLI's. An error answer raises `ServiceError` with the status, the code
and the service's one-line message; an unreachable service raises it with status 0.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from pathlib import Path
from types import TracebackType
from typing import Any

import httpx

from knnvocab.errors import KnnvocabError

#: a job's states once it has ended
JOB_ENDED = ("succeeded", "failed", "cancelled")


class ServiceError(KnnvocabError):
    """The service answered with an error (or could not be reached: ``status`` 0)."""

    def __init__(self, status: int, code: str, message: str) -> None:
        self.status, self.code = status, code
        super().__init__(message)


class Client:
    """The service's verbs. ``actor``: the user a home-owner request acts for (the CLI
    forwarding its changes to the service that owns an embedded home's store)."""

    def __init__(
        self,
        url: str,
        token: str,
        *,
        timeout: float = 120.0,
        actor: str | None = None,
        transport: httpx.BaseTransport | None = None,
    ) -> None:
        headers = {"Authorization": f"Bearer {token}"}
        if actor is not None:
            headers["X-Knnvocab-Actor"] = actor
        self.url = url.rstrip("/")
        self.http = httpx.Client(
            base_url=self.url, headers=headers, timeout=timeout, transport=transport
        )

    # plumbing ------------------------------------------------------------------------

    def _send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        try:
            response = self.http.request(method, path, **kwargs)
        except httpx.TransportError as exc:
            raise ServiceError(
                0, "unreachable", f"cannot reach the knnvocab service at {self.url} ({exc})"
            ) from None
        if response.status_code >= 400:
            raise _error(response)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        return self._send(method, path, **kwargs).json()

    # reads ---------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/healthz")
        return result

    def ready(self) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", "/readyz")
        return result

    def metrics(self) -> str:
        return self._send("GET", "/metrics").text

    def domains(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = self._json("GET", "/v1/domains")["domains"]
        return result

    def domain(self, domain: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/domains/{domain}")
        return result

    def versions(self, domain: str) -> list[dict[str, Any]]:
        """Every version (all pages)."""
        return self._pages(f"/v1/domains/{domain}/versions", {})

    def vocabulary(self, domain: str, version: int | None = None) -> dict[str, Any]:
        params = {"version": version} if version is not None else {}
        result: dict[str, Any] = self._json(
            "GET", f"/v1/domains/{domain}/vocabulary", params=params
        )
        return result

    def diff(self, domain: str, a: int, b: int) -> dict[str, Any]:
        params = {"from": a, "to": b}
        result: dict[str, Any] = self._json("GET", f"/v1/domains/{domain}/diff", params=params)
        return result

    def audit(
        self, domain: str, since: str | None = None, action: str | None = None
    ) -> list[dict[str, Any]]:
        """The domain's audit events, oldest first (all pages)."""
        filters = {k: v for k, v in (("since", since), ("action", action)) if v is not None}
        return self._pages(f"/v1/domains/{domain}/audit", filters)

    def _pages(self, path: str, params: dict[str, Any]) -> list[dict[str, Any]]:
        items: list[dict[str, Any]] = []
        offset: int | None = 0
        while offset is not None:
            page = self._json("GET", path, params={**params, "offset": offset, "limit": 1000})
            items.extend(page["items"])
            offset = page["next"]
        return items

    # segmentation --------------------------------------------------------------------

    def segment(
        self,
        domain: str,
        image: Path | bytes,
        *,
        masks: Path | bytes | None = None,
        png: bool = False,
        **params: Any,
    ) -> Any:
        """The JSON `knnvocab segment` writes for ``image`` (dict), or with ``png`` the
        index PNG (bytes). ``params``: version, k, tau, threshold, lambda_, exact, rle,
        n_segments, zero_shot_only, evidence; ``masks`` sets proposals=masks."""
        files = _files(image, masks)
        query = _query(params, masks is not None)
        headers = {"Accept": "image/png"} if png else {}
        response = self._send(
            "POST", f"/v1/domains/{domain}/segment", files=files, params=query, headers=headers
        )
        return response.content if png else response.json()

    def explain(
        self,
        domain: str,
        image: Path | bytes,
        *,
        segment: int | None = None,
        at: tuple[int, int] | None = None,
        masks: Path | bytes | None = None,
        **params: Any,
    ) -> dict[str, Any]:
        query = _query(params, masks is not None)
        if segment is not None:
            query["segment"] = segment
        if at is not None:
            query["x"], query["y"] = at
        result: dict[str, Any] = self._json(
            "POST", f"/v1/domains/{domain}/explain", files=_files(image, masks), params=query
        )
        return result

    # changes -------------------------------------------------------------------------

    def ingest(
        self, domain: str, *, dataset: str | None = None, archive: Path | None = None, **body: Any
    ) -> dict[str, Any]:
        """Start an ingest job of a ``dataset`` folder under the server's data root, or of
        an uploaded ``archive`` (zip or tar); ``body``: format (required), name, message,
        classes, min_area, batch_size, options, templates, model, pretrained, checkpoint.
        Returns the job; `wait` follows it."""
        path = f"/v1/domains/{domain}/ingest"
        if archive is None:
            result: dict[str, Any] = self._json("POST", path, json={"dataset": dataset, **body})
            return result
        with archive.open("rb") as f:
            files = {"archive": (archive.name, f, "application/octet-stream")}
            data = {"request": json.dumps(body)}
            result = self._json("POST", path, files=files, data=data)
        return result

    def job(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("GET", f"/v1/jobs/{job_id}")
        return result

    def cancel(self, job_id: str) -> dict[str, Any]:
        result: dict[str, Any] = self._json("DELETE", f"/v1/jobs/{job_id}")
        return result

    def wait(
        self,
        job_id: str,
        on_progress: Callable[[dict[str, Any]], None] | None = None,
        poll: float = 0.5,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Poll a job until it ends; returns it (check its ``state``)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            job = self.job(job_id)
            if on_progress is not None:
                on_progress(job)
            if job["state"] in JOB_ENDED:
                return job
            if deadline is not None and time.monotonic() > deadline:
                raise ServiceError(0, "timeout", f"job {job_id} still {job['state']}")
            time.sleep(poll)

    def retire(self, domain: str, name: str, message: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", f"/v1/domains/{domain}/classes/{name}/retire", json={"message": message}
        )
        return result

    def restore(self, domain: str, name: str, message: str = "") -> dict[str, Any]:
        result: dict[str, Any] = self._json(
            "POST", f"/v1/domains/{domain}/classes/{name}/restore", json={"message": message}
        )
        return result

    def purge(
        self,
        domain: str,
        *,
        class_name: str | None = None,
        dataset: str | None = None,
        message: str = "",
    ) -> dict[str, Any]:
        body = {"class": class_name, "dataset": dataset, "confirm": domain, "message": message}
        result: dict[str, Any] = self._json("POST", f"/v1/domains/{domain}/purge", json=body)
        return result

    def backup(self, folder: str) -> dict[str, Any]:
        """Back up every domain into ``folder`` on the server (deployment admin)."""
        body = {"folder": folder}  # as long as it takes: no read timeout
        result: dict[str, Any] = self._json("POST", "/v1/backups", json=body, timeout=None)
        return result

    def create_domain(
        self, name: str, description: str = "", max_instances: int | None = None
    ) -> dict[str, Any]:
        body = {"name": name, "description": description, "max_instances": max_instances}
        result: dict[str, Any] = self._json("POST", "/v1/domains", json=body)
        return result

    def delete_domain(self, name: str, reason: str = "") -> dict[str, Any]:
        params = {"confirm": name, "reason": reason}
        result: dict[str, Any] = self._json("DELETE", f"/v1/domains/{name}", params=params)
        return result

    def close(self) -> None:
        self.http.close()

    def __enter__(self) -> Client:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def _error(response: httpx.Response) -> ServiceError:
    try:
        err = response.json()["error"]
        return ServiceError(response.status_code, str(err["code"]), str(err["message"]))
    except (ValueError, KeyError, TypeError):
        text = response.text.strip().splitlines()[0][:200] if response.text.strip() else ""
        return ServiceError(response.status_code, "http_error", f"{response.status_code} {text}")


def _part(value: Path | bytes, name: str) -> tuple[str, bytes]:
    if isinstance(value, Path):
        try:
            return value.name, value.read_bytes()
        except OSError as exc:
            raise ServiceError(0, "bad_input", f"{value}: cannot read ({exc})") from None
    return name, value


def _files(image: Path | bytes, masks: Path | bytes | None) -> dict[str, tuple[str, bytes]]:
    files = {"image": _part(image, "image")}
    if masks is not None:
        files["masks"] = _part(masks, "masks")
    return files


def _query(params: dict[str, Any], masks: bool) -> dict[str, Any]:
    query = {("lambda" if k == "lambda_" else k): v for k, v in params.items() if v is not None}
    if masks:
        query["proposals"] = "masks"
    return {k: (str(v).lower() if isinstance(v, bool) else v) for k, v in query.items()}
