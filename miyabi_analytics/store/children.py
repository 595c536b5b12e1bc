"""Rows that hang off an execution: analytics metrics and log lines.

Every row gets its id before the first attempt, so a retry after a lost acknowledgement finds
the row the failed attempt did commit and writes nothing twice (``write``'s ``recover``).
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Table, select
from sqlalchemy.exc import DBAPIError, IntegrityError

from miyabi_analytics._db.bulk import encoder, existing_rows, insert_rows
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.retry import RetryPolicy
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.scope import is_row_security_violation
from miyabi_analytics._db.tx import write
from miyabi_analytics._validate import as_aware, as_text, as_uuid
from miyabi_analytics.errors import NotFound
from miyabi_analytics.metrics import validate_metrics
from miyabi_analytics.store import _shared
from miyabi_analytics.store.executions import exists
from miyabi_analytics.vocabulary import check_agent_type, check_log_level

__all__ = ["insert_children", "log", "save_analysis_metrics"]


def save_analysis_metrics(
    bind: Engine | Connection,
    execution_id: uuid.UUID | str,
    metrics: Mapping[str, Any],
    *,
    agent_type: str | None,
    retry: RetryPolicy,
) -> uuid.UUID:
    """``ExecutionStore.save_analysis_metrics``: the row takes the execution's own agent."""
    key = as_uuid("execution_id", execution_id)
    valid = validate_metrics(metrics)
    if agent_type is not None:
        check_agent_type(agent_type)
    row_id = uuid.uuid4()
    created_at = _shared.now()

    def insert(conn: Connection) -> uuid.UUID:
        stored_type = conn.execute(
            select(executions.c.agent_type).where(executions.c.id == key)
        ).scalar_one_or_none()
        if stored_type is None:
            raise NotFound("execution", key)
        if agent_type is not None and agent_type != stored_type:
            raise _shared.belongs_to(agent_type, key, stored_type)
        conn.execute(
            analytics.insert().values(
                id=row_id,
                execution_id=key,
                agent_type=stored_type,
                metrics=valid.document,
                created_at=created_at,
                **valid.columns,
            )
        )
        return row_id

    return write(
        bind,
        insert,
        what="save_analysis_metrics",
        policy=retry,
        recover=lambda conn: row_id if _shared.stored(conn, analytics, row_id) else None,
    )


def log(
    bind: Engine | Connection,
    execution_id: uuid.UUID | str,
    level: str,
    message: str,
    metadata: Mapping[str, Any] | None,
    *,
    logged_at: datetime | None,
    retry: RetryPolicy,
) -> uuid.UUID:
    """``ExecutionStore.log``: one line; an execution that is not there is :class:`NotFound`."""
    key = as_uuid("execution_id", execution_id)
    log_id = uuid.uuid4()
    row = {
        "id": log_id,
        "execution_id": key,
        "log_level": check_log_level(level),
        "message": as_text("message", message),
        "metadata": None if metadata is None else _shared.json_mapping("metadata", metadata),
        "logged_at": _shared.now() if logged_at is None else as_aware("logged_at", logged_at),
    }

    def insert(conn: Connection) -> uuid.UUID:
        conn.execute(logs.insert().values(**row))
        return log_id

    try:
        write(
            bind,
            insert,
            what=f"{logs.name} insert",
            policy=retry,
            recover=lambda conn: log_id if _shared.stored(conn, logs, log_id) else None,
        )
    except IntegrityError:
        if not exists(bind, key):
            raise NotFound("execution", key) from None
        raise
    except DBAPIError as exc:
        # Row-level security: the execution is outside a scoped engine's repositories,
        # which for that engine is the same as not stored.
        if not is_row_security_violation(exc):
            raise
        raise NotFound("execution", key) from None
    return log_id


def insert_children(
    bind: Engine | Connection,
    table: Table,
    rows: list[dict[str, Any]],
    *,
    with_agent_type: bool,
    retry: RetryPolicy,
) -> int:
    """Insert a batch of rows that point at executions, after checking every execution exists.

    With ``with_agent_type`` each row takes its execution's agent (analytics rows carry it).
    The batch is all or nothing, so its first row tells a retry whether it was committed.
    """
    wanted = list({row["execution_id"] for row in rows})

    def insert(conn: Connection) -> int:
        found = existing_rows(conn, executions, wanted, ["agent_type"])
        missing = set(wanted) - found.keys()
        if missing:
            raise NotFound("execution", min(missing))
        if with_agent_type:
            for row in rows:
                row["agent_type"] = found[row["execution_id"]].agent_type
        names = [c.name for c in table.columns]
        encode = encoder(table, Dialect.of(conn))
        insert_rows(conn, table, (encode([row[n] for n in names]) for row in rows))
        return len(rows)

    first = rows[0]["id"]
    return write(
        bind,
        insert,
        what=f"{table.name} batch",
        policy=retry,
        recover=lambda conn: len(rows) if _shared.stored(conn, table, first) else None,
    )
