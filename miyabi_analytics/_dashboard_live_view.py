"""The live half of the dashboard's view: start and stop live mode, show a live batch.

A base of :class:`miyabi_analytics.widgets.DashboardView`, kept apart so each module stays
small; it uses the view's widgets and its ``show``.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from miyabi_analytics._dashboard import (
    DashboardData,
    DashboardFilters,
    DashboardModel,
    build_figures,
)
from miyabi_analytics._dashboard_live import EventSource, LiveModel, recomputed_figures
from miyabi_analytics._dashboard_parts import _live_html, _status_html, replace_figure

if TYPE_CHECKING:
    import ipywidgets
    import plotly.graph_objects as go

__all__ = ["LiveView"]


class LiveView:
    """Live mode for a view that has these attributes (set by the view's constructor)."""

    model: DashboardModel
    live: LiveModel | None
    live_status: ipywidgets.HTML
    status: ipywidgets.HTML
    figures: dict[str, go.FigureWidget]
    widget: ipywidgets.Widget
    loaded_at: float
    _lock: threading.RLock
    _built: dict[DashboardFilters, dict[str, go.Figure]]
    _shown: DashboardData | None

    def show(self, data: DashboardData) -> None:
        raise NotImplementedError

    def _show_tiles(self, data: DashboardData) -> None:
        raise NotImplementedError

    def start_live(self, source: EventSource | None = None) -> None:
        """Keep the dashboard current from ``source`` (see ``DashboardView``); nothing if live."""
        if self.live is not None:
            return
        live = LiveModel(
            self.model,
            source,
            lock=self._lock,
            on_change=self._show_live,
            on_state=self._live_state,
        )
        self.live_status.value = _live_html("listening", None, None)
        live.start()  # raises if the source cannot work at all (in-memory SQLite)
        self.live = live

    def stop_live(self, *, wait: bool = True) -> None:
        """Stop the live mode's threads and close its ``watch`` connection; nothing if not live.

        ``wait=False`` returns at once; they end within ``WAIT_SECONDS`` of quiet then.
        """
        live, self.live = self.live, None
        if live is not None:
            live.stop(None if wait else 0.0)
        self.live_status.value = ""

    def _on_closed(self, change: Mapping[str, Any]) -> None:
        if change["new"] is None:
            self.stop_live(wait=False)

    def close(self) -> None:
        """Stop the live mode and close the app widget (the dashboard is gone)."""
        self.stop_live()
        self.widget.close()

    def _live_state(self, state: str, error: BaseException | None) -> None:
        live = self.live
        self.live_status.value = _live_html(state, live.last_event if live else None, error)

    def _show_live(self, data: DashboardData, queries: frozenset[str]) -> None:
        """Show a live batch's data: only the figures drawn from the queries that ran."""
        cached = set(self.model.cached_filters())
        self._built = {f: b for f, b in self._built.items() if f in cached}
        built = self._built.get(data.filters)
        shown = self._shown
        if built is None or shown is None or shown.filters != data.filters:
            self.show(data)
        else:
            fresh = build_figures(data, recomputed_figures(queries))
            built.update(fresh)
            for name, figure in fresh.items():
                replace_figure(self.figures[name], figure)
            self._show_tiles(data)
            self._shown = data
        self.loaded_at = time.monotonic()
        how = f"{len(queries)} queries in {data.seconds:.2f} s after a change"
        self.status.value = _status_html(data, how)
        self._live_state("changed", None)
