"""Percentiles from a merged duration histogram (placeholder until the sketch module lands)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from miyabi_analytics._db.sketch import GAMMA

__all__ = ["quantiles", "representative"]


def representative(key: int) -> float:
    """The value (microseconds) a bucket stands for."""
    if key == 0:
        return 0.0
    value = 2 * GAMMA ** (abs(key) - 1) / (GAMMA + 1)
    return value if key > 0 else -value


def quantiles(counts: Mapping[int, int], percents: Sequence[int] = (50, 95)) -> tuple[float, ...]:
    """The ``percents`` of the histogram, in seconds, interpolated as the exact ones are."""
    ordered = sorted(counts.items())
    n = sum(c for _, c in ordered)

    def at(position: int) -> float:
        seen = 0
        for key, count in ordered:
            seen += count
            if position < seen:
                return representative(key)
        raise IndexError(position)

    out = []
    for p in percents:
        lo_pos, rem = divmod(p * (n - 1), 100)
        lo = at(lo_pos)
        hi = at(lo_pos + 1) if rem else lo
        out.append((lo + rem / 100 * (hi - lo)) / 1e6)
    return tuple(out)
