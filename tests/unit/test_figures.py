"""miyabi_analytics.figures on hand-made frames with the dtypes of the readers and aggregates."""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import Any

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import pytest

from miyabi_analytics import figures
from miyabi_analytics.agents import AGENT_CATEGORIES, AGENT_TYPES, agent_category
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.figures import AGENT_COLORS, CATEGORY_COLORS, NO_DATA

AGENT = pd.CategoricalDtype(list(AGENT_TYPES))
CATEGORY = pd.CategoricalDtype(list(AGENT_CATEGORIES))
STATUS = pd.CategoricalDtype(["pending", "running", "completed", "failed"])
UTC = pd.DatetimeTZDtype(unit="us", tz="UTC")
STR = pd.StringDtype(na_value=np.nan)

AI, SALES, IVE = "AIEntrepreneurAgent", "SalesAgent", "JonathanIveDesignAgent"


def ts(*values: str) -> pd.Series:
    return pd.Series(pd.to_datetime(list(values), utc=True)).astype(UTC)


def agents(*values: str | None) -> pd.Categorical:
    return pd.Categorical(list(values), dtype=AGENT)


def ints(*values: int | None) -> Any:
    return pd.array(list(values), dtype="Int64")


# ---------------------------------------------------------------- frames as aggregates give them


def quality_frame() -> pd.DataFrame:
    # SalesAgent first on purpose: the figure orders by AGENT_TYPES, not by row order.
    return pd.DataFrame(
        {
            "period": ts("2024-01-01", "2024-01-01", "2024-01-02", "2024-01-03"),
            "agent_type": agents(SALES, AI, AI, AI),
            "executions": ints(1, 2, 3, 1),
            "mean_quality": [60.0, 80.0, 90.0, 70.0],
            "min_quality": ints(60, 70, 85, 70),
            "max_quality": ints(60, 90, 95, 70),
        }
    )


def rates_frame() -> pd.DataFrame:
    """success_rates(freq="W"): Mondays, a NaN rate where nothing finished."""
    return pd.DataFrame(
        {
            "period": ts("2024-01-01", "2024-01-01", "2024-01-08", "2024-01-15"),
            "agent_type": agents(AI, SALES, AI, AI),
            "executions": ints(3, 2, 1, 4),
            "completed": ints(2, 0, 0, 1),
            "failed": ints(1, 2, 0, 3),
            "success_rate": [2 / 3, 0.0, np.nan, 0.25],
        }
    )


def rates_total_frame() -> pd.DataFrame:
    """success_rates(freq=None): one row per group."""
    return pd.DataFrame(
        {
            "agent_type": agents(AI, SALES, IVE),
            "executions": ints(8, 2, 1),
            "completed": ints(3, 0, 0),
            "failed": ints(4, 2, 0),
            "success_rate": [3 / 7, 0.0, np.nan],
        }
    )


def duration_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agent_type": agents(SALES, AI),
            "executions": ints(2, 3),
            "mean_seconds": [20.0, 10.0],
            "p50_seconds": [30.0, 8.0],
            "p95_seconds": [400.0, 40.0],
            "max_seconds": [4000.0, 50.0],
        }
    )


def business_frame() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": ts("2024-01-01", "2024-01-01", "2024-02-01"),
            "agent_category": pd.Categorical(
                ["strategy", "operations", "strategy"], dtype=CATEGORY
            ),
            "executions": ints(2, 1, 1),
            "sum_competitors_analyzed": ints(3, 1, 2),
            "sum_market_size_usd": ints(5_000_000_000, 20_000, 7_000_000),
            "sum_target_audience_size": ints(10, 20, 30),
            "sum_estimated_revenue_usd": ints(1_500, None, 2_000_000),
            "sum_reach_estimate": ints(1, 2, 3),
            "mean_growth_rate_percent": [1.0, 2.0, 3.0],
            "mean_conversion_rate": [1.0, 2.0, 3.0],
            "mean_engagement_score": [50.0, 60.0, 70.0],
            "mean_roi_percent": [10.0, -5.0, 20.0],
        }
    )


