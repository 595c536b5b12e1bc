"""UTC time buckets as one typed SQL construct, compiled per dialect.

``UtcBucket(column, freq)`` is the start of the day (``"D"``), ISO week (``"W"``, Monday) or
calendar month (``"M"``) that a UTC timestamp falls in, and reads back as an aware UTC
``datetime`` on both databases:

- PostgreSQL: ``date_trunc('day' | 'week' | 'month', column, 'UTC')`` (a ``timestamptz``;
  ``date_trunc``'s weeks are ISO weeks, starting on Monday).
- SQLite: string functions on the first ten characters (``YYYY-MM-DD``) of the fixed-width UTC
  text the column holds, never on the time part, so SQLite's millisecond rounding of fractional
  seconds cannot move ``23:59:59.9999`` into the next day. The result is the same fixed-width text
  :class:`~miyabi_analytics._db.types.UtcDateTime` parses:

  - day: ``substr(c, 1, 10) || ' 00:00:00.000000+00:00'``
  - week: ``date(substr(c, 1, 10), 'weekday 0', '-6 days') || ...``: ``weekday 0`` moves forward
    to the next Sunday, or stays on a Sunday; six days back is that week's Monday (a Monday
    moves to the Sunday six days on, and back to itself).
  - month: ``substr(c, 1, 7) || '-01 00:00:00.000000+00:00'``

The unit is spelled as a constant from a fixed table (never a bound value), so the expression is
textually the same in ``SELECT`` and ``GROUP BY``, which PostgreSQL requires to match them.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Final, Literal, get_args

from sqlalchemy import ColumnElement
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.sql.visitors import InternalTraversal, _TraverseInternalsType

from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.types import UtcDateTime
from miyabi_analytics.errors import ValidationError

__all__ = ["FREQS", "Freq", "UtcBucket", "check_freq"]

Freq = Literal["D", "W", "M"]
FREQS: Final[tuple[Freq, ...]] = get_args(Freq)

_PG_UNIT: Final[dict[Freq, str]] = {"D": "day", "W": "week", "M": "month"}
_SQLITE_MIDNIGHT: Final = "' 00:00:00.000000+00:00'"


def check_freq(freq: object, field: str = "freq") -> Freq:
    """``freq`` if it is one of ``"D"``, ``"W"``, ``"M"``; else :class:`ValidationError`."""
    for known in FREQS:
        if isinstance(freq, str) and freq == known:
            return known
    raise ValidationError(field, freq, "expected 'D' (day), 'W' (ISO week) or 'M' (month)")


class UtcBucket(FunctionElement[datetime]):
    """Start of the UTC day / ISO week / month of a timestamp column, as an aware datetime."""

    type = UtcDateTime()
    name = "utc_bucket"
    inherit_cache = True
    # freq is part of the cache key: a cached "D" statement must never serve a "W" one.
    _traverse_internals: _TraverseInternalsType = [  # noqa: RUF012 (SQLAlchemy's declaration)
        *FunctionElement._traverse_internals,
        ("freq", InternalTraversal.dp_string),
    ]

    def __init__(self, column: ColumnElement[datetime], freq: Freq) -> None:
        self.freq: Freq = check_freq(freq)
        super().__init__(column)

    @property
    def column(self) -> ColumnElement[Any]:
        """The bucketed timestamp expression."""
        (only,) = self.clauses.clauses
        return only


@compiles(UtcBucket)
def _unsupported(element: UtcBucket, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"UtcBucket is not implemented for {compiler.dialect.name}")


@compiles(UtcBucket, Dialect.POSTGRESQL)
def _pg_bucket(element: UtcBucket, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    return f"date_trunc('{_PG_UNIT[element.freq]}', {column}, 'UTC')"


@compiles(UtcBucket, Dialect.SQLITE)
def _sqlite_bucket(element: UtcBucket, compiler: SQLCompiler, **kw: Any) -> str:
    column = compiler.process(element.column, **kw)
    if element.freq == "D":
        day = f"substr({column}, 1, 10)"
    elif element.freq == "W":
        day = f"date(substr({column}, 1, 10), 'weekday 0', '-6 days')"
    else:
        day = f"(substr({column}, 1, 7) || '-01')"
    return f"({day} || {_SQLITE_MIDNIGHT})"
