"""Heartbeats and stuck executions: the statements behind ``ExecutionStore.heartbeat``/``reap``.

Two rules, because two kinds of writer share the table. An execution that sends heartbeats is
stale when it is ``running`` and its last sign of life, the later of ``started_at`` and
``last_heartbeat_at``, is older than the stale cutoff. One that never sent a heartbeat
(``last_heartbeat_at IS NULL``: the upstream Rust writers never send one) is never judged by
silence; it runs too long when it started (``created_at`` if it has no ``started_at``) before
the runtime cutoff. Timestamps compare as values on PostgreSQL and as fixed-width UTC text on
SQLite, which sorts the same way, so one expression serves both databases and uses the status
index.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import (
    ColumnElement,
    Select,
    Update,
    and_,
    case,
    false,
    func,
    literal,
    or_,
    select,
    update,
)

from miyabi_analytics._db.schema import executions
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["count_stuck", "heartbeat", "reap", "stale", "stuck", "too_long"]

_RUNNING: Final = ExecutionStatus.RUNNING.value
_FAILED: Final = ExecutionStatus.FAILED.value
# The reaper moves running -> failed; the lifecycle must allow that step.
assert ExecutionStatus.RUNNING.can_transition_to(ExecutionStatus.FAILED)


def stale(cutoff: datetime) -> ColumnElement[bool]:
    """Sent heartbeats, but no sign of life (start or heartbeat) at or after ``cutoff``."""
    c = executions.c
    return and_(
        c.last_heartbeat_at.is_not(None),
        c.last_heartbeat_at < cutoff,
        or_(c.started_at.is_(None), c.started_at < cutoff),
    )


def too_long(cutoff: datetime) -> ColumnElement[bool]:
    """Never sent a heartbeat, and started (else was created) before ``cutoff``."""
    c = executions.c
    return and_(
        c.last_heartbeat_at.is_(None),
        or_(c.started_at < cutoff, and_(c.started_at.is_(None), c.created_at < cutoff)),
    )


def stuck(stale_cutoff: datetime | None, runtime_cutoff: datetime | None) -> ColumnElement[bool]:
    """Running, and stale (by ``stale_cutoff``) or running too long (by ``runtime_cutoff``)."""
    rules = [
        rule(cutoff)
        for rule, cutoff in ((stale, stale_cutoff), (too_long, runtime_cutoff))
        if cutoff is not None
    ]
    return and_(executions.c.status == _RUNNING, or_(false(), *rules))


def heartbeat(execution_id: uuid.UUID, agent_type: str | None, now: datetime) -> Update:
    """Stamp ``last_heartbeat_at`` of a running execution (of ``agent_type``, when given)."""
    c = executions.c
    condition = and_(c.id == execution_id, c.status == _RUNNING)
    if agent_type is not None:
        condition = and_(condition, c.agent_type == agent_type)
    return update(executions).where(condition).values(last_heartbeat_at=now)


def reap(
    stale_cutoff: datetime | None,
    runtime_cutoff: datetime | None,
    now: datetime,
    *,
    stale_message: str,
    runtime_message: str,
) -> Update:
    """Fail every stuck execution in one UPDATE; the status test in the WHERE is the guard.

    Each row's ``error_message`` names the rule that failed it: a row that never sent a
    heartbeat can only have been reaped by the runtime rule. PostgreSQL re-evaluates the WHERE
    on a row a concurrent writer changed first, and SQLite runs one writer at a time, so an
    execution that completes meanwhile is skipped, never overwritten (nor refused by the
    lifecycle trigger).
    """
    message = case(
        (executions.c.last_heartbeat_at.is_(None), literal(runtime_message)),
        else_=literal(stale_message),
    )
    return (
        update(executions)
        .where(stuck(stale_cutoff, runtime_cutoff))
        .values(status=_FAILED, completed_at=now, error_message=message, updated_at=now)
    )


def count_stuck(stale_cutoff: datetime | None, runtime_cutoff: datetime | None) -> Select[int]:
    """How many executions :func:`reap` would fail now."""
    return (
        select(func.count())
        .select_from(executions)
        .where(stuck(stale_cutoff, runtime_cutoff))
    )
