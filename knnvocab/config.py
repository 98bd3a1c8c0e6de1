"""One settings object, read from ``KNNVOCAB_*`` environment variables.

Nothing else in the package reads ``os.environ``.
"""

from __future__ import annotations

import getpass
import os
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from functools import lru_cache
from pathlib import Path

import platformdirs

from knnvocab.errors import ConfigError

#: every environment variable knnvocab reads, with what it sets
ENV_VARS: dict[str, str] = {
    "KNNVOCAB_HOME": "data folder: embedded catalog and vector store, caches",
    "KNNVOCAB_DATABASE_URL": "catalog database (default: SQLite file in the home; "
    "postgresql+psycopg://… for Postgres)",
    "KNNVOCAB_QDRANT_URL": "Qdrant server URL (default: embedded qdrant-edge in the home; "
    "tests only: :memory: or local:PATH, qdrant-client's local mode)",
    "KNNVOCAB_QDRANT_API_KEY": "API key of the Qdrant server",
    "KNNVOCAB_MODEL": "open_clip model of new domains (default ViT-B-16)",
    "KNNVOCAB_PRETRAINED": "hub weight tag of new domains' model (default openai)",
    "KNNVOCAB_DEVICE": "torch device (default cpu)",
    "KNNVOCAB_MAX_IMAGE_PIXELS": "largest image accepted, in pixels (default 64,000,000)",
    "KNNVOCAB_USER": "who is recorded as the author of changes (default: the login name)",
    "KNNVOCAB_AUTO_MIGRATE": "migrate the catalog schema on open (default 1)",
    "KNNVOCAB_STORE_WAIT": "seconds to wait for the embedded store while another process "
    "has it open (default 0: refuse at once)",
    "KNNVOCAB_DATA_ROOT": "service: folder whose datasets an ingest request may name by path "
    "(default: none, uploads only)",
    "KNNVOCAB_SEGMENT_QUEUE": "service: segment requests waiting per process before 503 "
    "(default 8)",
    "KNNVOCAB_SEGMENT_THREADS": "service: segmentations running at once per process (default 1)",
    "KNNVOCAB_REQUEST_TIMEOUT": "service: seconds a segment request may wait and run before "
    "503 (default 60)",
    "KNNVOCAB_MAX_BODY_MB": "service: largest segment or explain body in MB (default 32)",
    "KNNVOCAB_MAX_UPLOAD_MB": "service: largest dataset archive upload in MB (default 2048)",
    "KNNVOCAB_SERVER_URL": "CLI: run read and segment commands against this knnvocab service",
    "KNNVOCAB_TOKEN": "CLI: the bearer token sent to KNNVOCAB_SERVER_URL",
    "KNNVOCAB_FAULT": "tests only: a fault point where the process kills itself with "
    "SIGKILL (knnvocab/faults.py lists the points), to prove a re-run finishes the work",
}

_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off"}


