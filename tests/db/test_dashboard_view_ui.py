"""Issue 12, items 19, 21 and 22 on the dashboard's widget objects, on both dialects.

What a person reads on the dashboard (filter headings, KPI tiles, the empty-database line), the
charts' width, and what lets a preheated Voila page show complete figures quickly.
"""

from __future__ import annotations

import time
from datetime import UTC, date, datetime

import plotly.graph_objects as go
import pytest
from sqlalchemy import Engine

import miyabi_analytics as ma
from miyabi_analytics.demo import load_demo
from miyabi_analytics.widgets import (
    TABS,
    DashboardFilters,
    DashboardModel,
    DashboardView,
    Kpi,
    replace_figure,
    wait_for_page_request,
)

END = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)
SINCE = datetime(2026, 2, 11, tzinfo=UTC)
UNTIL = datetime(2026, 3, 11, tzinfo=UTC)


@pytest.fixture
def view(engine: Engine) -> DashboardView:
    load_demo(engine, 600, seed=11, end=END)
    return DashboardView(DashboardModel(engine, DashboardFilters.build(since=SINCE, until=UNTIL)))


def test_filter_headings_say_what_is_selected(view: DashboardView) -> None:
    assert all("(all)" in h.value for h in view.headers.values())
    assert not any("none selected" in h.value for h in view.headers.values())
    view.categories.value = ("design", "operations")
    assert "(2 of 4 selected)" in view.headers["categories"].value
    view.agent_types.value = ("SalesAgent",)
    assert "(1 of 4 selected)" in view.headers["agent_types"].value  # of the agents offered
    view.statuses.value = ("failed",)
    assert "(1 of 4 selected)" in view.headers["statuses"].value
    view.categories.value = ()
    assert "(all)" in view.headers["categories"].value


def test_revenue_tile_is_compact_and_rate_changes_are_points(view: DashboardView) -> None:
    revenue = view.tiles["revenue"].value
    kpi = next(k for k in view.model.kpis() if k.key == "revenue")
    assert kpi.value is not None
    assert kpi.value >= 1e6
    assert ma.formatting.format_usd(kpi.value) in revenue
    assert f"${kpi.value:,.0f}" not in revenue  # not "$2,638,276,706"
    assert " pp</span>" in view.tiles["success_rate"].value


def test_kpi_tiles_of_hand_made_values() -> None:
    from miyabi_analytics._dashboard_parts import _kpi_html

    tile = _kpi_html(Kpi("revenue", "Estimated revenue", 2_638_276_706, 2_500_000_000), 28)
    assert "$2.6B" in tile
    assert "+5.5%" in tile
    tile = _kpi_html(Kpi("revenue", "Estimated revenue", 1_200, 0), 28)
    assert "+$1.2k" in tile  # relative to nothing: the difference, as money
    tile = _kpi_html(Kpi("success_rate", "Success rate", 0.93, 0.9), 28)
    assert "+3.0 pp" in tile


def test_charts_fill_the_tab(view: DashboardView) -> None:
    tabs = view.widget.children[3]
    assert tabs.layout.width == "100%"
    for page in view.pages:
        assert page.layout.width == "100%"
    for figure in view.figures.values():
        assert figure.layout.width is None  # plotly sizes it to its container
        assert figure.layout.autosize is not False


def test_only_the_tabs_looked_at_hold_their_figures(view: DashboardView) -> None:
    first, *others = list(TABS.values())
    assert list(view.pages[0].children) == [view.figures[n] for n in first]
    assert all(isinstance(c, go.FigureWidget) for c in view.pages[0].children)
    assert all(not page.children for page in view.pages[1:])
    view.tabs.selected_index = 1
    assert list(view.pages[1].children) == [view.figures[n] for n in others[0]]
    # a figure not drawn yet is up to date all the same
    view.agent_types.value = ("SalesAgent",)
    assert list(view.figures["durations"].data[0].y) == ["SalesAgent"]


def test_replace_figure_keeps_the_synced_state_complete() -> None:
    """A page that connects after the figure was filled builds it from this state."""
    target = go.FigureWidget()
    box_child = go.Figure(go.Bar(x=[1, 2], y=["a", "b"]), layout={"title": {"text": "T"}})
    replace_figure(target, box_child)
    assert len(target._widget_data) == 1
    assert list(target._widget_data[0]["x"]) == [1, 2]
    assert target._widget_layout["title"]["text"] == "T"


def test_serve_page_loads_plotly_by_url_and_rereads_old_data(view: DashboardView) -> None:
    esm = view.figures["quality"]._esm
    assert len(esm) > 1_000_000  # the module itself rides in every figure's state
    ran = view.model.queries_run
    view.serve_page("http://127.0.0.1:8866/")  # data just read: not read again
    assert view.model.queries_run == ran
    url = "http://127.0.0.1:8866/miyabi/plotly/widgetbundle.js"
    assert {f._esm for f in view.figures.values()} == {url}
    view.loaded_at = time.monotonic() - 3600  # a kernel preheated an hour ago
    view.serve_page("http://127.0.0.1:8866/")
    assert view.model.queries_run > ran


def test_wait_for_page_request_returns_at_once_outside_voila(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    for name in ("VOILA_PREHEAT", "VOILA_REQUEST_URL", "VOILA_BASE_URL"):
        monkeypatch.delenv(name, raising=False)
    assert wait_for_page_request() is None  # JupyterLab
    # a kernel Voila started for a request (the preheated one was taken) knows its page
    monkeypatch.setenv("VOILA_PREHEAT", "False")
    monkeypatch.setenv("VOILA_REQUEST_URL", "http://127.0.0.1:8866/?theme=light")
    monkeypatch.setenv("VOILA_BASE_URL", "/")
    assert wait_for_page_request() == "http://127.0.0.1:8866/"


def test_an_empty_database_says_so_in_the_status_line(engine: Engine) -> None:
    app = ma.dashboard(engine)
    status = app.children[2].value
    assert "This database holds no executions" in status
    assert ma.notebook.shown_url(engine.url) in status


def test_a_database_with_executions_elsewhere_in_time_is_not_called_empty(
    view: DashboardView,
) -> None:
    view.since.value = date(2020, 1, 1)
    view.until.value = date(2020, 1, 2)
    assert "holds no executions" not in view.status.value
    assert "0 executions" in view.status.value
