"""One KPI module: the dashboard's tiles, the report's headline and the CLI summary agree.

All three read :mod:`miyabi_analytics.kpis`; here they are run on one seeded database (both
dialects) and their numbers compared with each other and with pandas on ``read_summary`` rows.
The report's ``totals()`` is run from the notebook itself, its cells executed up to the
headline, so a notebook that computed its own totals again would be caught.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import nbformat
import numpy as np
import pytest
from sqlalchemy import Engine

import miyabi_analytics as ma
from miyabi_analytics import kpis
from miyabi_analytics.cli import _summary_table
from miyabi_analytics.demo import load_demo
from miyabi_analytics.widgets import DashboardFilters, DashboardModel

END = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)  # the demo history's last instant
SINCE = datetime(2026, 2, 11, tzinfo=UTC)
UNTIL = datetime(2026, 3, 11, tzinfo=UTC)  # 28 days; the previous period starts 2026-01-14
PREVIOUS = datetime(2026, 1, 14, tzinfo=UTC)
REPORT = Path(__file__).resolve().parents[2] / "notebooks" / "report.ipynb"
TILES = ("executions", "success_rate", "mean_quality", "revenue")
SAMPLE = ("AIEntrepreneurAgent", "SNSStrategyAgent", "CRMAgent")


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    load_demo(engine, 900, seed=7, end=END)
    return engine


@pytest.fixture
def report(seeded: Engine) -> Iterator[dict[str, Any]]:
    """The report notebook's namespace after its headline cell, for the window SINCE..UNTIL."""
    cells = [c for c in nbformat.read(REPORT, as_version=4).cells if c.cell_type == "code"]
    assert "parameters" in cells[0].metadata.get("tags", [])
    namespace: dict[str, Any] = {}
    exec(cells[0].source, namespace)  # the defaults, then what papermill would inject
    namespace.update(
        database_url=seeded.url.render_as_string(hide_password=False),
        since=SINCE.isoformat(),
        until=UNTIL.isoformat(),
    )
    try:
        for cell in cells[1:]:
            exec(cell.source, namespace)
            if "now_totals" in namespace:
                break
        assert "now_totals" in namespace, "the report computes its headline in now_totals"
        yield namespace
    finally:
        if "engine" in namespace:
            namespace["engine"].dispose()


def from_rows(engine: Engine, **where: Any) -> dict[str, float | None]:
    """The KPIs computed in pandas from the summary's rows, never from the aggregates."""
    df = ma.read_summary(engine, **where)
    completed = int((df["status"] == "completed").sum())
    failed = int((df["status"] == "failed").sum())
    scored = df["quality_score"].dropna().astype("float64")
    timed = df["duration_seconds"].dropna().astype("float64")
    revenue = df["estimated_revenue_usd"].dropna()
    roi = df["roi_percent"].dropna().astype("float64")
    return {
        "executions": len(df),
        "completed": completed,
        "failed": failed,
        "success_rate": completed / (completed + failed) if completed + failed else None,
        "mean_quality": float(scored.mean()) if len(scored) else None,
        "median_seconds": float(timed.quantile(0.5)) if len(timed) else None,
        "p95_seconds": float(timed.quantile(0.95)) if len(timed) else None,
        "revenue": float(revenue.sum()) if len(revenue) else None,
        "roi": float(roi.mean()) if len(roi) else None,
    }


