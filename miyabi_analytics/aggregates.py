"""Aggregates of the executions, computed in the database (GROUP BY), small frames back.

Every function takes the filters of :func:`~miyabi_analytics.read_summary` (``repository_id``,
``user_id``, ``agent_types``, ``statuses``, ``since`` inclusive and ``until`` exclusive on
``started_at``) and a ``by``: one of ``agent_type``, ``agent_category``, ``repository_id``,
``user_id``, or a list of them (``None`` or ``[]``: one group over all rows). ``freq`` is ``None``
(no time bucket), ``"D"``, ``"W"`` (ISO weeks starting Monday) or ``"M"`` (calendar months);
buckets are in UTC, their start is the tz-aware ``period`` column, and rows without
``started_at`` drop out of bucketed aggregates.

Frames have fixed dtypes, also when empty: ``period`` ``datetime64[us, UTC]``; ``agent_type`` and
``agent_category`` the same categoricals as :func:`read_summary`; ``repository_id`` and ``user_id``
strings (a ``NaN`` ``user_id`` is the group of executions without a user); counts ``int64``;
rates, means and percentiles ``float64`` (``NaN`` where undefined); sums ``Int64`` (``<NA>`` where
no row of the group has that metric). Only groups that have rows appear. Rows are ordered by
``period``, then the ``by`` columns in the order given: ``agent_type`` in ``AGENT_TYPES`` order,
``agent_category`` in ``AGENT_CATEGORIES`` order, ids as text, a missing ``user_id`` last.

The answers are those of ``v_business_agent_summary``, but the SQL reads ``agent_executions``
(and, for :func:`business_metrics`, each execution's latest ``business_agent_analytics`` row)
directly with the view's definitions (see :mod:`miyabi_analytics._db.expressions`): going through
the view costs a join to the analytics per execution, 3-10x the time on 1M executions.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any, Final

import pandas as pd
from sqlalchemy import (
    BigInteger,
    ColumnElement,
    Connection,
    Engine,
    Float,
    FromClause,
    Integer,
    Select,
    case,
    cast,
    func,
    literal,
    select,
)

from miyabi_analytics._db.buckets import Freq, UtcBucket, check_freq
from miyabi_analytics._db.expressions import (
    DurationSeconds,
    agent_category_of,
    is_latest_analytics,
)
from miyabi_analytics._db.schema import analytics, executions
from miyabi_analytics._db.tx import begin
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import SummaryFilters
from miyabi_analytics.frames import AGENT_TYPE_DTYPE, CATEGORY_DTYPE, STR, UTC_TS, to_frame
from miyabi_analytics.records import ExecutionStatus

__all__ = [
    "BY_COLUMNS",
    "business_metrics",
    "business_metrics_with_unstarted",
    "duration_stats",
    "error_analysis",
    "quality_trend",
    "success_rates",
]

BY_COLUMNS: Final[Mapping[str, Any]] = {
    "agent_type": AGENT_TYPE_DTYPE,
    "agent_category": CATEGORY_DTYPE,
    "repository_id": STR,
    "user_id": STR,
}
"""The columns an aggregate can group by, with their dtypes."""

_SUMMED: Final = (
    "competitors_analyzed",
    "market_size_usd",
    "target_audience_size",
    "estimated_revenue_usd",
    "reach_estimate",
)
_AVERAGED: Final = ("growth_rate_percent", "conversion_rate", "engagement_score", "roi_percent")

_KEY_EXPRESSIONS: Final[Mapping[str, ColumnElement[Any]]] = {
    "agent_type": executions.c.agent_type,
    "agent_category": agent_category_of(executions.c.agent_type),
    "repository_id": executions.c.repository_id,
    "user_id": executions.c.user_id,
}

IdArg = uuid.UUID | str | Iterable[uuid.UUID | str] | None
AgentTypesArg = str | Iterable[str] | None
StatusesArg = ExecutionStatus | str | Iterable[ExecutionStatus | str] | None
TimeArg = datetime | str | None
ByArg = str | Sequence[str] | None


# -- shared pieces ----------------------------------------------------------------------------


def _check_by(by: object) -> tuple[str, ...]:
    names: list[object]
    if by is None:
        names = []
    elif isinstance(by, str):
        names = [by]
    elif isinstance(by, Iterable):
        names = list(by)
    else:
        names = [by]
    bad = [n for n in names if not isinstance(n, str) or n not in BY_COLUMNS]
    if bad:
        raise ValidationError("by", by, f"expected names from {', '.join(BY_COLUMNS)}")
    if len(set(names)) != len(names):
        raise ValidationError("by", by, "a column is named twice")
    return tuple(str(n) for n in names)


def _check_optional_freq(freq: object) -> Freq | None:
    return None if freq is None else check_freq(freq)


def _grouped(
    by: tuple[str, ...],
    freq: Freq | None,
    measures: Sequence[ColumnElement[Any]],
    filters: SummaryFilters,
    *where: ColumnElement[bool],
    source: FromClause = executions,
    unstarted: bool = False,
) -> Select[Any]:
    """``SELECT [period], <by>, <measures> FROM executions WHERE ... GROUP BY [period], <by>``.

    ``unstarted=True`` keeps the rows without ``started_at`` in a ``NULL`` period.
    """
    keys: list[ColumnElement[Any]] = [_KEY_EXPRESSIONS[name] for name in by]
    conditions = list(where)
    if freq is not None:
        keys.insert(0, UtcBucket(executions.c.started_at, freq))
        if not unstarted:
            conditions.append(executions.c.started_at.is_not(None))
    labelled = [key.label(name) for key, name in zip(keys, _key_names(by, freq), strict=True)]
    stmt = select(*labelled, *measures).select_from(source).where(*conditions)
    stmt = filters.apply(stmt, executions.c)
    # Without keys an aggregate returns one row even over no rows; only groups with rows appear.
    return stmt.group_by(*keys) if keys else stmt.having(func.count() > 0)


def _key_names(by: tuple[str, ...], freq: Freq | None) -> list[str]:
    return (["period"] if freq is not None else []) + list(by)


def _spec(by: tuple[str, ...], freq: Freq | None, measures: Mapping[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = {"period": UTC_TS} if freq is not None else {}
    spec.update((name, BY_COLUMNS[name]) for name in by)
    spec.update(measures)
    return spec


def _fetch(bind: Engine | Connection, stmt: Select[Any]) -> Sequence[Any]:
    with begin(bind) as conn:
        return conn.execute(stmt).all()


def _frame(
    rows: Sequence[Sequence[Any]], spec: Mapping[str, Any], order: list[str]
) -> pd.DataFrame:
    """``to_frame`` with non-null ``int64`` counts, sorted by ``order``."""
    counts = [name for name, dtype in spec.items() if dtype == "int64"]
    frame = to_frame(rows, {k: "Int64" if k in counts else v for k, v in spec.items()})
    frame = frame.astype(dict.fromkeys(counts, "int64"))
    if order and len(frame) > 1:
        frame = frame.sort_values(order, kind="stable", na_position="last", ignore_index=True)
    return frame


def _filters(**kwargs: Any) -> SummaryFilters:
    return SummaryFilters.build(**kwargs)


# -- the aggregates ---------------------------------------------------------------------------


def success_rates(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    freq: Freq | None = None,
    repository_id: IdArg = None,
    user_id: IdArg = None,
    agent_types: AgentTypesArg = None,
    statuses: StatusesArg = None,
    since: TimeArg = None,
    until: TimeArg = None,
) -> pd.DataFrame:
    """Executions, completions, failures and success rate per group (and period).

    Columns: ``[period]``, ``<by>``, ``executions`` (every row of the group, whatever its status),
    ``completed``, ``failed``, ``success_rate`` = completed / (completed + failed). Pending and
    running executions are not counted in the rate; it is ``NaN`` where a group has no finished
    execution. All of it is computed in SQL.
    """
    keys = _check_by(by)
    bucket = _check_optional_freq(freq)
    filters = _filters(
        repository_id=repository_id, user_id=user_id, agent_types=agent_types,
        statuses=statuses, since=since, until=until,
    )
    completed = func.count().filter(executions.c.status == ExecutionStatus.COMPLETED.value)
    failed = func.count().filter(executions.c.status == ExecutionStatus.FAILED.value)
    finished = completed + failed
    rate = case((finished > 0, cast(completed, Float) / finished))
    stmt = _grouped(
        keys,
        bucket,
        [
            func.count().label("executions"),
            completed.label("completed"),
            failed.label("failed"),
            cast(rate, Float).label("success_rate"),
        ],
        filters,
    )
    spec = _spec(
        keys,
        bucket,
        {"executions": "int64", "completed": "int64", "failed": "int64", "success_rate": "float64"},
    )
    return _frame(_fetch(bind, stmt), spec, _key_names(keys, bucket))


def quality_trend(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    freq: Freq | None = "D",
    repository_id: IdArg = None,
    user_id: IdArg = None,
    agent_types: AgentTypesArg = None,
    statuses: StatusesArg = None,
    since: TimeArg = None,
    until: TimeArg = None,
) -> pd.DataFrame:
    """Quality scores per period and group, over scored executions only.

    Columns: ``period``, ``<by>``, ``executions`` (the scored rows), ``mean_quality``
    (``float64``), ``min_quality``, ``max_quality`` (``int64``). ``freq=None`` gives one row per
    group and no ``period`` column.
    """
    keys = _check_by(by)
    bucket = _check_optional_freq(freq)
    filters = _filters(
        repository_id=repository_id, user_id=user_id, agent_types=agent_types,
        statuses=statuses, since=since, until=until,
    )
    score = executions.c.quality_score
    stmt = _grouped(
        keys,
        bucket,
        [
            func.count().label("executions"),
            cast(func.avg(score), Float).label("mean_quality"),
            func.min(score).label("min_quality"),
            func.max(score).label("max_quality"),
        ],
        filters,
        score.is_not(None),
    )
    spec = _spec(
        keys,
        bucket,
        {
            "executions": "int64",
            "mean_quality": "float64",
            "min_quality": "int64",
            "max_quality": "int64",
        },
    )
    return _frame(_fetch(bind, stmt), spec, _key_names(keys, bucket))


def duration_stats(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    repository_id: IdArg = None,
    user_id: IdArg = None,
    agent_types: AgentTypesArg = None,
    statuses: StatusesArg = None,
    since: TimeArg = None,
    until: TimeArg = None,
) -> pd.DataFrame:
    """Duration statistics in seconds per group, over executions with both timestamps.

    Columns: ``<by>``, ``executions`` (rows with a duration), ``mean_seconds``, ``p50_seconds``,
    ``p95_seconds``, ``max_seconds`` (``float64``). Durations are ``completed_at - started_at``,
    exact to the microsecond on both databases (as the view's ``duration_seconds``).

    Percentiles are ``percentile_cont``: with the group's ``n`` durations sorted ascending
    (0-based positions), ``pos = p * (n - 1)``, ``lo`` the value at ``floor(pos)``, ``hi`` the one
    at ``ceil(pos)``, the result is ``lo + (pos - floor(pos)) * (hi - lo)``. PostgreSQL runs its
    own ``percentile_cont(p) WITHIN GROUP (ORDER BY <duration>)``. SQLite has no percentile
    function, so the same is done in SQL with window functions: each row gets its 0-based
    ``ROW_NUMBER() - 1`` and the group's ``COUNT(*)`` over the group's partition ordered by
    duration; the outer ``GROUP BY`` picks the two neighbouring rows with conditional ``MAX``
    and interpolates with the same double arithmetic, so both databases give the same values.
    """
    keys = _check_by(by)
    filters = _filters(
        repository_id=repository_id, user_id=user_id, agent_types=agent_types,
        statuses=statuses, since=since, until=until,
    )
    spec = _spec(
        keys,
        None,
        {
            "executions": "int64",
            "mean_seconds": "float64",
            "p50_seconds": "float64",
            "p95_seconds": "float64",
            "max_seconds": "float64",
        },
    )
    with begin(bind) as conn:
        if conn.dialect.name == "postgresql":
            stmt = _pg_durations(keys, filters)
        else:
            stmt = _window_durations(keys, filters)
        rows = conn.execute(stmt).all()
    return _frame(rows, spec, list(keys))


_SECONDS: Final = DurationSeconds(executions.c.started_at, executions.c.completed_at)
_TIMED: Final = executions.c.started_at.is_not(None) & executions.c.completed_at.is_not(None)


def _timed(by: tuple[str, ...], filters: SummaryFilters) -> Any:
    """``(<by>, seconds)`` of the filtered rows with both timestamps, as a fenced subquery.

    ``OFFSET 0`` keeps PostgreSQL from pulling it up: the duration is then computed once per
    row (not once per aggregate), and the scan is planned apart from the grouping, so it is a
    sequential scan and a sort rather than a walk of the agent_type index in random heap
    order (2.1 s against 0.7 s on 1M executions). SQLite ignores it.
    """
    return (
        filters.apply(
            select(*(_KEY_EXPRESSIONS[name].label(name) for name in by), _SECONDS.label("seconds"))
            .where(_TIMED),
            executions.c,
        )
        .offset(0)
        .subquery("timed")
    )


def _pg_durations(by: tuple[str, ...], filters: SummaryFilters) -> Select[Any]:
    timed = _timed(by, filters)
    seconds = timed.c.seconds
    keys = [timed.c[name] for name in by]
    stmt = select(
        *keys,
        func.count().label("executions"),
        cast(func.avg(seconds), Float).label("mean_seconds"),
        func.percentile_cont(0.5).within_group(seconds).label("p50_seconds"),
        func.percentile_cont(0.95).within_group(seconds).label("p95_seconds"),
        func.max(seconds).label("max_seconds"),
    )
    return stmt.group_by(*keys) if keys else stmt.having(func.count() > 0)


def _window_durations(by: tuple[str, ...], filters: SummaryFilters) -> Select[Any]:
    timed = _timed(by, filters)  # the duration is computed once per row, then ranked
    partition = [timed.c[name] for name in by] or None
    ranked = select(
        *(timed.c[name] for name in by),
        timed.c.seconds,
        (func.row_number().over(partition_by=partition, order_by=timed.c.seconds) - 1).label(
            "pos"
        ),
        func.count().over(partition_by=partition).label("n"),
    ).subquery("ranked")

    def percentile(p: float) -> ColumnElement[float]:
        # Per row (n is constant within a partition): which positions are the neighbours.
        row_pos = literal(p, Float) * (ranked.c.n - 1)
        row_lo = cast(row_pos, Integer)  # truncation is floor: pos >= 0
        row_hi = row_lo + case((row_pos > row_lo, 1), else_=0)
        lo = func.max(case((ranked.c.pos == row_lo, ranked.c.seconds)))
        hi = func.max(case((ranked.c.pos == row_hi, ranked.c.seconds)))
        # Per group: the fraction between them, as percentile_cont computes it.
        group_pos = literal(p, Float) * (func.max(ranked.c.n) - 1)
        fraction = group_pos - cast(group_pos, Integer)
        return cast(lo + fraction * (hi - lo), Float)

    keys = [ranked.c[name] for name in by]
    stmt = select(
        *keys,
        func.count().label("executions"),
        cast(func.avg(ranked.c.seconds), Float).label("mean_seconds"),
        percentile(0.5).label("p50_seconds"),
        percentile(0.95).label("p95_seconds"),
        func.max(ranked.c.seconds).label("max_seconds"),
    )
    return stmt.group_by(*keys) if keys else stmt.having(func.count() > 0)


def business_metrics(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    freq: Freq | None = "M",
    repository_id: IdArg = None,
    user_id: IdArg = None,
    agent_types: AgentTypesArg = None,
    statuses: StatusesArg = None,
    since: TimeArg = None,
    until: TimeArg = None,
) -> pd.DataFrame:
    """Business metrics of the executions' latest analytics rows, summed or averaged per group.

    Columns: ``[period]``, ``<by>``, ``executions`` (rows that have analytics),
    ``sum_competitors_analyzed``, ``sum_market_size_usd``, ``sum_target_audience_size``,
    ``sum_estimated_revenue_usd``, ``sum_reach_estimate`` (``Int64``, exact; ``<NA>`` where no
    row of the group reported that metric), ``mean_growth_rate_percent``,
    ``mean_conversion_rate``, ``mean_engagement_score``, ``mean_roi_percent`` (``float64``).
    Each execution counts once, with its latest analytics row (latest ``created_at``, then the
    last written, as in the summary view). A sum beyond the ``bigint`` range fails in the
    database on both dialects.
    """
    return business_metrics_with_unstarted(
        bind, by=by, freq=freq, unstarted=False, repository_id=repository_id, user_id=user_id,
        agent_types=agent_types, statuses=statuses, since=since, until=until,
    )


def business_metrics_with_unstarted(
    bind: Engine | Connection,
    *,
    by: ByArg,
    freq: Freq | None,
    unstarted: bool,
    **filter_args: Any,
) -> pd.DataFrame:
    """:func:`business_metrics`; ``unstarted=True`` adds the never-started rows' ``NaT`` period.

    For the dashboard, whose revenue KPI (every row) and Business tab (by period) then come
    from one query: the latest-analytics join is the costly part of both.
    """
    keys = _check_by(by)
    bucket = _check_optional_freq(freq)
    filters = _filters(**filter_args)
    latest, newer = analytics.alias("latest"), analytics.alias("newer")
    source = executions.join(latest, latest.c.execution_id == executions.c.id)
    measures: list[ColumnElement[Any]] = [func.count().label("executions")]
    measures += [
        cast(func.sum(latest.c[name]), BigInteger).label(f"sum_{name}") for name in _SUMMED
    ]
    measures += [
        cast(func.avg(latest.c[name]), Float).label(f"mean_{name}") for name in _AVERAGED
    ]
    stmt = _grouped(
        keys,
        bucket,
        measures,
        filters,
        is_latest_analytics(latest, newer),
        source=source,
        unstarted=unstarted,
    )
    spec = _spec(
        keys,
        bucket,
        {
            "executions": "int64",
            **{f"sum_{name}": "Int64" for name in _SUMMED},
            **{f"mean_{name}": "float64" for name in _AVERAGED},
        },
    )
    return _frame(_fetch(bind, stmt), spec, _key_names(keys, bucket))


ERROR_DTYPES: Final[Mapping[str, Any]] = {
    "error_message": STR,
    "failures": "int64",
    "agent_types": STR,
    "first_seen": UTC_TS,
    "last_seen": UTC_TS,
}


def error_analysis(
    bind: Engine | Connection,
    *,
    repository_id: IdArg = None,
    user_id: IdArg = None,
    agent_types: AgentTypesArg = None,
    statuses: StatusesArg = None,
    since: TimeArg = None,
    until: TimeArg = None,
) -> pd.DataFrame:
    """Failed executions grouped by error message, most frequent first.

    Columns: ``error_message`` (``NaN`` for failures without a message), ``failures``,
    ``agent_types`` (the distinct agent types that failed with it, sorted, joined by ``", "``),
    ``first_seen``, ``last_seen`` (min / max ``started_at``; ``NaT`` if none of them started).
    Ties in ``failures`` are ordered by ``error_message`` (code point order).

    The database groups by (error message, agent type), at most 15 rows per message; the
    per-message totals and the joined agent types are folded from that small result.
    """
    filters = _filters(
        repository_id=repository_id, user_id=user_id, agent_types=agent_types,
        statuses=statuses, since=since, until=until,
    )
    message, agent_type = executions.c.error_message, executions.c.agent_type
    stmt = filters.apply(
        select(
            message,
            agent_type,
            func.count().label("failures"),
            func.min(executions.c.started_at).label("first_seen"),
            func.max(executions.c.started_at).label("last_seen"),
        ).where(executions.c.status == ExecutionStatus.FAILED.value),
        executions.c,
    ).group_by(message, agent_type)

    folded: dict[str | None, tuple[int, set[str], datetime | None, datetime | None]] = {}
    for row in _fetch(bind, stmt):
        count, types, first, last = folded.get(row.error_message, (0, set(), None, None))
        types.add(row.agent_type)
        folded[row.error_message] = (
            count + row.failures,
            types,
            _earliest(first, row.first_seen),
            _latest(last, row.last_seen),
        )
    rows = [
        (msg, count, ", ".join(sorted(types)), first, last)
        for msg, (count, types, first, last) in folded.items()
    ]
    rows.sort(key=lambda r: (-r[1], r[0] is None, r[0] or ""))
    return _frame(rows, ERROR_DTYPES, [])


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)