def summary_frame() -> pd.DataFrame:
    """A slice of read_summary's columns with its dtypes."""
    types = [AI, SALES, AI, IVE, SALES]
    return pd.DataFrame(
        {
            "id": pd.array(["a", "b", "c", "d", "e"], dtype=STR),
            "agent_type": agents(*types),
            "agent_category": pd.Categorical([agent_category(t) for t in types], dtype=CATEGORY),
            "status": pd.Categorical(
                ["completed", "failed", "running", "completed", "completed"], dtype=STATUS
            ),
            "started_at": ts("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04", "2024-01-05"),
            "quality_score": ints(80, None, 60, 95, 40),
            "roi_percent": [12.5, 3.0, np.nan, 150.0, -20.0],
        }
    )


def errors_frame() -> pd.DataFrame:
    long = "Timeout while calling <api> " + "x" * 100 + " END"
    return pd.DataFrame(
        {
            "error_message": pd.array(["boom", long, None, "rare"], dtype=STR),
            "failures": ints(5, 7, 5, 1),
            "agent_types": pd.array([f"{AI}, {SALES}", SALES, AI, IVE], dtype=STR),
            "first_seen": ts("2024-01-01", "2024-01-02", "2024-01-03", "2024-01-04"),
            "last_seen": ts("2024-01-05", "2024-01-06", "2024-01-07", "2024-01-08"),
        }
    )


Figure = Callable[..., go.Figure]
CASES: list[tuple[Figure, Callable[[], pd.DataFrame], list[str]]] = [
    (figures.quality_trend_figure, quality_frame, ["period", "agent_type", "mean_quality"]),
    (figures.success_rate_figure, rates_total_frame, ["agent_type", "success_rate", "failed"]),
    (figures.success_heatmap_figure, rates_frame, ["period", "agent_type", "success_rate"]),
    (figures.duration_figure, duration_frame, ["agent_type", "p50_seconds", "max_seconds"]),
    (
        figures.business_figure,
        business_frame,
        ["period", "agent_category", "sum_estimated_revenue_usd", "sum_market_size_usd"],
    ),
    (figures.roi_quality_figure, summary_frame, ["roi_percent", "quality_score", "agent_category"]),
    (figures.errors_figure, errors_frame, ["error_message", "failures"]),
    (figures.failures_figure, rates_frame, ["period", "agent_type", "failed"]),
    (figures.status_figure, summary_frame, ["status", "agent_category"]),
]
IDS = [fn.__name__ for fn, _, _ in CASES]
MISSING = [
    pytest.param(fn, make, column, id=f"{fn.__name__}-{column}")
    for fn, make, columns in CASES
    for column in columns
]


# ---------------------------------------------------------------- every figure


def test_public_names_are_exported():
    assert sorted(figures.__all__) == figures.__all__
    assert all(hasattr(figures, name) for name in figures.__all__)


def test_a_fixed_distinct_colour_per_agent_and_category():
    assert tuple(AGENT_COLORS) == AGENT_TYPES
    assert tuple(CATEGORY_COLORS) == AGENT_CATEGORIES
    for colours in (AGENT_COLORS, CATEGORY_COLORS):
        assert len(set(colours.values())) == len(colours)
        assert all(c.startswith("#") and len(c) == 7 for c in colours.values())


@pytest.mark.parametrize(("fn", "make", "_cols"), CASES, ids=IDS)
def test_figure_serialises_with_titles(fn: Figure, make: Callable[[], pd.DataFrame], _cols):
    fig = fn(make())
    assert isinstance(fig, go.Figure)
    assert fig.data, "at least one trace"
    assert fig.layout.title.text
    assert fig.layout.template.layout.paper_bgcolor == "white"  # plotly_white, whatever the default
    assert fig.layout.xaxis.title.text or fig.layout.xaxis2.title.text
    assert fig.layout.yaxis.title.text
    payload = json.loads(fig.to_json())
    assert payload["data"]
    assert payload["layout"]["title"]["text"] == fig.layout.title.text


