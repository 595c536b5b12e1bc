"""The report's outliers of a window: :func:`slowest_executions` and :func:`most_retried`.

Both are computed in the database (ORDER BY ... LIMIT, GROUP BY ... HAVING) with the filters
of every aggregate, so the window is ``[since, until)`` on ``started_at``.
"""

from __future__ import annotations

from typing import Any, Final, Unpack

import pandas as pd
from sqlalchemy import Connection, Engine, case, func, select

from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.summary import DurationMicros
from miyabi_analytics._db.tx import begin
from miyabi_analytics._validate import as_int
from miyabi_analytics.filters import FilterArgs, SummaryFilters
from miyabi_analytics.frames import STATUS_DTYPE, dtype_of, to_frame
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["RETRIED_DTYPES", "SLOWEST_DTYPES", "most_retried", "slowest_executions"]

_MICROS: Final = DurationMicros(executions.c.started_at, executions.c.completed_at)
_MAX_LIMIT: Final = 10_000

SLOWEST_DTYPES: Final[dict[str, Any]] = {
    "execution_id": dtype_of(executions.c.id),
    "repository_id": dtype_of(executions.c.repository_id),
    "agent_type": dtype_of(executions.c.agent_type),
    "issue_number": "Int64",
    "status": STATUS_DTYPE,
    "started_at": dtype_of(executions.c.started_at),
    "completed_at": dtype_of(executions.c.completed_at),
    "duration_seconds": "float64",
}
"""``slowest_executions``'s columns and dtypes."""

RETRIED_DTYPES: Final[dict[str, Any]] = {
    "agent_type": dtype_of(executions.c.agent_type),
    "repository_id": dtype_of(executions.c.repository_id),
    "issue_number": "int64",
    "executions": "int64",
    "completed": "int64",
    "failed": "int64",
    "first_started": dtype_of(executions.c.started_at),
    "last_started": dtype_of(executions.c.started_at),
}
"""``most_retried``'s columns and dtypes."""


def slowest_executions(
    bind: Engine | Connection,
    *,
    limit: int = 10,
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """The ``limit`` finished executions of the window that ran longest, longest first.

    The running duration is ``completed_at - started_at`` (exact microseconds in the
    database, as :func:`duration_stats`), so executions still pending or running, and rows
    without both timestamps, are not ranked. Ties: earlier start first, then id.

    Columns: ``execution_id``, ``repository_id``, ``agent_type``, ``issue_number``
    (``Int64``), ``status``, ``started_at``, ``completed_at``, ``duration_seconds``.
    """
    where = SummaryFilters.of(filters, **filter_args)
    count = as_int("limit", limit, low=1, high=_MAX_LIMIT)
    c = executions.c
    stmt = (
        select(
            c.id, c.repository_id, c.agent_type, c.issue_number, c.status,
            c.started_at, c.completed_at, _MICROS,
        )
        .where(c.started_at.is_not(None), c.completed_at.is_not(None), *where.clauses(c))
        .order_by(_MICROS.desc(), c.started_at, c.id)
        .limit(count)
    )
    with begin(bind) as conn:
        rows = conn.execute(stmt).all()
    spec = {**SLOWEST_DTYPES, "duration_seconds": "Int64"}
    frame = to_frame(rows, spec)
    # Each float once, the exact quotient of the database's integer microseconds, rounded.
    frame["duration_seconds"] = [int(r[-1]) / 1_000_000 for r in rows]
    return frame.astype({"duration_seconds": "float64"})


def most_retried(
    bind: Engine | Connection,
    *,
    limit: int = 10,
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """The work run more than once in the window: most executions first.

    "Retried" means the same ``agent_type`` on the same ``repository_id`` and
    ``issue_number`` was executed more than once among the window's executions (whatever
    their outcome: a failure followed by a success counts, as do repeated successes).
    Executions without an issue number are never counted as retries of one another.

    Columns: ``agent_type``, ``repository_id``, ``issue_number``, ``executions`` (runs in the
    window, at least 2), ``completed``, ``failed`` (``int64``), ``first_started``,
    ``last_started``. Ordered by ``executions`` (most first), then the latest start (most
    recent first), then repository and issue number.
    """
    where = SummaryFilters.of(filters, **filter_args)
    count = as_int("limit", limit, low=1, high=_MAX_LIMIT)
    c = executions.c
    runs = func.count().label("executions")

    def outcome(status: ExecutionStatus) -> Any:
        return func.coalesce(func.sum(case((c.status == status.value, 1), else_=0)), 0)

    last = func.max(c.started_at)
    stmt = (
        select(
            c.agent_type, c.repository_id, c.issue_number, runs,
            outcome(ExecutionStatus.COMPLETED), outcome(ExecutionStatus.FAILED),
            func.min(c.started_at), last,
        )
        .where(c.issue_number.is_not(None), *where.clauses(c))
        .group_by(c.agent_type, c.repository_id, c.issue_number)
        .having(func.count() > 1)
        .order_by(runs.desc(), last.desc().nulls_last(), c.repository_id, c.issue_number,
                  c.agent_type)
        .limit(count)
    )
    with begin(bind) as conn:
        rows = conn.execute(stmt).all()
    spec = {**RETRIED_DTYPES, "issue_number": "Int64", "executions": "Int64",
            "completed": "Int64", "failed": "Int64"}
    frame = to_frame(rows, spec)
    counts = ("issue_number", "executions", "completed", "failed")  # never NULL here
    return frame.astype(dict.fromkeys(counts, "int64"))
