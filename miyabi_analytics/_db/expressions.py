"""The summary view's computed columns as expressions on the base tables, for aggregates.

Aggregating over ``v_business_agent_summary`` makes both databases join every execution to its
latest analytics row even when no metric is asked for (PostgreSQL runs the view's ``LATERAL``
subquery per row; SQLite does not drop the join): 3-10x the cost of a ``GROUP BY`` on
``agent_executions`` (measured on 1M executions). The aggregates therefore read the tables and
compute what they need with the same definitions as the view (revision ``0001_initial``);
``tests/db/test_aggregates.py`` checks the two agree on both databases.

- :class:`DurationSeconds`: ``completed_at - started_at`` in seconds, exact to the microsecond.
  PostgreSQL: ``EXTRACT(EPOCH FROM ...)`` (an exact ``numeric``) cast to ``double precision``,
  the same double that ``date_part`` gives for spans under a day at half the cost;
  SQLite: whole seconds from ``strftime('%s')`` of the first 19 characters plus the six
  microsecond digits, as integers, divided once (``julianday`` would round to milliseconds).
- :func:`agent_category_of`: the category ``CASE`` with the constants inlined, so it is the same
  text in ``SELECT`` and ``GROUP BY``.
- :func:`write_order`: the order rows of ``business_agent_analytics`` and
  ``agent_execution_logs`` were inserted in (revision ``0007_write_order``).
- :func:`is_latest_analytics`: the analytics row that the view picks for its execution (latest
  ``created_at``, then last written), as an anti-join usable in a ``WHERE``.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import (
    BigInteger,
    ColumnClause,
    ColumnElement,
    Float,
    FromClause,
    String,
    and_,
    case,
    exists,
    literal,
    or_,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.schema import WRITE_ORDER
from miyabi_analytics.vocabulary import AGENT_TYPES, agent_category

__all__ = [
    "DurationSeconds",
    "WriteOrder",
    "agent_category_of",
    "is_latest_analytics",
    "write_order",
]


class DurationSeconds(FunctionElement[float]):
    """``completed - started`` in seconds (``NULL`` if either is), exact to the microsecond."""

    type = Float()
    name = "duration_seconds"
    inherit_cache = True

    def __init__(self, started: ColumnElement[Any], completed: ColumnElement[Any]) -> None:
        super().__init__(started, completed)


@compiles(DurationSeconds)
def _unsupported(element: DurationSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"DurationSeconds is not implemented for {compiler.dialect.name}")


def _operands(element: DurationSeconds, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    started, completed = element.clauses.clauses
    return compiler.process(started, **kw), compiler.process(completed, **kw)


@compiles(DurationSeconds, Dialect.POSTGRESQL)
def _pg_duration(element: DurationSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    started, completed = _operands(element, compiler, **kw)
    span = f"({completed} - {started})"
    # Under a day the interval is all microseconds, and date_part's double division of them is
    # the correctly rounded value, as the numeric EXTRACT's cast is; at a day or more date_part
    # adds days separately (two roundings), so the exact numeric path takes over.
    return (
        f"CASE WHEN {span} >= INTERVAL '0' AND {span} < INTERVAL '1 day' "
        f"THEN date_part('epoch', {span}) "
        f"ELSE CAST(EXTRACT(EPOCH FROM {span}) AS DOUBLE PRECISION) END"
    )


@compiles(DurationSeconds, Dialect.SQLITE)
def _sqlite_duration(element: DurationSeconds, compiler: SQLCompiler, **kw: Any) -> str:
    started, completed = _operands(element, compiler, **kw)

    def micros(column: str) -> str:
        return (
            f"(CAST(strftime('%s', substr({column}, 1, 19)) AS INTEGER) * 1000000 "
            f"+ CAST(substr({column}, 21, 6) AS INTEGER))"
        )

    return f"(({micros(completed)} - {micros(started)}) / 1000000.0)"


def _inline(value: str) -> ColumnElement[str]:
    return literal(value, String, literal_execute=True)


def agent_category_of(agent_type: ColumnElement[str]) -> ColumnElement[str]:
    """``CASE agent_type ... END``: the agent's category, ``NULL`` for an unknown type."""
    return case(
        *((agent_type == _inline(t), _inline(agent_category(t))) for t in AGENT_TYPES)
    )


class WriteOrder(ColumnClause[int]):
    """The write order of a row of ``source``: PostgreSQL's ``seq`` column, SQLite's ``rowid``.

    Both are assigned by the database as the row is inserted, greater than every row's before
    it, whoever writes (see :data:`~miyabi_analytics._db.schema.WRITE_ORDER`). Only the tables
    with an order column (and their aliases) have one. Label it where it is selected: the two
    databases name it differently.
    """

    inherit_cache = True

    def __init__(self, source: FromClause) -> None:
        super().__init__(WRITE_ORDER, BigInteger(), _selectable=source)


@compiles(WriteOrder, Dialect.SQLITE)
def _sqlite_write_order(element: WriteOrder, compiler: SQLCompiler, **kw: Any) -> str:
    # No INTEGER PRIMARY KEY aliases it, so an insert takes the largest rowid + 1; VACUUM and
    # table rebuilds copy rows in rowid order, so the order survives them.
    rowid: ColumnClause[int] = ColumnClause("rowid", BigInteger(), _selectable=element.table)
    return compiler.process(rowid, **kw)


def write_order(source: FromClause) -> ColumnElement[int]:
    """The order rows of ``source`` were inserted in (a table with an order column, or an alias)."""
    return WriteOrder(source)


def is_latest_analytics(row: FromClause, other: FromClause) -> ColumnElement[bool]:
    """True for the analytics ``row`` no ``other`` row of its execution supersedes.

    ``row`` and ``other`` are two aliases of ``business_agent_analytics``. The latest row is
    the one of the latest ``created_at``, and of those the last written.
    """
    newer = exists().where(
        other.c.execution_id == row.c.execution_id,
        or_(
            other.c.created_at > row.c.created_at,
            and_(
                other.c.created_at == row.c.created_at,
                write_order(other) > write_order(row),
            ),
        ),
    )
    return ~newer
