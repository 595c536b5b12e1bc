"""What every aggregate shares: the ``by`` keys, the grouped ``SELECT``, the typed frame."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Final

import pandas as pd
from sqlalchemy import ColumnElement, Connection, Engine, FromClause, Select, func, select

from miyabi_analytics._db.buckets import Freq, UtcBucket, check_freq
from miyabi_analytics._db.schema import executions
from miyabi_analytics._db.summary import agent_category_of
from miyabi_analytics._db.tx import begin
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import SUMMARY_DTYPES, UTC_TS, to_frame

__all__ = [
    "BY_COLUMNS",
    "ByArg",
    "check_by",
    "check_optional_freq",
    "fetch",
    "frame",
    "grouped",
    "key_expressions",
    "key_names",
    "spec",
]

BY_COLUMNS: Final[Mapping[str, Any]] = {
    name: SUMMARY_DTYPES[name]
    for name in ("agent_type", "agent_category", "repository_id", "user_id")
}
"""The columns an aggregate can group by, with their dtypes (read_summary's)."""

_KEY_EXPRESSIONS: Final[Mapping[str, ColumnElement[Any]]] = {
    "agent_type": executions.c.agent_type,
    "agent_category": agent_category_of(executions.c.agent_type),
    "repository_id": executions.c.repository_id,
    "user_id": executions.c.user_id,
}

ByArg = str | Sequence[str] | None


def check_by(by: object) -> tuple[str, ...]:
    """The ``by`` names as a tuple; :class:`ValidationError` for unknown or repeated ones."""
    names: list[object]
    if by is None:
        names = []
    elif isinstance(by, str):
        names = [by]
    elif isinstance(by, Iterable):
        names = list(by)
    else:
        names = [by]
    bad = [n for n in names if not isinstance(n, str) or n not in BY_COLUMNS]
    if bad:
        raise ValidationError("by", by, f"expected names from {', '.join(BY_COLUMNS)}")
    if len(set(names)) != len(names):
        raise ValidationError("by", by, "a column is named twice")
    return tuple(str(n) for n in names)


def check_optional_freq(freq: object) -> Freq | None:
    """``None``, or a valid ``freq`` (see :func:`~miyabi_analytics._db.buckets.check_freq`)."""
    return None if freq is None else check_freq(freq)


def key_expressions(by: tuple[str, ...]) -> list[ColumnElement[Any]]:
    """The SQL expression of each ``by`` name, on ``agent_executions``."""
    return [_KEY_EXPRESSIONS[name] for name in by]


def grouped(
    by: tuple[str, ...],
    freq: Freq | None,
    measures: Sequence[ColumnElement[Any]],
    filters: SummaryFilters,
    *where: ColumnElement[bool],
    source: FromClause = executions,
    unstarted: bool = False,
) -> Select[Any]:
    """``SELECT [period], <by>, <measures> FROM executions WHERE ... GROUP BY [period], <by>``.

    ``unstarted=True`` keeps the rows without ``started_at`` in a ``NULL`` period.
    """
    keys = key_expressions(by)
    conditions = list(where)
    if freq is not None:
        keys.insert(0, UtcBucket(executions.c.started_at, freq))
        if not unstarted:
            conditions.append(executions.c.started_at.is_not(None))
    labelled = [key.label(name) for key, name in zip(keys, key_names(by, freq), strict=True)]
    stmt = select(*labelled, *measures).select_from(source).where(*conditions)
    stmt = filters.apply(stmt, executions.c)
    # Without keys an aggregate returns one row even over no rows; only groups with rows appear.
    return stmt.group_by(*keys) if keys else stmt.having(func.count() > 0)


def key_names(by: tuple[str, ...], freq: Freq | None) -> list[str]:
    """``["period", *by]`` with a ``freq``, else ``list(by)``: the frame's key columns."""
    return (["period"] if freq is not None else []) + list(by)


def spec(by: tuple[str, ...], freq: Freq | None, measures: Mapping[str, Any]) -> dict[str, Any]:
    """The frame's dtypes: keys first, then ``measures``."""
    out: dict[str, Any] = {"period": UTC_TS} if freq is not None else {}
    out.update((name, BY_COLUMNS[name]) for name in by)
    out.update(measures)
    return out


def fetch(bind: Engine | Connection, stmt: Select[Any]) -> Sequence[Any]:
    """All rows of ``stmt``, in a transaction of their own (or a savepoint of the caller's)."""
    with begin(bind, jit=False) as conn:
        return conn.execute(stmt).all()


def frame(
    rows: Sequence[Sequence[Any]], dtypes: Mapping[str, Any], order: list[str]
) -> pd.DataFrame:
    """``to_frame`` with non-null ``int64`` counts, sorted by ``order``."""
    counts = [name for name, dtype in dtypes.items() if dtype == "int64"]
    out = to_frame(rows, {k: "Int64" if k in counts else v for k, v in dtypes.items()})
    out = out.astype(dict.fromkeys(counts, "int64"))
    if order and len(out) > 1:
        out = out.sort_values(order, kind="stable", na_position="last", ignore_index=True)
    return out
