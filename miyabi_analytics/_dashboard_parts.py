"""The dashboard's pieces that are plain functions: KPI tiles, filter headings, figure updates.

Private to :mod:`miyabi_analytics.widgets` (which re-exports :func:`replace_figure`); nothing
here imports ipywidgets.
"""

from __future__ import annotations

import copy
import html
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Final, Literal

from miyabi_analytics.formatting import MISSING, format_change, format_usd
from miyabi_analytics.kpis import Kpi

if TYPE_CHECKING:
    from miyabi_analytics._dashboard import DashboardData

if TYPE_CHECKING:
    import plotly.graph_objects as go

__all__ = ["replace_figure"]


def replace_figure(target: go.FigureWidget, source: go.Figure) -> None:
    """Show ``source`` in the existing ``target`` widget: its traces and layout replace target's.

    The browser applies a new layout as a relayout, which replaces the top-level keys it names
    and keeps the others, so keys that only the old layout had (an annotation, a second axis)
    are first removed explicitly.

    Those edits reach a browser that shows the widget now, as messages. A page that connects
    later (Voila's preheated kernel ran the notebook before the page was requested) builds the
    widget from its synced state instead, which plotly refreshes only when the widget itself is
    displayed, never when it sits in a box: so the state is refreshed here too (what plotly's
    own ``_repr_mimebundle_`` does), and a late page shows the figure, not an empty one.
    """
    layout = source.layout.to_plotly_json()
    stale = [key for key in target.layout.to_plotly_json() if key not in layout]
    target.data = ()
    if stale:
        target.plotly_relayout(dict.fromkeys(stale))
    target.layout = source.layout
    target.add_traces(list(source.data))
    target._widget_layout = copy.deepcopy(target._layout_obj._props)
    target._widget_data = copy.deepcopy(target._data)


_CHANGE_KIND: Final[Mapping[str, Literal["points", "difference"]]] = {
    "success_rate": "points",  # a difference of two rates: percentage points
    "mean_quality": "difference",
}


def _kpi_value(kpi: Kpi) -> str:
    if kpi.value is None:
        return MISSING
    if kpi.key == "success_rate":
        return f"{kpi.value:.1%}"
    if kpi.key == "mean_quality":
        return f"{kpi.value:.1f}"
    if kpi.key == "revenue":
        return format_usd(kpi.value)
    return f"{kpi.value:,.0f}"


def _kpi_html(kpi: Kpi, days: int | None) -> str:
    value = _kpi_value(kpi)
    change, delta = "no previous period to compare", kpi.change
    if delta is not None:
        text = format_change(kpi.value, kpi.previous, _CHANGE_KIND.get(kpi.key, "relative"))
        if text is None:  # relative to a previous period of 0: the difference itself
            text = f"+{format_usd(delta)}" if kpi.key == "revenue" else f"{delta:+,.0f}"
        arrow = "▲" if delta > 0 else "▼" if delta < 0 else "="
        color = "#2CA02C" if delta > 0 else "#D62728" if delta < 0 else "#666"
        change = f'<span style="color:{color}">{arrow} {text}</span> vs {_previous(days)}'
    elif kpi.value is not None and days is not None:
        change = f"no data in {_previous(days)}"
    return (
        '<div style="border:1px solid #ddd;border-radius:6px;padding:6px 12px;min-width:170px">'
        f'<div style="color:#666;font-size:12px">{html.escape(kpi.label)}</div>'
        f'<div style="font-size:22px;font-weight:600">{value}</div>'
        f'<div style="font-size:11px;color:#666">{change}</div></div>'
    )


def _header(title: str, selected: int, total: int) -> str:
    """A filter's heading: what it selects now (all, or how many of how many)."""
    state = "all" if not selected or selected == total else f"{selected} of {total} selected"
    return f"<b>{html.escape(title)}</b> <small>({state})</small>"


def _previous(days: int | None) -> str:
    return "the previous day" if days == 1 else f"the previous {days} days"


def _date_of(bound: datetime | None, *, exclusive: bool = False) -> date | None:
    """The picker date of a bound; an exclusive end shows the last day it includes."""
    if bound is None:
        return None
    return (bound - timedelta(microseconds=1) if exclusive else bound).astimezone(UTC).date()


def _live_html(state: str, last: datetime | None, error: BaseException | None) -> str:
    """The live indicator: a dot and the time of the last change (or what went wrong)."""
    if state == "stopped":
        return '<small style="color:#666">○ live mode stopped</small>'
    if error is not None:
        what = html.escape(f"{type(error).__name__}: {str(error).strip()[:120]}")
        again = "reconnecting" if state == "retrying" else "the last change failed"
        return f'<small style="color:#D62728">● live: {again} ({what})</small>'
    when = "waiting for changes" if last is None else f"last change {last:%H:%M:%S} UTC"
    return f'<small class="miyabi-live"><span style="color:#2CA02C">●</span> live · {when}</small>'


def _status_html(data: DashboardData, how: str) -> str:
    """The status line under the filters: how many executions, how they were read, stuck ones."""
    stuck = (
        f'; <span style="color:#D62728">{data.stuck:,} running without a heartbeat for '
        f"30 min, or without any for over 1 h (all repositories; see miyabi-analytics "
        f"reap)</span>"
        if data.stuck
        else ""
    )
    rollup = (
        f'<br><span class="miyabi-rollup">{html.escape(data.rollup)}</span>' if data.rollup else ""
    )
    return f"<small>{int(data.kpis[0].value or 0):,} executions; {how}{stuck}{rollup}</small>"
