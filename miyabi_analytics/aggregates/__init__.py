"""Aggregates of the executions, computed in the database (GROUP BY), small frames back.

Every function takes the filters of :func:`~miyabi_analytics.read_summary` (``repository_id``,
``user_id``, ``agent_types``, ``statuses``, ``since`` inclusive and ``until`` exclusive on
``started_at``) and a ``by``: one of ``agent_type``, ``agent_category``, ``repository_id``,
``user_id``, or a list of them (``None`` or ``[]``: one group over all rows). ``freq`` is ``None``
(no time bucket), ``"D"``, ``"W"`` (ISO weeks starting Monday) or ``"M"`` (calendar months);
buckets are in UTC, their start is the tz-aware ``period`` column, and rows without
``started_at`` drop out of bucketed aggregates.

The filters are validated once per call, before any query, into a
:class:`~miyabi_analytics.filters.SummaryFilters` (a bad one raises :class:`ValidationError`
naming it). A caller running several aggregates over the same rows (the dashboard, the report)
builds that object once (``SummaryFilters.build(since=..., ...)``) and passes it as
``filters=``: it is used as is, not validated again. Keywords and ``filters=`` together are
refused.

Frames have fixed dtypes, also when empty: ``period`` ``datetime64[us, UTC]``; ``agent_type`` and
``agent_category`` the same categoricals as :func:`read_summary`; ``repository_id`` and ``user_id``
strings (a ``NaN`` ``user_id`` is the group of executions without a user); counts ``int64``;
rates, means and percentiles ``float64`` (``NaN`` where undefined); sums ``Int64`` (``<NA>`` where
no row of the group has that metric). Only groups that have rows appear. Rows are ordered by
``period``, then the ``by`` columns in the order given: ``agent_type`` in ``AGENT_TYPES`` order
then other writers' types by name, ``agent_category`` in ``AGENT_CATEGORIES`` order then
``"other"`` (every type outside the 15), ids as text, a missing ``user_id`` last. Agent types
are open, as in :func:`read_summary`: ``agent_types=["CoordinatorAgent"]`` is a filter too.

Same answers on both databases, to the last bit: the database returns integers only (counts,
exact sums of scores, of cents of the ``numeric(p, 2)`` rates and of microseconds of durations,
the neighbours of each percentile), and every float is made once in Python as the correctly
rounded quotient of exact integers (:mod:`~miyabi_analytics.aggregates._exact`). A float computed
in SQL would not do: SQLite sums ``REAL`` values in double precision and PostgreSQL averages
``numeric`` at 16 significant digits, so their means differ in the last bits.

The answers are those of ``v_business_agent_summary``, but the SQL reads ``agent_executions``
(and, for :func:`business_metrics`, each execution's latest ``business_agent_analytics`` row)
directly with the view's definitions (see :mod:`miyabi_analytics._db.summary`): going through
the view costs a join to the analytics per execution, 3-10x the time on 1M executions.
"""

from __future__ import annotations

from miyabi_analytics.aggregates._business import (
    business_metrics,
    business_metrics_with_unstarted,
)
from miyabi_analytics.aggregates._history import most_retried, slowest_executions
from miyabi_analytics.aggregates._outcomes import (
    ERROR_DTYPES,
    error_analysis,
    quality_trend,
    success_rates,
)
from miyabi_analytics.aggregates._shared import BY_COLUMNS
from miyabi_analytics.aggregates._timing import duration_stats
from miyabi_analytics.errors import AggregateOverflowError

__all__ = [
    "BY_COLUMNS",
    "ERROR_DTYPES",
    "AggregateOverflowError",
    "business_metrics",
    "business_metrics_with_unstarted",
    "duration_stats",
    "error_analysis",
    "most_retried",
    "quality_trend",
    "slowest_executions",
    "success_rates",
]
