"""What a rollup row holds, as aggregate expressions over the executions.

The same expressions fill the rollup (``refresh_rollups``) and read the rows a reader takes
from the table (pending days, the partial days at a window's edges), so the two halves of an
answer are computed alike and add up exactly. Integer sums that could pass 64 bits are kept as
two sums, of each value's high and of its low 32 bits: both fit in 64 bits for up to 2**31 rows,
and ``(hi << 32) + lo`` is the exact sum (what :class:`~miyabi_analytics._db.exact.ExactSum`
does on SQLite, here on both databases so the halves can be summed again).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    FromClause,
    String,
    and_,
    case,
    cast,
    func,
    literal,
    select,
)

from miyabi_analytics._db.buckets import UtcBucket
from miyabi_analytics._db.exact import cents
from miyabi_analytics._db.expressions import write_order
from miyabi_analytics._db.schema import analytics, executions
from miyabi_analytics._db.summary import DurationMicros
from miyabi_analytics.vocabulary import AVERAGED_METRICS, SUMMED_METRICS, ExecutionStatus

__all__ = [
    "FAILED",
    "HALF",
    "MICROS",
    "TIMED",
    "analysed_source",
    "day_of_row",
    "day_of_start",
    "error_key",
    "high",
    "joined",
    "latest",
    "low",
    "on_days",
    "rollup_measures",
    "split",
]

HALF: Final = 32
_MASK: Final = (1 << HALF) - 1
FAILED: Final = ExecutionStatus.FAILED.value

MICROS: Final = DurationMicros(executions.c.started_at, executions.c.completed_at)
"""The execution's duration in whole microseconds (NULL unless both stamps are set)."""
TIMED: Final = executions.c.started_at.is_not(None) & executions.c.completed_at.is_not(None)
"""The executions with a duration."""

latest = analytics.alias("latest")
_candidate = analytics.alias("candidate")
_newest = (  # correlated on the execution: no plan can run it over the analytics table alone
    select(_candidate.c.id)
    .where(_candidate.c.execution_id == executions.c.id)
    .order_by(_candidate.c.created_at.desc(), write_order(_candidate).desc())
    .limit(1)
    .scalar_subquery()
)


def analysed_source(base: FromClause = executions, *, outer: bool = False) -> FromClause:
    """``base`` joined to each execution's latest analytics row (as the summary view takes it).

    The latest row (latest ``created_at``, then the last written: the view's rule, see
    :func:`~miyabi_analytics._db.summary.is_latest_analytics`) is found per joined row by a
    correlated ``ORDER BY ... LIMIT 1``, not the view's anti-join: the planner may run an
    anti-join by hashing every analytics row of the history, and this costs the rows joined.
    """
    on = and_(latest.c.execution_id == executions.c.id, latest.c.id == _newest)
    return base.outerjoin(latest, on) if outer else base.join(latest, on)


def joined(base: FromClause = executions) -> FromClause:
    """``base`` with the latest analytics row where there is one (what a rollup row reads)."""
    return analysed_source(base, outer=True)


def high(value: ColumnElement[Any]) -> ColumnElement[int]:
    """The high 32 bits of an integer (an arithmetic shift: negatives too)."""
    return cast(value, BigInteger).op(">>")(literal(HALF, BigInteger, literal_execute=True))


def low(value: ColumnElement[Any]) -> ColumnElement[int]:
    """The low 32 bits of an integer, as a non-negative number."""
    return cast(value, BigInteger).op("&")(literal(_MASK, BigInteger, literal_execute=True))


def split(value: ColumnElement[Any], name: str) -> list[ColumnElement[Any]]:
    """``sum(high) AS <name>_hi, sum(low) AS <name>_lo``: an exact sum in two safe halves."""
    return [
        func.sum(high(value)).label(f"{name}_hi"),
        func.sum(low(value)).label(f"{name}_lo"),
    ]


def error_key() -> ColumnElement[Any]:
    """A failure's message; NULL for any other status (the rollup keeps only failures' apart)."""
    failed = literal(FAILED, String, literal_execute=True)  # one text in SELECT and GROUP BY
    return case((executions.c.status == failed, executions.c.error_message))


def rollup_measures() -> list[ColumnElement[Any]]:
    """Every measure column of ``agent_execution_rollups``, over :func:`joined` rows."""
    score = executions.c.quality_score
    out: list[ColumnElement[Any]] = [
        func.count().label("executions"),
        func.count(score).label("scored"),
        func.count(MICROS).label("timed"),
        func.count(latest.c.id).label("analysed"),
        func.sum(cast(score, BigInteger)).label("quality_sum"),
        func.sum(cast(score, BigInteger) * score).label("quality_sq_sum"),
        func.min(score).label("quality_min"),
        func.max(score).label("quality_max"),
        *split(MICROS, "micros"),
        func.min(MICROS).label("micros_min"),
        func.max(MICROS).label("micros_max"),
        func.min(executions.c.started_at).label("started_min"),
        func.max(executions.c.started_at).label("started_max"),
    ]
    for name in SUMMED_METRICS:
        out += split(latest.c[name], name)
    for name, scale in AVERAGED_METRICS.items():
        column = latest.c[name]
        value = cents(column) if scale == 100 else cast(column, BigInteger)
        out += [func.sum(value).label(f"{name}_total"), func.count(column).label(f"{name}_count")]
    return out


def day_of_start() -> ColumnElement[Any]:
    """The UTC day ``started_at`` falls on (midnight, as an aware timestamp)."""
    return UtcBucket(executions.c.started_at, "D")


def day_of_row() -> ColumnElement[Any]:
    """The UTC day a rollup keeps an execution under: its start's, or its creation's if none."""
    return UtcBucket(func.coalesce(executions.c.started_at, executions.c.created_at), "D")


def on_days(
    within: Callable[[ColumnElement[Any]], ColumnElement[bool]],
) -> list[ColumnElement[bool]]:
    """The executions a rollup keeps under some days (``within(column)``: on those days).

    Two conditions: the started ones by ``started_at``, the others by ``created_at``; each an
    index range, to be read apart (an ``OR`` of the two made PostgreSQL scan the whole table,
    25x at 2.5M rows).
    """
    started, created = executions.c.started_at, executions.c.created_at
    return [within(started), and_(started.is_(None), within(created))]
