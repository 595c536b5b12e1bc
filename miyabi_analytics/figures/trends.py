"""Figures of quality and success over time: the quality trend and the success heatmap."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics.figures._kit import (
    _BUCKETS,
    _BY_TITLES,
    Floats,
    _bucket,
    _check_by,
    _colors,
    _empty_figure,
    _figure,
    _order,
    _require,
    _tidy,
    _whole,
)

__all__ = ["quality_trend_figure", "success_heatmap_figure"]


def quality_trend_figure(
    df: pd.DataFrame,
    /,
    *,
    by: str = "agent_type",
    rolling: int | None = 7,
    title: str | None = None,
) -> go.Figure:
    """Mean quality per group over time, from :func:`quality_trend` output.

    Args:
        df: Columns ``period``, ``<by>``, ``executions``, ``mean_quality``.
        by: The group column.
        rolling: Window, in buckets of the group, of the dashed rolling mean (weighted by
            ``executions``); ``None`` or 1 draws none.
        title: Figure title.

    Returns:
        One solid line per group and, if ``rolling``, a dashed rolling mean in its colour.
    """
    by = _check_by(by, "quality_trend_figure")
    _require(df, "quality_trend_figure", ["period", by, "executions", "mean_quality"])
    if rolling is not None:
        _whole("rolling", rolling)
    title = title or "Mean quality score over time"
    if df.empty:
        return _empty_figure(title)
    extra = [c for c in ("min_quality", "max_quality") if c in df.columns]
    frame = _tidy(df, by, ["executions", "mean_quality", *extra])
    order = _order(by, frame["group"].to_numpy())
    colors = _colors(by, order)
    axis, date = _BUCKETS[_bucket(frame["period"])]
    hover = f"<b>%{{fullData.name}}</b><br>%{{x|{date}}}<br>mean %{{y:.1f}} "
    hover += "(%{customdata[0]:,} scored)"
    hover += "".join(f"<br>{c[:3]} %{{customdata[{i + 1}]:.0f}}" for i, c in enumerate(extra))
    fig = _figure(title, legend_title_text=_BY_TITLES.get(by, by), hovermode="closest")
    for label in order:
        g = frame[frame["group"] == label].sort_values("period", kind="stable")
        mean = g["mean_quality"].to_numpy()
        fig.add_scatter(
            x=g["period"],
            y=mean,
            mode="lines+markers",
            name=label,
            legendgroup=label,
            line={"color": colors[label]},
            marker={"size": 5},
            customdata=g[["executions", *extra]].to_numpy(),
            hovertemplate=hover + "<extra></extra>",
        )
        if rolling is not None and rolling > 1:
            weight = np.where(np.isnan(mean), 0.0, g["executions"].fillna(0).to_numpy())
            num = pd.Series(np.nan_to_num(mean) * weight).rolling(rolling, min_periods=1).sum()
            den = pd.Series(weight).rolling(rolling, min_periods=1).sum()
            smooth = np.where(den.to_numpy() > 0, num.to_numpy() / den.to_numpy(), np.nan)
            fig.add_scatter(
                x=g["period"],
                y=smooth,
                mode="lines",
                name=f"{label} ({rolling}-period mean)",
                legendgroup=label,
                showlegend=False,
                line={"color": colors[label], "dash": "dash", "width": 1.5},
                hovertemplate=f"<b>{label}</b><br>%{{x|{date}}}<br>{rolling}-period mean "
                "%{y:.1f}<extra></extra>",
            )
    if rolling is not None and rolling > 1:
        fig.update_layout(title_subtitle_text=f"Dashed: rolling mean over {rolling} periods")
    fig.update_xaxes(title_text=axis)
    fig.update_yaxes(title_text="Quality score", range=[0, 100])
    return fig


def success_heatmap_figure(
    df: pd.DataFrame, /, *, by: str = "agent_type", title: str | None = None
) -> go.Figure:
    """Success rate per group and period, from :func:`success_rates` with a ``freq``.

    Args:
        df: Columns ``period``, ``<by>``, ``success_rate`` (``completed``/``failed`` shown
            in the hover when present).
        by: The group column (rows of the heatmap).
        title: Figure title.

    Returns:
        A heatmap on a 0-100 % colour scale; cells without finished executions stay blank.
    """
    by = _check_by(by, "success_heatmap_figure")
    _require(df, "success_heatmap_figure", ["period", by, "success_rate"])
    if df.empty:
        return _empty_figure(title or "Success rate over time")
    counts = [c for c in ("completed", "failed") if c in df.columns]
    frame = _tidy(df, by, ["success_rate", *counts])
    bucket = _bucket(frame["period"])
    axis, date = _BUCKETS[bucket]
    adjective = {"day": "Daily", "week": "Weekly", "month": "Monthly"}.get(bucket or "")
    title = title or (f"{adjective} success rate" if adjective else "Success rate over time")
    frame["column"] = frame["period"].dt.strftime("%Y-%m" if bucket == "month" else date)
    rows = _order(by, frame["group"].to_numpy())
    columns = sorted(set(frame["column"]))

    def grid(value: str) -> Floats:  # one row per (group, period); NaN stays NaN
        table = frame.pivot_table(index="group", columns="column", values=value, aggfunc="mean")
        return table.reindex(index=rows, columns=columns).to_numpy(dtype=np.float64)

    rate = grid("success_rate")
    z: list[list[float | None]] = [[None if np.isnan(v) else float(v) for v in r] for r in rate]
    hover = "<b>%{y}</b><br>%{x}<br>success rate %{z:.1%}"
    custom = None
    if len(counts) == 2:
        custom = np.dstack([grid("completed"), grid("failed")])
        hover += "<br>completed %{customdata[0]:,}<br>failed %{customdata[1]:,}"
    fig = _figure(title)
    fig.add_heatmap(
        z=z,
        x=columns,
        y=rows,
        zmin=0,
        zmax=1,
        colorscale="Viridis",
        hoverongaps=False,
        xgap=1,
        ygap=1,
        customdata=custom,
        hovertemplate=hover + "<extra></extra>",
        colorbar={"title": {"text": "Success"}, "tickformat": ".0%"},
    )
    fig.update_xaxes(title_text=axis, type="category", categoryorder="array", categoryarray=columns)
    fig.update_yaxes(
        title_text=_BY_TITLES.get(by, by),
        type="category",
        autorange="reversed",
        categoryorder="array",
        categoryarray=rows,
    )
    return fig
