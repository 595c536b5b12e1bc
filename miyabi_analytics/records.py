"""The execution record, its lifecycle and the builder that validates it once."""

from __future__ import annotations

import operator
import uuid
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Final, Self, TypedDict

from miyabi_analytics._validate import (
    INT32_MAX,
    as_aware,
    as_int,
    as_json,
    as_text,
    as_uuid,
    is_plain_json,
)
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.vocabulary import ExecutionStatus, check_agent_type

__all__ = [
    "AgentExecutionResult",
    "BusinessMetrics",
    "ExecutionResultBuilder",
    "ExecutionStatus",
    "LogEntry",
    "MetricsEntry",
]


class BusinessMetrics(TypedDict, total=False):
    """The metric keys with typed columns; any other key is kept in the ``metrics`` JSON only."""

    competitors_analyzed: int
    market_size_usd: int
    growth_rate_percent: float
    conversion_rate: float
    target_audience_size: int
    estimated_revenue_usd: int
    engagement_score: int
    reach_estimate: int
    roi_percent: float


@dataclass(frozen=True, slots=True, kw_only=True, weakref_slot=True)
class AgentExecutionResult:
    """One execution, exactly the columns of ``agent_executions``.

    ``created_at`` and ``updated_at`` are ``None`` until the store has saved the record.
    Build new records with :class:`ExecutionResultBuilder`, which validates; change one with
    :meth:`evolve`, which validates the same way.
    """

    id: uuid.UUID
    repository_id: uuid.UUID
    agent_type: str
    status: ExecutionStatus = ExecutionStatus.PENDING
    user_id: uuid.UUID | None = None
    issue_number: int | None = None
    started_at: datetime | None = None
    completed_at: datetime | None = None
    error_message: str | None = None
    result: Any = field(default=None, compare=True)
    quality_score: int | None = None
    pr_number: int | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @property
    def execution_id(self) -> uuid.UUID:
        """Alias of ``id``, the name the design's docs use."""
        return self.id

    @property
    def duration_seconds(self) -> float | None:
        """Seconds from start to completion, ``None`` while unfinished."""
        if self.started_at is None or self.completed_at is None:
            return None
        return (self.completed_at - self.started_at).total_seconds()

    def evolve(self, **changes: Any) -> AgentExecutionResult:
        """A validated copy with some fields changed (e.g. the next lifecycle step)."""
        return validate_record(replace(self, **changes))


def validate_record(record: object, *, copy: bool = True) -> AgentExecutionResult:
    """Check every field of a record; returns it normalised (UTC datetimes, plain JSON).

    With ``copy=False`` (the store, right before writing) a record that is already normal is
    returned as the same object, so re-checking records made by the builder costs little: their
    fields are frozen, and only the ``result`` document, which the frozen record cannot stop
    being changed in place, is checked again (:func:`is_plain_json`, no copy).
    """
    if not isinstance(record, AgentExecutionResult):
        raise ValidationError("result", record, "expected an AgentExecutionResult")
    if (
        not copy
        and _VALIDATED.get(id(record)) is record
        and (record.result is None or is_plain_json(record.result))
    ):
        return record  # made by build()/evolve()/this function, its document still plain
    started = None if record.started_at is None else as_aware("started_at", record.started_at)
    completed = (
        None if record.completed_at is None else as_aware("completed_at", record.completed_at)
    )
    if started is not None and completed is not None and completed < started:
        raise ValidationError(
            "completed_at", record.completed_at, f"is before started_at ({started.isoformat()})"
        )
    values = (
        as_uuid("id", record.id),
        as_uuid("repository_id", record.repository_id),
        check_agent_type(record.agent_type),
        ExecutionStatus.parse(record.status),
        None if record.user_id is None else as_uuid("user_id", record.user_id),
        _optional_int("issue_number", record.issue_number),
        started,
        completed,
        (
            None if record.error_message is None
            else as_text("error_message", record.error_message)
        ),
        None if record.result is None else _json_document("result", record.result, copy),
        (
            None if record.quality_score is None
            else as_int("quality_score", record.quality_score, low=0, high=100)
        ),
        _optional_int("pr_number", record.pr_number),
        None if record.created_at is None else as_aware("created_at", record.created_at),
        None if record.updated_at is None else as_aware("updated_at", record.updated_at),
    )
    if not copy and all(map(operator.is_, values, _all_fields(record))):
        checked = record
    else:
        normalised: dict[str, Any] = dict(zip(RECORD_FIELDS, values, strict=True))
        checked = AgentExecutionResult(**normalised)
    _VALIDATED[id(checked)] = checked
    return checked


