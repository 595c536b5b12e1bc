"""How numbers read wherever a person sees them: dashboard tiles, figure hovers, the report.

One formatter per kind of number, so the dashboard and the report never show the same revenue
two ways (``$2,638,276,706`` on one, ``$2.6B`` on the other): money is compact, durations use
the largest unit that reads well, and a change of a percentage is in percentage points.
"""

from __future__ import annotations

import math
from typing import Final, Literal

__all__ = ["MISSING", "format_change", "format_duration", "format_usd"]

MISSING: Final = "n/a"
"""What a missing value (None, NaN, NA) reads as."""

_SUFFIXES: Final = ((1e12, "T"), (1e9, "B"), (1e6, "M"), (1e3, "k"))


def _finite(value: object) -> float | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        number = float(value)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def format_usd(value: object) -> str:
    """Compact US dollars: ``$950``, ``$12.5k``, ``$2.6B``, ``-$3.1M``; ``n/a`` if missing.

    One decimal above a thousand: a dashboard tile or a table cell has room for five
    characters, and the change against the previous period is shown next to it anyway.
    """
    number = _finite(value)
    if number is None:
        return MISSING
    sign = "-" if number < 0 else ""
    size = abs(number)
    for limit, suffix in _SUFFIXES:
        if round(size / limit, 1) >= 1:
            return f"{sign}${size / limit:,.1f}{suffix}"
    return f"{sign}${size:,.0f}"


def format_duration(seconds: object) -> str:
    """``250 ms``, ``12.3 s``, ``1 min 30 s``, ``2 h 5 min``, ``1 d 6 h``; ``n/a`` if missing."""
    number = _finite(seconds)
    if number is None:
        return MISSING
    if number < 1:
        return f"{number * 1000:.0f} ms"
    if number < 59.5:
        return f"{number:.3g} s"
    if number < 3570:
        minutes, rest = divmod(round(number), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if number < 86370:
        hours, rest = divmod(round(number / 60), 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days, rest = divmod(round(number / 3600), 24)
    return f"{days} d" + (f" {rest} h" if rest else "")


def format_change(
    now: object,
    before: object,
    kind: Literal["relative", "points", "percent_points", "difference"],
    *,
    digits: int = 1,
) -> str | None:
    """The change from ``before`` to ``now`` as a person reads it, or ``None`` if undefined.

    A difference of two percentages is in percentage points (``pp``), never ``%``: a success
    rate going from 90% to 93% rose 3 points, not 3 percent.

    Args:
        now: This period's value.
        before: The previous period's value.
        kind: ``relative`` for counts and money (``+12.3%``); ``points`` for rates held as
            fractions (0.90 -> 0.93 reads ``+3.0 pp``); ``percent_points`` for rates held in
            percent, like ``roi_percent`` (12.5 -> 14.0 reads ``+1.5 pp``); ``difference``
            for scores (``-0.5``).
        digits: Decimals shown.

    Returns:
        The signed text; ``None`` where a value is missing or, for ``relative``, ``before`` is 0.
    """
    current, previous = _finite(now), _finite(before)
    if current is None or previous is None:
        return None
    delta = current - previous
    if kind == "relative":
        return f"{delta / abs(previous):+.{digits}%}" if previous else None
    if kind == "points":
        return f"{delta * 100:+.{digits}f} pp"
    if kind == "percent_points":
        return f"{delta:+.{digits}f} pp"
    return f"{delta:+.{digits}f}"
