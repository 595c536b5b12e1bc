"""One aggregate answered from the rollup where it is settled and from the rows elsewhere.

A window ``[since, until)`` splits into the whole UTC days inside it and the partial days at
its edges (plus, with no ``since``, the executions that never started). The statement is a
``UNION ALL`` of three grouped branches, summed (or min/max-ed) again by the outer query:

- whole days not pending: their rollup rows;
- whole days pending (marked by the database since their last refresh): their executions;
- the edges: their executions, through the ``started_at`` index.

Each execution is counted in exactly one branch, and the pending days are read in the same
statement, hence the same snapshot, as the rollup: the answer equals the row-level one however
stale the rollup is. A stale rollup only costs time (the pending days' rows are read).
The cost of a window is that of its days' rollup rows plus its edges and pending days: it does
not grow with the history outside it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    false,
    func,
    or_,
    select,
    union_all,
)

from miyabi_analytics._db.buckets import Freq, UtcBucket
from miyabi_analytics._db.schema import executions, rollup_pending, rollups
from miyabi_analytics._db.summary import agent_category_of
from miyabi_analytics.filters import SummaryFilters

__all__ = [
    "Key",
    "Part",
    "combined",
    "joined_sum",
    "rollup_can_answer",
    "rollup_keys",
    "whole_days",
]

Merge = Callable[[ColumnElement[Any]], ColumnElement[Any]]


@dataclass(frozen=True, slots=True)
class Key:
    """A grouping key: its expression over the executions and over the rollup."""

    name: str
    raw: ColumnElement[Any]
    rolled: ColumnElement[Any]


@dataclass(frozen=True, slots=True)
class Part:
    """A partial aggregate: over the executions, over the rollup, and how partials combine."""

    name: str
    raw: ColumnElement[Any]
    rolled: ColumnElement[Any]
    merge: Merge = func.sum


def rollup_keys(by: Sequence[str], freq: Freq | None, table: Table = rollups) -> list[Key]:
    """``[period], <by>`` over the executions and over ``table`` (a rollup table)."""
    raw = executions.c
    out = [Key("period", UtcBucket(raw.started_at, freq), UtcBucket(table.c.day, freq))] if (
        freq is not None
    ) else []
    for name in by:
        if name == "agent_category":
            out.append(
                Key(name, agent_category_of(raw.agent_type), agent_category_of(table.c.agent_type))
            )
        else:
            out.append(Key(name, raw[name], table.c[name]))
    return out


def rollup_can_answer(filters: SummaryFilters, by: Sequence[str]) -> bool:
    """The rollup keys agent type, repository and status: not users."""
    return filters.user_ids is None and "user_id" not in by


def _midnight(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date(), time(), tzinfo=UTC)


def whole_days(filters: SummaryFilters) -> tuple[datetime | None, datetime | None]:
    """``[lo, hi)``: the whole UTC days inside the window (``None``: unbounded that side)."""
    lo = hi = None
    if filters.since is not None:
        lo = _midnight(filters.since)
        if lo < filters.since:
            lo += timedelta(days=1)
    if filters.until is not None:
        hi = _midnight(filters.until)
    return lo, hi


def joined_sum(hi: Any, lo: Any) -> int | None:
    """The exact sum from its summed halves (:func:`~.parts.split`); None over no values."""
    if hi is None:
        return None
    return (int(hi) << 32) + int(lo)


def _day_range(column: ColumnElement[Any], lo: datetime | None, hi: datetime | None) -> list[
    ColumnElement[bool]
]:
    out = []
    if lo is not None:
        out.append(column >= lo)
    if hi is not None:
        out.append(column < hi)
    return out


def combined(
    keys: Sequence[Key],
    parts: Sequence[Part],
    filters: SummaryFilters,
    *,
    count: str,
    raw_source: Callable[[FromClause], FromClause] = lambda base: base,
    raw_where: Sequence[ColumnElement[bool]] = (),
    rolled_where: Sequence[ColumnElement[bool]] = (),
    table: Table = rollups,
    unstarted: bool = False,
) -> Select[Any]:
    """``SELECT <keys>, merge(<parts>)`` over the three branches (see the module docstring).

    ``count`` names the part that counts a group's rows: with no keys, an empty answer has no
    row (as a grouped one has no group). ``raw_source`` adds joins to the executions (the
    latest analytics); ``raw_where`` and ``rolled_where`` restrict each side alike. ``table``:
    the rollup table the keys and parts read (the rollup or its duration histogram). With a
    ``period`` key the executions that never started are left out, unless ``unstarted``
    (they form a ``NULL`` period then), as in :func:`~._shared.grouped`.
    """
    lo, hi = whole_days(filters)
    started = executions.c.started_at
    raw_keys = [key.raw.label(key.name) for key in keys]
    raw_parts = [part.raw.label(part.name) for part in parts]
    raw_group = [key.raw for key in keys]
    if any(key.name == "period" for key in keys) and not unstarted:
        raw_where = [*raw_where, started.is_not(None)]

    def raw(source: FromClause, *where: ColumnElement[bool]) -> Select[Any]:
        stmt = select(*raw_keys, *raw_parts).select_from(raw_source(source))
        stmt = filters.apply(stmt.where(*raw_where, *where), executions.c)
        return stmt.group_by(*raw_group) if raw_group else stmt

    if lo is not None and hi is not None and lo >= hi:  # no whole day: all from the rows
        branches = [raw(executions)]
    else:
        untimed = dataclasses.replace(filters, since=None, until=None)
        rolled = (
            select(
                *(key.rolled.label(key.name) for key in keys),
                *(part.rolled.label(part.name) for part in parts),
            )
            .where(
                *untimed.clauses(table.c),
                *_day_range(table.c.day, lo, hi),
                table.c.day.not_in(select(rollup_pending.c.day)),
                *rolled_where,
            )
        )
        if keys:
            rolled = rolled.group_by(*(key.rolled for key in keys))
        pending = (
            select(rollup_pending.c.day, rollup_pending.c.next_day)
            .where(*_day_range(rollup_pending.c.day, lo, hi))
            .distinct()
            .subquery("pending_days")
        )
        on_pending_day = and_(started >= pending.c.day, started < pending.c.next_day)
        edges: list[ColumnElement[bool]] = [started.is_(None) if lo is None else started < lo]
        if hi is not None:
            edges.append(started >= hi)
        branches = [
            rolled,
            raw(executions.join(pending, on_pending_day)),
            raw(executions, or_(false(), *edges)),
        ]
    every = union_all(*branches).subquery("parts")
    outer = select(
        *(every.c[key.name] for key in keys),
        *(part.merge(every.c[part.name]).label(part.name) for part in parts),
    )
    if keys:
        return outer.group_by(*(every.c[key.name] for key in keys))
    return outer.having(func.coalesce(func.sum(every.c[count]), 0) > 0)
