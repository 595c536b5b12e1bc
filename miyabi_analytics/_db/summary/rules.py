"""The summary row's computed columns as SQL expressions on the base tables, one rule each.

- :class:`DurationSeconds` (the view's ``duration_seconds``) and :class:`DurationMicros` (what
  the aggregates sum): ``completed_at - started_at``, the one span formula per dialect, in
  seconds (the double nearest the exact value) or in whole microseconds (exactly).
- :func:`agent_category_of`: the category ``CASE`` from :data:`~miyabi_analytics.vocabulary.
  CATEGORY_OF`, with the constants inlined, so it is the same text in ``SELECT`` and ``GROUP BY``;
  an agent type outside the 15 is ``"other"`` (:attr:`Shape.SUPERSET`) or NULL (before it).
- :class:`Shape`: which revision's summary row (the migrations create the view of their time).
- :func:`is_latest_analytics`: the analytics row the summary takes for its execution (latest
  ``created_at``, ties broken by :class:`Tie`), as an anti-join usable in a ``WHERE`` or ``ON``.

The reader's client-side twins of these rules are in :mod:`~miyabi_analytics._db.summary.arrow`.
"""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Final

from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Float,
    FromClause,
    String,
    and_,
    case,
    exists,
    literal,
    literal_column,
    or_,
)
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.expressions import write_order
from miyabi_analytics.vocabulary import CATEGORY_OF, OTHER_CATEGORY

__all__ = [
    "EXACT_MICROS",
    "DurationMicros",
    "DurationSeconds",
    "Shape",
    "Tie",
    "agent_category_of",
    "is_latest_analytics",
]

EXACT_MICROS: Final = 2**53
"""Below it (285.4 years) a count of microseconds is an exact double."""
_EXACT_YEARS: Final = 284
"""Timestamps fewer calendar years apart than this are less than :data:`EXACT_MICROS` apart."""


class _Span(FunctionElement[Any]):
    """``completed - started`` (``NULL`` if either is), exactly; the subclass says in what unit."""

    inherit_cache = True

    def __init__(self, started: ColumnElement[Any], completed: ColumnElement[Any]) -> None:
        super().__init__(started, completed)


class DurationMicros(_Span):
    """``completed - started`` in whole microseconds (``NULL`` if either is), exactly."""

    type = BigInteger()
    name = "duration_micros"
    inherit_cache = True


class DurationSeconds(_Span):
    """``completed - started`` in seconds: the double nearest the exact value (``NULL`` if open).

    A double of the exact microsecond count over a million, correctly rounded at any length.
    """

    type = Float()
    name = "duration_seconds"
    inherit_cache = True


@compiles(_Span)
def _unsupported(element: _Span, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"{type(element).__name__} is not implemented for {compiler.dialect.name}")


def _operands(element: _Span, compiler: SQLCompiler, **kw: Any) -> tuple[str, str]:
    started, completed = element.clauses.clauses
    return compiler.process(started, **kw), compiler.process(completed, **kw)


@compiles(_Span, Dialect.POSTGRESQL)
def _pg_span(element: _Span, compiler: SQLCompiler, **kw: Any) -> str:
    started, completed = _operands(element, compiler, **kw)
    span = f"({completed} - {started})"
    scale, kind = (" * 1000000", "BIGINT") if isinstance(element, DurationMicros) else ("", "FLOAT")
    # Under a day the interval is all microseconds, and date_part divides their count (an exact
    # double) by 1e6 once: the correctly rounded seconds, whose product with 1e6 is within 1e-5
    # of the integer, so the cast rounds to it. At a day or more date_part adds the days apart
    # (two roundings), so the exact numeric EXTRACT takes over, at about twice the cost.
    return (
        f"CASE WHEN {span} >= INTERVAL '0' AND {span} < INTERVAL '1 day' "
        f"THEN CAST(date_part('epoch', {span}){scale} AS {kind}) "
        f"ELSE CAST(EXTRACT(EPOCH FROM {span}){scale} AS {kind}) END"
    )


