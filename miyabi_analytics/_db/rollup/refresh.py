"""Recompute the pending days' rollups, a few days per transaction, safely beside live writers.

Each step is one transaction that takes up to ``chunk`` pending days (oldest first), deletes
their rollup rows, inserts them again from the executions, sums their months and years again
(and moves the all-time duration histogram by the months' change), and deletes the marks it
read.
Only marks that existed when the refresh began are taken, so a fleet that keeps writing cannot
keep a refresh running forever: what it writes meanwhile waits for the next run.

PostgreSQL: the step runs at REPEATABLE READ after ``LOCK TABLE ... IN SHARE ROW EXCLUSIVE
MODE`` on the rollup (a lock only another refresh takes: writers and readers never wait). The
lock comes before the snapshot, so a second refresh starts from the first one's result. The
rollup rows, the rows they are computed from and the marks deleted all come from that one
snapshot: a mark a writer adds after it is not seen, not deleted, and its day stays pending.
SQLite: the step holds the write lock (``BEGIN IMMEDIATE``), so no writer interleaves.

A refresh killed at any point loses at most its current step (rolled back; its marks stay).
Running it twice does nothing the second time. A session scoped to some repositories (row-level
security) would see only their rows: it is refused.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import MAXYEAR, UTC, date, datetime, timedelta
from typing import Any, Final

from sqlalchemy import (
    ColumnElement,
    Connection,
    Engine,
    FromClause,
    Table,
    and_,
    delete,
    func,
    insert,
    literal,
    literal_column,
    or_,
    select,
    text,
    true,
    update,
)
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rollup.parts import (
    MICROS,
    day_of_row,
    day_of_start,
    error_key,
    joined,
    on_days,
    rollup_measures,
)
from miyabi_analytics._db.rules.defaults import now_sql
from miyabi_analytics._db.schema import (
    executions,
    monthly_rollups,
    rollup_durations,
    rollup_pending,
    rollup_state,
    rollups,
    yearly_rollups,
)
from miyabi_analytics._db.schema import (
    monthly_rollup_durations as monthly_durations,
)
from miyabi_analytics._db.schema import (
    total_rollup_durations as total_durations,
)
from miyabi_analytics._db.scope import session_scope
from miyabi_analytics._db.sketch import bucket_key
from miyabi_analytics._db.tx import begin
from miyabi_analytics._db.types import UtcDateTime
from miyabi_analytics.errors import ValidationError

__all__ = ["CHUNK_DAYS", "Refreshed", "refresh"]

CHUNK_DAYS: Final = 31
"""Days recomputed per transaction: a month of a busy fleet, seconds of work."""


@dataclass(frozen=True, slots=True)
class Refreshed:
    """What one :func:`refresh` did."""

    days: int
    """Pending days recomputed."""
    remaining: int
    """Days still pending afterwards (marked while it ran)."""


def _step(conn: Connection, ceiling: int, chunk: int) -> int:
    """One transaction's work: recompute up to ``chunk`` days marked at or below ``ceiling``."""
    chosen = list(
        conn.execute(
            select(rollup_pending.c.day)
            .where(rollup_pending.c.id <= ceiling)
            .distinct()
            .order_by(rollup_pending.c.day)
            .limit(chunk)
        ).scalars()
    )
    if not chosen:
        return 0
    conn.execute(delete(rollups).where(rollups.c.day.in_(chosen)))
    conn.execute(delete(rollup_durations).where(rollup_durations.c.day.in_(chosen)))
    kind = [executions.c.agent_type, executions.c.repository_id, executions.c.status]
    is_started = executions.c.started_at.is_not(None)
    chosen_rows = _chosen_rows(conn, chosen)
    for source, where in chosen_rows:  # started, then never started
        rolled = (
            select(
                day_of_row().label("day"), *kind, error_key().label("error_message"),
                is_started.label("started"), *rollup_measures(),
            )
            .select_from(joined(source))
            .where(where)
            .group_by(day_of_row(), *kind, error_key(), is_started)
        )
        conn.execute(
            insert(rollups).from_select([c.name for c in rolled.selected_columns], rolled)
        )
    keys = [day_of_start().label("day"), *kind]
    bucket = bucket_key(MICROS)
    source, where = chosen_rows[0]  # (durations: started rows only)
    histogram = (
        select(*keys, bucket.label("bucket"), func.count().label("count"))
        .select_from(source)
        .where(where, MICROS.is_not(None))
        .group_by(*keys, bucket)
    )
    conn.execute(
        insert(rollup_durations).from_select(
            [c.name for c in histogram.selected_columns], histogram
        )
    )
    _months(conn, chosen)
    _years(conn, chosen)
    conn.execute(delete(rollup_pending).where(rollup_pending.c.day.in_(chosen)))
    _stamp(conn)
    return len(chosen)


