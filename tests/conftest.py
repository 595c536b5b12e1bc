"""Shared fixtures: every persistence test runs on SQLite and on PostgreSQL.

PostgreSQL: one fresh, migrated database per test session (dropped at the end), emptied before
each test; tests that need a schema of their own get a fresh empty database (``empty_url``).
The server is ``MIYABI_TEST_POSTGRES_URL`` if set, else the local one. Without a server the
PostgreSQL cases skip with the reason shown, unless
``MIYABI_REQUIRE_POSTGRES=1``, where they fail.
"""

from __future__ import annotations

import os
import shutil
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, table, text
from sqlalchemy.exc import OperationalError

import miyabi_analytics as ma

PG_ADMIN_URL: URL = make_url(
    os.environ.get("MIYABI_TEST_POSTGRES_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
).set(drivername="postgresql+psycopg")
PG_DISPLAY_URL = ma.mask_url(PG_ADMIN_URL)
REQUIRE_PG = os.environ.get("MIYABI_REQUIRE_POSTGRES") == "1"
DIALECTS = ("sqlite", "postgresql")


def _admin_engine() -> Engine:
    return create_engine(PG_ADMIN_URL, isolation_level="AUTOCOMMIT", pool_pre_ping=True)


def _pg_reachable() -> bool:
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        return True
    except OperationalError:
        return False
    finally:
        engine.dispose()


PG_REACHABLE = _pg_reachable()


def require_postgres() -> None:
    """Skip (or fail under MIYABI_REQUIRE_POSTGRES=1) when no server is reachable."""
    if PG_REACHABLE:
        return
    if REQUIRE_PG:
        pytest.fail(f"MIYABI_REQUIRE_POSTGRES=1 but no PostgreSQL at {PG_DISPLAY_URL}")
    pytest.skip(f"no PostgreSQL reachable at {PG_DISPLAY_URL}")


def _quote(name: str) -> str:
    assert name.replace("_", "").isalnum()
    return '"' + name + '"'


def create_pg_database(template: str | None = None) -> URL:
    """A new empty (or cloned) database on the test server; returns its URL."""
    name = f"miyabi_test_{uuid.uuid4().hex[:12]}"
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            suffix = f" TEMPLATE {_quote(template)}" if template else ""
            conn.execute(text(f"CREATE DATABASE {_quote(name)}{suffix}"))
    finally:
        engine.dispose()
    return PG_ADMIN_URL.set(database=name)


def drop_pg_database(url: URL) -> None:
    """Drop a test database, closing whatever still connects to it."""
    engine = _admin_engine()
    try:
        with engine.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {_quote(url.database or '')} WITH (FORCE)"))
    finally:
        engine.dispose()


@pytest.fixture(scope="session")
def pg_session_url() -> Iterator[URL]:
    """The session's migrated PostgreSQL database (fresh, dropped at the end)."""
    require_postgres()
    url = create_pg_database()
    engine = ma.connect(url)
    ma.migrate(engine)
    engine.dispose()
    yield url
    drop_pg_database(url)


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A migrated SQLite file that each test copies (migrating costs more than copying)."""
    path = tmp_path_factory.mktemp("template") / "template.db"
    engine = ma.connect(f"sqlite:///{path}")
    ma.migrate(engine)
    with engine.connect() as conn:
        conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
    engine.dispose()
    return path


def _truncate_all(url: URL) -> None:
    """Empty every table but alembic's, so each test starts from a clean, migrated database."""
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars().all()
            for name in names:  # DELETE beats TRUNCATE on the few rows a test leaves
                conn.execute(table(name).delete())
    finally:
        engine.dispose()


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture
def empty_url(dialect: str, tmp_path: Path) -> Iterator[URL]:
    """A URL of a database with no tables at all (its own, even on PostgreSQL)."""
    if dialect == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'empty.db'}")
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def db_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> URL:
    """A URL of a migrated, empty database: a copied SQLite file, or the session's PostgreSQL
    database with every table emptied (tests that change the schema use ``empty_url``)."""
    if dialect == "sqlite":
        path = tmp_path / "test.db"
        shutil.copyfile(request.getfixturevalue("sqlite_template"), path)
        return make_url(f"sqlite:///{path}")
    url: URL = request.getfixturevalue("pg_session_url")
    _truncate_all(url)
    return url


@pytest.fixture
def engine(db_url: URL) -> Iterator[Engine]:
    eng = ma.connect(db_url)
    yield eng
    eng.dispose()