def _sqlite_micros(column: str) -> str:
    """A stored timestamp in microseconds since 1970, as an integer.

    Whole seconds of the fixed-width UTC text, then its six microsecond digits: exact. The
    seconds come from julianday() of the text without its fraction: SQLite counts whole
    milliseconds and divides once, so the day number is within half an ulp (at most 40 µs in
    year 9999) of the exact one, and the seconds rounded from it are exact. It parses about
    four times faster than strftime('%s'), which a whole-table duration read is made of.
    """
    return (
        f"(CAST(round((julianday(substr({column}, 1, 19)) - 2440587.5) * 86400) AS INTEGER) "
        f"* 1000000 + CAST(substr({column}, 21, 6) AS INTEGER))"
    )


@compiles(_Span, Dialect.SQLITE)
def _sqlite_span(element: _Span, compiler: SQLCompiler, **kw: Any) -> str:
    started, completed = _operands(element, compiler, **kw)
    micros = f"({_sqlite_micros(completed)} - {_sqlite_micros(started)})"
    if isinstance(element, DurationMicros):
        return micros
    # Less than 284 years apart the count is below 2**53, an exact double, and one division
    # rounds it correctly (the years are compared as text digits: no strftime). Longer spans
    # add the exact whole seconds to the rest's fraction, whose rounding error (< 2**-54) is
    # far from moving the sum across a rounding boundary there (a multiple of 1/1e6 is never
    # within 6e-11 of one unless on it). Integer division truncates: both parts keep the sign.
    years = (
        f"abs(CAST(substr({completed}, 1, 4) AS INTEGER) "
        f"- CAST(substr({started}, 1, 4) AS INTEGER))"
    )
    whole = f"({micros} / 1000000)"
    return (
        f"(CASE WHEN {years} < {_EXACT_YEARS} THEN {micros} / 1000000.0 "
        f"ELSE CAST({whole} AS REAL) "
        f"+ CAST({micros} - {whole} * 1000000 AS REAL) / 1000000.0 END)"
    )


def _inline(value: str) -> ColumnElement[str]:
    """A constant written into the SQL (the view's DDL has no parameters)."""
    return literal(value, String, literal_execute=True)


class Shape(StrEnum):
    """Which revision's summary row; the migrations pass their own, everything else the newest."""

    ORIGINAL = "original"
    """Revisions 0001 to 0008: our columns; an agent type outside the 15 has a NULL category."""
    SUPERSET = "superset"
    """Revision 0009 on: upstream's view columns appended, and the category ``"other"``."""


def agent_category_of(
    agent_type: ColumnElement[str], *, shape: Shape = Shape.SUPERSET
) -> ColumnElement[str]:
    """``CASE agent_type ... END``: the agent's category; an unknown type's depends on ``shape``.

    The fleet's other agents (``CoordinatorAgent``, ...) share the table: from revision 0009
    their category reads ``"other"``, and aggregates grouped by category have an "other" group.
    """
    other = _inline(OTHER_CATEGORY) if shape is Shape.SUPERSET else None
    return case(
        *(
            (agent_type == _inline(name), _inline(category))
            for name, category in CATEGORY_OF.items()
        ),
        else_=other,
    )


class Tie(StrEnum):
    """What orders analytics rows of one execution stored with one ``created_at``."""

    WRITE_ORDER = "write_order"
    """The order they were inserted in (revision 0007 on): the last written wins."""
    ID = "id"
    """The larger uuid (revisions before 0007, which had no write order)."""


def is_latest_analytics(
    row: FromClause, other: FromClause, *, tie: Tie = Tie.WRITE_ORDER
) -> ColumnElement[bool]:
    """True for the analytics ``row`` no ``other`` row of its execution supersedes.

    ``row`` and ``other`` are two aliases of ``business_agent_analytics``. The latest row is
    the one of the latest ``created_at``, and of those the last by ``tie``.
    """

    def key(source: FromClause) -> ColumnElement[Any]:
        return write_order(source) if tie is Tie.WRITE_ORDER else source.c.id

    # SELECT 1, not *: PostgreSQL stores a view's * as the columns there were, so the view
    # would depend on every column of the table (the write order's among them).
    newer = exists(literal_column("1")).where(
        other.c.execution_id == row.c.execution_id,
        or_(
            other.c.created_at > row.c.created_at,
            and_(other.c.created_at == row.c.created_at, key(other) > key(row)),
        ),
    )
    return ~newer
