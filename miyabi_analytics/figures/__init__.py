"""Plotly figures for the frames of :mod:`miyabi_analytics`: DataFrame in, new Figure out.

Each function reads only the frame it is given (never the database, never mutating it) and
returns a new :class:`plotly.graph_objects.Figure`. Agent types and categories keep one colour
(:data:`AGENT_COLORS`, :data:`CATEGORY_COLORS`) and the design's order in every figure. Numbers
read as :mod:`miyabi_analytics.formatting` writes them everywhere else (money compact, a
duration axis in the unit its title names, text at least 11 px).

One module per subject (:mod:`~.trends`, :mod:`~.status`, :mod:`~.durations`,
:mod:`~.business`, :mod:`~.errors`, :mod:`~.timeline`), each figure named
``<subject>_figure``; this package is their one public face. The names before that rule
(``success_rate_bar``, ...) still work, with a :class:`DeprecationWarning`.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Callable
from typing import ParamSpec

import plotly.graph_objects as go

from miyabi_analytics.figures._kit import AGENT_COLORS, CATEGORY_COLORS, MIN_TEXT_SIZE, NO_DATA
from miyabi_analytics.figures._kit import _format_duration as _format_duration
from miyabi_analytics.figures._partial_periods import (
    PartialPeriod,
    mark_partial_periods,
    partial_periods,
)
from miyabi_analytics.figures.business import business_figure, roi_quality_figure
from miyabi_analytics.figures.durations import duration_figure
from miyabi_analytics.figures.errors import errors_figure, failures_figure
from miyabi_analytics.figures.status import status_figure, success_rate_figure
from miyabi_analytics.figures.timeline import timeline_figure
from miyabi_analytics.figures.trends import quality_trend_figure, success_heatmap_figure

__all__ = [
    "AGENT_COLORS",
    "CATEGORY_COLORS",
    "MIN_TEXT_SIZE",
    "NO_DATA",
    "PartialPeriod",
    "business_figure",
    "duration_figure",
    "errors_figure",
    "failures_figure",
    "mark_partial_periods",
    "partial_periods",
    "quality_trend_figure",
    "roi_quality_figure",
    "status_figure",
    "success_heatmap_figure",
    "success_rate_figure",
    "timeline_figure",
]

P = ParamSpec("P")


def _renamed(figure: Callable[P, go.Figure], old: str) -> Callable[P, go.Figure]:
    """``figure`` under its name before the ``<subject>_figure`` rule, warning on every call."""

    @functools.wraps(figure)
    def alias(*args: P.args, **kwargs: P.kwargs) -> go.Figure:
        warnings.warn(
            f"miyabi_analytics.figures.{old} is deprecated: use {figure.__name__} "
            "(same arguments, same figure)",
            DeprecationWarning,
            stacklevel=2,
        )
        return figure(*args, **kwargs)

    alias.__name__ = alias.__qualname__ = old
    alias.__doc__ = f"Deprecated name of :func:`{figure.__name__}`."
    return alias


# Not in __all__: a star import gives the current names only.
success_rate_bar = _renamed(success_rate_figure, "success_rate_bar")
status_overview = _renamed(status_figure, "status_overview")
roi_vs_quality = _renamed(roi_quality_figure, "roi_vs_quality")
top_errors_bar = _renamed(errors_figure, "top_errors_bar")
success_heatmap = _renamed(success_heatmap_figure, "success_heatmap")
failures_over_time = _renamed(failures_figure, "failures_over_time")
business_over_time = _renamed(business_figure, "business_over_time")
