"""Alembic environment: runs on the caller's connection when given one (``migrate()``)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import Connection

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.engine import connect
from miyabi_analytics._db.migrate import run_locked
from miyabi_analytics._db.schema import include_object, metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=metadata,
        include_object=include_object,
        compare_type=True,
        render_as_batch=Dialect.of(connection) is Dialect.SQLITE,
        transaction_per_migration=False,
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    given = config.attributes.get("connection")
    if given is not None:
        _run(given)
        return
    # Shell use (`alembic upgrade head`): same URL resolution and locking as migrate().
    engine = connect(config.attributes.get("url"))
    try:
        run_locked(engine, _run)
    finally:
        engine.dispose()


if context.is_offline_mode():
    raise SystemExit("offline (--sql) mode is not supported; run against a database")
run_migrations_online()