def _chosen_rows(
    conn: Connection, chosen: list[datetime]
) -> list[tuple[FromClause, ColumnElement[bool]]]:
    """``(FROM, WHERE)`` of the chosen days' started executions, then of the never-started.

    PostgreSQL: the days as literal ranges, so the planner knows how many rows they hold
    (joined with the marks, the days were estimated blind, and it read every execution and
    its latest analytics before choosing the days: 20 s a step at 2.5M executions). SQLite:
    the join with the marks, whose bounds the triggers wrote (the last day of year 9999 has no
    next midnight Python can hold).
    """
    if not Dialect.of(conn).is_postgresql:
        days = (
            select(rollup_pending.c.day, rollup_pending.c.next_day)
            .where(rollup_pending.c.day.in_(chosen))
            .distinct()
            .subquery("days")
        )
        on_day = on_days(lambda at: and_(at >= days.c.day, at < days.c.next_day))
        return [(executions.join(days, on), true()) for on in on_day]

    def within(column: ColumnElement[Any]) -> ColumnElement[bool]:
        ranges = [
            column >= day if day.date() == date.max
            else and_(column >= day, column < day + timedelta(days=1))
            for day in chosen
        ]
        return or_(*ranges)

    return [(executions, where) for where in on_days(within)]


_ANALYSED: Final = (
    rollups, monthly_rollups, yearly_rollups, rollup_durations, monthly_durations,
    total_durations, rollup_pending,
)
"""Analysed after a refresh on PostgreSQL (a role that does not own them is skipped, warned)."""

_KEYS: Final = (
    "day", "agent_type", "repository_id", "status", "error_message", "started", "bucket"
)


def _merged(column: Any) -> Any:
    """A rollup column summed over days: counts and sums add, minima and maxima fold."""
    name: str = column.name
    merge = func.min if name.endswith("_min") else func.max if name.endswith("_max") else func.sum
    return merge(column).label(name)


def _keys_and_measures(table: Table) -> tuple[list[Any], list[Any]]:
    """A rollup table's key columns but its day, and its columns merged over a longer period."""
    keys = [table.c[name] for name in _KEYS[1:] if name in table.c]
    return keys, [_merged(c) for c in table.c if c.name not in _KEYS]


def _months(conn: Connection, chosen: list[datetime]) -> None:
    """Sum the months the chosen days fall in from their (just recomputed) days."""
    months = (
        select(rollup_pending.c.month, rollup_pending.c.next_month)
        .where(rollup_pending.c.day.in_(chosen))
        .distinct()
        .subquery("months")
    )
    in_durations = monthly_durations.c.day.in_(select(months.c.month))
    _add_to_total(conn, in_durations, -1)  # the months' old histograms, then their new ones
    for daily, monthly in ((rollups, monthly_rollups), (rollup_durations, monthly_durations)):
        keys, measures = _keys_and_measures(daily)
        conn.execute(delete(monthly).where(monthly.c.day.in_(select(months.c.month))))
        in_month = and_(daily.c.day >= months.c.month, daily.c.day < months.c.next_month)
        summed = (
            select(
                months.c.month.label("day"),
                *keys,
                *measures,
            )
            .select_from(daily.join(months, in_month))
            .group_by(months.c.month, *keys)
        )
        conn.execute(
            insert(monthly).from_select([c.name for c in summed.selected_columns], summed)
        )
    _add_to_total(conn, in_durations, 1)


