"""The logarithmic bucket of a duration, in SQL: what the rollups' duration histograms count.

A bucket ``k`` holds the values ``v`` with ``gamma**(k-2) < v <= gamma**(k-1)`` (``k >= 1``),
``gamma = (1 + ALPHA) / (1 - ALPHA)``; 0 is bucket 0 and a negative value the negated bucket of
its magnitude. Any value in a bucket is within ``ALPHA`` (relative) of the bucket's
representative (:mod:`miyabi_analytics.aggregates._sketch`), which makes the histogram a
mergeable quantile sketch (DDSketch's mapping): histograms of any days and groups add up.
"""

from __future__ import annotations

import math
from typing import Any, Final

from sqlalchemy import ColumnElement, Float, Integer, case, cast, func, literal

__all__ = ["ALPHA", "GAMMA", "LN_GAMMA", "bucket_key"]

ALPHA: Final = 0.01
"""The sketch's relative accuracy: 1%."""
GAMMA: Final = (1 + ALPHA) / (1 - ALPHA)
LN_GAMMA: Final = math.log(GAMMA)


def _magnitude_key(value: ColumnElement[Any]) -> ColumnElement[int]:
    ln_gamma = literal(LN_GAMMA, Float, literal_execute=True)
    return cast(func.ceil(func.ln(cast(value, Float)) / ln_gamma), Integer) + 1


def bucket_key(micros: ColumnElement[Any]) -> ColumnElement[int]:
    """The bucket of an integer duration in microseconds (NULL for NULL)."""
    return case(
        (micros == 0, 0),
        (micros > 0, _magnitude_key(micros)),
        else_=-_magnitude_key(func.abs(micros)),
    )
