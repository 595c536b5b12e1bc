"""One aggregate answered from the rollups where they are settled and from the rows elsewhere.

A window ``[since, until)`` splits into whole UTC months, the whole UTC days around them, and
the partial days at its edges. All time (no bound) also counts the executions that never
started, which the rollups keep under their creation day (``started`` false; a window on
``started_at`` leaves them out of every branch). The statement is a ``UNION ALL`` of grouped
branches, summed (or min/max-ed) by the outer query:

- whole months none of whose days is pending: their monthly rollup rows (only when the answer
  is per month or not per period: a month row cannot be split into days or weeks);
- the other whole days that are not pending: their daily rollup rows (the days around the
  months, and the settled days of months with a pending day);
- whole days pending (marked by the database since their last refresh): their executions;
- the edges: their executions, through the ``started_at`` index.

Each execution is counted in exactly one branch, and the pending marks are read in the same
statement, hence the same snapshot, as the rollups: the answer equals the row-level one however
stale the rollups are; staleness only costs time. All-time duration histograms read one level
more: the all-time histogram (kept equal to the sum of the months by each refresh), less the
months with a pending day (negated counts), in place of every settled month; other all-time
answers that are not per period read the yearly rollups of the years with no pending day, and
the settled months of the others. A window costs its
months' and days' rollup rows plus its edges and pending days, not the history outside it; all
time costs a row per settled year and key, plus the months of a year with a pending day (the
histograms: one set per key).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

from sqlalchemy import (
    ColumnElement,
    FromClause,
    Select,
    Table,
    and_,
    case,
    false,
    func,
    literal_column,
    or_,
    select,
    union_all,
)
from sqlalchemy.sql import functions

from miyabi_analytics._db.buckets import Freq, UtcBucket
from miyabi_analytics._db.rollup.parts import on_days
from miyabi_analytics._db.schema import (
    executions,
    monthly_rollup_durations,
    monthly_rollups,
    rollup_durations,
    rollup_pending,
    rollups,
    total_rollup_durations,
    yearly_rollups,
)
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

Rolled = Callable[[Table], ColumnElement[Any]]
"""An expression over a rollup table (daily or monthly: they have the same columns)."""


@dataclass(frozen=True, slots=True)
class Key:
    """A grouping key: its expression over the executions and over a rollup table."""

    name: str
    raw: ColumnElement[Any]
    rolled: Rolled


@dataclass(frozen=True, slots=True)
class Part:
    """A partial aggregate: over the executions, over a rollup table, and how partials combine."""

    name: str
    raw: ColumnElement[Any]
    rolled: Rolled
    merge: Callable[[ColumnElement[Any]], ColumnElement[Any]] = func.sum


def rollup_keys(by: Sequence[str], freq: Freq | None) -> list[Key]:
    """``[period], <by>`` over the executions and over a rollup table."""
    raw = executions.c
    out = []
    if freq is not None:
        out.append(Key("period", UtcBucket(raw.started_at, freq),
                       lambda t: UtcBucket(t.c.day, freq)))
    for name in by:
        if name == "agent_category":
            out.append(Key(name, agent_category_of(raw.agent_type),
                           lambda t: agent_category_of(t.c.agent_type)))
        else:
            out.append(Key(name, raw[name], _column(name)))
    return out


def _column(name: str) -> Rolled:
    def of(table: Table) -> ColumnElement[Any]:
        return table.c[name]

    return of


def rollup_can_answer(filters: SummaryFilters, by: Sequence[str]) -> bool:
    """The rollups key agent type, repository and status: not users."""
    return filters.user_ids is None and "user_id" not in by


def _midnight(at: datetime) -> datetime:
    return datetime.combine(at.astimezone(UTC).date(), time(), tzinfo=UTC)


def whole_days(filters: SummaryFilters) -> tuple[datetime | None, datetime | None]:
    """``[lo, hi)``: the whole UTC days inside the window (``None``: unbounded that side)."""
    lo = hi = None
    if filters.since is not None:
        lo = _midnight(filters.since)
        if lo < filters.since:
            if lo.date() == date.max:  # no whole day after it
                return lo, lo
            lo += timedelta(days=1)
    if filters.until is not None:
        hi = _midnight(filters.until)
    return lo, hi


def _whole_months(
    lo: datetime | None, hi: datetime | None
) -> tuple[datetime | None, datetime | None]:
    """``[lo_m, hi_m)``: the whole UTC months inside ``[lo, hi)``."""
    lo_m = hi_m = None
    if lo is not None:
        lo_m = lo.replace(day=1)
        if lo_m < lo:
            if (lo_m.year, lo_m.month) == (date.max.year, 12):  # no whole month after it
                return lo_m, lo_m
            lo_m = lo_m.replace(year=lo_m.year + lo_m.month // 12, month=lo_m.month % 12 + 1)
    if hi is not None:
        hi_m = hi.replace(day=1)
    return lo_m, hi_m


def joined_sum(hi: Any, lo: Any) -> int | None:
    """The exact sum from its summed halves (:func:`~.parts.split`); None over no values."""
    if hi is None:
        return None
    return (int(hi) << 32) + int(lo)


def _within(
    column: ColumnElement[Any], lo: datetime | None, hi: datetime | None
) -> list[ColumnElement[bool]]:
    out = []
    if lo is not None:
        out.append(column >= lo)
    if hi is not None:
        out.append(column < hi)
    return out


@dataclass(frozen=True, slots=True)
class _Query:
    keys: Sequence[Key]
    parts: Sequence[Part]
    untimed: SummaryFilters
    rolled_where: Callable[[Table], Sequence[ColumnElement[bool]]]

    def rolled(
        self, table: Table, source: FromClause, *where: ColumnElement[bool], less: bool = False
    ) -> Select[Any]:
        """The grouped rollup rows; ``less``: negated, to take them away from a total."""
        if less and not all(
            isinstance(part.merge(literal_column("0")), functions.sum) for part in self.parts
        ):
            raise ValueError("only sums can be taken away")
        stmt = (
            select(
                *(key.rolled(table).label(key.name) for key in self.keys),
                *((-part.rolled(table) if less else part.rolled(table)).label(part.name)
                  for part in self.parts),
            )
            .select_from(source)
            .where(*self.untimed.clauses(table.c), *self.rolled_where(table), *where)
        )
        return stmt.group_by(*(key.rolled(table) for key in self.keys)) if self.keys else stmt


def _by_years(query: _Query, pending_months: Select[Any]) -> list[Select[Any]]:
    """All time's whole months: settled years' rows, and the settled months of the other years.

    A year is stale while a pending mark falls in it; its months not pending are read instead.
    The years are those of the yearly rollup (a refresh keeps one for every month it keeps).
    """
    yearly, monthly = yearly_rollups, monthly_rollups
    years = select(yearly.c.day, yearly.c.next_year).distinct().subquery("years")
    mark = rollup_pending.c.month
    stale = (
        select(years.c.day, years.c.next_year)
        .select_from(years.join(rollup_pending, _in_year(mark, years.c)))
        .distinct()
        .subquery("stale_years")
    )
    return [
        query.rolled(yearly, yearly, yearly.c.day.not_in(select(stale.c.day))),
        query.rolled(
            monthly, monthly.join(stale, _in_year(monthly.c.day, stale.c)),
            monthly.c.day.not_in(pending_months),
        ),
    ]


def _in_year(at: ColumnElement[Any], year: Any) -> ColumnElement[bool]:
    """``at`` falls in the year ``[year.day, year.next_year)`` (no end after year 9999)."""
    return and_(at >= year.day, or_(year.next_year.is_(None), at < year.next_year))


def _rolled_branches(
    query: _Query, lo: datetime | None, hi: datetime | None, months: bool, histogram: bool,
    years: bool,
) -> list[Select[Any]]:
    """The rollups' branches: settled months, then the settled days not in them."""
    daily, monthly = (
        (rollup_durations, monthly_rollup_durations) if histogram else (rollups, monthly_rollups)
    )
    pending_days = select(rollup_pending.c.day)
    settled_day = daily.c.day.not_in(pending_days)
    if not months:
        return [query.rolled(daily, daily, *_within(daily.c.day, lo, hi), settled_day)]
    lo_m, hi_m = _whole_months(lo, hi)
    if lo_m is not None and hi_m is not None and lo_m >= hi_m:
        return [query.rolled(daily, daily, *_within(daily.c.day, lo, hi), settled_day)]
    pending_months = select(rollup_pending.c.month)
    if histogram and lo_m is None and hi_m is None:  # all time: the total, less stale months
        whole: list[Select[Any]] = [
            query.rolled(total_rollup_durations, total_rollup_durations),
            query.rolled(monthly, monthly, monthly.c.day.in_(pending_months), less=True),
        ]
    elif years and lo_m is None and hi_m is None:
        whole = _by_years(query, pending_months)
    else:
        whole = [
            query.rolled(
                monthly, monthly, *_within(monthly.c.day, lo_m, hi_m),
                monthly.c.day.not_in(pending_months),
            )
        ]
    outside: list[ColumnElement[bool]] = []
    if lo_m is not None:
        outside.append(_and(*_within(daily.c.day, lo, lo_m)))
    if hi_m is not None:
        outside.append(_and(*_within(daily.c.day, hi_m, hi)))
    unsettled = (
        select(rollup_pending.c.month, rollup_pending.c.next_month)
        .where(*_within(rollup_pending.c.month, lo_m, hi_m))
        .distinct()
        .subquery("unsettled_months")
    )
    in_unsettled = and_(daily.c.day >= unsettled.c.month, daily.c.day < unsettled.c.next_month)
    return [
        *whole,
        query.rolled(daily, daily, or_(false(), *outside), settled_day),
        query.rolled(daily, daily.join(unsettled, in_unsettled), settled_day),
    ]