@pytest.mark.parametrize(("fn", "make", "_cols"), CASES, ids=IDS)
def test_input_frame_is_not_mutated(fn: Figure, make: Callable[[], pd.DataFrame], _cols):
    df = make()
    before = df.copy(deep=True)
    fn(df)
    pd.testing.assert_frame_equal(df, before, check_exact=True)
    assert list(df.dtypes) == list(before.dtypes)


@pytest.mark.parametrize(("fn", "make", "_cols"), CASES, ids=IDS)
def test_empty_frame_gives_annotated_empty_figure(
    fn: Figure, make: Callable[[], pd.DataFrame], _cols
):
    fig = fn(make().iloc[:0])
    assert len(fig.data) == 0
    assert [a.text for a in fig.layout.annotations] == [NO_DATA]
    assert fig.layout.title.text
    assert fig.layout.xaxis.visible is False
    fig.to_json()


@pytest.mark.parametrize(("fn", "make", "_cols"), CASES, ids=IDS)
def test_title_can_be_overridden(fn: Figure, make: Callable[[], pd.DataFrame], _cols):
    assert fn(make(), title="Mine").layout.title.text == "Mine"
    assert fn(make().iloc[:0], title="Mine").layout.title.text == "Mine"


@pytest.mark.parametrize(("fn", "make", "column"), MISSING)
def test_missing_column_raises(fn: Figure, make: Callable[[], pd.DataFrame], column: str):
    df = make().drop(columns=[column])
    for frame in (df, df.iloc[:0]):
        with pytest.raises(ValidationError) as info:
            fn(frame)
        assert info.value.field == "df"
        assert info.value.value == [column]
        assert fn.__name__ in info.value.reason
        assert column in str(info.value)


@pytest.mark.parametrize(("fn", "_make", "_cols"), CASES, ids=IDS)
def test_not_a_frame_raises(fn: Figure, _make, _cols):
    with pytest.raises(ValidationError, match="DataFrame"):
        fn({"agent_type": [AI]})


@pytest.mark.parametrize(
    "fn",
    [
        figures.quality_trend_figure,
        figures.success_rate_figure,
        figures.success_heatmap_figure,
        figures.duration_figure,
        figures.business_figure,
        figures.failures_figure,
        figures.status_figure,
    ],
)
def test_by_must_be_one_column_name(fn: Figure):
    with pytest.raises(ValidationError) as info:
        fn(pd.DataFrame(), by=["agent_type", "user_id"])
    assert info.value.field == "by"


def colour_of(trace: Any) -> Any:
    if trace.type == "scatter" and trace.mode and "lines" in trace.mode:
        return trace.line.color
    return trace.marker.color


def test_same_agent_same_colour_in_every_figure():
    seen: dict[str, set[str]] = {}
    traces = [
        *figures.quality_trend_figure(quality_frame()).data,
        *figures.failures_figure(rates_frame()).data,
    ]
    for trace in traces:
        seen.setdefault(trace.legendgroup or trace.name, set()).add(colour_of(trace))
    bar = figures.success_rate_figure(rates_total_frame()).data[0]
    for label, colour in zip(bar.y, bar.marker.color, strict=True):
        seen.setdefault(label, set()).add(colour)
    duration = figures.duration_figure(duration_frame()).data[0]
    for label, colour in zip(duration.y, duration.marker.color, strict=True):
        seen.setdefault(label, set()).add(colour)
    assert seen[AI] == {AGENT_COLORS[AI]}
    assert seen[SALES] == {AGENT_COLORS[SALES]}
    assert seen[IVE] == {AGENT_COLORS[IVE]}


def test_same_category_same_colour_in_every_figure():
    traces = [
        *figures.business_figure(business_frame()).data,
        *figures.roi_quality_figure(summary_frame()).data,
        *figures.status_figure(summary_frame()).data,
    ]
    for trace in traces:
        assert colour_of(trace) == CATEGORY_COLORS[trace.name]


# ---------------------------------------------------------------- quality_trend_figure


