"""An ipywidgets dashboard for JupyterLab and Voila: filters -> aggregates -> plotly figure widgets.

Two layers, so the logic is testable without a browser:

* :class:`DashboardModel` (in ``_dashboard``, re-exported here) holds the filter state, runs the
  aggregates for it (cached by filter state) and computes KPIs and figures; no ipywidgets.
* :class:`DashboardView` wires ipywidgets controls and plotly ``FigureWidget`` objects to a
  model: a filter change reads the model's (possibly cached) data and updates the existing
  figures in place; the Refresh button drops the cache and queries again. In live mode
  (``live=True``) changes other processes commit rerun only what they touch
  (:mod:`miyabi_analytics._dashboard_live`).

Nothing here runs a query or imports ipywidgets at import time; the engine is always passed in.
"""

from __future__ import annotations

import html
import threading
import time
from collections.abc import Mapping
from datetime import date, datetime, timedelta
from typing import TYPE_CHECKING, Any, Final

from sqlalchemy import Engine
from sqlalchemy.exc import SQLAlchemyError

from miyabi_analytics._dashboard import (
    DEFAULT_DAYS,
    STATUSES,
    TABS,
    TILES,
    DashboardData,
    DashboardFilters,
    DashboardModel,
    Kpi,
    build_figures,
    default_window,
)
from miyabi_analytics._dashboard_live import EventSource, LiveModel
from miyabi_analytics._dashboard_live_view import LiveView
from miyabi_analytics._dashboard_parts import (
    _date_of,
    _header,
    _kpi_html,
    _status_html,
    replace_figure,
)
from miyabi_analytics._db.engine import mask_url
from miyabi_analytics._extras import needs, require
from miyabi_analytics._voila_page import wait_for_page_request
from miyabi_analytics.errors import MiyabiError, ValidationError
from miyabi_analytics.notebook import shown_url
from miyabi_analytics.vocabulary import AGENT_CATEGORIES, AGENT_TYPES, agent_category

if TYPE_CHECKING:
    import ipywidgets
    import plotly.graph_objects as go

__all__ = [
    "DEFAULT_DAYS",
    "MAX_AGE_SECONDS",
    "TABS",
    "DashboardData",
    "DashboardFilters",
    "DashboardModel",
    "DashboardView",
    "Kpi",
    "build_figures",
    "dashboard",
    "dashboard_view",
    "default_window",
    "replace_figure",
    "wait_for_page_request",
]

MAX_AGE_SECONDS: Final = 60.0
"""A page served from a preheated kernel shows data read at most this long before."""


