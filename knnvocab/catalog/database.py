"""Catalog connection: engine, sessions and Alembic migrations (Postgres or SQLite)."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from sqlalchemy import Connection, Engine, create_engine, event, inspect
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError, InterfaceError, OperationalError, SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from knnvocab.diskspace import free_bytes, is_disk_full
from knnvocab.errors import CatalogError, DiskFullError, KnnvocabError

MIGRATIONS_DIR = Path(__file__).resolve().parents[1] / "migrations"


def safe_url(url: str) -> str:
    """The URL with any password masked, for messages."""
    try:
        return make_url(url).render_as_string(hide_password=True)
    except Exception:
        return url.split("@")[-1]


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def create_catalog_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets foreign keys, WAL and a busy timeout."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:":
            Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    if parsed.get_backend_name() == "postgresql":
        return create_engine(url, pool_pre_ping=True, connect_args={"connect_timeout": 10})
    raise CatalogError(f"unsupported catalog database {safe_url(url)} (use postgresql or sqlite)")


def _alembic_config(engine: Engine) -> Any:
    from alembic.config import Config

    if not (MIGRATIONS_DIR / "env.py").is_file():
        raise CatalogError(f"migrations not found at {MIGRATIONS_DIR}")
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", engine.url.render_as_string(hide_password=False))
    return config


def head_revision() -> str:
    from alembic.script import ScriptDirectory

    config = _alembic_config(create_engine("sqlite://"))
    head = ScriptDirectory.from_config(config).get_current_head()
    if head is None:
        raise CatalogError(f"no migration head in {MIGRATIONS_DIR}")
    return head


def current_revision(engine: Engine) -> str | None:
    from alembic.migration import MigrationContext

    with engine.connect() as conn:
        return MigrationContext.configure(conn).get_current_revision()


@contextmanager
def _migrating(engine: Engine) -> Iterator[Connection]:
    """A connection in one transaction for Alembic: all of a run's steps, or none.

    On SQLite, foreign keys are off while migrations run: a batch table rebuild drops and
    renames tables, which must not cascade into the rows that refer to them (SQLite's
    documented procedure). They are checked before the transaction commits. The driver
    (pysqlite) would run DDL outside any transaction, so a run that fails at its third
    step would keep the first two: here it is told to leave transactions to us, and the
    run is one explicit ``BEGIN … COMMIT``.
    """
    sqlite = engine.dialect.name == "sqlite"
    with engine.connect() as conn:
        raw: Any = conn.connection.dbapi_connection
        before = raw.isolation_level if sqlite else None
        if sqlite:  # a no-op inside a transaction, so before it begins
            conn.exec_driver_sql("PRAGMA foreign_keys=OFF")
            conn.commit()
            raw.isolation_level = None
        try:
            with conn.begin():
                if sqlite:
                    conn.exec_driver_sql("BEGIN IMMEDIATE")
                yield conn
                if sqlite:
                    broken = conn.exec_driver_sql("PRAGMA foreign_key_check").fetchall()
                    if broken:
                        raise CatalogError(
                            f"migration left {len(broken)} rows with broken references "
                            f"(first: {tuple(broken[0])}); nothing was changed"
                        )
        finally:
            if sqlite:
                raw.isolation_level = before
                conn.exec_driver_sql("PRAGMA foreign_keys=ON")
                conn.commit()


def upgrade(engine: Engine, revision: str = "head") -> None:
    """Run Alembic migrations up to ``revision`` on ``engine``'s database."""
    from alembic import command

    config = _alembic_config(engine)
    with _migrating(engine) as conn:
        config.attributes["connection"] = conn
        command.upgrade(config, revision)


def downgrade(engine: Engine, revision: str = "base") -> None:
    from alembic import command

    config = _alembic_config(engine)
    with _migrating(engine) as conn:
        config.attributes["connection"] = conn
        command.downgrade(config, revision)


class Catalog:
    """The catalog database: ``with catalog.session() as s: ...`` commits on success."""

    def __init__(self, url: str, *, auto_migrate: bool = True) -> None:
        self.url = url
        self.engine = create_catalog_engine(url)
        self._sessions = sessionmaker(self.engine, expire_on_commit=False)
        try:
            self._ensure_schema(auto_migrate)
        except BaseException:
            self.engine.dispose()
            raise

    def _ensure_schema(self, auto_migrate: bool) -> None:
        try:
            current = current_revision(self.engine)
            head = head_revision()
            if current == head:
                return
            if not auto_migrate:
                raise CatalogError(
                    f"catalog {safe_url(self.url)} is at revision {current or 'none'}, "
                    f"not {head}: run `knnvocab db upgrade`"
                )
            upgrade(self.engine)
        except OperationalError as exc:
            reason = str(exc.orig).strip().splitlines()[0] if exc.orig else str(exc)
            database = make_url(self.url).database
            if self.dialect == "sqlite" and database and free_bytes(Path(database)) < 2**20:
                free = free_bytes(Path(database))  # SQLite says "disk I/O error"
                raise DiskFullError(database, free, 2**20, "open the catalog") from None
            raise CatalogError(f"cannot open catalog {safe_url(self.url)}: {reason}") from None

    @property
    def dialect(self) -> str:
        return self.engine.dialect.name

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A transaction: committed when the block ends, rolled back if it raises."""
        session = self._sessions()
        try:
            yield session
            session.commit()
        except BaseException as exc:
            with contextlib.suppress(SQLAlchemyError):  # a lost connection cannot roll back
                session.rollback()
            unusable = self.unusable(exc)
            if unusable is None:
                raise
            raise unusable from exc
        finally:
            with contextlib.suppress(SQLAlchemyError):
                session.close()

    def unusable(self, exc: BaseException) -> KnnvocabError | None:
        """The user's error for ``exc`` if it says the database cannot be used now (a lost
        connection, a restarted or stopped server, a full disk under SQLite), else None."""
        if not isinstance(exc, DBAPIError):
            return None
        if not (isinstance(exc, OperationalError | InterfaceError) or exc.connection_invalidated):
            return None
        database = make_url(self.url).database
        if self.dialect == "sqlite" and database and is_disk_full(exc):
            return DiskFullError(database, free_bytes(Path(database)), 0, "write the catalog")
        reason = str(exc.orig).strip().splitlines()[0] if exc.orig else type(exc).__name__
        return CatalogError(f"catalog {safe_url(self.url)} unavailable ({reason})")

    def table_names(self) -> list[str]:
        return sorted(inspect(self.engine).get_table_names())

    def close(self) -> None:
        self.engine.dispose()


__all__ = [
    "Catalog",
    "SQLAlchemyError",
    "create_catalog_engine",
    "current_revision",
    "downgrade",
    "head_revision",
    "safe_url",
    "upgrade",
]
