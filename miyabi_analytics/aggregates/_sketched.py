"""``duration_stats(exact=False)``: percentiles from the rollups' duration histograms.

Exact percentiles need every duration (the rows of the whole selection); the histograms of the
rollups (:mod:`miyabi_analytics._db.sketch`: logarithmic buckets, DDSketch's mapping) merge by
addition, so any selection's histogram is the sum of its settled months' and days' plus the
rows of its pending days and edges, at a cost that does not grow with the history. The count,
mean and maximum stay exact (from the rollups' exact sums); p50 and p95 are within
:data:`~miyabi_analytics._db.sketch.ALPHA` (1%) of the exact value, relatively
(:mod:`miyabi_analytics.aggregates._sketch`).
"""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from sqlalchemy import Connection, Engine, Select, func

from miyabi_analytics._db.rollup.parts import MICROS, TIMED, high, low
from miyabi_analytics._db.sketch import bucket_key
from miyabi_analytics._db.tx import snapshot
from miyabi_analytics.aggregates._exact import MICROS as MICROS_PER_SECOND
from miyabi_analytics.aggregates._exact import ratio
from miyabi_analytics.aggregates._rollup import Key, Part, combined, joined_sum, rollup_keys
from miyabi_analytics.aggregates._sketch import quantiles
from miyabi_analytics.filters import SummaryFilters

__all__ = ["histogram_statement", "sketched_rows"]


def histogram_statement(keys: tuple[str, ...], where: SummaryFilters) -> Select[Any]:
    """``(<keys>, bucket, n)``: the selection's duration histogram, rollups plus rows."""
    return combined(
        [*rollup_keys(keys, None), Key("bucket", bucket_key(MICROS), lambda t: t.c.bucket)],
        [Part("n", func.count(), lambda t: func.sum(t.c["count"]))],
        where,
        count="n",
        freq=None,
        raw_where=[TIMED],
        histogram=True,
    )


def sketched_rows(
    bind: Engine | Connection, keys: tuple[str, ...], where: SummaryFilters, percents: tuple[
        int, ...]
) -> list[tuple[Any, ...]]:
    """``(<keys>, executions, mean, *percentiles, max)`` per group, as ``duration_stats``'s."""
    group_keys = rollup_keys(keys, None)
    stats = combined(
        group_keys,
        [
            Part("executions", func.count(), lambda t: func.sum(t.c.timed)),
            Part("micros_hi", func.sum(high(MICROS)), lambda t: func.sum(t.c.micros_hi)),
            Part("micros_lo", func.sum(low(MICROS)), lambda t: func.sum(t.c.micros_lo)),
            Part("longest", func.max(MICROS), lambda t: func.max(t.c.micros_max), func.max),
        ],
        where,
        count="executions",
        freq=None,
        raw_where=[TIMED],
        rolled_where=lambda t: [t.c.timed > 0],
    )
    width = len(keys)
    with snapshot(bind, jit=False) as conn:  # the histogram and the counts agree
        summaries = conn.execute(stats).all()
        counts: dict[tuple[Any, ...], dict[int, int]] = defaultdict(dict)
        for row in conn.execute(histogram_statement(keys, where)):
            if row.n:  # (the all-time histogram keeps a bucket that emptied, at 0)
                counts[tuple(row[:width])][int(row.bucket)] = int(row.n)
    out = []
    for row in summaries:
        n = int(row.executions)
        total = joined_sum(row.micros_hi, row.micros_lo)
        found = quantiles(counts[tuple(row[:width])], percents)
        out.append((
            *row[:width], n, ratio(total, n * MICROS_PER_SECOND), *found,
            ratio(int(row.longest), MICROS_PER_SECOND),
        ))
    return out
