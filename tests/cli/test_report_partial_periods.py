"""Weekly and monthly charts mark the periods the report window only partly covers.

A 28-day window from a Wednesday cuts its first and last ISO weeks; their points used to look
like real dips. The report keeps the window and marks those weeks: hollow markers on a grey
band (line charts), hatched bars, a dotted outline and a "partial week" tick label (heatmaps),
a legend entry and subtitle, and a caption under the chart naming them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import nbformat
import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest
from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics import figures
from miyabi_analytics.agents import AGENT_CATEGORIES, AGENT_TYPES
from miyabi_analytics.cli import main
from miyabi_analytics.demo import load_demo

UTC_US = pd.DatetimeTZDtype(unit="us", tz="UTC")
SINCE, UNTIL = "2026-04-29", "2026-05-27"  # Wednesday to Wednesday: 5 + 7 + 7 + 7 + 2 days
WEEKS = ("2026-04-27", "2026-05-04", "2026-05-11", "2026-05-18", "2026-05-25")
PARTIAL = {"2026-04-27", "2026-05-25"}


def periods(*days: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(days), utc=True)).astype(UTC_US)


def weekly_rates() -> pd.DataFrame:
    """success_rates(freq="W") over the window, two agents."""
    n = len(WEEKS)
    return pd.DataFrame(
        {
            "period": periods(*WEEKS, *WEEKS),
            "agent_type": pd.Categorical(
                ["SalesAgent"] * n + ["CRMAgent"] * n, dtype=pd.CategoricalDtype(AGENT_TYPES)
            ),
            "executions": pd.array([3, 9, 9, 9, 1] * 2, dtype="Int64"),
            "completed": pd.array([1, 8, 8, 7, 0] * 2, dtype="Int64"),
            "failed": pd.array([1, 1, 1, 2, 1] * 2, dtype="Int64"),
            "success_rate": [0.5, 8 / 9, 8 / 9, 7 / 9, 0.0] * 2,
        }
    )


def weekly_quality() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": periods(*WEEKS),
            "agent_type": pd.Categorical(
                ["SalesAgent"] * 5, dtype=pd.CategoricalDtype(AGENT_TYPES)
            ),
            "executions": pd.array([2, 9, 9, 9, 1], dtype="Int64"),
            "mean_quality": [40.0, 80.0, 82.0, 81.0, 30.0],
        }
    )


def weekly_business() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": periods(*WEEKS),
            "agent_category": pd.Categorical(
                ["strategy"] * 5, dtype=pd.CategoricalDtype(AGENT_CATEGORIES)
            ),
            "sum_estimated_revenue_usd": pd.array([1, 9, 9, 9, 2], dtype="Int64"),
            "sum_market_size_usd": pd.array([10, 90, 90, 90, 20], dtype="Int64"),
        }
    )


def days_of(values: Any) -> list[str]:
    return [pd.Timestamp(v).strftime("%Y-%m-%d") for v in values]


# -- which periods a window cuts ----------------------------------------------------------------


def test_a_window_from_wednesday_cuts_its_first_and_last_weeks():
    first, last = figures.partial_periods(SINCE, UNTIL, "W")
    assert first.start == pd.Timestamp("2026-04-27", tz="UTC")
    assert first.end == pd.Timestamp("2026-05-04", tz="UTC")
    assert first.covered == pd.Timedelta(days=5)
    assert first.describe() == "week of 2026-04-27: 5 of 7 days in the window"
    assert last.start == pd.Timestamp("2026-05-25", tz="UTC")
    assert last.describe() == "week of 2026-05-25: 2 of 7 days in the window"


@pytest.mark.parametrize(
    ("since", "until", "freq", "expected"),
    [
        ("2026-05-04", "2026-06-01", "W", []),  # whole ISO weeks
        ("2026-05-05", "2026-05-08", "W", ["week of 2026-05-04: 3 of 7 days in the window"]),
        ("2026-05-01", "2026-07-01", "M", []),
        (
            "2026-01-15",
            "2026-03-10",
            "M",
            [
                "month of 2026-01-01: 17 of 31 days in the window",
                "month of 2026-03-01: 9 of 31 days in the window",
            ],
        ),
        ("2026-05-01", "2026-05-29", "D", []),
        (
            datetime(2026, 5, 1, 12, tzinfo=UTC),
            datetime(2026, 5, 3, 6, tzinfo=UTC),
            "D",
            [
                "day of 2026-05-01: 0.5 of 1 days in the window",
                "day of 2026-05-03: 0.25 of 1 days in the window",
            ],
        ),
    ],
)
def test_partial_periods(since, until, freq, expected):
    assert [p.describe() for p in figures.partial_periods(since, until, freq)] == expected


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"since": SINCE, "until": UNTIL, "freq": "Q"}, "freq"),
        ({"since": UNTIL, "until": SINCE, "freq": "W"}, "until"),
        ({"since": datetime(2026, 5, 1), "until": UNTIL, "freq": "W"}, "since"),  # noqa: DTZ001
    ],
)
def test_bad_arguments_name_the_field(kwargs, field):
    with pytest.raises(ma.ValidationError) as info:
        figures.partial_periods(**kwargs)
    assert info.value.field == field
    with pytest.raises(ma.ValidationError) as info:
        figures.mark_partial_periods(go.Figure(), **kwargs)
    assert info.value.field == field
    with pytest.raises(ma.ValidationError) as info:
        figures.mark_partial_periods({"data": []}, since=SINCE, until=UNTIL, freq="W")
    assert info.value.field == "fig"


# -- how the figures mark them ------------------------------------------------------------------


def test_heatmap_columns_are_outlined_and_labelled():
    fig = figures.success_heatmap_figure(weekly_rates())
    before = fig.to_dict()
    marked = figures.mark_partial_periods(fig, since=SINCE, until=UNTIL, freq="W")
    assert fig.to_dict() == before  # a new figure; the given one is untouched
    axis = marked.layout.xaxis
    assert list(axis.tickvals) == list(WEEKS)
    assert list(axis.ticktext) == [
        f"{w}<br><i>partial week</i>" if w in PARTIAL else w for w in WEEKS
    ]
    boxes = [(s.x0, s.x1, s.line.dash) for s in marked.layout.shapes]
    assert boxes == [(-0.5, 0.5, "dot"), (3.5, 4.5, "dot")]
    assert "partial weeks" in marked.layout.title.subtitle.text


def test_monthly_heatmap_labels_are_months():
    frame = weekly_rates().assign(
        period=periods(*["2026-01-01", "2026-02-01", "2026-03-01", "2026-04-01", "2026-05-01"] * 2)
    )
    marked = figures.mark_partial_periods(
        figures.success_heatmap_figure(frame), since="2026-01-15", until="2026-05-20", freq="M"
    )
    assert [t for t in marked.layout.xaxis.ticktext if "partial" in t] == [
        "2026-01<br><i>partial month</i>",
        "2026-05<br><i>partial month</i>",
    ]


def test_line_points_are_hollow_on_a_grey_band_with_a_legend_entry():
    fig = figures.quality_trend_figure(weekly_quality(), rolling=None)
    marked = figures.mark_partial_periods(fig, since=SINCE, until=UNTIL, freq="W")
    line, legend = marked.data
    assert days_of(line.x) == list(WEEKS)
    assert list(line.marker.symbol) == [
        "circle-open" if w in PARTIAL else "circle" for w in WEEKS
    ]
    hovers = list(line.hovertemplate)
    assert "partial week: 5 of 7 days in the window" in hovers[0]
    assert hovers[0].endswith("<extra></extra>")
    assert "partial" not in hovers[1]
    assert "partial week: 2 of 7 days in the window" in hovers[4]
    assert legend.name == "partial week (hollow, on grey)"
    assert legend.marker.symbol == "circle-open"
    assert legend.showlegend
    bands = [(days_of([s.x0, s.x1]), s.yref) for s in marked.layout.shapes]
    assert bands == [
        (["2026-04-27", "2026-05-04"], "y domain"),
        (["2026-05-25", "2026-06-01"], "y domain"),
    ]
    assert marked.layout.title.subtitle.text.startswith("Hollow markers on grey: partial weeks")


def test_business_subplots_each_get_their_bands():
    marked = figures.mark_partial_periods(
        figures.business_figure(weekly_business()), since=SINCE, until=UNTIL, freq="W"
    )
    for trace in marked.data[:2]:
        assert list(trace.marker.symbol) == [
            "circle-open" if w in PARTIAL else "circle" for w in WEEKS
        ]
    assert sorted(s.yref for s in marked.layout.shapes) == ["y domain"] * 2 + ["y2 domain"] * 2


def test_bars_are_hatched():
    frame = weekly_rates()
    marked = figures.mark_partial_periods(
        figures.failures_figure(frame), since=SINCE, until=UNTIL, freq="W"
    )
    bars = [t for t in marked.data if t.type == "bar"]
    assert bars
    for bar in bars:
        assert list(bar.marker.pattern.shape) == ["/" if w in PARTIAL else "" for w in WEEKS]


def test_whole_periods_and_empty_figures_are_left_as_they_are():
    fig = figures.success_heatmap_figure(weekly_rates())
    same = figures.mark_partial_periods(fig, since="2026-04-27", until="2026-06-01", freq="W")
    assert same.to_dict() == fig.to_dict()
    assert same is not fig
    empty = figures.success_heatmap_figure(weekly_rates().iloc[:0])
    assert figures.mark_partial_periods(
        empty, since=SINCE, until=UNTIL, freq="W"
    ).to_dict() == empty.to_dict()


# -- in the report ------------------------------------------------------------------------------


@pytest.fixture
def demo_url(db_url: URL) -> URL:
    engine = ma.connect(db_url)
    try:
        load_demo(engine, 1500, seed=1, end=datetime(2026, 6, 1, tzinfo=UTC))
    finally:
        engine.dispose()
    return db_url


def plotly_figures(nb: Any) -> list[dict[str, Any]]:
    return [
        output["data"]["application/vnd.plotly.v1+json"]
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "application/vnd.plotly.v1+json" in output.get("data", {})
    ]


def markdown(nb: Any) -> str:
    return "\n".join(
        output["data"]["text/markdown"]
        for cell in nb.cells
        for output in cell.get("outputs", [])
        if "text/markdown" in output.get("data", {})
    )


@pytest.mark.slow
@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)  # the notebook's logic only
def test_report_marks_the_weeks_its_window_cuts(demo_url, tmp_path, capsys):
    out = tmp_path / "report.ipynb"
    url = demo_url.render_as_string(hide_password=False)
    argv = ["report", "--url", url, "--since", SINCE, "--until", UNTIL, "--format", "ipynb"]
    assert main([*argv, "--output", str(out)]) == 0, capsys.readouterr().err
    nb = nbformat.read(out, as_version=4)
    charts = {fig["layout"]["title"]["text"]: fig for fig in plotly_figures(nb)}

    heatmap = charts["Success rate per week and agent"]
    assert [t for t in heatmap["layout"]["xaxis"]["ticktext"] if "partial" in t] == [
        "2026-04-27<br><i>partial week</i>",
        "2026-05-25<br><i>partial week</i>",
    ]
    assert len(heatmap["layout"]["shapes"]) == 2

    business = charts["Estimated revenue and market size per week"]
    lines = [t for t in business["data"] if t.get("name") in AGENT_CATEGORIES]
    assert lines
    for trace in lines:
        hollow = {
            day for day, symbol in zip(days_of(trace["x"]), trace["marker"]["symbol"], strict=True)
            if symbol == "circle-open"
        }
        assert hollow == PARTIAL & set(days_of(trace["x"]))
    assert any(t.get("name") == "partial week (hollow, on grey)" for t in business["data"])
    assert "partial weeks" in business["layout"]["title"]["subtitle"]["text"]

    daily = charts["Mean quality score per day (scored executions)"]  # whole days: unmarked
    assert "partial" not in str(daily["layout"].get("title"))
    assert not np.any(["circle-open" in str(t.get("marker")) for t in daily["data"]])

    captions = markdown(nb)
    assert captions.count("Partial weeks are marked on this chart") == 2
    assert captions.count("week of 2026-04-27: 5 of 7 days in the window") == 2
    assert captions.count("week of 2026-05-25: 2 of 7 days in the window") == 2
    assert "Partial days" not in captions
