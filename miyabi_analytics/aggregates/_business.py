"""Business metrics of the executions' latest analytics rows, summed and averaged exactly."""

from __future__ import annotations

from typing import Any, Final, Unpack

import pandas as pd
from sqlalchemy import BigInteger, Connection, Engine, cast, func

from miyabi_analytics._db.buckets import Freq
from miyabi_analytics._db.exact import cents
from miyabi_analytics._db.rollup.parts import analysed_source, high, latest, low
from miyabi_analytics.aggregates._exact import checked_sum, ratio
from miyabi_analytics.aggregates._rollup import Part, combined, joined_sum, rollup_keys
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
from miyabi_analytics.vocabulary import AVERAGED_METRICS, SUMMED_METRICS

__all__ = ["business_metrics", "business_metrics_with_unstarted"]

SUMMED: Final = SUMMED_METRICS
AVERAGED: Final = AVERAGED_METRICS  # name -> the integer scale its mean is computed at


def business_metrics(
    bind: Engine | Connection,
    *,
    by: ByArg = "agent_type",
    freq: Freq | None = "M",
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """Business metrics of the executions' latest analytics rows, summed or averaged per group.

    Columns: ``[period]``, ``<by>``, ``executions`` (rows that have analytics),
    ``sum_competitors_analyzed``, ``sum_market_size_usd``, ``sum_target_audience_size``,
    ``sum_estimated_revenue_usd``, ``sum_reach_estimate`` (``Int64``, exact; ``<NA>`` where no
    row of the group reported that metric), ``mean_growth_rate_percent``,
    ``mean_conversion_rate``, ``mean_engagement_score``, ``mean_roi_percent`` (``float64``: the
    exact mean of the stored values, correctly rounded; the rates are ``numeric(p, 2)``, summed
    as whole cents). Each execution counts once, with its latest analytics row (latest
    ``created_at``, then the last written, as in the summary view).

    Raises:
        AggregateOverflowError: A sum does not fit in 64 bits (the ``Int64`` column). The sums are
            exact on both databases, so the same data raises the same error on both.
    """
    keys = check_by(by)
    bucket = check_optional_freq(freq)
    return _business(bind, keys, bucket, SummaryFilters.of(filters, **filter_args), False)


def business_metrics_with_unstarted(
    bind: Engine | Connection,
    *,
    by: ByArg,
    freq: Freq | None,
    unstarted: bool,
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """:func:`business_metrics`; ``unstarted=True`` adds the never-started rows' ``NaT`` period.

    For the dashboard, whose revenue KPI (every row) and Business tab (by period) then come
    from one query: the latest-analytics join is the costly part of both.
    """
    keys = check_by(by)
    bucket = check_optional_freq(freq)
    return _business(bind, keys, bucket, SummaryFilters.of(filters, **filter_args), unstarted)


def _business(
    bind: Engine | Connection,
    keys: tuple[str, ...],
    bucket: Freq | None,
    where: SummaryFilters,
    unstarted: bool,
) -> pd.DataFrame:
    """The query and frame of both public functions, their arguments validated."""
    fetched = _fetch(bind, keys, bucket, where, unstarted)
    for name in SUMMED:
        checked_sum(f"sum_{name}", [row[f"sum_{name}"] for row in fetched])
    rows = [
        (
            *row["keys"],
            row["executions"],
            *(row[f"sum_{name}"] for name in SUMMED),
            *(
                ratio(row[f"total_{name}"], row[f"count_{name}"] * scale)
                for name, scale in AVERAGED.items()
            ),
        )
        for row in fetched
    ]
    dtypes = spec(
        keys,
        bucket,
        {
            "executions": "int64",
            **{f"sum_{name}": "Int64" for name in SUMMED},
            **{f"mean_{name}": "float64" for name in AVERAGED},
        },
    )
    return frame(rows, dtypes, key_names(keys, bucket))


def _fetch(
    bind: Engine | Connection,
    keys: tuple[str, ...],
    bucket: Freq | None,
    where: SummaryFilters,
    unstarted: bool,
) -> list[dict[str, Any]]:
    """Each group's exact sums: the rollup's settled days and the rows of the rest."""
    parts = [Part("executions", func.count(), _summed("analysed"))]
    for name in SUMMED:
        parts += [
            Part(f"{name}_{half}", func.sum(fn(latest.c[name])), _summed(f"{name}_{half}"))
            for half, fn in (("hi", high), ("lo", low))
        ]
    for name, scale in AVERAGED.items():
        column = latest.c[name]
        value = cents(column) if scale == 100 else cast(column, BigInteger)
        parts += [
            Part(f"total_{name}", func.sum(value), _summed(f"{name}_total")),
            Part(f"count_{name}", func.count(column), _summed(f"{name}_count")),
        ]
    stmt = combined(
        rollup_keys(keys, bucket),
        parts,
        where,
        count="executions",
        freq=bucket,
        raw_source=analysed_source,
        rolled_where=lambda t: [t.c.analysed > 0],
        unstarted=unstarted,
    )
    width = len(key_names(keys, bucket))
    out = []
    for row in fetch(bind, stmt):
        got = row._asdict()
        entry: dict[str, Any] = {"keys": row[:width], "executions": int(got["executions"])}
        for name in SUMMED:
            entry[f"sum_{name}"] = joined_sum(got[f"{name}_hi"], got[f"{name}_lo"])
        for name in AVERAGED:
            total, count = got[f"total_{name}"], got[f"count_{name}"]
            entry[f"total_{name}"] = None if total is None else int(total)
            entry[f"count_{name}"] = int(count or 0)
        out.append(entry)
    return out


def _summed(column: str) -> Any:
    """A rollup column summed (over a daily or a monthly rollup table)."""
    return lambda t: func.sum(t.c[column])