# Records that passed validate_record, by identity. Records are frozen, so re-checking their
# fields in a bulk write only costs time; what the frozen record cannot stop (its ``result``
# document changed in place: 10**40, NaN, a cycle put in) is caught by the cheap re-check of
# that document above, which sends the record through the full validation again.
_VALIDATED: weakref.WeakValueDictionary[int, AgentExecutionResult] = (
    weakref.WeakValueDictionary()
)


RECORD_FIELDS: Final = (
    "id", "repository_id", "agent_type", "status", "user_id", "issue_number", "started_at",
    "completed_at", "error_message", "result", "quality_score", "pr_number", "created_at",
    "updated_at",
)
_all_fields = operator.attrgetter(*RECORD_FIELDS)


def _optional_int(name: str, value: object) -> int | None:
    return None if value is None else as_int(name, value, low=0, high=INT32_MAX)


def _json_document(name: str, value: object, copy: bool) -> Any:
    if not isinstance(value, Mapping | list | tuple):
        raise ValidationError(name, value, "expected a mapping or a list")
    return as_json(name, value, copy=copy)


class ExecutionResultBuilder:
    """Fluent construction of an :class:`AgentExecutionResult`; ``build()`` validates once.

    Setters only record values (so a chain never fails half-way); ``build()`` raises
    :class:`ValidationError` naming the first bad field.
    """

    def __init__(self, repository_id: uuid.UUID | str, agent_type: str) -> None:
        self._fields: dict[str, Any] = {"repository_id": repository_id, "agent_type": agent_type}

    def _set(self, name: str, value: Any) -> Self:
        self._fields[name] = value
        return self

    def id(self, value: uuid.UUID | str) -> Self:
        """Reuse an execution id, so a save updates that execution."""
        return self._set("id", value)

    def execution_id(self, value: uuid.UUID | str) -> Self:
        """Alias of :meth:`id`."""
        return self.id(value)

    def user_id(self, value: uuid.UUID | str | None) -> Self:
        """The user who started the execution."""
        return self._set("user_id", value)

    def issue_number(self, value: int | None) -> Self:
        """The issue the agent worked on."""
        return self._set("issue_number", value)

    def pr_number(self, value: int | None) -> Self:
        """The pull request the agent opened."""
        return self._set("pr_number", value)

    def status(self, value: ExecutionStatus | str) -> Self:
        """Lifecycle state; strings in any case are accepted."""
        return self._set("status", value)

    def started_at(self, value: datetime | None) -> Self:
        """Start time, timezone-aware."""
        return self._set("started_at", value)

    def completed_at(self, value: datetime | None) -> Self:
        """Completion time, timezone-aware, not before the start."""
        return self._set("completed_at", value)

    def start_now(self) -> Self:
        """Start now (UTC)."""
        return self.started_at(datetime.now(UTC))

    def complete_now(self) -> Self:
        """Complete now (UTC)."""
        return self.completed_at(datetime.now(UTC))

    def quality_score(self, value: int | None) -> Self:
        """Quality from 0 to 100."""
        return self._set("quality_score", value)

    def result(self, value: Mapping[str, Any] | list[Any] | None) -> Self:
        """The agent's JSON result."""
        return self._set("result", value)

    def error_message(self, value: str | None) -> Self:
        """Why the execution failed."""
        return self._set("error_message", value)

    def error(self, value: str | None) -> Self:
        """Alias of :meth:`error_message` (the design's name)."""
        return self.error_message(value)

    def build(self) -> AgentExecutionResult:
        """Validate every field and return the immutable record."""
        fields = dict(self._fields)
        fields.setdefault("id", uuid.uuid4())
        return validate_record(AgentExecutionResult(**fields))


@dataclass(frozen=True, slots=True)
class MetricsEntry:
    """One metrics document for :meth:`ExecutionStore.save_analysis_metrics_many`."""

    execution_id: uuid.UUID | str
    metrics: Mapping[str, Any]
    created_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LogEntry:
    """One log line for :meth:`ExecutionStore.log_many`."""

    execution_id: uuid.UUID | str
    level: str
    message: str
    metadata: Mapping[str, Any] | None = None
    logged_at: datetime | None = None
