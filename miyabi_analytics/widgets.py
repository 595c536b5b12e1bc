"""An ipywidgets dashboard for JupyterLab: filters -> aggregates -> plotly figure widgets.

Two layers, so the logic is testable without a browser:

* :class:`DashboardModel` (in ``_dashboard``, re-exported here) holds the filter state, runs the
  aggregates for it (cached by filter state) and computes KPIs and figures; no ipywidgets.
* :class:`DashboardView` wires ipywidgets controls and plotly ``FigureWidget`` objects to a
  model: a filter change reads the model's (possibly cached) data and updates the existing
  figures in place; the Refresh button drops the cache and queries again.

Nothing here runs a query or imports ipywidgets at import time; the engine is always passed in.
"""

from __future__ import annotations

import html
from collections.abc import Mapping
from datetime import UTC, date, datetime, timedelta
from typing import TYPE_CHECKING, Any

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._dashboard import (
    DEFAULT_DAYS,
    STATUSES,
    TABS,
    DashboardData,
    DashboardFilters,
    DashboardModel,
    Kpi,
    build_figures,
    default_window,
)
from miyabi_analytics._db.engine import mask_url
from miyabi_analytics.agents import AGENT_CATEGORIES, AGENT_TYPES, agent_category
from miyabi_analytics.errors import MiyabiError, ValidationError

if TYPE_CHECKING:
    import ipywidgets
    import plotly.graph_objects as go

__all__ = [
    "DEFAULT_DAYS",
    "TABS",
    "DashboardData",
    "DashboardFilters",
    "DashboardModel",
    "DashboardView",
    "Kpi",
    "build_figures",
    "dashboard",
    "default_window",
    "replace_figure",
]


def replace_figure(target: go.FigureWidget, source: go.Figure) -> None:
    """Show ``source`` in the existing ``target`` widget: its traces and layout replace target's.

    The browser applies a new layout as a relayout, which replaces the top-level keys it names
    and keeps the others, so keys that only the old layout had (an annotation, a second axis)
    are first removed explicitly.
    """
    layout = source.layout.to_plotly_json()
    stale = [key for key in target.layout.to_plotly_json() if key not in layout]
    target.data = ()
    if stale:
        target.plotly_relayout(dict.fromkeys(stale))
    target.layout = source.layout
    target.add_traces(list(source.data))


def _kpi_html(kpi: Kpi, days: int | None) -> str:
    if kpi.value is None:
        value = "n/a"
    elif kpi.key == "success_rate":
        value = f"{kpi.value:.1%}"
    elif kpi.key == "mean_quality":
        value = f"{kpi.value:.1f}"
    elif kpi.key == "revenue":
        value = f"${kpi.value:,.0f}"
    else:
        value = f"{kpi.value:,.0f}"
    change, delta = "no previous period to compare", kpi.change
    if delta is not None:
        if kpi.key == "success_rate":
            text = f"{delta * 100:+.1f} pp"
        elif kpi.key == "mean_quality":
            text = f"{delta:+.1f}"
        elif kpi.relative_change is not None:
            text = f"{kpi.relative_change:+.1%}"
        else:
            text = f"{delta:+,.0f}"
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


def _previous(days: int | None) -> str:
    return "the previous day" if days == 1 else f"the previous {days} days"


def _date_of(bound: datetime | None, *, exclusive: bool = False) -> date | None:
    """The picker date of a bound; an exclusive end shows the last day it includes."""
    if bound is None:
        return None
    return (bound - timedelta(microseconds=1) if exclusive else bound).astimezone(UTC).date()