def test_quality_trend_lines_and_weighted_rolling_mean():
    fig = figures.quality_trend_figure(quality_frame(), rolling=2)
    names = [t.name for t in fig.data]
    assert names == [AI, f"{AI} (2-period mean)", SALES, f"{SALES} (2-period mean)"]
    solid, dashed = fig.data[0], fig.data[1]
    assert solid.line.dash is None
    assert dashed.line.dash == "dash"
    assert solid.line.color == dashed.line.color == AGENT_COLORS[AI]
    assert dashed.showlegend is False
    assert dashed.legendgroup == solid.legendgroup == AI
    assert list(solid.y) == [80.0, 90.0, 70.0]
    # weighted by executions: (80*2 + 90*3) / 5, then (90*3 + 70*1) / 4
    np.testing.assert_allclose(dashed.y, [80.0, 86.0, 85.0])
    assert list(fig.layout.yaxis.range) == [0, 100]
    assert fig.layout.xaxis.title.text == "Day (UTC)"
    assert "rolling mean over 2" in fig.layout.title.subtitle.text
    assert "max" in solid.hovertemplate
    assert solid.customdata.shape == (3, 3)


def test_quality_trend_without_rolling_line():
    for rolling in (None, 1):
        fig = figures.quality_trend_figure(quality_frame(), rolling=rolling)
        assert [t.name for t in fig.data] == [AI, SALES]


@pytest.mark.parametrize("rolling", [0, -3, 2.5, True, "7"])
def test_quality_trend_rejects_bad_window(rolling: Any):
    with pytest.raises(ValidationError) as info:
        figures.quality_trend_figure(quality_frame(), rolling=rolling)
    assert info.value.field == "rolling"


def test_periods_are_plotted_in_utc():
    df = quality_frame()
    df["period"] = df["period"].dt.tz_convert("Asia/Tokyo")
    fig = figures.quality_trend_figure(df)
    x = pd.DatetimeIndex(fig.data[0].x)
    assert x.tz is None
    assert list(x.strftime("%Y-%m-%d %H:%M")) == [
        "2024-01-01 00:00",
        "2024-01-02 00:00",
        "2024-01-03 00:00",
    ]
    assert '"2024-01-01T00:00:00' in fig.to_json()


def test_other_groupings_get_stable_fallback_colours():
    df = pd.DataFrame(
        {
            "period": ts("2024-01-01", "2024-01-01", "2024-01-01"),
            "user_id": pd.array(["u2", None, "u1"], dtype=STR),
            "executions": ints(1, 1, 1),
            "mean_quality": [50.0, 60.0, 70.0],
        }
    )
    fig = figures.quality_trend_figure(df, by="user_id", rolling=None)
    assert [t.name for t in fig.data] == ["(none)", "u1", "u2"]
    assert len({t.line.color for t in fig.data}) == 3
    assert fig.layout.legend.title.text == "User"


# ---------------------------------------------------------------- success rates


def test_success_rate_figure_values_colours_and_axis():
    fig = figures.success_rate_figure(rates_total_frame())
    (bar,) = fig.data
    assert bar.orientation == "h"
    assert list(bar.y) == [AI, SALES, IVE]
    np.testing.assert_allclose(bar.x, [3 / 7, 0.0, np.nan])
    assert list(bar.marker.color) == [AGENT_COLORS[a] for a in (AI, SALES, IVE)]
    assert list(bar.text) == ["43%", "0%", ""]
    assert bar.customdata.tolist() == [[8, 3, 4], [2, 0, 2], [1, 0, 0]]
    assert all(k in bar.hovertemplate for k in ("executions", "completed", "failed"))
    assert fig.layout.xaxis.tickformat == ".0%"
    assert list(fig.layout.xaxis.range) == [0, 1]
    assert fig.layout.yaxis.autorange == "reversed"
    assert list(fig.layout.yaxis.categoryarray) == [AI, SALES, IVE]


def test_success_rate_figure_sums_periods():
    (bar,) = figures.success_rate_figure(rates_frame()).data
    assert list(bar.y) == [AI, SALES]
    np.testing.assert_allclose(bar.x, [3 / 7, 0.0])  # (2+0+1) / (3+0+4)
    assert bar.customdata.tolist() == [[8, 3, 4], [2, 0, 2]]


