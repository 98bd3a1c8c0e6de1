"""docker-compose.yml: the services, images, volumes, healthchecks, local-only ports, and an
app environment that knnvocab actually reads and that points at the compose services."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from sqlalchemy.engine import make_url

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
