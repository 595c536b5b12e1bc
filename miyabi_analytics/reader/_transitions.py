"""Read the status history: :func:`read_transitions`.

Rows of ``agent_execution_transitions`` (revision 0010, written by the database's triggers for
every writer), each joined to its execution so the reader's filters apply. The query reads the
tables, so a scoped engine sees only its repositories (row-level security on PostgreSQL).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping
from types import SimpleNamespace
from typing import Any, Final, Unpack

import pandas as pd
from sqlalchemy import Connection, Engine, Select, select

from miyabi_analytics._db.schema import executions, transitions
from miyabi_analytics._db.tx import begin
from miyabi_analytics._validate import as_uuid
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import FilterArgs, SummaryFilters
from miyabi_analytics.frames import STATUS_DTYPE, dtype_of, to_frame

__all__ = ["TRANSITION_DTYPES", "read_transitions", "transitions_frame", "transitions_select"]

_SOURCES: Final[Mapping[str, Any]] = {
    "id": transitions.c.id,
    "execution_id": transitions.c.execution_id,
    "repository_id": executions.c.repository_id,
    "user_id": executions.c.user_id,
    "agent_type": executions.c.agent_type,
    "from_status": transitions.c.from_status,
    "to_status": transitions.c.to_status,
    "at": transitions.c.at,
    "quality_score": transitions.c.quality_score,
    "error_message": transitions.c.error_message,
}

TRANSITION_DTYPES: Final[Mapping[str, Any]] = {
    name: STATUS_DTYPE if name.endswith("_status") else dtype_of(column)
    for name, column in _SOURCES.items()
}
"""``read_transitions``'s columns and dtypes as read (``id`` is made ``int64`` afterwards)."""


def _ids(value: object) -> list[uuid.UUID]:
    """One execution id or an iterable of them (a lone string is one id)."""
    if isinstance(value, str | uuid.UUID):
        return [as_uuid("execution_id", value)]
    if isinstance(value, Iterable):
        items = [as_uuid("execution_id", v) for v in value]
        if items:
            return items
    raise ValidationError("execution_id", value, "expected one UUID or a non-empty iterable")


_FILTERED: Final = SimpleNamespace(
    repository_id=executions.c.repository_id,
    user_id=executions.c.user_id,
    agent_type=executions.c.agent_type,
    status=transitions.c.to_status,
    started_at=transitions.c.at,
)
"""The columns the summary filters apply to for a transition: statuses on ``to_status``, time
on ``at`` (``SummaryFilters.clauses`` reads them by the summary's names)."""


def transitions_select(
    filters: SummaryFilters, execution_ids: list[uuid.UUID] | None = None
) -> Select[Any]:
    """The filtered, ordered select of :func:`read_transitions` (columns of its spec's order)."""
    joined = transitions.join(executions, transitions.c.execution_id == executions.c.id)
    stmt = select(*_SOURCES.values()).select_from(joined).where(*filters.clauses(_FILTERED))
    if execution_ids is not None:
        stmt = stmt.where(transitions.c.execution_id.in_(execution_ids))
    return stmt.order_by(transitions.c.at, transitions.c.id)


def transitions_frame(rows: Any) -> pd.DataFrame:
    """Rows of :func:`transitions_select` as the frame :func:`read_transitions` returns."""
    frame = to_frame(rows, TRANSITION_DTYPES)
    frame["id"] = frame["id"].astype("int64")  # never NULL: a plain integer column
    return frame


def read_transitions(
    bind: Engine | Connection,
    *,
    execution_id: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    **filters: Unpack[FilterArgs],
) -> pd.DataFrame:
    """Every status an execution entered, oldest first (by ``at``, then ``id``).

    One row per recorded transition: one when the execution was inserted (``from_status``
    missing) and one per status change, whoever wrote it (this package, the upstream agents,
    plain SQL). Columns: ``id`` (the transition's, ``int64``), ``execution_id``,
    ``repository_id``, ``user_id`` (strings), ``agent_type``, ``from_status``, ``to_status``
    (categoricals, open to values other writers store), ``at`` (``datetime64[us, UTC]``, when
    the execution entered ``to_status``), ``quality_score`` (``Int64``) and ``error_message``
    as they were at that moment. An empty result has the same columns and dtypes.

    Filters, all in SQL: ``repository_id``, ``user_id``, ``agent_types`` as in
    :func:`read_summary` (on the execution); ``statuses`` on ``to_status`` (the status
    entered); ``since`` (inclusive) and ``until`` (exclusive) on ``at``, the time of the
    transition, not the execution's ``started_at``; ``execution_id`` (one id or many).
    """
    where = SummaryFilters.of(**filters)
    ids = None if execution_id is None else _ids(execution_id)
    with begin(bind) as conn:
        rows = conn.execute(transitions_select(where, ids)).all()
    return transitions_frame(rows)