def test_success_heatmap_grid_with_blank_cells():
    fig = figures.success_heatmap_figure(rates_frame())
    (heat,) = fig.data
    assert list(heat.y) == [AI, SALES]
    assert list(heat.x) == ["2024-01-01", "2024-01-08", "2024-01-15"]
    assert heat.z[0][0] == pytest.approx(2 / 3)
    assert heat.z[0][1] is None  # nothing finished that week
    assert heat.z[0][2] == pytest.approx(0.25)
    assert list(heat.z[1]) == [0.0, None, None]  # no row that week
    assert (heat.zmin, heat.zmax) == (0, 1)
    assert heat.colorbar.tickformat == ".0%"
    assert heat.hoverongaps is False
    assert heat.customdata.shape == (2, 3, 2)
    assert fig.layout.title.text == "Weekly success rate"
    assert fig.layout.xaxis.title.text == "Week starting Monday (UTC)"
    assert fig.layout.yaxis.autorange == "reversed"
    assert '"z":[[0.6666666666666666,null,0.25],[0.0,null,null]]' in fig.to_json()


def test_success_heatmap_monthly_labels():
    df = rates_frame()
    df["period"] = ts("2024-01-01", "2024-01-01", "2024-02-01", "2024-03-01")
    fig = figures.success_heatmap_figure(df)
    assert list(fig.data[0].x) == ["2024-01", "2024-02", "2024-03"]
    assert fig.layout.title.text == "Monthly success rate"


def test_failures_figure_stacks_failing_groups():
    df = rates_frame()
    fig = figures.failures_figure(df)
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == [AI, SALES]
    ai, sales = fig.data
    assert list(ai.y) == [1.0, 3.0]  # the week with 0 failures is left out
    assert list(sales.y) == [2.0]
    assert ai.marker.color == AGENT_COLORS[AI]
    assert fig.layout.yaxis.dtick == 1
    assert fig.layout.yaxis.tickformat == ",d"


def test_failures_figure_without_failures():
    df = rates_frame()
    df["failed"] = ints(0, 0, 0, 0)
    fig = figures.failures_figure(df)
    assert len(fig.data) == 0
    assert "No failed executions" in fig.layout.annotations[0].text


# ---------------------------------------------------------------- durations, business, roi


def test_duration_figure_bars_marker_and_readable_axis():
    fig = figures.duration_figure(duration_frame())
    p50, p95, peak = fig.data
    assert (p50.name, p95.name, peak.name) == ("median (p50)", "95th percentile", "max")
    assert list(p50.y) == [AI, SALES]
    assert list(p50.x) == [8.0, 30.0]
    assert list(p95.x) == [40.0, 400.0]
    assert list(peak.x) == [50.0, 4000.0]
    assert peak.mode == "markers"
    assert list(p50.marker.color) == [AGENT_COLORS[AI], AGENT_COLORS[SALES]]
    assert p95.marker.pattern.shape == "/"
    assert list(peak.customdata) == ["50 s", "1 h 7 min"]
    axis = fig.layout.xaxis
    assert axis.title.text == "Duration (minutes)"  # the unit of the tick labels (issue 12)
    assert list(axis.tickvals) == [0, 900, 1800, 2700, 3600]
    assert list(axis.ticktext) == ["0", "15", "30", "45", "60"]
    assert axis.range[1] == pytest.approx(4200)


@pytest.mark.parametrize(
    ("seconds", "text"),
    [
        (0.25, "250 ms"),
        (12.34, "12.3 s"),
        (90, "1 min 30 s"),
        (3725, "1 h 2 min"),
        (93600, "1 d 2 h"),
    ],
)
def test_durations_read_as_units(seconds: float, text: str):
    assert figures._format_duration(seconds) == text


