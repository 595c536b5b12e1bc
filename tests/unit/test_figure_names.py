"""One naming rule for the figures (``<subject>_figure``); the old names warn and still work."""

from __future__ import annotations

import importlib
import inspect

import pandas as pd
import pytest

from miyabi_analytics import figures

AI, SALES = "AIEntrepreneurAgent", "SalesAgent"
UTC_PERIODS = pd.to_datetime(["2026-01-05", "2026-01-12"], utc=True)


def rates_over_time() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": UTC_PERIODS,
            "agent_type": [AI, SALES],
            "executions": [4, 3],
            "completed": [3, 1],
            "failed": [1, 2],
            "success_rate": [0.75, 1 / 3],
        }
    )


def summary() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "agent_type": [AI, SALES],
            "agent_category": ["strategy", "operations"],
            "status": ["completed", "failed"],
            "quality_score": [80.0, 40.0],
            "roi_percent": [12.5, -3.0],
        }
    )


def business() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "period": UTC_PERIODS,
            "agent_category": ["strategy", "operations"],
            "sum_estimated_revenue_usd": [1_500, 2_000_000],
            "sum_market_size_usd": [5e9, 7e6],
        }
    )


def errors() -> pd.DataFrame:
    return pd.DataFrame({"error_message": ["boom", "timeout"], "failures": [3, 1]})


# old name -> (new name, a frame it draws)
RENAMED = {
    "success_rate_bar": ("success_rate_figure", rates_over_time),
    "success_heatmap": ("success_heatmap_figure", rates_over_time),
    "failures_over_time": ("failures_figure", rates_over_time),
    "top_errors_bar": ("errors_figure", errors),
    "business_over_time": ("business_figure", business),
    "roi_vs_quality": ("roi_quality_figure", summary),
    "status_overview": ("status_figure", summary),
}


def test_every_public_figure_follows_the_naming_rule():
    functions = [n for n in figures.__all__ if inspect.isfunction(getattr(figures, n))]
    drawing = [n for n in functions if n not in ("mark_partial_periods", "partial_periods")]
    assert drawing
    assert all(n.endswith("_figure") for n in drawing), drawing
    assert not set(RENAMED) & set(figures.__all__)  # a star import gives the new names only


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_old_name_warns_and_draws_the_same_figure(old: str):
    new, make = RENAMED[old]
    with pytest.warns(DeprecationWarning, match=rf"figures\.{old} is deprecated: use {new}\b"):
        drawn = getattr(figures, old)(make(), title="Same")
    expected = getattr(figures, new)(make(), title="Same")
    assert drawn.data  # a real figure, not the empty one
    assert drawn.to_json() == expected.to_json()


@pytest.mark.parametrize("old", sorted(RENAMED))
def test_old_name_is_importable_and_keeps_the_signature(old: str):
    module = importlib.import_module("miyabi_analytics.figures")
    alias = getattr(module, old)
    new = getattr(figures, RENAMED[old][0])
    assert alias.__name__ == old
    assert inspect.signature(alias) == inspect.signature(new)


def test_the_warning_points_at_the_caller():
    with pytest.warns(DeprecationWarning, match="top_errors_bar") as caught:
        figures.top_errors_bar(errors())
    assert caught[0].filename == __file__