def _flag(env: Mapping[str, str], name: str, default: bool) -> bool:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    if raw.lower() in _TRUE:
        return True
    if raw.lower() in _FALSE:
        return False
    raise ConfigError(f"{name}={raw!r} is not a boolean (use 1/0, true/false)")


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        value = int(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not an integer") from None
    if value <= 0:
        raise ConfigError(f"{name}={raw!r} must be positive")
    return value


def _seconds(env: Mapping[str, str], name: str) -> float:
    raw = env.get(name)
    if raw is None or raw == "":
        return 0.0
    try:
        value = float(raw)
    except ValueError:
        raise ConfigError(f"{name}={raw!r} is not a number of seconds") from None
    if not 0 <= value <= 86_400:
        raise ConfigError(f"{name}={raw!r} must be between 0 and 86400 seconds")
    return value


def _path(env: Mapping[str, str], name: str) -> Path | None:
    raw = env.get(name)
    return Path(raw).expanduser().resolve() if raw else None


def check_qdrant_url(url: str, what: str) -> str:
    """A Qdrant server URL (``http(s)://``), or one of two test-only stand-ins for a
    server's API: ``:memory:`` or ``local:PATH`` (qdrant-client's local mode, which filters
    in Python: seconds per query at 100k points — never for real use)."""
    if url == ":memory:" or url.startswith(("http://", "https://", "local:")):
        return url
    raise ConfigError(
        f"{what}={url!r}: expected an http(s):// URL of a Qdrant server (or leave it unset "
        "for the embedded store)"
    )


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return "unknown"


@dataclass(frozen=True)
class Settings:
    """What a knnvocab process uses; see README "Configuration" for the variables.

    ``qdrant_url`` None selects the embedded qdrant-edge store under ``home``; an
    ``http(s)://`` URL selects a Qdrant server; ``:memory:`` selects qdrant-client's
    in-process stand-in for the server API (tests only: it filters in Python).
    """

    home: Path
    database_url: str
    qdrant_url: str | None = None
    qdrant_api_key: str | None = None
    model: str = "ViT-B-16"
    pretrained: str | None = "openai"
    device: str = "cpu"
    max_image_pixels: int = 64_000_000
    user: str = field(default_factory=_user)
    auto_migrate: bool = True
    store_wait: float = 0.0
    data_root: Path | None = None
    segment_queue: int = 8
    segment_threads: int = 1
    request_timeout: float = 60.0
    max_body_mb: int = 32
    max_upload_mb: int = 2048
    server_url: str | None = None
    token: str | None = field(default=None, repr=False)
    fault: str | None = None  # tests only (KNNVOCAB_FAULT)

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None) -> Settings:
        env = os.environ if env is None else env
        home = Path(env.get("KNNVOCAB_HOME") or platformdirs.user_data_dir("knnvocab"))
        home = home.expanduser().resolve()
        database_url = env.get("KNNVOCAB_DATABASE_URL") or f"sqlite:///{home / 'catalog.sqlite3'}"
        qdrant_url = env.get("KNNVOCAB_QDRANT_URL") or None
        if qdrant_url is not None:
            check_qdrant_url(qdrant_url, "KNNVOCAB_QDRANT_URL")
        return cls(
            home=home,
            database_url=database_url,
            qdrant_url=qdrant_url,
            qdrant_api_key=env.get("KNNVOCAB_QDRANT_API_KEY") or None,
            model=env.get("KNNVOCAB_MODEL") or "ViT-B-16",
            pretrained=env.get("KNNVOCAB_PRETRAINED") or "openai",
            device=env.get("KNNVOCAB_DEVICE") or "cpu",
            max_image_pixels=_int(env, "KNNVOCAB_MAX_IMAGE_PIXELS", 64_000_000),
            user=env.get("KNNVOCAB_USER") or _user(),
            auto_migrate=_flag(env, "KNNVOCAB_AUTO_MIGRATE", True),
            store_wait=_seconds(env, "KNNVOCAB_STORE_WAIT"),
            data_root=_path(env, "KNNVOCAB_DATA_ROOT"),
            segment_queue=_int(env, "KNNVOCAB_SEGMENT_QUEUE", 8),
            segment_threads=_int(env, "KNNVOCAB_SEGMENT_THREADS", 1),
            request_timeout=_seconds(env, "KNNVOCAB_REQUEST_TIMEOUT") or 60.0,
            max_body_mb=_int(env, "KNNVOCAB_MAX_BODY_MB", 32),
            max_upload_mb=_int(env, "KNNVOCAB_MAX_UPLOAD_MB", 2048),
            server_url=(env.get("KNNVOCAB_SERVER_URL") or None),
            token=env.get("KNNVOCAB_TOKEN") or None,
            fault=env.get("KNNVOCAB_FAULT") or None,
        )

    @property
    def vectors_dir(self) -> Path:
        """Where the embedded store keeps its shards."""
        return self.home / "vectors"

    @property
    def cache_dir(self) -> Path:
        """Model downloads and text-embedding caches."""
        return self.home / "cache"

    @property
    def catalog_backend(self) -> str:
        return self.database_url.split(":", 1)[0].split("+", 1)[0]

    @property
    def store_backend(self) -> str:
        return "qdrant-edge (embedded)" if self.qdrant_url is None else "qdrant server"

    def with_home(self, home: Path) -> Settings:
        """A copy rooted at another home (its SQLite catalog moves along if it was the default)."""
        default_db = f"sqlite:///{self.home / 'catalog.sqlite3'}"
        db = self.database_url
        if db == default_db:
            db = f"sqlite:///{home / 'catalog.sqlite3'}"
        return replace(self, home=home, database_url=db)


@lru_cache(maxsize=1)
def get_settings() -> Settings:
    """The process-wide settings, read once from the environment."""
    return Settings.from_env()