def test_business_figure_two_money_axes():
    fig = figures.business_figure(business_frame())
    assert [t.name for t in fig.data] == ["strategy", "operations"] * 2
    assert [t.showlegend for t in fig.data] == [True, True, False, False]
    assert [t.yaxis for t in fig.data] == ["y", "y", "y2", "y2"]
    revenue_strategy, revenue_ops, market_strategy, _ = fig.data
    assert list(revenue_strategy.y) == [1_500.0, 2_000_000.0]
    assert np.isnan(revenue_ops.y[0])
    assert list(market_strategy.y) == [5e9, 7e6]
    for axis in (fig.layout.yaxis, fig.layout.yaxis2):
        assert axis.tickprefix == "$"
        assert axis.exponentformat == "B"
    assert list(revenue_strategy.customdata) == ["$1.5k", "$2.0M"]  # compact, as everywhere
    assert "%{customdata}" in revenue_strategy.hovertemplate
    assert fig.layout.xaxis2.title.text == "Month (UTC)"
    assert [a.text for a in fig.layout.annotations] == ["Estimated revenue", "Market size"]


def test_roi_quality_figure_scatter():
    fig = figures.roi_quality_figure(summary_frame())
    assert [t.name for t in fig.data] == ["strategy", "operations", "design"]
    strategy, operations, design = fig.data
    assert list(strategy.x) == [80.0]
    assert list(strategy.y) == [12.5]
    assert list(operations.x) == [40.0]
    assert list(operations.customdata) == [SALES]
    assert list(design.customdata) == [IVE]
    assert "%{customdata}" in strategy.hovertemplate
    assert fig.layout.yaxis.ticksuffix == "%"
    assert list(fig.layout.xaxis.range) == [0, 100]


def test_roi_quality_figure_without_plottable_points():
    df = summary_frame()
    df["roi_percent"] = np.nan
    fig = figures.roi_quality_figure(df)
    assert len(fig.data) == 0
    assert "ROI" in fig.layout.annotations[0].text


# ---------------------------------------------------------------- errors and statuses


def test_errors_figure_orders_truncates_and_keeps_full_text():
    df = errors_frame()
    fig = figures.errors_figure(df, top=3, max_label=30)
    (bar,) = fig.data
    assert bar.orientation == "h"
    assert list(bar.x) == [7.0, 5.0, 5.0]
    labels = list(fig.layout.yaxis.ticktext)
    assert labels[0].startswith("Timeout while calling &lt;api&gt;")
    assert labels[0].endswith("…")
    assert len(labels[0].replace("&lt;", "<").replace("&gt;", ">")) == 30
    assert labels[1:] == ["(none)", "boom"]  # ties by message
    full = bar.customdata[0][0]
    assert full.endswith(" END")
    assert "&lt;api&gt;" in full
    assert bar.customdata[0][1] == SALES
    assert bar.customdata[0][2] == "2024-01-02 00:00 to 2024-01-06 00:00 UTC"
    assert "agents: %{customdata[1]}" in bar.hovertemplate
    assert fig.layout.yaxis.autorange == "reversed"
    assert list(fig.layout.yaxis.tickvals) == [0, 1, 2]


def test_errors_figure_minimal_columns_and_limits():
    df = errors_frame()[["error_message", "failures"]]
    fig = figures.errors_figure(df)
    assert len(fig.data[0].x) == 4
    assert fig.data[0].hovertemplate == "%{customdata[0]}<br><b>%{x:,} failures</b><extra></extra>"
    with pytest.raises(ValidationError):
        figures.errors_figure(df, top=0)


def test_status_figure_counts_per_status_by_category():
    fig = figures.status_figure(summary_frame())
    assert fig.layout.barmode == "stack"
    assert [t.name for t in fig.data] == ["strategy", "operations", "design"]
    strategy, operations, design = fig.data
    assert list(strategy.x) == ["running", "completed", "failed"]
    assert list(strategy.y) == [1, 1, 0]
    assert list(operations.y) == [0, 1, 1]
    assert list(design.y) == [0, 1, 0]
    assert [(a.x, a.text) for a in fig.layout.annotations] == [
        ("running", "1"),
        ("completed", "3"),
        ("failed", "1"),
    ]


def test_status_figure_by_agent_type():
    fig = figures.status_figure(summary_frame(), by="agent_type")
    assert [t.name for t in fig.data] == [AI, SALES, IVE]
    assert [t.marker.color for t in fig.data] == [AGENT_COLORS[a] for a in (AI, SALES, IVE)]
