"""Plotly figures for the frames of :mod:`miyabi_analytics`: DataFrame in, new Figure out.

Each function reads only the frame it is given (never the database, never mutating it) and
returns a new :class:`plotly.graph_objects.Figure`. Agent types and categories keep one colour
(:data:`AGENT_COLORS`, :data:`CATEGORY_COLORS`) and the design's order in every figure. Numbers
read as :mod:`miyabi_analytics.formatting` writes them everywhere else (money compact, a
duration axis in the unit its title names, text at least 11 px).

The figures live in private modules by subject (over time, per group); this is their one
public face.
"""

from __future__ import annotations

from miyabi_analytics._figure_kit import AGENT_COLORS, CATEGORY_COLORS, MIN_TEXT_SIZE, NO_DATA
from miyabi_analytics._figure_kit import _format_duration as _format_duration
from miyabi_analytics._figures_groups import (
    duration_figure,
    roi_vs_quality,
    status_overview,
    success_rate_bar,
    top_errors_bar,
)
from miyabi_analytics._figures_time import (
    business_over_time,
    failures_over_time,
    quality_trend_figure,
    success_heatmap,
)
from miyabi_analytics._partial_periods import PartialPeriod, mark_partial_periods, partial_periods

__all__ = [
    "AGENT_COLORS",
    "CATEGORY_COLORS",
    "MIN_TEXT_SIZE",
    "NO_DATA",
    "PartialPeriod",
    "business_over_time",
    "duration_figure",
    "failures_over_time",
    "mark_partial_periods",
    "partial_periods",
    "quality_trend_figure",
    "roi_vs_quality",
    "status_overview",
    "success_heatmap",
    "success_rate_bar",
    "top_errors_bar",
]
