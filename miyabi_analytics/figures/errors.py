"""Figures of what failed: the most frequent errors, failed executions over time."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics.figures._kit import (
    _BUCKETS,
    _BY_TITLES,
    _ERROR_COLOR,
    _bucket,
    _check_by,
    _colors,
    _empty_figure,
    _figure,
    _floats,
    _order,
    _periods,
    _require,
    _text,
    _tidy,
    _whole,
)

__all__ = ["errors_figure", "failures_figure"]


def errors_figure(
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
    _require(df, "errors_figure", ["error_message", "failures"])
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


def failures_figure(
    df: pd.DataFrame, /, *, by: str = "agent_type", title: str | None = None
) -> go.Figure:
    """Failed executions per period, stacked by group, from :func:`success_rates` with a ``freq``.

    Args:
        df: Columns ``period``, ``<by>``, ``failed``.
        by: The group column.
        title: Figure title.

    Returns:
        Stacked bars of groups that failed at least once.
    """
    by = _check_by(by, "failures_figure")
    _require(df, "failures_figure", ["period", by, "failed"])
    title = title or "Failed executions over time"
    if df.empty:
        return _empty_figure(title)
    frame = _tidy(df, by, ["failed"])
    axis, date = _BUCKETS[_bucket(frame["period"])]
    frame = frame[frame["failed"].fillna(0) > 0]
    if frame.empty:
        return _empty_figure(title, "No failed executions in this selection")
    order = _order(by, frame["group"].to_numpy())
    colors = _colors(by, order)
    fig = _figure(title, barmode="stack", legend_title_text=_BY_TITLES.get(by, by))
    for label in order:
        g = frame[frame["group"] == label].sort_values("period", kind="stable")
        fig.add_bar(
            x=g["period"],
            y=g["failed"],
            name=label,
            marker_color=colors[label],
            hovertemplate=f"<b>%{{fullData.name}}</b><br>%{{x|{date}}}<br>%{{y:,}} failed"
            "<extra></extra>",
        )
    peak = float(frame.groupby("period")["failed"].sum().max())
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(
        title_text="Failed executions",
        rangemode="tozero",
        tickformat=",d",
        dtick=1 if peak <= 10 else None,
    )
    return fig
