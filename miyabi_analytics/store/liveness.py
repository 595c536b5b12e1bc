"""Heartbeats and stuck executions: stamping a running execution, failing the silent ones.

The statements are ``_db/liveness.py``'s; this module validates, runs them in a write
transaction and says why a heartbeat was refused.
"""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

from sqlalchemy import Connection, Engine, select

from miyabi_analytics._db import liveness as statements
from miyabi_analytics._db.retry import RetryPolicy
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.tx import begin, write
from miyabi_analytics._durations import as_duration, format_duration
from miyabi_analytics._validate import as_uuid
from miyabi_analytics.errors import NotFound, ValidationError
from miyabi_analytics.store import _shared
from miyabi_analytics.vocabulary import check_agent_type

__all__ = ["count_stuck", "heartbeat", "reap"]


def heartbeat(
    bind: Engine | Connection,
    execution_id: uuid.UUID | str,
    *,
    agent_type: str | None,
    retry: RetryPolicy,
) -> datetime:
    """``ExecutionStore.heartbeat``: stamp a running execution, or say why it takes none."""
    key = as_uuid("execution_id", execution_id)
    if agent_type is not None:
        check_agent_type(agent_type)

    def stamp(conn: Connection) -> datetime:
        now = _shared.now()
        if conn.execute(statements.heartbeat(key, agent_type, now)).rowcount == 1:
            return now
        # Nothing was stamped, so raising here (and rolling back) loses nothing.
        stored = conn.execute(
            select(executions.c.status, executions.c.agent_type).where(executions.c.id == key)
        ).one_or_none()
        if stored is None:
            raise NotFound("execution", key)
        if agent_type is not None and stored.agent_type != agent_type:
            raise _shared.belongs_to(agent_type, key, stored.agent_type)
        raise ValidationError(
            "status",
            stored.status,
            f"execution {key} is {stored.status!r}; only running executions take a heartbeat",
        )

    return write(bind, stamp, what="heartbeat", policy=retry)


def reap(
    bind: Engine | Connection,
    stale_after: timedelta | str | None,
    *,
    max_runtime: timedelta | str | None,
    retry: RetryPolicy,
) -> int:
    """``ExecutionStore.reap``: one guarded UPDATE fails every stuck execution."""
    stale, runtime = _limits(stale_after, max_runtime)
    stale_message = "" if stale is None else f"reaped: no heartbeat for {format_duration(stale)}"
    runtime_message = (
        ""
        if runtime is None
        else f"reaped: running for more than {format_duration(runtime)} without a heartbeat"
    )

    def fail_stuck(conn: Connection) -> int:
        now = _shared.now()
        stmt = statements.reap(
            _cutoff(now, stale),
            _cutoff(now, runtime),
            now,
            stale_message=stale_message,
            runtime_message=runtime_message,
        )
        return int(conn.execute(stmt).rowcount)

    return write(bind, fail_stuck, what="reap", policy=retry)


def count_stuck(
    bind: Engine | Connection,
    stale_after: timedelta | str | None,
    *,
    max_runtime: timedelta | str | None = None,
) -> int:
    """``ExecutionStore.count_stuck``: what :func:`reap` would fail now, changing nothing."""
    stale, runtime = _limits(stale_after, max_runtime)
    now = _shared.now()
    with begin(bind) as conn:
        count: int = conn.execute(
            statements.count_stuck(_cutoff(now, stale), _cutoff(now, runtime))
        ).scalar_one()
    return count


def _limits(
    stale_after: timedelta | str | None, max_runtime: timedelta | str | None
) -> tuple[timedelta | None, timedelta | None]:
    """Both limits validated; at least one must be given."""
    if stale_after is None and max_runtime is None:
        raise ValidationError(
            "stale_after", None, "give stale_after, max_runtime or both (e.g. 30m, 2h)"
        )
    return (
        None if stale_after is None else as_duration("stale_after", stale_after),
        None if max_runtime is None else as_duration("max_runtime", max_runtime),
    )


def _cutoff(now: datetime, limit: timedelta | None) -> datetime | None:
    return None if limit is None else now - limit
