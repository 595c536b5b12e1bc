"""Issue 12, item 21: numbers read one way everywhere, on the figure objects themselves.

Money is compact (``$2.6B``, as the report writes it), a change of a percentage is in points,
a duration axis is labelled with the unit its ticks use, bar labels are at least 11 px.
"""

from __future__ import annotations

import math

import pandas as pd
import pytest

from miyabi_analytics import figures
from miyabi_analytics.formatting import format_change, format_duration, format_usd

AGENTS = list(figures.AGENT_COLORS)


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (2_638_276_706, "$2.6B"),
        (950, "$950"),
        (12_500, "$12.5k"),
        (999_960, "$1.0M"),  # rounds up to the next suffix, never "$1,000.0k"
        (3.1e12, "$3.1T"),
        (-3_100_000, "-$3.1M"),
        (0, "$0"),
        (None, "n/a"),
        (math.nan, "n/a"),
        (pd.NA, "n/a"),
    ],
)
def test_money_is_compact_like_the_report(value: object, text: str) -> None:
    assert format_usd(value) == text


def test_a_change_of_a_percentage_is_in_points() -> None:
    assert format_change(0.95, 0.93, "points") == "+2.0 pp"
    assert format_change(14.0, 12.5, "percent_points") == "+1.5 pp"  # ROI, held in percent
    assert format_change(12.5, 14.0, "percent_points") == "-1.5 pp"
    assert format_change(110, 100, "relative") == "+10.0%"
    assert format_change(81.3, 81.8, "difference") == "-0.5"
    assert format_change(5, 0, "relative") is None
    assert format_change(None, 3, "points") is None


def test_durations_read_in_the_largest_unit_that_fits() -> None:
    assert format_duration(90) == "1 min 30 s"
    assert format_duration(None) == "n/a"


def durations(seconds: list[float]) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agent_type": AGENTS[: len(seconds)],
            "executions": [10] * len(seconds),
            "p50_seconds": [s / 3 for s in seconds],
            "p95_seconds": [s / 2 for s in seconds],
            "max_seconds": seconds,
        }
    )


@pytest.mark.parametrize(
    ("top", "unit", "labels"),
    [
        (50.0, "seconds", ["0", "10", "20", "30", "40", "50"]),
        (4000.0, "minutes", ["0", "15", "30", "45", "60"]),
        (30_000.0, "hours", ["0", "2", "4", "6", "8"]),
        (600_000.0, "days", ["0", "2", "4", "6"]),
    ],
)
def test_duration_axis_is_labelled_with_the_unit_of_its_ticks(
    top: float, unit: str, labels: list[str]
) -> None:
    axis = figures.duration_figure(durations([top / 4, top])).layout.xaxis
    assert axis.title.text == f"Duration ({unit})"
    assert list(axis.ticktext) == labels
    size = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}[unit]
    assert [v / size for v in axis.tickvals] == [float(t) for t in labels]
    assert all(" " not in t for t in axis.ticktext)  # no "15 min" under a "(seconds)" title


def test_duration_hover_reads_the_value_in_words() -> None:
    fig = figures.duration_figure(durations([50.0, 4000.0]))
    assert list(fig.data[2].customdata) == ["50 s", "1 h 7 min"]
    assert "%{x" not in fig.data[0].hovertemplate  # no raw seconds next to the words


def rates(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agent_type": AGENTS[:n],
            "executions": [100] * n,
            "completed": [90] * n,
            "failed": [10] * n,
            "success_rate": [0.9] * n,
        }
    )


@pytest.mark.parametrize("n", [1, 4, 15])
def test_success_rate_labels_are_readable(n: int) -> None:
    fig = figures.success_rate_figure(rates(n))
    bar = fig.data[0]
    assert bar.textfont.size >= figures.MIN_TEXT_SIZE >= 11
    # plotly shrinks "auto" text to fit a bar unless uniformtext says how small it may go
    assert fig.layout.uniformtext.minsize >= 11
    assert fig.layout.uniformtext.mode == "show"
    # and each bar is tall enough for it: the figure grows with the bars
    assert fig.layout.height >= 160 + 28 * n
    assert list(bar.text) == ["90%"] * n


def test_business_hover_money_is_compact() -> None:
    frame = pd.DataFrame(
        {
            "period": pd.to_datetime(["2026-01-01", "2026-02-01"], utc=True),
            "agent_category": ["strategy", "strategy"],
            "sum_estimated_revenue_usd": [2_638_276_706, 950],
            "sum_market_size_usd": [5e9, 7e6],
        }
    )
    fig = figures.business_figure(frame)
    assert list(fig.data[0].customdata) == ["$2.6B", "$950"]
    assert list(fig.data[1].customdata) == ["$5.0B", "$7.0M"]
    assert all("%{customdata}" in t.hovertemplate for t in fig.data)


def test_figures_package_keeps_every_public_name() -> None:
    from miyabi_analytics.figures import business, durations, errors, status, trends

    subjects = (business, durations, errors, status, trends)
    names = {name for module in subjects for name in module.__all__}
    assert names <= set(figures.__all__)
    for module in subjects:
        for name in module.__all__:
            assert name.endswith("_figure")  # one naming rule: <subject>_figure
            assert getattr(figures, name) is getattr(module, name)
