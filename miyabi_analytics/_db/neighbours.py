"""Exact percentile neighbours on SQLite, which has neither a percentile function nor arrays.

``miyabi_neighbours(value)`` is an aggregate registered on the connection before use: it
collects a group's integers (as PostgreSQL's ``array_agg`` does), sorts them once, and returns
the values at the positions an interpolated percentile needs. Ranking every row with window
functions instead sorted the whole selection by its group and value, then grouped it again:
2.3x the time on 1M executions. The answer is the same integers: positions are found in integer
arithmetic, as :func:`positions` says, and returned as text (integers beyond 2**53 stay exact).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Final

from sqlalchemy import Connection

__all__ = ["NAME", "parse", "positions", "register"]

NAME: Final = "miyabi_neighbours"


def positions(percent: int, n: int) -> tuple[int, int]:
    """The 0-based positions ``floor(pos)`` and ``ceil(pos)``, ``pos = percent * (n - 1) / 100``."""
    scaled = percent * (n - 1)
    lo = scaled // 100
    return lo, lo + (1 if scaled % 100 else 0)


def _aggregate(percents: Sequence[int]) -> type:
    class Neighbours:
        def __init__(self) -> None:
            self.values: list[int] = []

        def step(self, value: int | None) -> None:
            if value is not None:
                self.values.append(value)

        def finalize(self) -> str | None:
            values = self.values
            if not values:
                return None
            values.sort()
            found = []
            for percent in percents:
                lo, hi = positions(percent, len(values))
                found += [values[lo], values[hi]]
            return " ".join(map(str, found))

    return Neighbours


def register(conn: Connection, percents: Sequence[int]) -> None:
    """Make ``miyabi_neighbours`` answer ``percents`` on this SQLite connection."""
    raw: Any = conn.connection.driver_connection
    raw.create_aggregate(NAME, 1, _aggregate(tuple(percents)))


def parse(text: str | None, percents: Sequence[int]) -> dict[str, int | None]:
    """``{"lo<p>": ..., "hi<p>": ...}`` from the aggregate's text (all None for no values)."""
    values: list[int | None] = [None for _ in range(2 * len(percents))]
    if text is not None:
        values = [int(v) for v in text.split()]
    out: dict[str, int | None] = {}
    for i, percent in enumerate(percents):
        out[f"lo{percent}"], out[f"hi{percent}"] = values[2 * i], values[2 * i + 1]
    return out
