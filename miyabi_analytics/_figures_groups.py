"""Figures per group: success rates, durations, ROI against quality, errors, statuses."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics._figure_kit import (
    _BY_TITLES,
    _ERROR_COLOR,
    MIN_TEXT_SIZE,
    _check_by,
    _colors,
    _duration_axis,
    _empty_figure,
    _figure,
    _floats,
    _format_duration,
    _labels,
    _order,
    _periods,
    _require,
    _text,
    _tidy,
    _whole,
)
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = [
    "duration_figure",
    "roi_vs_quality",
    "status_overview",
    "success_rate_bar",
    "top_errors_bar",
]

_BAR_PITCH: Final = 28  # px per horizontal bar: room for a MIN_TEXT_SIZE label inside it
_BAR_MARGIN: Final = 160  # px of title, axis title and margins around the bars


def success_rate_bar(
    df: pd.DataFrame, /, *, by: str = "agent_type", title: str | None = None
) -> go.Figure:
    """Success rate per group, from :func:`success_rates` output.

    Rows of a group over several periods are summed and the rate recomputed from the counts.

    Args:
        df: Columns ``<by>``, ``executions``, ``completed``, ``failed``, ``success_rate``.
        by: The group column.
        title: Figure title.

    Returns:
        Horizontal bars on a 0-100 % axis; groups without finished executions have no bar.
    """
    by = _check_by(by, "success_rate_bar")
    numeric = ["executions", "completed", "failed", "success_rate"]
    _require(df, "success_rate_bar", [by, *numeric])
    title = title or "Success rate"
    if df.empty:
        return _empty_figure(title)
    frame = _tidy(df, by, numeric)
    if frame["group"].duplicated().any():
        frame = frame.groupby("group", sort=False, as_index=False)[numeric[:3]].sum()
        finished = frame["completed"] + frame["failed"]
        frame["success_rate"] = (frame["completed"] / finished).where(finished > 0)
    order = _order(by, frame["group"].to_numpy())
    frame = frame.set_index("group").loc[order]
    colors = _colors(by, order)
    # Tall enough for a label of MIN_TEXT_SIZE px inside each bar; uniformtext keeps plotly from
    # shrinking the labels to fit thin bars (it drew them at about 6 px).
    fig = _figure(
        title,
        showlegend=False,
        bargap=0.25,
        height=_BAR_MARGIN + _BAR_PITCH * len(order),
        uniformtext={"minsize": MIN_TEXT_SIZE, "mode": "show"},
    )
    fig.add_bar(
        x=frame["success_rate"],
        y=order,
        orientation="h",
        marker_color=[colors[v] for v in order],
        customdata=frame[numeric[:3]].to_numpy(),
        text=["" if np.isnan(v) else f"{v:.0%}" for v in frame["success_rate"]],
        textposition="auto",
        textfont={"size": MIN_TEXT_SIZE + 1},
        cliponaxis=False,
        hovertemplate="<b>%{y}</b><br>success rate %{x:.1%}<br>executions %{customdata[0]:,}"
        "<br>completed %{customdata[1]:,}<br>failed %{customdata[2]:,}<extra></extra>",
    )
    fig.update_xaxes(
        title_text="Success rate (completed / finished)", tickformat=".0%", range=[0, 1]
    )
    fig.update_yaxes(
        title_text=_BY_TITLES.get(by, by),
        categoryorder="array",
        categoryarray=order,
        autorange="reversed",
    )
    return fig


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


def roi_vs_quality(df: pd.DataFrame, /, *, title: str | None = None) -> go.Figure:
    """ROI against quality score per execution, from a :func:`read_summary` frame.

    Args:
        df: Columns ``quality_score``, ``roi_percent``, ``agent_category``, ``agent_type``.
        title: Figure title.

    Returns:
        One marker per execution with both values, coloured by agent category.
    """
    columns = ["quality_score", "roi_percent", "agent_category", "agent_type"]
    _require(df, "roi_vs_quality", columns)
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


def top_errors_bar(
    df: pd.DataFrame, /, *, top: int = 10, max_label: int = 60, title: str | None = None
) -> go.Figure:
    """The most frequent error messages, from :func:`error_analysis` output.

    Args:
        df: Columns ``error_message``, ``failures`` (``agent_types``, ``first_seen``,
            ``last_seen`` shown in the hover when present).
        top: How many messages to show.
        max_label: Longest axis label, in characters; the hover has the full text.
        title: Figure title.

    Returns:
        Horizontal bars, the most frequent message at the top.
    """
    _require(df, "top_errors_bar", ["error_message", "failures"])
    _whole("top", top)
    _whole("max_label", max_label)
    title = title or "Most frequent errors"
    if df.empty:
        return _empty_figure(title)
    frame = pd.DataFrame(
        {
            "message": df["error_message"].astype(object).to_numpy(),
            "failures": _floats(df["failures"]),
            "hover": [_text(v) for v in df["error_message"].astype(object)],
        }
    )
    lines = ["%{customdata[0]}", "<b>%{x:,} failures</b>"]
    if "agent_types" in df.columns:
        frame["agents"] = [_text(v) for v in df["agent_types"].astype(object)]
        lines.append(f"agents: %{{customdata[{len(frame.columns) - 3}]}}")
    if {"first_seen", "last_seen"} <= set(df.columns):
        seen = [_periods(df[c]).strftime("%Y-%m-%d %H:%M") for c in ("first_seen", "last_seen")]
        frame["seen"] = [f"{a} to {b} UTC".replace("NaT", "?") for a, b in zip(*seen, strict=True)]
        lines.append(f"seen %{{customdata[{len(frame.columns) - 3}]}}")
    hover = "<br>".join(lines)
    frame = frame.sort_values(["failures", "hover"], ascending=[False, True], kind="stable")
    frame = frame.head(top).reset_index(drop=True)
    positions = list(range(len(frame)))
    fig = _figure(title, showlegend=False)
    fig.add_bar(
        x=frame["failures"],
        y=positions,
        orientation="h",
        marker_color=_ERROR_COLOR,
        customdata=frame.drop(columns=["message", "failures"]).to_numpy(),
        hovertemplate=hover + "<extra></extra>",
    )  # customdata: hover text, then the optional columns in the order added
    fig.update_xaxes(title_text="Failed executions", rangemode="tozero")
    fig.update_yaxes(
        title_text="Error message",
        tickmode="array",
        tickvals=positions,
        ticktext=[_text(v, max_label) for v in frame["message"]],
        autorange="reversed",
    )
    return fig


def status_overview(
    df: pd.DataFrame, /, *, by: str = "agent_category", title: str | None = None
) -> go.Figure:
    """Executions per status, stacked by group, from a :func:`read_summary` frame.

    Args:
        df: Columns ``status`` and ``<by>``, one row per execution.
        by: The column the bars are stacked by.
        title: Figure title.

    Returns:
        One stacked bar per status (lifecycle order) with its total above it.
    """
    by = _check_by(by, "status_overview")
    _require(df, "status_overview", ["status", by])
    title = title or "Executions by status"
    if df.empty:
        return _empty_figure(title)
    frame = pd.DataFrame({"status": _labels(df["status"]), "group": _labels(df[by])})
    known = [s.value for s in ExecutionStatus]
    present = set(frame["status"])
    statuses = [s for s in known if s in present] + sorted(present.difference(known))
    counts = pd.crosstab(frame["status"], frame["group"]).reindex(index=statuses, fill_value=0)
    totals = counts.sum(axis=1)
    order = _order(by, frame["group"].to_numpy())
    colors = _colors(by, order)
    fig = _figure(title, barmode="stack", legend_title_text=_BY_TITLES.get(by, by))
    for label in order:
        values = counts[label].to_numpy()
        fig.add_bar(
            x=statuses,
            y=values,
            name=label,
            marker_color=colors[label],
            customdata=values / totals.to_numpy(),
            hovertemplate="<b>%{fullData.name}</b><br>%{x}: %{y:,} (%{customdata:.0%})"
            "<extra></extra>",
        )
    for status, total in totals.items():
        fig.add_annotation(
            x=status, y=int(total), text=f"{int(total):,}", showarrow=False, yshift=10
        )
    fig.update_xaxes(title_text="Status", categoryorder="array", categoryarray=statuses)
    fig.update_yaxes(title_text="Executions", rangemode="tozero")
    return fig

