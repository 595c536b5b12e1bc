"""Read the summary view and the logs into pandas DataFrames, filtered in SQL."""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, select

from miyabi_analytics._db.schema import logs
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.views import summary
from miyabi_analytics._validate import as_time_bound, as_uuid
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import LOG_DTYPES, SUMMARY_DTYPES, to_frame
from miyabi_analytics.metrics import check_log_level
from miyabi_analytics.records import ExecutionStatus

__all__ = ["read_logs", "read_summary", "summary_columns"]


def summary_columns(columns: Sequence[str] | None) -> dict[str, Any]:
    """The dtype spec of the asked columns, in the asked order; unknown names are refused."""
    if columns is None:
        return dict(SUMMARY_DTYPES)
    if isinstance(columns, str):
        columns = [columns]
    chosen = list(dict.fromkeys(columns))
    unknown = [c for c in chosen if c not in SUMMARY_DTYPES]
    if unknown or not chosen:
        raise ValidationError(
            "columns", unknown or columns, f"expected names from {', '.join(SUMMARY_DTYPES)}"
        )
    return {c: SUMMARY_DTYPES[c] for c in chosen}


def read_summary(
    bind: Engine | Connection,
    *,
    repository_id: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    user_id: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    agent_types: str | Iterable[str] | None = None,
    statuses: ExecutionStatus | str | Iterable[ExecutionStatus | str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
    columns: Sequence[str] | None = None,
) -> pd.DataFrame:
    """One row per execution from ``v_business_agent_summary``, oldest start first.

    ``since`` is inclusive and ``until`` exclusive, both on ``started_at`` (rows never started
    drop out of a time filter). Ids may be given one or many. Rows without a start come last.
    """
    filters = SummaryFilters.build(
        repository_id=repository_id,
        user_id=user_id,
        agent_types=agent_types,
        statuses=statuses,
        since=since,
        until=until,
    )
    spec = summary_columns(columns)
    stmt = filters.apply(select(*(summary.c[name] for name in spec)), summary.c).order_by(
        summary.c.started_at.asc().nulls_last(), summary.c.created_at, summary.c.id
    )
    with begin(bind) as conn:
        rows = conn.execute(stmt).all()
    return to_frame(rows, spec)


def read_logs(
    bind: Engine | Connection,
    *,
    execution_id: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    levels: str | Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pd.DataFrame:
    """Log lines, oldest first; ``since``/``until`` (inclusive/exclusive) on ``logged_at``."""
    stmt = select(*(logs.c[name] for name in LOG_DTYPES))
    if execution_id is not None:
        ids = [execution_id] if isinstance(execution_id, str | uuid.UUID) else list(execution_id)
        stmt = stmt.where(logs.c.execution_id.in_([as_uuid("execution_id", i) for i in ids]))
    if levels is not None:
        names = [levels] if isinstance(levels, str) else list(levels)
        checked = []
        for name in names:
            try:
                checked.append(check_log_level(name))
            except ValidationError:
                raise ValidationError("levels", name, "unknown log level") from None
        stmt = stmt.where(logs.c.log_level.in_(checked))
    if since is not None:
        stmt = stmt.where(logs.c.logged_at >= as_time_bound("since", since))
    if until is not None:
        stmt = stmt.where(logs.c.logged_at < as_time_bound("until", until))
    with begin(bind) as conn:
        rows = conn.execute(stmt.order_by(logs.c.logged_at, logs.c.id)).all()
    return to_frame(rows, LOG_DTYPES)
