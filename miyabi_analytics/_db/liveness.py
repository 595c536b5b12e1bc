"""Heartbeats and stuck executions: the statements behind ``ExecutionStore.heartbeat``/``reap``.

An execution is stuck when it is ``running`` and its last sign of life, the later of
``started_at`` and ``last_heartbeat_at`` (``created_at`` when it has neither), is older than the
cutoff. Timestamps compare as values on PostgreSQL and as fixed-width UTC text on SQLite, which
sorts the same way, so one expression serves both databases and uses the status index.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Final

from sqlalchemy import ColumnElement, Select, Update, and_, func, or_, select, update

from miyabi_analytics._db.schema import executions
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["count_stuck", "heartbeat", "reap", "stuck"]

_RUNNING: Final = ExecutionStatus.RUNNING.value
_FAILED: Final = ExecutionStatus.FAILED.value
# The reaper moves running -> failed; the lifecycle must allow that step.
assert ExecutionStatus.RUNNING.can_transition_to(ExecutionStatus.FAILED)


def stuck(cutoff: datetime) -> ColumnElement[bool]:
    """Running, with no sign of life at or after ``cutoff``."""
    c = executions.c
    return and_(
        c.status == _RUNNING,
        or_(c.started_at.is_(None), c.started_at < cutoff),
        or_(c.last_heartbeat_at.is_(None), c.last_heartbeat_at < cutoff),
        or_(
            c.started_at.is_not(None),
            c.last_heartbeat_at.is_not(None),
            c.created_at < cutoff,
        ),
    )


def heartbeat(execution_id: uuid.UUID, agent_type: str | None, now: datetime) -> Update:
    """Stamp ``last_heartbeat_at`` of a running execution (of ``agent_type``, when given)."""
    c = executions.c
    condition = and_(c.id == execution_id, c.status == _RUNNING)
    if agent_type is not None:
        condition = and_(condition, c.agent_type == agent_type)
    return update(executions).where(condition).values(last_heartbeat_at=now)


def reap(cutoff: datetime, now: datetime, message: str) -> Update:
    """Fail every stuck execution; the status test in the WHERE is the lifecycle guard.

    PostgreSQL re-evaluates the WHERE on a row a concurrent writer changed first, and SQLite runs
    one writer at a time, so an execution that completes meanwhile is never overwritten.
    """
    return (
        update(executions)
        .where(stuck(cutoff))
        .values(status=_FAILED, completed_at=now, error_message=message, updated_at=now)
    )


def count_stuck(cutoff: datetime) -> Select[int]:
    """How many executions :func:`reap` would fail now."""
    return select(func.count()).select_from(executions).where(stuck(cutoff))
