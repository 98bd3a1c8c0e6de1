"""docker-compose.yml: the services, images, volumes, healthchecks, local-only ports, an
app environment that knnvocab actually reads and that points at the compose services, and
the app's `knnvocab serve` with its /readyz healthcheck."""

from __future__ import annotations

import http.server
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url
from typer.main import get_command

from knnvocab.cli import app as cli
from knnvocab.config import ENV_VARS, Settings

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    return data


def expand(value: str) -> str:
    """Compose's ${VAR:-default} with the variables unset."""
    return re.sub(r"\$\{[A-Z_]+:-([^}]*)\}", r"\1", value)


def test_services_use_official_images(compose: dict[str, Any]) -> None:
    services = compose["services"]
    assert set(services) == {"qdrant", "postgres", "app"}
    assert services["qdrant"]["image"].startswith("qdrant/qdrant:")
    assert services["postgres"]["image"].startswith("postgres:")
    assert (ROOT / services["app"]["build"]["dockerfile"]).is_file()


def test_ports_are_bound_to_localhost_only(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for port in service.get("ports", []):
            assert str(port).startswith("127.0.0.1:"), f"{name} publishes {port} to every interface"


def test_data_lives_in_named_volumes(compose: dict[str, Any]) -> None:
    named = set(compose["volumes"])
    for name in ("qdrant", "postgres"):
        mounts = compose["services"][name]["volumes"]
        assert any(m.split(":")[0] in named for m in mounts), name


def test_services_have_healthchecks_and_the_app_waits_for_them(compose: dict[str, Any]) -> None:
    services = compose["services"]
    for name in ("qdrant", "postgres"):
        assert services[name]["healthcheck"]["test"]
        assert services["app"]["depends_on"][name]["condition"] == "service_healthy"


def test_app_environment_is_what_knnvocab_reads(compose: dict[str, Any]) -> None:
    services = compose["services"]
    env = {k: expand(str(v)) for k, v in services["app"]["environment"].items()}
    assert set(env) <= set(ENV_VARS), set(env) - set(ENV_VARS)
    settings = Settings.from_env(env)
    assert settings.qdrant_url == "http://qdrant:6333"
    url = make_url(settings.database_url)
    pg = services["postgres"]["environment"]
    assert (url.get_backend_name(), url.host, url.port) == ("postgresql", "postgres", 5432)
    assert (url.username, url.database) == (pg["POSTGRES_USER"], pg["POSTGRES_DB"])
    assert url.password == expand(pg["POSTGRES_PASSWORD"])
    assert settings.qdrant_api_key == expand(
        services["qdrant"]["environment"]["QDRANT__SERVICE__API_KEY"]
    )


def test_env_example_names_only_known_variables() -> None:
    names = {
        line.split("=", 1)[0]
        for line in (ROOT / "deploy" / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert {n for n in names if n.startswith("KNNVOCAB_")} <= set(ENV_VARS) | {"KNNVOCAB_DATA"}


def serve_options(compose: dict[str, Any]) -> dict[str, Any]:
    """The app's command, parsed by the real CLI (its options, nothing invoked)."""
    command = compose["services"]["app"]["command"]
    assert command[:2] == ["knnvocab", "serve"], command
    serve = get_command(cli).commands["serve"]  # type: ignore[attr-defined]
    with serve.make_context("serve", list(command[2:])) as ctx:
        params: dict[str, Any] = dict(ctx.params)
    return params


def test_app_serves_on_every_interface_of_its_container(compose: dict[str, Any]) -> None:
    options = serve_options(compose)
    assert options["host"] == "0.0.0.0"
    assert options["port"] == 8000


def test_app_port_is_published_on_the_host_loopback_only(compose: dict[str, Any]) -> None:
    port = serve_options(compose)["port"]
    assert compose["services"]["app"]["ports"] == [f"127.0.0.1:{port}:{port}"]


def test_app_workers_run_on_the_scaled_stores_only(compose: dict[str, Any]) -> None:
    """`serve --workers N > 1` is refused on an embedded store: the app has a server's."""
    app = compose["services"]["app"]
    settings = Settings.from_env({k: expand(str(v)) for k, v in app["environment"].items()})
    assert serve_options(compose)["workers"] > 1
    assert settings.qdrant_url is not None and settings.catalog_backend == "postgresql"


def test_app_data_root_is_the_mounted_data_folder(compose: dict[str, Any]) -> None:
    app = compose["services"]["app"]
    settings = Settings.from_env({k: expand(str(v)) for k, v in app["environment"].items()})
    targets = {expand(m).split(":")[1] for m in app["volumes"]}
    assert settings.data_root == Path("/data") and "/data" in targets


def healthcheck_code(compose: dict[str, Any]) -> str:
    test = compose["services"]["app"]["healthcheck"]["test"]
    assert test[:3] == ["CMD", "python", "-c"], "the image has no curl: probe with python"
    code: str = test[3]
    return code


def test_app_healthcheck_probes_readyz_on_the_served_port(compose: dict[str, Any]) -> None:
    port = serve_options(compose)["port"]
    code = healthcheck_code(compose)
    assert f"http://127.0.0.1:{port}/readyz" in code
    check = compose["services"]["app"]["healthcheck"]
    assert check["start_period"] and check["retries"] >= 1


class Readyz(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:
        self.send_response(self.status if self.path == "/readyz" else 404)
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def readyz() -> Iterator[tuple[int, type[Readyz]]]:
    handler = type("Handler", (Readyz,), {})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()


def test_app_healthcheck_passes_on_200_and_fails_on_503(
    compose: dict[str, Any], readyz: tuple[int, type[Readyz]]
) -> None:
    """The healthcheck's own code, run against a stub on a free port: exit 0 when /readyz
    answers 200, non-zero while it answers 503 (the service is loading its encoders)."""
    port, handler = readyz
    code = healthcheck_code(compose).replace(f":{serve_options(compose)['port']}/", f":{port}/")

    def probe() -> int:
        run = subprocess.run([sys.executable, "-c", code], capture_output=True, timeout=30)
        return run.returncode

    handler.status = 200
    assert probe() == 0
    handler.status = 503
    assert probe() != 0
