"""Read the execution logs: :func:`read_logs`."""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from datetime import datetime
from typing import Any

import pandas as pd
from sqlalchemy import Connection, Engine, select

from miyabi_analytics._db.expressions import write_order
from miyabi_analytics._db.schema import logs
from miyabi_analytics._db.tx import begin
from miyabi_analytics._validate import as_uuid, as_window
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.frames import LOG_DTYPES, to_frame
from miyabi_analytics.vocabulary import check_read_log_level, log_level_spellings

__all__ = ["read_logs"]


def _one_or_many(field: str, value: object, single: Any) -> list[Any]:
    """A lone value of type ``single`` as a one-item list, an iterable as a list, else refused."""
    if isinstance(value, single):
        return [value]
    if isinstance(value, Iterable):
        return list(value)
    raise ValidationError(field, value, "expected one value or an iterable of them")


def read_logs(
    bind: Engine | Connection,
    *,
    execution_id: uuid.UUID | str | Iterable[uuid.UUID | str] | None = None,
    levels: str | Iterable[str] | None = None,
    since: datetime | str | None = None,
    until: datetime | str | None = None,
) -> pd.DataFrame:
    """Log lines, oldest first, and in the order written within an instant.

    ``levels`` (any case) finds each level under every stored spelling of it: ``warning``
    (or its upstream spelling ``warn``) finds rows stored as ``warning`` and as ``warn``, and
    both read as ``warning``. A stored level outside the vocabulary reads as stored.

    ``since``/``until`` (inclusive/exclusive) filter on ``logged_at``; the window is checked
    as :func:`read_summary`'s: ``since`` must be before ``until``.
    """
    stmt = select(*(logs.c[name] for name in LOG_DTYPES))
    if execution_id is not None:
        ids = _one_or_many("execution_id", execution_id, str | uuid.UUID)
        stmt = stmt.where(logs.c.execution_id.in_([as_uuid("execution_id", i) for i in ids]))
    if levels is not None:
        names = _one_or_many("levels", levels, str)
        # A level matches every stored spelling that reads as it: warning finds warn too.
        stored = {s for name in names for s in log_level_spellings(check_read_log_level(name))}
        stmt = stmt.where(logs.c.log_level.in_(sorted(stored)))
    start, end = as_window(since, until)
    if start is not None:
        stmt = stmt.where(logs.c.logged_at >= start)
    if end is not None:
        stmt = stmt.where(logs.c.logged_at < end)
    with begin(bind) as conn:
        # Lines of one instant (log_many stamps a whole batch with one) in the order written.
        rows = conn.execute(stmt.order_by(logs.c.logged_at, write_order(logs))).all()
    return to_frame(rows, LOG_DTYPES)
