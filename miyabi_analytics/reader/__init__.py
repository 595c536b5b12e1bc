"""Read the summary view and the logs into pandas DataFrames (or Arrow), filtered in SQL.

- :mod:`._whole`: :func:`read_summary`, :func:`read_summary_arrow` (the fast whole reads);
- :mod:`._stream`: :func:`iter_summary`, :func:`export_summary` (constant memory);
- :mod:`._logs`: :func:`read_logs`;
- :mod:`._transitions`: :func:`read_transitions` (the status history);
- :mod:`._replay`: :func:`replay` (one execution's transitions and logs in time order);
- :mod:`._select`: what a read selects, and the plain row-by-row path the fast ones are
  tested against (``_read_summary_simple``, not public API).

Every summary reader takes the filters of :class:`~miyabi_analytics.filters.FilterArgs` as
keywords, validated once into a :class:`~miyabi_analytics.filters.SummaryFilters`.
"""

from __future__ import annotations

from miyabi_analytics.reader._logs import read_logs
from miyabi_analytics.reader._replay import replay

# The reference the fast paths are tested against: test scaffolding, not public API.
from miyabi_analytics.reader._select import _read_summary_simple as _read_summary_simple
from miyabi_analytics.reader._stream import export_summary, iter_summary
from miyabi_analytics.reader._transitions import read_transitions
from miyabi_analytics.reader._whole import read_summary, read_summary_arrow

__all__ = [
    "export_summary",
    "iter_summary",
    "read_logs",
    "read_summary",
    "read_summary_arrow",
    "read_transitions",
    "replay",
]
