"""Figures of how executions ended: success rate per group, executions per status."""

from __future__ import annotations

from typing import Final

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics.figures._kit import (
    _BY_TITLES,
    MIN_TEXT_SIZE,
    _check_by,
    _colors,
    _empty_figure,
    _figure,
    _labels,
    _order,
    _require,
    _tidy,
)
from miyabi_analytics.vocabulary import ExecutionStatus

__all__ = ["status_figure", "success_rate_figure"]

_BAR_PITCH: Final = 28  # px per horizontal bar: room for a MIN_TEXT_SIZE label inside it
_BAR_MARGIN: Final = 160  # px of title, axis title and margins around the bars


def success_rate_figure(
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
    by = _check_by(by, "success_rate_figure")
    numeric = ["executions", "completed", "failed", "success_rate"]
    _require(df, "success_rate_figure", [by, *numeric])
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


def status_figure(
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
    by = _check_by(by, "status_figure")
    _require(df, "status_figure", ["status", by])
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
