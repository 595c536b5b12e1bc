"""Figures of how long executions take: median, 95th percentile and maximum per group."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics.figures._kit import (
    _BY_TITLES,
    _check_by,
    _colors,
    _duration_axis,
    _empty_figure,
    _figure,
    _format_duration,
    _order,
    _require,
    _tidy,
)

__all__ = ["duration_figure"]


def duration_figure(
    df: pd.DataFrame, /, *, by: str = "agent_type", title: str | None = None
) -> go.Figure:
    """Median, 95th percentile and maximum duration per group, from :func:`duration_stats`.

    Args:
        df: Columns ``<by>``, ``executions``, ``p50_seconds``, ``p95_seconds``, ``max_seconds``.
        by: The group column.
        title: Figure title.

    Returns:
        Horizontal p50 (solid) and p95 (hatched) bars in the group's colour, the maximum as a
        marker; the axis is in the one unit its title names (seconds, minutes, hours or days,
        whichever suits the longest bar), the hover reads ``12 min 30 s``.
    """
    by = _check_by(by, "duration_figure")
    numeric = ["executions", "p50_seconds", "p95_seconds", "max_seconds"]
    _require(df, "duration_figure", [by, *numeric])
    title = title or "Execution duration"
    if df.empty:
        return _empty_figure(title)
    frame = _tidy(df, by, numeric)
    order = _order(by, frame["group"].to_numpy())
    frame = frame.drop_duplicates("group").set_index("group").loc[order]
    colors = [_colors(by, order)[v] for v in order]
    fig = _figure(title, barmode="group", legend_title_text="Statistic", bargap=0.2)
    for column, name, pattern, opacity in (
        ("p50_seconds", "median (p50)", "", 1.0),
        ("p95_seconds", "95th percentile", "/", 0.55),
    ):
        values = frame[column].to_numpy()
        fig.add_bar(
            x=values,
            y=order,
            orientation="h",
            name=name,
            opacity=opacity,
            # fgcolor per bar: plotly.js cannot draw a pattern whose colour is an array otherwise
            marker={
                "color": colors,
                "pattern": {"shape": pattern, "fgcolor": colors, "bgcolor": "white"},
            },
            customdata=np.column_stack(
                [[_format_duration(v) for v in values], frame["executions"].to_numpy()]
            ),
            hovertemplate=f"<b>%{{y}}</b><br>{name} %{{customdata[0]}}"
            "<br>%{customdata[1]:,} timed executions<extra></extra>",
        )
    maxima = frame["max_seconds"].to_numpy()
    fig.add_scatter(
        x=maxima,
        y=order,
        mode="markers",
        name="max",
        marker={"symbol": "diamond", "size": 9, "color": "#333333"},
        customdata=[_format_duration(v) for v in maxima],
        cliponaxis=False,
        hovertemplate="<b>%{y}</b><br>max %{customdata}<extra></extra>",
    )
    top = float(np.nanmax(frame[numeric[1:]].to_numpy(), initial=0.0))
    top = top if top > 0 else 1.0
    unit, tickvals, ticktext = _duration_axis(top)
    fig.update_xaxes(
        title_text=f"Duration ({unit})",
        range=[0, top * 1.05],
        tickmode="array",
        tickvals=tickvals,
        ticktext=ticktext,
    )
    fig.update_yaxes(
        title_text=_BY_TITLES.get(by, by),
        categoryorder="array",
        categoryarray=order,
        autorange="reversed",
    )
    return fig
