"""Which days' rollups are out of date, marked by the database for every writer (revision 0011).

Any change that can move an aggregate of a UTC day (an execution inserted, deleted, or updated
in a column the rollups keep; an analytics row inserted, deleted or updated) adds that day (and,
for an update that moves a row, the day it left) to ``agent_execution_rollup_pending``. An
execution's day is that of ``started_at``, or of ``created_at`` while it has not started
(revision 0012: the rollups keep never-started executions under their creation day; revision
0011's triggers marked started days only). Readers
take pending days from the rows and every other day from the rollup, so an answer is exact
however stale the rollup is; ``refresh_rollups`` recomputes pending days and clears their marks.

PostgreSQL: inserts and deletes are marked by statement-level triggers over the statement's
rows (one call for a bulk write of any size, one mark per distinct day), updates by row-level
triggers whose ``WHEN`` skips every UPDATE that changes no kept column (heartbeats). Marks are
only ever appended, never merged with an existing one: a refresh deletes exactly the marks its
snapshot sees, and a writer whose mark joined an older one could then lose its change to a
refresh that read the day before that writer committed. The functions are ``SECURITY DEFINER``
with ``search_path`` pinned, as revision 0010's are, so the agents' role needs no grant.

SQLite (one writer at a time, so no such race): row-level triggers add a day only if it is not
marked yet. A mark holds its UTC day ``[day, next_day)`` and month ``[month, next_month)``, so
readers join on ranges (index scans) and never compute a bound. On PostgreSQL ``next_day`` is
``day + 24 hours``, never ``+ 1 day``, and the month is added to the UTC wall time: an interval
added to a ``timestamptz`` counts in the session's time zone (a day can be 23 or 25 hours).
"""

from __future__ import annotations

from typing import Final

from miyabi_analytics._db.dialect import Dialect

__all__ = [
    "KEPT_COLUMNS",
    "MARK_TRIGGERS",
    "PENDING",
    "backfill_marks_sql",
    "create_marks_ddl",
    "drop_marks_ddl",
]

EXECUTIONS: Final = "agent_executions"
ANALYTICS: Final = "business_agent_analytics"
PENDING: Final = "agent_execution_rollup_pending"

KEPT_COLUMNS: Final = (
    "started_at",
    "created_at",
    "completed_at",
    "status",
    "agent_type",
    "repository_id",
    "quality_score",
    "error_message",
)
"""The executions' columns a rollup reads: an UPDATE of any other (a heartbeat) marks nothing."""

_ANALYTICS_KEPT: Final = (
    "execution_id",
    "created_at",
    "competitors_analyzed",
    "market_size_usd",
    "growth_rate_percent",
    "conversion_rate",
    "target_audience_size",
    "estimated_revenue_usd",
    "engagement_score",
    "reach_estimate",
    "roi_percent",
)

# (table, event, PostgreSQL function) of each trigger; the trigger is named after the function.
_PG: Final = (
    (EXECUTIONS, "INSERT", "miyabi_rollup_mark_inserted"),
    (EXECUTIONS, "DELETE", "miyabi_rollup_mark_deleted"),
    (EXECUTIONS, "UPDATE", "miyabi_rollup_mark_moved"),
    (ANALYTICS, "INSERT", "miyabi_rollup_mark_analysed"),
    (ANALYTICS, "DELETE", "miyabi_rollup_mark_unanalysed"),
    (ANALYTICS, "UPDATE", "miyabi_rollup_mark_reanalysed"),
)
MARK_TRIGGERS: Final = tuple(name for _, _, name in _PG)
_MIDNIGHT: Final = "' 00:00:00.000000+00:00'"


def _day_of(row: str, *, unstarted: bool) -> str:
    """The timestamp whose UTC day holds ``row``'s execution (``row``: a prefix, ``NEW.``)."""
    return f"coalesce({row}started_at, {row}created_at)" if unstarted else f"{row}started_at"


def _pg_day(ts: str) -> str:
    return f"date_trunc('day', {ts}, 'UTC')"


def _sqlite_day(ts: str) -> str:
    return f"(substr({ts}, 1, 10) || {_MIDNIGHT})"


_AFTER_THE_LAST_DAY: Final = "'9999-12-31 24:00:00.000000+00:00'"
"""Sorts after every stored timestamp of 9999-12-31, whose next day SQLite's date() cannot
give (NULL): the bound is only ever compared in SQL, never read as a time."""