class DashboardView(LiveView):
    """ipywidgets controls, KPI tiles and plotly figure widgets wired to a :class:`DashboardModel`.

    ``widget`` is the app to display; ``figures`` maps a figure name (see :data:`TABS`) to the
    ``FigureWidget`` that is updated in place on every change. ``live=True`` (or
    :meth:`start_live`) keeps it current as other processes record status changes: ``source``
    (default: :func:`miyabi_analytics.live.watch` on the model's engine) feeds a
    :class:`~miyabi_analytics._dashboard_live.LiveModel`, whose batches rerun only the queries
    they touch and redraw only the figures drawn from those; ``live_status`` says so, with the
    time of the last change. :meth:`close` (or :meth:`stop_live`) ends its threads.
    """

    def __init__(
        self, model: DashboardModel, *, live: bool = False, source: EventSource | None = None
    ) -> None:
        import plotly.graph_objects as go

        w = require("notebook", "ipywidgets")

        self.model = model
        self.live: LiveModel | None = None
        self._lock = threading.RLock()  # the live thread and the controls change one model
        self.loaded_at = time.monotonic()  # when the data shown was read (monotonic clock)
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
        self.live_status = w.HTML()
        self.tiles = {key: w.HTML() for key, _ in TILES}
        self.figures: dict[str, go.FigureWidget] = {
            name: go.FigureWidget() for names in TABS.values() for name in names
        }
        for figure in self.figures.values():  # sized to their container on a window resize
            figure._config = {**figure._config, "responsive": True}
        self.headers = {
            "repositories": w.HTML(),
            "categories": w.HTML(),
            "agent_types": w.HTML(),
            "statuses": w.HTML(),
        }
        self._sync_options(filters)

        def column(key: str, control: ipywidgets.Widget) -> ipywidgets.Widget:
            return w.VBox([self.headers[key], control])

        dates = w.VBox(
            [w.HTML("<b>Started (UTC)</b>"), self.since, self.until, self.refresh_button]
        )
        controls = w.HBox(
            [
                dates,
                column("repositories", self.repositories),
                column("categories", self.categories),
                column("agent_types", self.agent_types),
                column("statuses", self.statuses),
            ],
            layout={"flex_flow": "row wrap", "grid_gap": "12px"},
        )
        # A tab's figures join its page when the tab is first selected: every figure is kept
        # up to date here, but the browser draws only those of the tabs someone looked at.
        full_width = {"width": "100%"}
        self.pages = [w.VBox(layout=full_width) for _ in TABS]
        self.tabs = w.Tab(children=self.pages, titles=list(TABS), layout=full_width)
        self.tabs.observe(self._on_tab, names="selected_index")
        self._on_tab({"new": self.tabs.selected_index or 0})
        kpis = w.HBox(
            [*self.tiles.values(), self.live_status],
            layout={"grid_gap": "8px", "align_items": "flex-end"},
        )
        self.widget = w.VBox([kpis, controls, self.status, self.tabs])

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
        self.widget.observe(self._on_closed, names="comm")  # app.close(): stop live mode too
        if live:
            self.start_live(source)

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
            for key, title, control in (
                ("repositories", "Repositories", self.repositories),
                ("categories", "Categories", self.categories),
                ("agent_types", "Agents", self.agent_types),
                ("statuses", "Status", self.statuses),
            ):
                self.headers[key].value = _header(title, len(control.value), len(control.options))
        finally:
            self._syncing = False

    def _on_filter_change(self, _change: Mapping[str, Any]) -> None:
        if self._syncing:
            return
        with self._lock:
            self._change_filters()

    def _change_filters(self) -> None:
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

    def _on_tab(self, change: Mapping[str, Any]) -> None:
        index = change["new"]
        if index is not None and not self.pages[index].children:
            names = list(TABS.values())[index]
            self.pages[index].children = [self.figures[n] for n in names]

    def _on_refresh(self, _button: object) -> None:
        self.reload()

    def reload(self) -> None:
        """Read everything again, as the Refresh button does (new executions show up)."""
        with self._lock:
            self._built.clear()
            self._load(force=True)

    def serve_page(self, base_url: str, *, max_age: float = MAX_AGE_SECONDS) -> None:
        """Ready the view for the page Voila serves at ``base_url``.

        Data read more than ``max_age`` seconds ago (a kernel preheated a while before the
        page was requested) is read again. Plotly's widget module is fetched by URL from that
        server, once, instead of riding in the state of every figure (see
        :func:`miyabi_analytics._serve.plotly_module_url`).
        """
        from miyabi_analytics._serve import plotly_module_url

        module = plotly_module_url(base_url)
        for figure in self.figures.values():
            figure._esm = module
        with self._lock:
            if time.monotonic() - self.loaded_at > max_age:
                self.reload()

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
        if ran:
            self.loaded_at = time.monotonic()
        how = f"{ran} queries in {data.seconds:.2f} s" if ran else "from the cache"
        self.status.value = _status_html(data, how)
        if not sum(n for _, n in self.model.repositories()):
            self.status.value = (
                '<b style="color:#D62728">This database holds no executions: '
                f"{html.escape(shown_url(self.model.engine.url))}</b>"
            )

    def show(self, data: DashboardData) -> None:
        """Update the KPI tiles and every figure in place (nothing if ``data`` is shown)."""
        if data is self._shown:
            return
        f = data.filters
        self._show_tiles(data)
        built = self._built.get(f)
        if built is None:
            built = self._built[f] = build_figures(data)
        for name, figure in built.items():
            replace_figure(self.figures[name], figure)
        self._shown = data

    def _show_tiles(self, data: DashboardData) -> None:
        f = data.filters
        days = None if f.since is None or f.until is None else (f.until - f.since).days
        for kpi in data.kpis:
            self.tiles[kpi.key].value = _kpi_html(kpi, days)


def dashboard_view(
    engine: Engine,
    *,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    live: bool = False,
) -> DashboardView:
    """The :class:`DashboardView` that :func:`dashboard` displays, for a notebook to keep."""
    if since is None and until is None:
        since, until = default_window()
    model = DashboardModel(engine, DashboardFilters.build(since=since, until=until))
    return DashboardView(model, live=live)


@needs("notebook")  # before anything runs: one line naming the extra
def dashboard(
    engine: Engine,
    *,
    since: datetime | date | str | None = None,
    until: datetime | date | str | None = None,
    live: bool = False,
) -> ipywidgets.Widget:
    """The interactive dashboard of ``engine``'s database, to display in JupyterLab or Voila.

    Args:
        engine: From :func:`connect`; the dashboard queries it when a filter changes or Refresh
            is pressed, and in live mode when a change touches what it shows, never otherwise.
        since: First instant shown (inclusive); a date means its UTC midnight.
        until: End (exclusive). Without both, the last :data:`DEFAULT_DAYS` days, today (UTC)
            included; with one of them, the other side is open. A cleared date picker opens
            that side too.
        live: Refresh within about a second when any process records a status change that
            touches the selection (:func:`miyabi_analytics.live.watch`: LISTEN on PostgreSQL,
            polling ``PRAGMA data_version`` on SQLite): only the queries and figures the change
            touches run again; a "live" line shows the time of the last change.

    Returns:
        The app: KPI tiles (each against the previous period of equal length), filters (dates,
        repositories, categories, agents, statuses), a Refresh button and tabs of figures.
    """
    return dashboard_view(engine, since=since, until=until, live=live).widget
