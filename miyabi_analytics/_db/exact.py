"""Integer SQL for the aggregates, so both databases hand back the same exact numbers.

Floating-point sums depend on the order rows are added in and on how each database rounds:
SQLite adds ``REAL`` values one by one in double precision, PostgreSQL averages ``numeric``
exactly and then rounds to 16 significant digits before the cast to ``double precision``, and
its ``double precision`` sums run in yet another order. The last bits of a mean then differ
between the two. So the aggregates ask the database only for integers, which both add exactly,
and divide once in Python (:mod:`miyabi_analytics.aggregates._exact`):

- :func:`cents`: a ``numeric(p, 2)`` value as whole cents, ``CAST(round(x * 100) AS BIGINT)``.
  PostgreSQL's ``numeric`` is exact already; SQLite holds the column as a ``REAL`` (33.33 is
  33.3299999...), whose product with 100 rounds to the right integer.
- :class:`~miyabi_analytics._db.summary.DurationMicros` (defined with the summary's other
  rules): ``completed - started`` in whole microseconds.
- :class:`ExactSum`: ``SUM`` of an integer expression that never overflows. PostgreSQL's
  ``sum(bigint)`` is a ``numeric``; SQLite's ``sum()`` raises "integer overflow" past 64 bits,
  so there the sum is taken of the high and the low 32 bits of each value apart (each half sum
  fits in 64 bits for up to 2**31 rows) and joined in Python. Either way the result is the exact
  Python ``int``; what is done when it does not fit a column is the caller's choice.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any, Final

from sqlalchemy import BigInteger, ColumnElement, cast, func, literal
from sqlalchemy.engine.interfaces import Dialect as SQLDialect
from sqlalchemy.exc import CompileError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement
from sqlalchemy.types import String, TypeDecorator

from miyabi_analytics._db.dialect import Dialect

__all__ = ["ExactInteger", "ExactSum", "cents"]

_HALF: Final = 32
_LOW_MASK: Final = (1 << _HALF) - 1


def cents(value: ColumnElement[Any]) -> ColumnElement[int]:
    """``CAST(round(value * 100) AS BIGINT)``: a two-decimal number as an exact integer."""
    hundred = literal(100, BigInteger, literal_execute=True)
    return cast(func.round(value * hundred), BigInteger)


class ExactInteger(TypeDecorator[int]):
    """The result of :class:`ExactSum`: PostgreSQL's ``numeric`` or SQLite's ``"hi lo"``."""

    impl = String
    cache_ok = True

    def process_result_value(self, value: Any, dialect: SQLDialect) -> int | None:
        if value is None:
            return None
        if isinstance(value, str):  # SQLite: "<sum of high halves> <sum of low halves>"
            high, low = value.split(" ")
            return (int(high) << _HALF) + int(low)
        if isinstance(value, Decimal) and value != value.to_integral_value():
            raise ValueError(f"an integer sum came back as {value}")
        return int(value)


class ExactSum(FunctionElement[int]):
    """``SUM(<integer expression>)`` as an exact Python ``int`` (``None`` over no values)."""

    type = ExactInteger()
    name = "exact_sum"
    inherit_cache = True

    def __init__(self, value: ColumnElement[Any]) -> None:
        super().__init__(value)


@compiles(ExactSum)
def _unsupported_sum(element: ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    raise CompileError(f"ExactSum is not implemented for {compiler.dialect.name}")


@compiles(ExactSum, Dialect.POSTGRESQL)
def _pg_sum(element: ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = element.clauses.clauses
    return f"sum({compiler.process(value, **kw)})"


@compiles(ExactSum, Dialect.SQLITE)
def _sqlite_sum(element: ExactSum, compiler: SQLCompiler, **kw: Any) -> str:
    (value,) = element.clauses.clauses
    v = compiler.process(value, **kw)
    # ">>" is an arithmetic shift in SQLite: high * 2**32 + low is the value, negatives too.
    return f"(sum(({v}) >> {_HALF}) || ' ' || sum(({v}) & {_LOW_MASK}))"