def _sqlite_next_day(ts: str) -> str:
    return f"coalesce(date(substr({ts}, 1, 10), '+1 day') || {_MIDNIGHT}, {_AFTER_THE_LAST_DAY})"


def _sqlite_month(ts: str) -> str:
    return f"(substr({ts}, 1, 7) || '-01' || {_MIDNIGHT})"


def _sqlite_next_month(ts: str) -> str:
    return (
        f"coalesce(date(substr({ts}, 1, 7) || '-01', '+1 month') || {_MIDNIGHT}, "
        f"{_AFTER_THE_LAST_DAY})"
    )


def _pg_bounds(day: str) -> str:
    """``day, next_day, month, next_month`` of a UTC midnight ``day`` (a timestamptz)."""
    month = f"date_trunc('month', {day}, 'UTC')"
    return (
        f"{day}, {day} + interval '24 hours', {month}, "
        f"(({month} AT TIME ZONE 'UTC') + interval '1 month') AT TIME ZONE 'UTC'"
    )


def _sqlite_bounds(ts: str) -> str:
    return (
        f"{_sqlite_day(ts)}, {_sqlite_next_day(ts)}, {_sqlite_month(ts)}, "
        f"{_sqlite_next_month(ts)}"
    )


_MARK_COLUMNS: Final = "day, next_day, month, next_month"


def _pg_mark_days(started: str, source: str) -> str:
    """Append one mark per distinct day of ``started`` over ``source`` (NULLs: unstarted, none)."""
    return (
        f"INSERT INTO {PENDING} ({_MARK_COLUMNS}) "  # noqa: S608 (DDL from module constants)
        f"SELECT {_pg_bounds('d')} FROM (SELECT DISTINCT {_pg_day(started)} AS d "
        f"FROM {source} WHERE {started} IS NOT NULL) AS days"
    )


def _changed(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"OLD.{c} IS DISTINCT FROM NEW.{c}" for c in columns)


def _sqlite_changed(columns: tuple[str, ...]) -> str:
    return " OR ".join(f"OLD.{c} IS NOT NEW.{c}" for c in columns)


def _pg_bodies(unstarted: bool) -> dict[str, str]:
    def day(row: str) -> str:
        return _day_of(row, unstarted=unstarted)

    of_execution = f"(SELECT {day('e.')} FROM {EXECUTIONS} e WHERE e.id = {{row}}.execution_id)"  # noqa: S608
    joined = f"rows_ r JOIN {EXECUTIONS} e ON e.id = r.execution_id"
    return {
        "miyabi_rollup_mark_inserted": _pg_mark_days(day(""), "new_rows"),
        "miyabi_rollup_mark_deleted": _pg_mark_days(day(""), "old_rows"),
        "miyabi_rollup_mark_moved": _pg_mark_days(
            "s", f"(VALUES ({day('OLD.')}), ({day('NEW.')})) AS v(s)"
        ),
        "miyabi_rollup_mark_analysed": _pg_mark_days(
            day("e."), joined.replace("rows_", "new_rows")
        ),
        "miyabi_rollup_mark_unanalysed": _pg_mark_days(
            day("e."), joined.replace("rows_", "old_rows")
        ),
        "miyabi_rollup_mark_reanalysed": _pg_mark_days(
            "s",
            f"(VALUES ({of_execution.format(row='OLD')}), ({of_execution.format(row='NEW')}))"
            " AS v(s)",
        ),
    }


def create_marks_ddl(dialect: Dialect, *, unstarted: bool = True) -> list[str]:
    """The triggers (and PostgreSQL functions) that mark the days a change touches.

    ``unstarted=False``: revision 0011's, which marked the days of started executions only.
    """
    return _pg_ddl(unstarted) if dialect.is_postgresql else _sqlite_ddl(unstarted)


def drop_marks_ddl(dialect: Dialect) -> list[str]:
    """The statements that remove what :func:`create_marks_ddl` made."""
    if dialect.is_postgresql:
        return [f"DROP TRIGGER IF EXISTS {name} ON {table}" for table, _, name in _PG] + [
            f"DROP FUNCTION IF EXISTS {name}()" for name in MARK_TRIGGERS
        ]
    return [f"DROP TRIGGER IF EXISTS {name}" for name in MARK_TRIGGERS]


