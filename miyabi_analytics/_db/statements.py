"""Statement builders: pure functions from values to SQLAlchemy statements, one per dialect."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from sqlalchemy import Insert
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import executions
from miyabi_analytics.vocabulary import ExecutionStatus

EXECUTION_KEYS = tuple(c.name for c in executions.columns)


def upsert_execution(dialect: Dialect, row: Mapping[str, Any]) -> Insert:
    """Insert an execution or update the stored one, only along a legal lifecycle step.

    The guard is the ``WHERE`` of ``ON CONFLICT DO UPDATE``: the database evaluates it against
    the locked, latest version of the row, so two racing writers can never regress it. A refused
    update changes nothing and returns no row.
    """
    insert = pg_insert if dialect.is_postgresql else sqlite_insert
    stmt = insert(executions).values(**row)
    allowed = [s.value for s in ExecutionStatus(row["status"]).allowed_predecessors()]
    return stmt.on_conflict_do_update(
        index_elements=[executions.c.id],
        # created_at is the first save's; last_heartbeat_at is not the record's to change.
        set_={
            k: stmt.excluded[k]
            for k in row
            if k not in ("id", "created_at", "last_heartbeat_at")
        },
        where=executions.c.status.in_(allowed) & (executions.c.agent_type == row["agent_type"]),
    ).returning(executions.c.id)
