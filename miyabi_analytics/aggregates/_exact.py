"""Floats made once, in Python, from the exact integers the database returns.

The database gives counts and exact integer sums (cents, microseconds, scores; see
:mod:`miyabi_analytics._db.exact`). Python's ``int / int`` is correctly rounded whatever the
size of the operands, so each mean, rate or percentile here is the double nearest to the exact
rational answer: the same bits on SQLite and PostgreSQL, and the same as
``float(fractions.Fraction(...))`` of the exact value.
"""

from __future__ import annotations

import math
from typing import Final

from miyabi_analytics.errors import AggregateOverflowError

__all__ = [
    "INT64_MAX",
    "INT64_MIN",
    "MICROS",
    "AggregateOverflowError",
    "checked_sum",
    "interpolated",
    "ratio",
]

INT64_MIN: Final = -(2**63)
INT64_MAX: Final = 2**63 - 1
MICROS: Final = 1_000_000
"""Microseconds in a second."""



def ratio(numerator: int | None, denominator: int) -> float:
    """``numerator / denominator`` correctly rounded; NaN without a numerator or denominator."""
    if numerator is None or denominator == 0:
        return math.nan
    return numerator / denominator


def interpolated(lo: int, hi: int, count: int, percent: int, scale: int) -> float:
    """The ``percent`` percentile of ``count`` sorted integers, divided by ``scale``.

    ``lo`` and ``hi`` are the values at 0-based positions ``floor(pos)`` and ``ceil(pos)``,
    ``pos = percent * (count - 1) / 100`` exactly; the result is
    ``(lo + (pos - floor(pos)) * (hi - lo)) / scale``, computed exactly and rounded once
    (``percentile_cont``'s linear interpolation, without its float arithmetic).
    """
    remainder = percent * (count - 1) % 100
    return (lo * 100 + remainder * (hi - lo)) / (100 * scale)


def checked_sum(column: str, values: list[int | None]) -> None:
    """Raise :class:`AggregateOverflowError` if any of ``values`` is outside the 64-bit range."""
    outside = [v for v in values if v is not None and not INT64_MIN <= v <= INT64_MAX]
    if outside:
        raise AggregateOverflowError(column, max(outside, key=lambda v: (abs(v), v)))
