"""Percentiles from a merged duration histogram, within 1% of the exact ones.

The rollups count durations (whole microseconds) per logarithmic bucket
(:func:`miyabi_analytics._db.sketch.bucket_key`, DDSketch's mapping): bucket ``k >= 1`` holds
``gamma**(k-2) < v <= gamma**(k-1)`` with ``gamma = (1 + ALPHA) / (1 - ALPHA)``, bucket 0 the
zeros, ``-k`` the negatives of bucket ``k``. Its representative ``2 * gamma**(k-1) / (gamma +
1)`` is within ``ALPHA`` of every value in it, relatively: at either end of the bucket the
ratio is ``2 / (gamma + 1)`` or ``2 * gamma / (gamma + 1)``, both ``ALPHA`` away from 1.

**The bound.** :func:`quantiles` uses the exact aggregate's rule (``pos = p * (n - 1) / 100``,
the values at ``floor(pos)`` and ``ceil(pos)`` interpolated linearly), with each of the two
values replaced by its bucket's representative. The ``i``-th smallest representative is the
representative of the ``i``-th smallest value (buckets are ordered as their values), so each
neighbour is within ``ALPHA * |value|``, and the interpolation, a weighted mean with weights
in [0, 1], is within ``ALPHA * ((1 - f) * |lo| + f * |hi|)`` of the exact percentile. When
``lo`` and ``hi`` have the same sign (always, for durations that do not run backwards) that
is ``ALPHA * |exact|``: **each p50/p95 is within 1% of the exact one, relatively**, plus
float rounding (below 1e-12 relative; ``tests/unit/test_sketch.py``). Zero is exact.

**The size.** Durations from 1 µs to 10 years (3.2e14 µs) span ``ln(3.2e14) / ln(gamma)`` =
1,681 buckets at most; a day of one agent in one repository fills a few dozen.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence

from miyabi_analytics._db.sketch import GAMMA, LN_GAMMA

__all__ = ["bucket_key_py", "quantiles", "representative"]

MICROS = 1_000_000


def bucket_key_py(micros: int) -> int:
    """:func:`~miyabi_analytics._db.sketch.bucket_key` in Python (what the SQL computes)."""
    if micros == 0:
        return 0
    key = math.ceil(math.log(abs(micros)) / LN_GAMMA) + 1
    return key if micros > 0 else -key


def representative(key: int) -> float:
    """The value (microseconds) a bucket stands for: within ALPHA of each of its values."""
    if key == 0:
        return 0.0
    value = 2 * GAMMA ** (abs(key) - 1) / (GAMMA + 1)
    return value if key > 0 else -value


def quantiles(counts: Mapping[int, int], percents: Sequence[int] = (50, 95)) -> tuple[float, ...]:
    """The ``percents`` of a histogram (bucket -> count), in seconds, as the exact rule does."""
    ordered = sorted(counts.items())
    n = sum(count for _, count in ordered)
    if n == 0:
        return tuple(math.nan for _ in percents)

    def at(position: int) -> float:
        seen = 0
        for key, count in ordered:
            seen += count
            if position < seen:
                return representative(key)
        raise IndexError(position)

    out = []
    for percent in percents:
        below, remainder = divmod(percent * (n - 1), 100)
        lo = at(below)
        hi = at(below + 1) if remainder else lo
        out.append((lo + remainder / 100 * (hi - lo)) / MICROS)
    return tuple(out)
