"""The dashboard's filter state, KPI arithmetic and in-place figure updates, without a database."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, date, datetime, timedelta

import plotly.graph_objects as go
import pytest
from plotly.subplots import make_subplots

import miyabi_analytics as ma
from miyabi_analytics.widgets import (
    DashboardFilters,
    Kpi,
    default_window,
    replace_figure,
)

pytest.importorskip("anywidget", reason="plotly's FigureWidget needs anywidget")


def test_dashboard_is_exported() -> None:
    assert "dashboard" in ma.__all__
    assert callable(ma.dashboard)


def test_importing_the_package_imports_no_widget_library() -> None:
    code = (
        "import sys, miyabi_analytics as ma; ma.dashboard; "
        "heavy = sorted(m for m in ('ipywidgets', 'anywidget', 'plotly') if m in sys.modules); "
        "print(heavy)"
    )
    done = subprocess.run(
        [sys.executable, "-W", "error", "-c", code], capture_output=True, text=True, check=True
    )
    assert done.stdout.strip() == "[]"


def test_filters_are_canonical_so_the_cache_hits() -> None:
    a = DashboardFilters.build(
        agent_types=["SalesAgent", "CRMAgent"], statuses=["FAILED"], categories=["design"] * 0
    )
    b = DashboardFilters.build(
        agent_types=("CRMAgent", "SalesAgent", "CRMAgent"), statuses="failed"
    )
    assert a == b
    assert hash(a) == hash(b)
    assert a.agent_types == ("SalesAgent", "CRMAgent")  # the design's order
    assert DashboardFilters.build(statuses=[], categories=()) == DashboardFilters()


def test_dates_are_utc_midnight_and_until_must_follow_since() -> None:
    f = DashboardFilters.build(since=date(2026, 1, 1), until="2026-01-29")
    assert f.since == datetime(2026, 1, 1, tzinfo=UTC)
    assert f.until == datetime(2026, 1, 29, tzinfo=UTC)
    with pytest.raises(ma.ValidationError, match="until"):
        DashboardFilters.build(since=date(2026, 1, 2), until=date(2026, 1, 2))
    with pytest.raises(ma.ValidationError, match="since"):
        DashboardFilters.build(since=datetime(2026, 1, 1))  # noqa: DTZ001 (naive on purpose)


def test_bad_selections_name_the_field() -> None:
    with pytest.raises(ma.ValidationError, match="agent_types"):
        DashboardFilters.build(agent_types=[""])  # any other name is open (issue 14)
    with pytest.raises(ma.ValidationError, match="categories"):
        DashboardFilters.build(categories=["finance"])
    with pytest.raises(ma.ValidationError, match="statuses"):
        DashboardFilters.build(statuses=["done"])
    with pytest.raises(ma.ValidationError, match="repository_ids"):
        DashboardFilters.build(repository_ids=["not-a-uuid"])
    with pytest.raises(ma.ValidationError, match="agent_types"):  # none left within the category
        DashboardFilters.build(categories=["design"], agent_types=["SalesAgent"])


def test_agent_selection_is_agents_within_categories() -> None:
    assert DashboardFilters().agent_selection() is None
    ops = DashboardFilters.build(categories=["operations"])
    assert ops.agent_selection() == ("SalesAgent", "CRMAgent", "AnalyticsAgent")
    both = ops.changed(
        agent_types=["CRMAgent", "YouTubeAgent"], categories=["operations", "marketing"]
    )
    assert both.agent_selection() == ("YouTubeAgent", "CRMAgent")
    assert both.summary_filters().agent_types == ("YouTubeAgent", "CRMAgent")


def test_previous_period_has_equal_length() -> None:
    f = DashboardFilters.build(since=date(2026, 3, 1), until=date(2026, 3, 8), statuses=["failed"])
    before = f.previous_period()
    assert before is not None
    assert before.since == datetime(2026, 2, 22, tzinfo=UTC)
    assert before.until == f.since
    assert before.statuses == f.statuses
    assert DashboardFilters.build(since=date(2026, 3, 1)).previous_period() is None
    assert DashboardFilters().previous_period() is None


def test_default_window_is_28_days_including_today() -> None:
    since, until = default_window(date(2026, 3, 10))
    assert (since, until) == (date(2026, 2, 11), date(2026, 3, 11))
    assert until - since == timedelta(days=28)


def test_kpi_change() -> None:
    kpi = Kpi("executions", "Executions", 120.0, 100.0)
    assert kpi.change == 20.0
    assert kpi.relative_change == pytest.approx(0.2)
    assert Kpi("revenue", "Revenue", 5.0, 0.0).relative_change is None
    assert Kpi("mean_quality", "Mean quality", None, 80.0).change is None
    assert Kpi("roi", "ROI", -10.0, -20.0).relative_change == pytest.approx(0.5)


def no_data_figure() -> go.Figure:
    fig = go.Figure(layout={"title": {"text": "empty"}})
    fig.add_annotation(text="No data", x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False)
    return fig.update_xaxes(visible=False).update_yaxes(visible=False)


def two_rows_figure() -> go.Figure:
    fig = make_subplots(rows=2, cols=1, subplot_titles=["a", "b"])
    fig.add_scatter(x=[1], y=[1], row=1, col=1)
    fig.add_scatter(x=[2], y=[2], row=2, col=1)
    return fig.update_layout(title_text="two")


def bar_figure() -> go.Figure:
    return go.Figure(go.Bar(x=[1, 2], y=[3, 4], name="bars"), layout={"title": {"text": "one"}})


def test_replace_figure_keeps_the_widget_and_replaces_traces_and_layout() -> None:
    widget = go.FigureWidget()
    replace_figure(widget, two_rows_figure())
    assert [t.type for t in widget.data] == ["scatter", "scatter"]
    assert widget.layout.yaxis2.domain is not None

    replace_figure(widget, bar_figure())
    assert [(t.type, t.name) for t in widget.data] == [("bar", "bars")]
    assert widget.layout.title.text == "one"
    assert widget.layout.to_plotly_json() == bar_figure().layout.to_plotly_json()


def test_replace_figure_leaves_nothing_of_the_old_layout_in_the_browser() -> None:
    """Replay the relayout messages the browser gets: top-level keys replaced, None removes."""
    widget = go.FigureWidget()
    browser: dict[str, object] = dict(widget.layout.to_plotly_json())
    send = widget._send_relayout_msg

    def relayout(data: dict[str, object], source_view_id: object = None) -> None:
        for key, value in data.items():
            if value is None:
                browser.pop(key, None)
            else:
                browser[key] = value
        send(data, source_view_id)

    widget._send_relayout_msg = relayout
    for make in (no_data_figure, two_rows_figure, bar_figure, no_data_figure, bar_figure):
        replace_figure(widget, make())
        assert browser == make().layout.to_plotly_json(), make.__name__