def backfill_marks_sql(dialect: Dialect, *, only_unstarted: bool = False) -> str:
    """Mark every day that has executions: a new rollup is empty, so all of it is pending.

    ``only_unstarted``: the creation days of the executions that never started (revision 0012,
    whose rollups first hold them).
    """
    day = "created_at" if only_unstarted else "started_at"
    where = "started_at IS NULL" if only_unstarted else "started_at IS NOT NULL"
    if dialect.is_postgresql:
        source = (
            f"(SELECT created_at FROM {EXECUTIONS} WHERE {where}) AS unstarted"  # noqa: S608
            if only_unstarted
            else EXECUTIONS
        )
        return _pg_mark_days(day, source)
    return (
        f"INSERT INTO {PENDING} ({_MARK_COLUMNS}) "  # noqa: S608 (DDL from module constants)
        f"SELECT DISTINCT {_sqlite_bounds(day)} FROM {EXECUTIONS} WHERE {where}"
    )


def _pg_ddl(unstarted: bool) -> list[str]:
    bodies = _pg_bodies(unstarted)
    out = []
    for table, event, name in _PG:
        out.append(
            f"CREATE FUNCTION {name}() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER "
            f"AS $$ BEGIN {bodies[name]}; RETURN NULL; END $$"
        )
        out.append(
            f"DO $$ BEGIN EXECUTE format('ALTER FUNCTION {name}() SET search_path = %I, "
            f"pg_temp', current_schema()); END $$"
        )
        if event == "UPDATE":
            kept = _kept(unstarted) if table == EXECUTIONS else _ANALYTICS_KEPT
            timing = f"FOR EACH ROW WHEN ({_changed(kept)})"
        else:
            rows = "NEW TABLE AS new_rows" if event == "INSERT" else "OLD TABLE AS old_rows"
            timing = f"REFERENCING {rows} FOR EACH STATEMENT"
        out.append(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} {timing} EXECUTE FUNCTION {name}()"
        )
    return out


def _sqlite_mark(started: str) -> str:
    """Mark the day of ``started`` unless it is NULL or marked already."""
    day = _sqlite_day(started)
    return (
        f"INSERT INTO {PENDING} ({_MARK_COLUMNS}) "  # noqa: S608 (DDL from module constants)
        f"SELECT {_sqlite_bounds(started)} WHERE {started} IS NOT NULL "
        f"AND NOT EXISTS (SELECT 1 FROM {PENDING} WHERE day = {day});"
    )


def _kept(unstarted: bool) -> tuple[str, ...]:
    return KEPT_COLUMNS if unstarted else tuple(c for c in KEPT_COLUMNS if c != "created_at")


def _sqlite_ddl(unstarted: bool) -> list[str]:
    def day(row: str) -> str:
        return _day_of(row, unstarted=unstarted)

    def of_execution(row: str) -> str:
        return f"(SELECT {day('e.')} FROM {EXECUTIONS} e WHERE e.id = {row}.execution_id)"  # noqa: S608

    marks = {
        "miyabi_rollup_mark_inserted": ("", [_sqlite_mark(day("NEW."))]),
        "miyabi_rollup_mark_deleted": ("", [_sqlite_mark(day("OLD."))]),
        "miyabi_rollup_mark_moved": (
            f"WHEN {_sqlite_changed(_kept(unstarted))}",
            [_sqlite_mark(day("OLD.")), _sqlite_mark(day("NEW."))],
        ),
        "miyabi_rollup_mark_analysed": ("", [_sqlite_mark(of_execution("NEW"))]),
        "miyabi_rollup_mark_unanalysed": ("", [_sqlite_mark(of_execution("OLD"))]),
        "miyabi_rollup_mark_reanalysed": (
            f"WHEN {_sqlite_changed(_ANALYTICS_KEPT)}",
            [_sqlite_mark(of_execution("OLD")), _sqlite_mark(of_execution("NEW"))],
        ),
    }
    out = []
    for table, event, name in _PG:
        when, statements = marks[name]
        body = "\n    ".join(statements)
        out.append(
            f"CREATE TRIGGER {name} AFTER {event} ON {table} FOR EACH ROW {when}\n"
            f"BEGIN\n    {body}\nEND"
        )
    return out