_TOTAL_KEYS: Final = ("agent_type", "repository_id", "status", "bucket")


def _add_to_total(conn: Connection, which: ColumnElement[bool], sign: int) -> None:
    """Add (``sign`` 1) or take away (-1) the chosen months' histograms to the all-time one.

    An upsert per key and bucket (the table's primary key), so the table stays buckets times
    keys rows whatever the history's length. A bucket that empties keeps a zero row.
    """
    keys = [monthly_durations.c[name] for name in _TOTAL_KEYS]
    summed = func.sum(monthly_durations.c["count"])
    moved = select(*keys, (-summed if sign < 0 else summed).label("count")).where(which)
    upsert = (pg_insert if Dialect.of(conn).is_postgresql else sqlite_insert)(total_durations)
    stmt = upsert.from_select([*_TOTAL_KEYS, "count"], moved.group_by(*keys))
    conn.execute(stmt.on_conflict_do_update(
        index_elements=list(_TOTAL_KEYS),
        set_={"count": total_durations.c["count"] + stmt.excluded["count"]},
    ))


def _years(conn: Connection, chosen: list[datetime]) -> None:
    """Sum the years the chosen days fall in from their (just recomputed) months."""
    keys, measures = _keys_and_measures(monthly_rollups)
    for year in sorted({day.year for day in chosen}):
        start = datetime(year, 1, 1, tzinfo=UTC)
        end = datetime(year + 1, 1, 1, tzinfo=UTC) if year < MAXYEAR else None
        in_year = [monthly_rollups.c.day >= start]
        if end is not None:
            in_year.append(monthly_rollups.c.day < end)
        conn.execute(delete(yearly_rollups).where(yearly_rollups.c.day == start))
        summed = (
            select(
                literal(start, UtcDateTime()).label("day"),
                literal(end, UtcDateTime()).label("next_year"),
                *keys,
                *measures,
            )
            .where(*in_year)
            .group_by(*keys)
        )
        conn.execute(
            insert(yearly_rollups).from_select([c.name for c in summed.selected_columns], summed)
        )


def _stamp(conn: Connection) -> None:
    """Note the refresh's time in the state's one row (made again if someone deleted it)."""
    if conn.execute(update(rollup_state).values(refreshed_at=_now(conn))).rowcount == 0:
        conn.execute(insert(rollup_state).values(id=1, refreshed_at=_now(conn)))


def _now(conn: Connection) -> Any:
    """The database's clock, as its timestamps are stored (PostgreSQL: the transaction's start)."""
    return literal_column(now_sql(Dialect.of(conn)))


def refresh(engine: Engine, *, chunk: int = CHUNK_DAYS) -> Refreshed:
    """Recompute every day pending when called; see the module's docstring for the guarantees."""
    postgres = Dialect.of(engine).is_postgresql
    scope = session_scope(engine)
    if scope:
        raise ValidationError(
            "repository_ids", scope, "refresh_rollups needs an unscoped engine: "
            "a scoped session sees only its repositories' rows"
        )
    with begin(engine) as conn:
        ceiling = conn.execute(select(func.max(rollup_pending.c.id))).scalar()
    total_days = 0
    while ceiling is not None:
        with engine.connect() as conn:
            if postgres:
                conn = conn.execution_options(isolation_level="REPEATABLE READ")
            else:
                conn = conn.execution_options(miyabi_write=True)
            with conn.begin():
                if postgres:
                    conn.execute(text(f"LOCK TABLE {rollups.name} IN SHARE ROW EXCLUSIVE MODE"))
                days = _step(conn, ceiling, chunk)
        if days == 0:
            break
        total_days += days
    if postgres and total_days:  # fresh statistics: the plans over the rollups depend on them
        with begin(engine) as conn:
            conn.execute(text("ANALYZE " + ", ".join(t.name for t in _ANALYSED)))
    with begin(engine) as conn:
        remaining = conn.execute(
            select(func.count(func.distinct(rollup_pending.c.day)))
        ).scalar_one()
        if total_days == 0:  # nothing was pending: the rollup is as fresh as now
            _stamp(conn)
    return Refreshed(days=total_days, remaining=remaining)