def _on(at: ColumnElement[Any], day: Any) -> ColumnElement[bool]:
    """``at`` falls on the day ``[day.day, day.next_day)`` (a mark's bounds)."""
    return and_(at >= day.day, at < day.next_day)


def _and(*clauses: ColumnElement[bool]) -> ColumnElement[bool]:
    return and_(*clauses) if clauses else ~false()


def _started_only(
    keys: Sequence[Key], rolled_where: Callable[[Table], Sequence[ColumnElement[bool]]],
    roll_unstarted: bool,
) -> tuple[Sequence[Key], Callable[[Table], Sequence[ColumnElement[bool]]]]:
    """The rollup side without its never-started rows, or with them in a ``NULL`` period."""
    if not roll_unstarted:
        return keys, lambda table: [*rolled_where(table), table.c.started]

    def unless_unstarted(key: Key) -> Key:
        if key.name != "period":
            return key
        return Key(key.name, key.raw, lambda table: case((table.c.started, key.rolled(table))))

    return [unless_unstarted(key) for key in keys], rolled_where


def combined(
    keys: Sequence[Key],
    parts: Sequence[Part],
    filters: SummaryFilters,
    *,
    count: str,
    freq: Freq | None,
    raw_source: Callable[[FromClause], FromClause] = lambda base: base,
    raw_where: Sequence[ColumnElement[bool]] = (),
    rolled_where: Callable[[Table], Sequence[ColumnElement[bool]]] = lambda table: (),
    histogram: bool = False,
    unstarted: bool = False,
) -> Select[Any]:
    """``SELECT <keys>, merge(<parts>)`` over the branches (see the module docstring).

    ``count`` names the part that counts a group's rows: with no keys, an empty answer has no
    row (as a grouped one has no group). ``freq``: the period of the ``period`` key (monthly
    rollups serve ``None`` and ``"M"``). ``raw_source`` adds joins to the executions (the
    latest analytics); ``raw_where`` and ``rolled_where`` restrict each side alike.
    ``histogram``: read the duration histograms instead of the rollups. Where the rollups
    cannot answer (:func:`rollup_can_answer`: users), the one branch is the rows'. With a
    ``period`` key the executions that never started are left out, unless ``unstarted`` (they
    form a ``NULL`` period then).
    """
    lo, hi = whole_days(filters)
    started = executions.c.started_at
    if freq is not None and not unstarted:
        raw_where = [*raw_where, started.is_not(None)]
    # All time: the never-started rows are rolled up (under their creation day) and read so.
    roll_unstarted = lo is None and hi is None and (freq is None or unstarted)
    if not histogram:  # (histograms hold durations: started rows only)
        keys, rolled_where = _started_only(keys, rolled_where, roll_unstarted)

    def raw(source: FromClause, *where: ColumnElement[bool]) -> Select[Any]:
        stmt = select(
            *(key.raw.label(key.name) for key in keys),
            *(part.raw.label(part.name) for part in parts),
        ).select_from(raw_source(source))
        stmt = filters.apply(stmt.where(*raw_where, *where), executions.c)
        return stmt.group_by(*(key.raw for key in keys)) if keys else stmt

    no_whole_day = lo is not None and hi is not None and lo >= hi
    if no_whole_day or not rollup_can_answer(filters, [key.name for key in keys]):
        branches = [raw(executions)]  # all from the rows
    else:
        query = _Query(keys, parts, dataclasses.replace(filters, since=None, until=None),
                       rolled_where)
        pending = (
            select(rollup_pending.c.day, rollup_pending.c.next_day)
            .where(*_within(rollup_pending.c.day, lo, hi))
            .distinct()
            .subquery("pending_days")
        )
        started_on, unstarted_on = on_days(lambda at: _on(at, pending.c))
        edges: list[ColumnElement[bool]] = []
        if lo is not None:
            edges.append(started < lo)
        elif not roll_unstarted:
            edges.append(started.is_(None))
        if hi is not None:
            edges.append(started >= hi)
        branches = [
            *_rolled_branches(query, lo, hi, freq in (None, "M"), histogram, freq is None),
            raw(executions.join(pending, started_on)),
        ]
        if roll_unstarted:  # apart: each branch an index range (an OR scanned the table)
            branches.append(raw(executions.join(pending, unstarted_on)))
        if edges:
            branches.append(raw(executions, or_(*edges)))
    every = union_all(*branches).subquery("parts")
    outer = select(
        *(every.c[key.name] for key in keys),
        *(part.merge(every.c[part.name]).label(part.name) for part in parts),
    )
    if keys:
        return outer.group_by(*(every.c[key.name] for key in keys))
    return outer.having(func.coalesce(func.sum(every.c[count]), 0) > 0)
