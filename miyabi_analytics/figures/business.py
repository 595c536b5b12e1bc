"""Figures of the business metrics: revenue and market size over time, ROI against quality."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from miyabi_analytics.figures._kit import (
    _BUCKETS,
    _BY_TITLES,
    _TEMPLATE,
    _bucket,
    _check_by,
    _colors,
    _empty_figure,
    _figure,
    _labels,
    _order,
    _require,
    _tidy,
)
from miyabi_analytics.formatting import format_usd

__all__ = ["business_figure", "roi_quality_figure"]


def business_figure(
    df: pd.DataFrame, /, *, by: str = "agent_category", title: str | None = None
) -> go.Figure:
    """Estimated revenue and market size per group over time, from :func:`business_metrics`.

    Args:
        df: Columns ``period``, ``<by>``, ``sum_estimated_revenue_usd``, ``sum_market_size_usd``.
        by: The group column.
        title: Figure title.

    Returns:
        Two stacked subplots sharing the time axis, dollar axes with k/M/B suffixes and
        hovers as :func:`~miyabi_analytics.formatting.format_usd` writes money (``$2.6B``).
    """
    by = _check_by(by, "business_figure")
    money = {"sum_estimated_revenue_usd": "Estimated revenue", "sum_market_size_usd": "Market size"}
    _require(df, "business_figure", ["period", by, *money])
    title = title or "Estimated revenue and market size"
    if df.empty:
        return _empty_figure(title)
    frame = _tidy(df, by, list(money))
    order = _order(by, frame["group"].to_numpy())
    colors = _colors(by, order)
    axis, date = _BUCKETS[_bucket(frame["period"])]
    fig = make_subplots(
        rows=2,
        cols=1,
        shared_xaxes=True,
        vertical_spacing=0.1,
        subplot_titles=list(money.values()),
    )
    fig.update_layout(
        template=_TEMPLATE,
        title={"text": title, "x": 0.02},
        legend_title_text=_BY_TITLES.get(by, by),
    )
    for row, (column, name) in enumerate(money.items(), start=1):
        for label in order:
            g = frame[frame["group"] == label].sort_values("period", kind="stable")
            fig.add_scatter(
                x=g["period"],
                y=g[column],
                mode="lines+markers",
                name=label,
                legendgroup=label,
                showlegend=row == 1,
                line={"color": colors[label]},
                marker={"size": 5},
                customdata=[format_usd(v) for v in g[column]],
                hovertemplate=f"<b>%{{fullData.name}}</b><br>%{{x|{date}}}<br>{name} "
                "%{customdata}<extra></extra>",
                row=row,
                col=1,
            )
        fig.update_yaxes(
            title_text=f"{name} (USD)",
            tickprefix="$",
            exponentformat="B",
            showexponent="all",
            rangemode="tozero",
            row=row,
            col=1,
        )
    fig.update_xaxes(title_text=axis, row=2, col=1)
    return fig


def roi_quality_figure(df: pd.DataFrame, /, *, title: str | None = None) -> go.Figure:
    """ROI against quality score per execution, from a :func:`read_summary` frame.

    Args:
        df: Columns ``quality_score``, ``roi_percent``, ``agent_category``, ``agent_type``.
        title: Figure title.

    Returns:
        One marker per execution with both values, coloured by agent category.
    """
    columns = ["quality_score", "roi_percent", "agent_category", "agent_type"]
    _require(df, "roi_quality_figure", columns)
    title = title or "ROI vs quality score"
    if df.empty:
        return _empty_figure(title)
    frame = _tidy(df, "agent_category", ["quality_score", "roi_percent"])
    frame["agent_type"] = _labels(df["agent_type"])
    frame = frame.dropna(subset=["quality_score", "roi_percent"])
    if frame.empty:
        return _empty_figure(title, "No executions with both a quality score and an ROI")
    order = _order("agent_category", frame["group"].to_numpy())
    colors = _colors("agent_category", order)
    fig = _figure(title, legend_title_text="Agent category", hovermode="closest")
    for label in order:
        g = frame[frame["group"] == label]
        fig.add_scatter(
            x=g["quality_score"],
            y=g["roi_percent"],
            mode="markers",
            name=label,
            marker={"color": colors[label], "size": 8, "opacity": 0.75},
            cliponaxis=False,
            customdata=g["agent_type"].to_numpy(),
            hovertemplate="<b>%{customdata}</b> (%{fullData.name})<br>quality %{x:.0f}"
            "<br>ROI %{y:,.2f}%<extra></extra>",
        )
    fig.update_xaxes(title_text="Quality score", range=[0, 100])
    fig.update_yaxes(title_text="ROI", ticksuffix="%", zeroline=True)
    return fig
