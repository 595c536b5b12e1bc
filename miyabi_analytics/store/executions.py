"""Executions one at a time: the guarded upsert, its lifecycle refusals, and lookups by id."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Engine, Row, select

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.retry import RetryPolicy
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.statements import upsert_execution
from miyabi_analytics._db.tx import begin, write
from miyabi_analytics._validate import INT32_MAX, as_int, as_uuid
from miyabi_analytics.errors import InvalidStatusTransition, NotFound
from miyabi_analytics.records import AgentExecutionResult, validate_record
from miyabi_analytics.store import _shared
from miyabi_analytics.vocabulary import ExecutionStatus, check_agent_type

__all__ = ["check_step", "exists", "get_execution", "load_history", "save_execution"]


def save_execution(
    bind: Engine | Connection, result: AgentExecutionResult, *, retry: RetryPolicy
) -> uuid.UUID:
    """``ExecutionStore.save_execution``: one guarded upsert; a refused one says why."""
    record = validate_record(result, copy=False)

    def upsert(conn: Connection) -> None:
        stmt = upsert_execution(Dialect.of(conn), _row_of(record, _shared.now()))
        if conn.execute(stmt).scalar_one_or_none() is None:
            _raise_refused(conn, record)

    # A repository-scoped engine's row-level security refusing the row becomes a
    # ValidationError naming the repository, not a raw database error.
    write(
        bind,
        upsert,
        what="save_execution",
        policy=retry,
        errors=lambda: _shared.refusals(
            bind,
            [(record.id, record.repository_id)],
            "result",
            record.result,
            data_errors=False,
            moves=[(record.id, record.status.value)],
            written=lambda name: [getattr(record, name, None)],
        ),
    )
    return record.id


def _row_of(record: AgentExecutionResult, now: datetime) -> dict[str, Any]:
    # No last_heartbeat_at: the upsert sets only these keys, so an update keeps the stored one.
    return {
        "id": record.id,
        "repository_id": record.repository_id,
        "user_id": record.user_id,
        "agent_type": record.agent_type,
        "issue_number": record.issue_number,
        "status": record.status.value,
        "started_at": record.started_at,
        "completed_at": record.completed_at,
        "error_message": record.error_message,
        "result": record.result,
        "quality_score": record.quality_score,
        "pr_number": record.pr_number,
        "created_at": now,
        "updated_at": now,
    }


def _raise_refused(conn: Connection, record: AgentExecutionResult) -> None:
    """The upsert's guard updated nothing: another agent's id, or a backwards move."""
    stored = conn.execute(
        select(executions.c.status, executions.c.agent_type).where(executions.c.id == record.id)
    ).one()
    if stored.agent_type != record.agent_type:
        raise _shared.belongs_to(record.agent_type, record.id, stored.agent_type)
    raise InvalidStatusTransition(record.id, stored.status, record.status.value)


def check_step(record: AgentExecutionResult, status: str, agent_type: str) -> None:
    """Refuse ``record`` over a stored ``status``/``agent_type``, as the upsert's guard does."""
    if agent_type != record.agent_type:
        raise _shared.belongs_to(record.agent_type, record.id, agent_type)
    if not ExecutionStatus(status).can_transition_to(record.status):
        raise InvalidStatusTransition(record.id, status, record.status.value)


def get_execution(bind: Engine | Connection, execution_id: uuid.UUID | str) -> AgentExecutionResult:
    """``ExecutionStore.get_execution``: the stored record, or :class:`NotFound`."""
    key = as_uuid("execution_id", execution_id)
    with begin(bind) as conn:
        row = conn.execute(select(executions).where(executions.c.id == key)).one_or_none()
    if row is None:
        raise NotFound("execution", key)
    return _record_of(row)


def load_history(
    bind: Engine | Connection, agent_type: str, repository_id: uuid.UUID | str, *, limit: int
) -> list[AgentExecutionResult]:
    """``ExecutionStore.load_history``: one order on both databases, ``id`` breaking ties."""
    stmt = (
        select(executions)
        .where(
            executions.c.agent_type == check_agent_type(agent_type),
            executions.c.repository_id == as_uuid("repository_id", repository_id),
        )
        .order_by(
            executions.c.started_at.desc().nulls_first(),
            executions.c.created_at.desc(),
            executions.c.id,
        )
        .limit(as_int("limit", limit, low=0, high=INT32_MAX))
    )
    with begin(bind) as conn:
        return [_record_of(row) for row in conn.execute(stmt)]


def exists(bind: Engine | Connection, execution_id: uuid.UUID | str) -> bool:
    """Whether an execution with this id is stored (and visible to ``bind``'s scope)."""
    key = as_uuid("execution_id", execution_id)
    with begin(bind) as conn:
        found = conn.execute(select(executions.c.id).where(executions.c.id == key))
        return found.first() is not None


def _record_of(row: Row[Any]) -> AgentExecutionResult:
    data = row._asdict()
    data.pop("last_heartbeat_at", None)  # a column of the table, not a field of the record
    data["status"] = ExecutionStatus(data["status"])
    return AgentExecutionResult(**data)