class DashboardView:
    """ipywidgets controls, KPI tiles and plotly figure widgets wired to a :class:`DashboardModel`.

    ``widget`` is the app to display; ``figures`` maps a figure name (see :data:`TABS`) to the
    ``FigureWidget`` that is updated in place on every change.
    """

    def __init__(self, model: DashboardModel) -> None:
        import ipywidgets as w
        import plotly.graph_objects as go

        self.model = model
        self._syncing = False
        self._shown: DashboardData | None = None
        self._built: dict[DashboardFilters, dict[str, go.Figure]] = {}  # dropped on Refresh
        filters = model.filters
        wide = {"width": "auto"}
        self.since = w.DatePicker(description="From", value=_date_of(filters.since))
        self.until = w.DatePicker(description="To", value=_date_of(filters.until, exclusive=True))
        self.repositories = w.SelectMultiple(rows=6, layout={"width": "260px"})
        self.categories = w.SelectMultiple(options=list(AGENT_CATEGORIES), rows=6, layout=wide)
        self.agent_types = w.SelectMultiple(options=list(AGENT_TYPES), rows=6, layout=wide)
        self.statuses = w.SelectMultiple(options=list(STATUSES), rows=6, layout=wide)
        self.refresh_button = w.Button(description="Refresh", icon="refresh", button_style="info")
        self.status = w.HTML()
        self.tiles = {
            key: w.HTML() for key in ("executions", "success_rate", "mean_quality", "revenue")
        }
        self.figures: dict[str, go.FigureWidget] = {
            name: go.FigureWidget() for names in TABS.values() for name in names
        }
        self._sync_options(filters)

        def column(title: str, control: ipywidgets.Widget) -> ipywidgets.Widget:
            return w.VBox([w.HTML(f"<b>{title}</b> <small>(none selected: all)</small>"), control])

        dates = w.VBox(
            [w.HTML("<b>Started (UTC)</b>"), self.since, self.until, self.refresh_button]
        )
        controls = w.HBox(
            [
                dates,
                column("Repositories", self.repositories),
                column("Categories", self.categories),
                column("Agents", self.agent_types),
                column("Status", self.statuses),
            ],
            layout={"flex_flow": "row wrap", "grid_gap": "12px"},
        )
        tabs = w.Tab(
            children=[w.VBox([self.figures[n] for n in names]) for names in TABS.values()],
            titles=list(TABS),
        )
        kpis = w.HBox(list(self.tiles.values()), layout={"grid_gap": "8px"})
        self.widget = w.VBox([kpis, controls, self.status, tabs])

        for control in (
            self.since,
            self.until,
            self.repositories,
            self.categories,
            self.agent_types,
            self.statuses,
        ):
            control.observe(self._on_filter_change, names="value")
        self.refresh_button.on_click(self._on_refresh)
        self._load(force=False, quiet=False)  # a dashboard that cannot load raises here

    def _sync_options(self, filters: DashboardFilters) -> None:
        """Set option lists and selections from ``filters`` without triggering a reload."""
        self._syncing = True
        try:
            repos = self.model.repositories()
            self.repositories.options = [(f"{r[:8]}… ({n:,})", r) for r, n in repos]
            known = {r for r, _ in repos}
            self.repositories.value = tuple(r for r in filters.repository_ids or () if r in known)
            self.categories.value = filters.categories or ()
            agents = [
                a
                for a in AGENT_TYPES
                if filters.categories is None or agent_category(a) in filters.categories
            ]
            self.agent_types.options = agents
            self.agent_types.value = tuple(a for a in filters.agent_types or () if a in agents)
            self.statuses.value = filters.statuses or ()
        finally:
            self._syncing = False

    def _on_filter_change(self, _change: Mapping[str, Any]) -> None:
        if self._syncing:
            return
        start, to = self.since.value, self.until.value
        if start is not None and to is not None and start > to:
            self.status.value = '<span style="color:#D62728">"From" is after "To"</span>'
            return
        try:
            categories = self.categories.value or None
            agents = [
                a
                for a in self.agent_types.value
                if categories is None or agent_category(a) in categories
            ]
            filters = self.model.update(
                since=start,
                until=None if to is None else to + timedelta(days=1),
                repository_ids=self.repositories.value,
                categories=categories,
                agent_types=agents,
                statuses=self.statuses.value,
            )
        except ValidationError as exc:
            self.status.value = f'<span style="color:#D62728">{html.escape(str(exc))}</span>'
            return
        self._sync_options(filters)
        self._load(force=False)

    def _on_refresh(self, _button: object) -> None:
        self._built.clear()
        self._load(force=True)

    def _load(self, *, force: bool, quiet: bool = True) -> None:
        """Show the model's data; ``quiet``: errors go to the status line, not the caller."""
        before = self.model.queries_run
        try:
            data = self.model.refresh(force=force)
            if force:
                self._sync_options(self.model.filters)
        except (MiyabiError, SQLAlchemyError) as exc:
            if not quiet:
                raise
            message = mask_url(str(exc).strip().splitlines()[0] if str(exc).strip() else "")
            self.status.value = (
                f'<span style="color:#D62728">{html.escape(type(exc).__name__)}: '
                f"{html.escape(message)}</span>"
            )
            return
        self.show(data)
        ran = self.model.queries_run - before
        how = f"{ran} queries in {data.seconds:.2f} s" if ran else "from the cache"
        stuck = (
            f'; <span style="color:#D62728">{data.stuck:,} running without a heartbeat for '
            f"30 min (all repositories; see miyabi-analytics reap)</span>"
            if data.stuck
            else ""
        )
        self.status.value = (
            f"<small>{int(data.kpis[0].value or 0):,} executions; {how}{stuck}</small>"
        )

    def show(self, data: DashboardData) -> None:
        """Update the KPI tiles and every figure in place (nothing if ``data`` is shown)."""
        if data is self._shown:
            return
        f = data.filters
        days = None if f.since is None or f.until is None else (f.until - f.since).days
        for kpi in data.kpis:
            self.tiles[kpi.key].value = _kpi_html(kpi, days)
        built = self._built.get(f)
        if built is None:
            built = self._built[f] = build_figures(data)
        for name, figure in built.items():
            replace_figure(self.figures[name], figure)
        self._shown = data


def dashboard(
    engine: Engine,
    *,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
) -> ipywidgets.Widget:
    """The interactive dashboard of ``engine``'s database, to display in JupyterLab.

    Args:
        engine: From :func:`connect`; the dashboard queries it when a filter changes or Refresh
            is pressed, never otherwise.
        since: First instant shown (inclusive); a date means its UTC midnight.
        until: End (exclusive). Without both, the last :data:`DEFAULT_DAYS` days, today (UTC)
            included; with one of them, the other side is open. A cleared date picker opens
            that side too.

    Returns:
        The app: KPI tiles (each against the previous period of equal length), filters (dates,
        repositories, categories, agents, statuses), a Refresh button and tabs of figures.
    """
    if since is None and until is None:
        since, until = default_window()
    model = DashboardModel(engine, DashboardFilters.build(since=since, until=until))
    return DashboardView(model).widget
