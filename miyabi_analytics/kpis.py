"""The headline KPIs, defined once for the dashboard's tiles, the report's table and the CLI.

Every KPI comes from the aggregates (computed in the database), never from rows: executions,
completed and failed ones, the success rate (completed / finished), the mean quality of the
scored executions, the median and 95th percentile duration, the estimated revenue (the sum over
the executions' latest analytics rows) and the mean ROI.

* :func:`totals` queries them for one set of filters (the report's ``totals()``);
* :func:`totals_of` computes them from aggregate frames a caller already holds, and
  :func:`totals_queries` names the queries it needs (the dashboard runs them side by side with
  its tabs' own, and reuses those where the numbers add up);
* :func:`kpi_table` gives them per group (the CLI's per-agent summary);
* :class:`Kpi` holds one of them against the previous period of equal length.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, fields
from typing import Any, Final, Unpack

import pandas as pd
from sqlalchemy import Connection, Engine

from miyabi_analytics import aggregates
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.filters import FilterArgs, SummaryFilters

__all__ = ["Kpi", "Query", "Totals", "kpi_table", "totals", "totals_of", "totals_queries"]

Query = tuple[Callable[..., pd.DataFrame], dict[str, Any]]
"""An aggregate function and its keyword arguments, run as ``function(bind, **arguments)``."""

_KEYS: Final = ("period", *aggregates.BY_COLUMNS)


@dataclass(frozen=True, slots=True)
class Totals:
    """The headline KPIs of one selection; ``None`` where undefined.

    A rate or mean over no rows is undefined, as are the durations where no execution has both
    timestamps, and the revenue and ROI where no execution reported them.
    """

    executions: int = 0
    completed: int = 0
    failed: int = 0
    success_rate: float | None = None
    mean_quality: float | None = None
    median_seconds: float | None = None
    p95_seconds: float | None = None
    revenue: float | None = None
    roi: float | None = None

    def as_dict(self) -> dict[str, float | None]:
        """``{name: value}`` of every KPI, in the order above."""
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass(frozen=True, slots=True)
class Kpi:
    """One KPI tile: the value for the selected period and for the previous one of equal length.

    ``value``/``previous`` are ``None`` where undefined (a rate or mean over no rows, or no
    previous period for an open-ended range).
    """

    key: str
    label: str
    value: float | None
    previous: float | None

    @property
    def change(self) -> float | None:
        """``value - previous``, or ``None``."""
        if self.value is None or self.previous is None:
            return None
        return self.value - self.previous

    @property
    def relative_change(self) -> float | None:
        """``change / previous``, or ``None`` (also when ``previous`` is 0)."""
        change = self.change
        if change is None or not self.previous:
            return None
        return change / abs(self.previous)


def _number(value: Any) -> float | None:
    """A float, or ``None`` for None, NA and NaN."""
    number = math.nan if value is None or value is pd.NA else float(value)
    return None if math.isnan(number) else number


def _overall(frame: pd.DataFrame) -> bool:
    """Whether ``frame`` is an aggregate over everything (``by=None``, no ``freq``)."""
    return len(frame) <= 1 and not set(_KEYS) & set(frame.columns)


def _first(name: str, frame: pd.DataFrame | None, column: str) -> float | None:
    """``column`` of an overall aggregate frame; ``None`` without rows (or without a frame)."""
    if frame is None:
        return None
    if not _overall(frame):
        raise ValidationError(name, list(frame.columns), "expected an aggregate with by=None")
    return _number(frame[column].iloc[0]) if len(frame) else None


def totals_queries(
    filters: SummaryFilters, *, prefix: str = "", durations: bool = True
) -> dict[str, Query]:
    """The aggregate queries :func:`totals_of` needs, keyed ``<prefix><argument name>``.

    Args:
        filters: The selection, validated once; every query gets the same object.
        prefix: Put before each key, to run them with other queries in one batch.
        durations: Also the durations (the dashboard shows none: one query less).
    """
    where = {"filters": filters}
    jobs: dict[str, Query] = {
        f"{prefix}success": (aggregates.success_rates, {"by": None, **where}),
        f"{prefix}quality": (aggregates.quality_trend, {"by": None, "freq": None, **where}),
        f"{prefix}business": (aggregates.business_metrics, {"by": None, "freq": None, **where}),
    }
    if durations:
        jobs[f"{prefix}durations"] = (aggregates.duration_stats, {"by": None, **where})
    return jobs


def totals_of(
    *,
    success: pd.DataFrame,
    quality: pd.DataFrame,
    business: pd.DataFrame | None = None,
    durations: pd.DataFrame | None = None,
) -> Totals:
    """The KPIs from aggregate frames (those of :func:`totals_queries`, or finer ones).

    Counts and sums add up exactly over groups, so ``success`` and ``business`` may be grouped
    and bucketed any way (the dashboard passes its tabs' own frames). A mean or percentile does
    not: ``quality`` and ``durations`` must be overall (``by=None``, no ``freq``), and the mean
    ROI is read only from an overall ``business`` (else ``None``).

    Raises:
        ValidationError: ``quality`` or ``durations`` is grouped.
    """
    completed, failed = int(success["completed"].sum()), int(success["failed"].sum())
    revenue = roi = None
    if business is not None:
        # None where no execution reported a revenue (NA sums), as the aggregates say it
        revenue = _number(business["sum_estimated_revenue_usd"].sum(min_count=1))
        if _overall(business):
            roi = _first("business", business, "mean_roi_percent")
    return Totals(
        executions=int(success["executions"].sum()),
        completed=completed,
        failed=failed,
        success_rate=completed / (completed + failed) if completed + failed else None,
        mean_quality=_first("quality", quality, "mean_quality"),
        median_seconds=_first("durations", durations, "p50_seconds"),
        p95_seconds=_first("durations", durations, "p95_seconds"),
        revenue=revenue,
        roi=roi,
    )


def totals(
    bind: Engine | Connection,
    *,
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> Totals:
    """Every KPI of the executions the filters select, from four aggregate queries.

    The filters are keywords, or one validated :class:`SummaryFilters` (``filters=``).

    Raises:
        ValidationError: A bad filter.
    """
    queries = totals_queries(SummaryFilters.of(filters, **filter_args))
    frames = {key: run(bind, **args) for key, (run, args) in queries.items()}
    return totals_of(**frames)


def kpi_table(
    bind: Engine | Connection,
    *,
    by: str = "agent_type",
    filters: SummaryFilters | None = None,
    **filter_args: Unpack[FilterArgs],
) -> pd.DataFrame:
    """The KPIs per group, from three aggregate queries: the same few rows for any history.

    Returns:
        Indexed by ``by`` (groups that have executions, in the aggregates' order); columns
        ``executions``, ``completed``, ``failed``, ``success_rate`` (``NaN`` where nothing
        finished), ``mean_quality``, ``median_seconds``, ``p95_seconds`` (``NaN`` where none).

    Raises:
        ValidationError: A bad ``by`` or filter.
    """
    where = SummaryFilters.of(filters, **filter_args)
    rates = aggregates.success_rates(bind, by=by, filters=where).set_index(by)
    quality = aggregates.quality_trend(bind, by=by, freq=None, filters=where).set_index(by)
    durations = aggregates.duration_stats(bind, by=by, filters=where).set_index(by)
    return pd.DataFrame(
        {
            "executions": rates["executions"],
            "completed": rates["completed"],
            "failed": rates["failed"],
            "success_rate": rates["success_rate"],
            "mean_quality": quality["mean_quality"].reindex(rates.index),
            "median_seconds": durations["p50_seconds"].reindex(rates.index),
            "p95_seconds": durations["p95_seconds"].reindex(rates.index),
        }
    )