def assert_same(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    assert actual.keys() == expected.keys()
    for key, value in expected.items():
        if value is None:
            assert actual[key] is None, key
        else:
            assert actual[key] == pytest.approx(value, rel=1e-9, abs=1e-6), key


def cli_rows(engine: Engine) -> dict[str, list[str]]:
    """The CLI summary's printed rows, by agent: the cells as the user reads them."""
    lines = _summary_table(engine).splitlines()
    assert lines[0].split() == [
        "executions",
        "completed",
        "failed",
        "success_rate",
        "mean_quality",
        "median_minutes",
    ]
    return {parts[0]: parts[1:] for parts in (line.split() for line in lines[2:])}


def printed(value: float | None) -> float:
    """A number as the CLI table prints it: rounded to one decimal, NaN where missing."""
    return math.nan if value is None else float(np.round(value, 1))


def as_tile(totals: kpis.Totals, key: str) -> float | None:
    """A total as its dashboard tile holds it: a revenue nobody reported is $0 there."""
    value = getattr(totals, key)
    return 0.0 if value is None and key == "revenue" else value


# ------------------------------------------------------------------------------- module


def test_module_totals_are_those_of_the_rows(seeded: Engine):
    for since, until in ((SINCE, UNTIL), (PREVIOUS, SINCE), (None, None)):
        expected = from_rows(seeded, since=since, until=until)
        assert expected["executions"] > 0
        assert expected["revenue"] is not None
        assert_same(kpis.totals(seeded, since=since, until=until).as_dict(), expected)


def test_totals_of_nothing_are_undefined_not_zero(seeded: Engine):
    empty = kpis.totals(seeded, since="2001-01-01", until="2001-01-02")
    assert empty == kpis.Totals()
    assert empty.executions == 0
    assert empty.success_rate is None
    assert empty.revenue is None


def test_totals_of_grouped_frames_add_up_but_need_overall_means(seeded: Engine):
    window = {"since": SINCE, "until": UNTIL}
    overall = kpis.totals(seeded, **window)
    grouped = kpis.totals_of(
        success=ma.success_rates(seeded, freq="W", **window),
        quality=ma.quality_trend(seeded, by=None, freq=None, **window),
        business=ma.business_metrics(seeded, by="agent_category", **window),
    )
    assert grouped.executions == overall.executions
    assert grouped.success_rate == overall.success_rate
    assert grouped.revenue == overall.revenue
    assert grouped.roi is None  # a mean of means is not the mean: not read from groups
    with pytest.raises(ma.ValidationError) as info:
        kpis.totals_of(
            success=ma.success_rates(seeded, **window),
            quality=ma.quality_trend(seeded, freq=None, **window),
        )
    assert info.value.field == "quality"


# ------------------------------------------------------------------------------- the three


def test_report_and_dashboard_show_the_module_totals(seeded: Engine, report: dict[str, Any]):
    now = kpis.totals(seeded, since=SINCE, until=UNTIL)
    before = kpis.totals(seeded, since=PREVIOUS, until=SINCE)
    assert now != before
    assert report["now_totals"] == now.as_dict()
    assert report["before_totals"] == before.as_dict()

    model = DashboardModel(seeded, DashboardFilters.build(since=SINCE, until=UNTIL))
    tiles = {tile.key: tile for tile in model.kpis()}
    assert tuple(tiles) == TILES
    for key in TILES:
        assert tiles[key].value == report["now_totals"][key], key
        assert tiles[key].previous == report["before_totals"][key], key


def test_cli_summary_rows_are_the_totals_of_each_agent(seeded: Engine, report: dict[str, Any]):
    rows = cli_rows(seeded)
    assert set(rows) == set(ma.AGENT_TYPES)
    for agent, cells in rows.items():
        t = kpis.totals(seeded, agent_types=[agent])  # all time, as the CLI summary
        assert [int(c) for c in cells[:3]] == [t.executions, t.completed, t.failed], agent
        rate = "nan%" if t.success_rate is None else f"{t.success_rate:.1%}"
        assert cells[3] == rate, agent
        median = None if t.median_seconds is None else t.median_seconds / 60
        np.testing.assert_equal(
            [float(cells[4]), float(cells[5])], [printed(t.mean_quality), printed(median)]
        )
    assert sum(int(cells[0]) for cells in rows.values()) == kpis.totals(seeded).executions

    for agent in SAMPLE:  # the same agent in the report's totals() and on the dashboard
        t = kpis.totals(seeded, agent_types=[agent])
        assert report["totals"]({"agent_types": [agent]}) == t.as_dict()
        model = DashboardModel(seeded, DashboardFilters.build(agent_types=[agent]))
        tiles = {tile.key: tile.value for tile in model.kpis()}
        assert tiles == {key: as_tile(t, key) for key in TILES}, agent
        assert int(rows[agent][0]) == tiles["executions"]


def test_an_empty_selection_reads_the_same_in_the_three(seeded: Engine, report: dict[str, Any]):
    nothing = {"since": "2001-01-01", "until": "2001-01-29"}
    shown = report["totals"](nothing)
    model = DashboardModel(seeded, DashboardFilters.build(**nothing))
    tiles = {tile.key: tile.value for tile in model.kpis()}
    assert shown["executions"] == tiles["executions"] == 0
    assert shown["success_rate"] is tiles["success_rate"] is None
    assert shown["mean_quality"] is tiles["mean_quality"] is None
    # money nobody reported: "n/a" in the report's table, $0 on a dashboard tile (as before)
    assert shown["revenue"] is None
    assert tiles["revenue"] == 0
