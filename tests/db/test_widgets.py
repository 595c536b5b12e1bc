"""The dashboard's model and view on a seeded demo history, on both dialects.

KPIs are checked against pandas computations on ``read_summary`` frames, never against the
aggregates the model runs; the view is driven through its controls, as a user would.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, Engine, event
from sqlalchemy.exc import SQLAlchemyError

import miyabi_analytics as ma
from miyabi_analytics.demo import load_demo
from miyabi_analytics.widgets import (
    DashboardData,
    DashboardFilters,
    DashboardModel,
    DashboardView,
    build_figures,
)

END = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)  # the demo history's last instant
SINCE = datetime(2026, 2, 11, tzinfo=UTC)
UNTIL = datetime(2026, 3, 11, tzinfo=UTC)  # 28 days; the previous period starts 2026-01-14
MARKETING = tuple(a for a in ma.AGENT_TYPES if ma.agent_category(a) == "marketing")


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    load_demo(engine, 900, seed=7, end=END)
    return engine


@pytest.fixture
def statements(seeded: Engine) -> Iterator[list[str]]:
    """Every SQL statement the engine runs while the test runs (BEGINs included)."""
    seen: list[str] = []

    def record(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        seen.append(statement)

    event.listen(seeded, "before_cursor_execute", record)
    yield seen
    event.remove(seeded, "before_cursor_execute", record)


def model_of(engine: Engine, **filters: Any) -> DashboardModel:
    return DashboardModel(engine, DashboardFilters.build(since=SINCE, until=UNTIL, **filters))


def expected_kpis(engine: Engine, since: datetime, until: datetime, **where: Any) -> dict[str, Any]:
    df = ma.read_summary(engine, since=since, until=until, **where)
    completed = int((df["status"] == "completed").sum())
    failed = int((df["status"] == "failed").sum())
    scored = df["quality_score"].dropna()
    return {
        "executions": len(df),
        "success_rate": completed / (completed + failed) if completed + failed else None,
        "mean_quality": float(scored.mean()) if len(scored) else None,
        "revenue": int(df["estimated_revenue_usd"].sum()),
    }


def executions(data: DashboardData) -> float:
    value = data.kpis[0].value
    assert value is not None
    return value


def assert_close(actual: float | None, expected: float | None) -> None:
    if expected is None:
        assert actual is None
    else:
        assert actual == pytest.approx(expected, rel=1e-12)


# ------------------------------------------------------------------------------- model


def test_queries_run_once_per_distinct_filter_state(seeded: Engine, statements: list[str]) -> None:
    model = model_of(seeded)
    assert model.queries_run == 0
    assert statements == []

    first = model.refresh()
    ran = model.queries_run
    assert ran > 0
    assert statements

    statements.clear()
    assert model.refresh() is first  # same filters: the cached data, no SQL at all
    assert model.kpis() == first.kpis
    assert model.queries_run == ran
    assert statements == []

    model.update(categories=["marketing"])
    narrowed = model.refresh()
    assert narrowed is not first
    assert model.queries_run == 2 * ran
    assert statements

    statements.clear()
    model.update(categories=None)  # back to the first state: cached
    assert model.refresh() is first
    assert model.queries_run == 2 * ran
    assert statements == []

    model.update(categories=["marketing"], agent_types=[])  # same state, spelled differently
    assert model.refresh() is narrowed
    assert model.queries_run == 2 * ran

    assert model.refresh(force=True) is not narrowed  # Refresh: queries again
    assert model.queries_run == 3 * ran


@pytest.mark.parametrize(
    ("filters", "where"),
    [
        ({}, {}),
        ({"categories": ["marketing"]}, {"agent_types": MARKETING}),
        (
            {"agent_types": ["SalesAgent", "AIEntrepreneurAgent"], "statuses": ["completed"]},
            {"agent_types": ["SalesAgent", "AIEntrepreneurAgent"], "statuses": ["completed"]},
        ),
    ],
    ids=["all", "marketing", "two-agents-completed"],
)
def test_kpis_against_pandas(
    seeded: Engine, filters: dict[str, Any], where: dict[str, Any]
) -> None:
    kpis = {k.key: k for k in model_of(seeded, **filters).kpis()}
    now = expected_kpis(seeded, SINCE, UNTIL, **where)
    before = expected_kpis(seeded, SINCE - timedelta(days=28), SINCE, **where)
    assert now["executions"] > 0
    assert before["executions"] > 0
    for key in ("executions", "success_rate", "mean_quality", "revenue"):
        assert_close(kpis[key].value, now[key])
        assert_close(kpis[key].previous, before[key])
        if now[key] is not None and before[key] is not None:
            assert kpis[key].change == pytest.approx(now[key] - before[key], rel=1e-9, abs=1e-9)
            if before[key]:
                relative = (now[key] - before[key]) / abs(before[key])
                assert kpis[key].relative_change == pytest.approx(relative, rel=1e-9, abs=1e-12)


def test_kpis_of_an_open_range_have_no_previous_period(seeded: Engine) -> None:
    model = DashboardModel(seeded, DashboardFilters.build(since=SINCE))
    kpis = {k.key: k for k in model.kpis()}
    assert kpis["executions"].value == len(ma.read_summary(seeded, since=SINCE))
    assert all(k.previous is None and k.change is None for k in kpis.values())


def test_kpis_of_all_time_count_never_started_executions(seeded: Engine) -> None:
    """With no date filter the KPIs cover every execution, also those that never started.

    The Business tab and the revenue KPI share one query: the never-started rows' NaT period
    is counted in the KPI and kept out of the tab.
    """
    agent = ma.SalesAgent()
    idle = agent.builder(uuid.uuid4()).build()  # pending, never started
    agent.save_execution(seeded, idle)
    agent.save_analysis_metrics(seeded, idle.id, {"estimated_revenue_usd": 123_456_789})
    data = DashboardModel(seeded).refresh()
    kpis = {k.key: k.value for k in data.kpis}
    everything = ma.read_summary(seeded)
    assert kpis["executions"] == len(everything)
    assert kpis["revenue"] == int(everything["estimated_revenue_usd"].sum())
    finished = everything["status"].isin(["completed", "failed"])
    completed = int((everything["status"] == "completed").sum())
    assert kpis["success_rate"] == completed / int(finished.sum())
    business = data.frames["business"]
    assert business["period"].notna().all()
    in_tab = int(business["sum_estimated_revenue_usd"].sum())
    assert in_tab == kpis["revenue"] - 123_456_789


def test_repository_filter_narrows_every_frame(seeded: Engine) -> None:
    repositories = DashboardModel(seeded).repositories()
    everything = ma.read_summary(seeded, columns=["repository_id"])
    assert dict(repositories) == everything["repository_id"].value_counts().to_dict()
    repo = repositories[0][0]
    all_data = model_of(seeded).refresh()
    one = model_of(seeded, repository_ids=[repo]).refresh()
    in_repo = ma.read_summary(seeded, repository_id=repo, since=SINCE, until=UNTIL)
    assert one.kpis[0].value == len(in_repo) < executions(all_data)
    assert one.frames["success"]["executions"].sum() == len(in_repo)
    for name, frame in one.frames.items():
        assert len(frame) <= len(all_data.frames[name]), name
    failed = in_repo[in_repo["status"] == "failed"]
    assert one.frames["errors"]["failures"].sum() == len(failed)


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (
            {"categories": ["operations"]},
            {"agent_types": ["SalesAgent", "CRMAgent", "AnalyticsAgent"]},
        ),
        (
            {"categories": ["operations", "design"], "agent_types": ["CRMAgent", "YouTubeAgent"]},
            {"agent_types": ["CRMAgent"]},
        ),
        ({"statuses": ["failed", "running"]}, {"statuses": ["failed", "running"]}),
        ({"since": date(2026, 3, 1)}, {"since": datetime(2026, 3, 1, tzinfo=UTC)}),
    ],
    ids=["category", "category-and-agents", "statuses", "dates"],
)
def test_filter_changes_narrow_the_data(
    seeded: Engine, change: dict[str, Any], where: dict[str, Any]
) -> None:
    model = model_of(seeded)
    before = model.refresh()
    model.update(**change)
    after = model.refresh()
    bounds = {"since": SINCE, "until": UNTIL, **where}
    expected = ma.read_summary(seeded, **bounds)
    assert 0 < len(expected) < executions(before)
    assert after.frames["success"]["executions"].sum() == len(expected)
    shown = set(after.frames["success"]["agent_type"].astype(str))
    assert shown == set(expected["agent_type"].astype(str))


# ------------------------------------------------------------------------------- view


def test_view_updates_figures_in_place(seeded: Engine) -> None:
    model = model_of(seeded)
    view = DashboardView(model)
    widgets = dict(view.figures)
    success = widgets["success"]
    assert list(success.data[0].y) == [a for a in ma.AGENT_TYPES if a in set(success.data[0].y)]
    assert len(success.data[0].y) > 3
    quality_traces = len(widgets["quality"].data)

    view.agent_types.value = ("SalesAgent",)

    assert model.filters.agent_types == ("SalesAgent",)
    assert view.figures == widgets
    assert all(view.figures[n] is w for n, w in widgets.items())
    assert list(success.data[0].y) == ["SalesAgent"]
    assert 0 < len(widgets["quality"].data) < quality_traces
    sales = ma.read_summary(seeded, agent_types="SalesAgent", since=SINCE, until=UNTIL)
    assert f"{len(sales):,}" in view.tiles["executions"].value
    # the layout is replaced too, not merged: the title is the new figure's
    expected = build_figures(model.refresh())["success"]
    assert success.layout.title.text == expected.layout.title.text
    assert success.layout.to_plotly_json() == expected.layout.to_plotly_json()


def test_view_reuses_the_cache_and_refresh_queries_again(seeded: Engine) -> None:
    model = model_of(seeded)
    view = DashboardView(model)
    ran = model.queries_run
    view.statuses.value = ("failed",)
    per_state = model.queries_run - ran
    assert per_state > 0
    view.statuses.value = ()
    assert model.queries_run == ran + per_state
    assert "from the cache" in view.status.value
    view.refresh_button.click()
    assert model.queries_run > ran + per_state
    assert "queries" in view.status.value


def test_category_selection_narrows_the_agent_options(seeded: Engine) -> None:
    view = DashboardView(model_of(seeded))
    view.agent_types.value = ("SalesAgent", "YouTubeAgent")
    view.categories.value = ("operations",)
    assert tuple(view.agent_types.options) == ("SalesAgent", "CRMAgent", "AnalyticsAgent")
    assert view.agent_types.value == ("SalesAgent",)
    assert view.model.filters.agent_selection() == ("SalesAgent",)
    view.agent_types.value = ()
    assert view.model.filters.agent_selection() == ("SalesAgent", "CRMAgent", "AnalyticsAgent")


def test_date_pickers_are_inclusive_days(seeded: Engine) -> None:
    view = DashboardView(model_of(seeded))
    assert view.since.value == date(2026, 2, 11)
    assert view.until.value == date(2026, 3, 10)  # until is exclusive: the 10th is the last day
    view.until.value = date(2026, 3, 11)
    assert view.model.filters.until == datetime(2026, 3, 12, tzinfo=UTC)
    before = view.model.filters
    view.since.value = date(2026, 3, 20)  # after "To": refused with a message, nothing queried
    assert view.model.filters == before
    assert "after" in view.status.value
    view.since.value = None  # cleared: open-ended, KPIs without a previous period
    assert view.model.filters.since is None
    assert "no previous period" in view.tiles["executions"].value


def test_dashboard_returns_a_widget(seeded: Engine, statements: list[str]) -> None:
    import ipywidgets

    app = ma.dashboard(seeded, since="2026-02-11", until="2026-03-11")
    assert isinstance(app, ipywidgets.Widget)
    assert statements  # queried once, to draw it
    kpi_row = app.children[0]
    assert [tile.value.count("Executions") for tile in kpi_row.children[:1]] == [1]


def test_empty_database(engine: Engine) -> None:
    model = model_of(engine)
    view = DashboardView(model)
    kpis = {k.key: k for k in model.kpis()}
    assert kpis["executions"].value == 0
    assert kpis["revenue"].value == 0
    assert kpis["success_rate"].value is None
    assert kpis["mean_quality"].value is None
    assert kpis["executions"].change == 0
    assert kpis["executions"].relative_change is None
    for figure in view.figures.values():
        assert figure.data == ()
        assert figure.layout.annotations[0].text == "No data for this selection"
    assert view.repositories.options == ()
    assert all(frame.empty for frame in model.refresh().frames.values())


def test_database_errors_after_display_go_to_the_status_line(
    seeded: Engine, tmp_path: Path
) -> None:
    view = DashboardView(model_of(seeded))
    broken = ma.connect(f"sqlite:///{tmp_path / 'no-such-dir' / 'x.db'}")
    view.model.engine = broken
    view.refresh_button.click()  # no exception escapes the callback
    assert "OperationalError" in view.status.value
    broken.dispose()


def test_dashboard_of_an_unmigrated_database_raises(empty_url: URL) -> None:
    engine = ma.connect(empty_url)
    try:
        with pytest.raises(SQLAlchemyError):
            ma.dashboard(engine)
    finally:
        engine.dispose()


def test_stuck_executions_are_counted_and_shown(engine: Engine) -> None:
    import uuid
    from datetime import UTC, datetime, timedelta

    import miyabi_analytics as ma
    from miyabi_analytics.widgets import DashboardModel, dashboard

    agent = ma.SalesAgent()
    old = datetime.now(UTC) - timedelta(hours=2)
    stuck = agent.builder(uuid.uuid4()).status("running").started_at(old).build()
    fresh = agent.builder(uuid.uuid4()).status("running").start_now().build()
    agent.save_execution(engine, stuck)
    agent.save_execution(engine, fresh)
    model = DashboardModel(engine)
    assert model.refresh().stuck == 1
    assert "1 running without a heartbeat" in dashboard(engine).children[2].value
