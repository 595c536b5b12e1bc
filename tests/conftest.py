"""Shared fixtures: every persistence test runs on SQLite and on PostgreSQL.

PostgreSQL: one fresh, migrated template database per test session (dropped at the end); each
test gets its own clone of it. The server is ``MIYABI_TEST_POSTGRES_URL`` if set, else the local
one. Without a server the PostgreSQL cases skip with the reason shown, unless
``MIYABI_REQUIRE_POSTGRES=1``, where they fail.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, text
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
def pg_template() -> Iterator[str]:
    """A migrated database that per-test databases are cloned from."""
    require_postgres()
    url = create_pg_database()
    engine = ma.connect(url)
    ma.migrate(engine)
    engine.dispose()
    yield url.database or ""
    drop_pg_database(url)


@pytest.fixture(params=DIALECTS)
def dialect(request: pytest.FixtureRequest) -> str:
    if request.param == "postgresql":
        require_postgres()
    return str(request.param)


@pytest.fixture
def empty_url(dialect: str, tmp_path: Path) -> Iterator[URL]:
    """A URL of a database with no tables at all."""
    if dialect == "sqlite":
        yield make_url(f"sqlite:///{tmp_path / 'empty.db'}")
        return
    url = create_pg_database()
    yield url
    drop_pg_database(url)


@pytest.fixture
def db_url(dialect: str, tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[URL]:
    """A URL of a migrated database of its own."""
    if dialect == "sqlite":
        url = make_url(f"sqlite:///{tmp_path / 'test.db'}")
        engine = ma.connect(url)
        ma.migrate(engine)
        engine.dispose()
        yield url
        return
    url = create_pg_database(template=request.getfixturevalue("pg_template"))
    yield url
    drop_pg_database(url)


@pytest.fixture
def engine(db_url: URL) -> Iterator[Engine]:
    eng = ma.connect(db_url)
    yield eng
    eng.dispose()
