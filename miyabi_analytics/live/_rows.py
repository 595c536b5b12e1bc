"""What the backends of ``watch`` share: the event's columns, rows to events, the filter."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final

import sqlalchemy as sa

from miyabi_analytics._db.schema import executions, transitions
from miyabi_analytics.live._event import TransitionEvent

__all__ = ["EVENT_COLUMNS", "EventFilter", "event_columns", "to_event"]

_t, _e = transitions.c, executions.c
EVENT_COLUMNS: Final = (
    _t.id, _t.execution_id, _e.repository_id, _e.agent_type, _t.from_status, _t.to_status, _t.at
)


def event_columns() -> sa.Select[Any]:
    """The select of an event's columns, transitions joined to their executions."""
    return sa.select(*EVENT_COLUMNS).select_from(
        transitions.join(executions, _e.id == _t.execution_id)
    )


def to_event(row: Iterable[Any]) -> TransitionEvent:
    """An event from raw driver values in :data:`EVENT_COLUMNS` order (text or native)."""
    tid, execution_id, repository_id, agent_type, from_status, to_status, at = row
    if not isinstance(at, datetime):
        at = datetime.fromisoformat(str(at))
    return TransitionEvent(
        transition_id=int(tid),
        execution_id=uuid.UUID(str(execution_id)),
        repository_id=uuid.UUID(str(repository_id)),
        agent_type=str(agent_type),
        from_status=None if from_status is None else str(from_status),
        to_status=str(to_status),
        at=at.astimezone(UTC),
    )


@dataclass(frozen=True, slots=True)
class EventFilter:
    """Which events a watcher yields: the filters and the engine's scope, all conjunctive."""

    repository_ids: frozenset[uuid.UUID] | None = None
    agent_types: frozenset[str] | None = None
    statuses: frozenset[str] | None = None
    scope: frozenset[uuid.UUID] | None = None

    def __call__(self, event: TransitionEvent) -> bool:
        return (
            (self.repository_ids is None or event.repository_id in self.repository_ids)
            and (self.scope is None or event.repository_id in self.scope)
            and (self.agent_types is None or event.agent_type in self.agent_types)
            and (self.statuses is None or event.to_status in self.statuses)
        )

    def scoped(self, scope: frozenset[uuid.UUID] | None) -> EventFilter:
        return EventFilter(self.repository_ids, self.agent_types, self.statuses, scope)


