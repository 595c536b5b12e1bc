"""How executions ended: success rates, quality scores, and the errors of the failed ones."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any, Final, Unpack

import pandas as pd
from sqlalchemy import BigInteger, Connection, Engine, cast, func

from miyabi_analytics._db.buckets import Freq
from miyabi_analytics._db.schema import executions
from miyabi_analytics.aggregates._exact import ratio
from miyabi_analytics.aggregates._rollup import Key, Part, combined, rollup_keys
from miyabi_analytics.aggregates._shared import (
    ByArg,
    check_by,
    check_optional_freq,
    fetch,
    frame,
    key_names,
    spec,
)
from miyabi_analytics.filters import FilterArgs, SummaryFilters
from miyabi_analytics.frames import STR, UTC_TS
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["ERROR_DTYPES", "error_analysis", "quality_trend", "success_rates"]


def success_rates(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    freq: Freq | None = None,
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """Executions, completions, failures and success rate per group (and period).

    Columns: ``[period]``, ``<by>``, ``executions`` (every row of the group, whatever its status),
    ``completed``, ``failed``, ``success_rate`` = completed / (completed + failed). Pending and
    running executions are not counted in the rate; it is ``NaN`` where a group has no finished
    execution. The counts come from SQL; the rate is their correctly rounded quotient.
    """
    keys = check_by(by)
    bucket = check_optional_freq(freq)
    where = SummaryFilters.of(filters, **filter_args)
    status = executions.c.status
    parts = [Part("executions", func.count(), lambda t: func.sum(t.c.executions))]
    parts += [
        Part(name, func.count().filter(status == name), _executions_in(name))
        for name in (ExecutionStatus.COMPLETED.value, ExecutionStatus.FAILED.value)
    ]
    stmt = combined(rollup_keys(keys, bucket), parts, where, count="executions", freq=bucket)
    width = len(key_names(keys, bucket))
    rows = []
    for row in fetch(bind, stmt):
        done, failed = int(row.completed or 0), int(row.failed or 0)
        rows.append((*row[:width], int(row.executions), done, failed, ratio(done, done + failed)))
    dtypes = spec(
        keys,
        bucket,
        {"executions": "int64", "completed": "int64", "failed": "int64", "success_rate": "float64"},
    )
    return frame(rows, dtypes, key_names(keys, bucket))


def quality_trend(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    freq: Freq | None = "D",
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """Quality scores per period and group, over scored executions only.

    Columns: ``period``, ``<by>``, ``executions`` (the scored rows), ``mean_quality``
    (``float64``: the exact sum of the scores over their count, correctly rounded),
    ``min_quality``, ``max_quality`` (``int64``). ``freq=None`` gives one row per group and no
    ``period`` column.
    """
    keys = check_by(by)
    bucket = check_optional_freq(freq)
    where = SummaryFilters.of(filters, **filter_args)
    score = executions.c.quality_score
    parts = [
        Part("executions", func.count(), lambda t: func.sum(t.c.scored)),
        Part("total", func.sum(cast(score, BigInteger)), lambda t: func.sum(t.c.quality_sum)),
        Part("min_quality", func.min(score), lambda t: func.min(t.c.quality_min), func.min),
        Part("max_quality", func.max(score), lambda t: func.max(t.c.quality_max), func.max),
    ]
    stmt = combined(
        rollup_keys(keys, bucket), parts, where, count="executions", freq=bucket,
        raw_where=[score.is_not(None)], rolled_where=lambda t: [t.c.scored > 0],
    )
    width = len(key_names(keys, bucket))
    rows = [
        (*row[:width], int(row.executions), ratio(int(row.total), int(row.executions)),
         row.min_quality, row.max_quality)
        for row in fetch(bind, stmt)
    ]
    dtypes = spec(
        keys,
        bucket,
        {
            "executions": "int64",
            "mean_quality": "float64",
            "min_quality": "int64",
            "max_quality": "int64",
        },
    )
    return frame(rows, dtypes, key_names(keys, bucket))


def _executions_in(status: str) -> Any:
    """The rollup rows' executions of one status, summed."""
    return lambda t: func.sum(t.c.executions).filter(t.c.status == status)


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
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """Failed executions grouped by error message, most frequent first.

    Columns: ``error_message`` (``NaN`` for failures without a message), ``failures``,
    ``agent_types`` (the distinct agent types that failed with it, sorted, joined by ``", "``),
    ``first_seen``, ``last_seen`` (min / max ``started_at``; ``NaT`` if none of them started).
    Ties in ``failures`` are ordered by ``error_message`` (code point order).

    The database groups by (error message, agent type), at most 15 rows per message; the
    per-message totals and the joined agent types are folded from that small result.
    """
    where = SummaryFilters.of(filters, **filter_args)
    message, agent_type = executions.c.error_message, executions.c.agent_type
    failed = ExecutionStatus.FAILED.value
    started = executions.c.started_at
    stmt = combined(
        [
            Key("error_message", message, lambda t: t.c.error_message),
            Key("agent_type", agent_type, lambda t: t.c.agent_type),
        ],
        [
            Part("failures", func.count(), lambda t: func.sum(t.c.executions)),
            Part("first_seen", func.min(started), lambda t: func.min(t.c.started_min), func.min),
            Part("last_seen", func.max(started), lambda t: func.max(t.c.started_max), func.max),
        ],
        where,
        count="failures",
        freq=None,
        raw_where=[executions.c.status == failed],
        rolled_where=lambda t: [t.c.status == failed],
    )

    folded: dict[str | None, tuple[int, set[str], datetime | None, datetime | None]] = {}
    for row in fetch(bind, stmt):
        count, types, first, last = folded.get(row.error_message, (0, set(), None, None))
        types.add(row.agent_type)
        folded[row.error_message] = (
            count + int(row.failures),
            types,
            _earliest(first, row.first_seen),
            _latest(last, row.last_seen),
        )
    rows = [
        (msg, count, ", ".join(sorted(types)), first, last)
        for msg, (count, types, first, last) in folded.items()
    ]
    rows.sort(key=lambda r: (-r[1], r[0] is None, r[0] or ""))
    return frame(rows, ERROR_DTYPES, [])


def _earliest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else min(a, b)


def _latest(a: datetime | None, b: datetime | None) -> datetime | None:
    return b if a is None else a if b is None else max(a, b)
