"""Plotly figures for the frames of :mod:`miyabi_analytics`: DataFrame in, new Figure out.

Each function reads only the frame it is given (never the database, never mutating it) and
returns a new :class:`plotly.graph_objects.Figure`. Agent types and categories keep one colour
(:data:`AGENT_COLORS`, :data:`CATEGORY_COLORS`) and the design's order in every figure.
"""

from __future__ import annotations

import html
import math
from collections.abc import Hashable, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt
import pandas as pd
import plotly.graph_objects as go
from plotly.subplots import make_subplots

from miyabi_analytics._partial_periods import PartialPeriod, mark_partial_periods, partial_periods
from miyabi_analytics.agents import AGENT_CATEGORIES, AGENT_TYPES
from miyabi_analytics.errors import ValidationError
from miyabi_analytics.records import ExecutionStatus

__all__ = [
    "AGENT_COLORS",
    "CATEGORY_COLORS",
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

Floats = npt.NDArray[np.float64]

NO_DATA: Final = "No data for this selection"
"""Text of the annotation on the figure drawn for a frame without rows."""

# fmt: off
_AGENT_PALETTE: Final = (
    "#4E79A7", "#F28E2B", "#E15759", "#76B7B2", "#59A14F",
    "#EDC948", "#B07AA1", "#FF9DA7", "#9C755F", "#BAB0AC",
    "#A0CBE8", "#8CD17D", "#D37295", "#499894", "#B6992D",
)
# fmt: on
AGENT_COLORS: Final[dict[str, str]] = dict(zip(AGENT_TYPES, _AGENT_PALETTE, strict=True))
"""One fixed colour per agent type, in :data:`AGENT_TYPES` order."""
CATEGORY_COLORS: Final[dict[str, str]] = dict(
    zip(AGENT_CATEGORIES, ("#1F77B4", "#FF7F0E", "#2CA02C", "#9467BD"), strict=True)
)
"""One fixed colour per agent category (strategy, marketing, operations, design)."""
_FALLBACK: Final = ("#17BECF", "#7F7F7F", "#BCBD22", "#8C564B", "#E377C2", "#D62728")
_ERROR_COLOR: Final = "#E15759"
_TEMPLATE: Final = "plotly_white"
_NONE_LABEL: Final = "(none)"
_BY_TITLES: Final = {
    "agent_type": "Agent type",
    "agent_category": "Agent category",
    "repository_id": "Repository",
    "user_id": "User",
}
_BUCKETS: Final = {  # name -> (axis title, date format for hover/labels: d3 and strftime alike)
    "day": ("Day (UTC)", "%Y-%m-%d"),
    "week": ("Week starting Monday (UTC)", "%Y-%m-%d"),
    "month": ("Month (UTC)", "%b %Y"),
    None: ("Period start (UTC)", "%Y-%m-%d"),
}
# fmt: off
_NICE_SECONDS: Final = (  # axis steps: sub-second, seconds, minutes, hours, days
    0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 30,
    60, 120, 300, 600, 900, 1800,
    3600, 7200, 10800, 21600, 43200,
    86400, 172800, 604800,
)
# fmt: on


# ---------------------------------------------------------------- shared helpers


def _require(df: object, figure: str, columns: Sequence[str]) -> pd.DataFrame:
    if not isinstance(df, pd.DataFrame):
        raise ValidationError("df", type(df).__name__, f"{figure}() needs a pandas DataFrame")
    missing = [c for c in dict.fromkeys(columns) if c not in df.columns]
    if missing:
        raise ValidationError("df", missing, f"{figure}() needs column(s) {', '.join(missing)}")
    return df


def _check_by(by: object, figure: str) -> str:
    if not isinstance(by, str):
        raise ValidationError("by", by, f"{figure}() groups by one column name")
    return by


def _whole(field: str, value: object) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValidationError(field, value, "a whole number of at least 1")


def _labels(series: pd.Series[Any]) -> npt.NDArray[np.object_]:
    """Group labels as plain strings; missing ones as ``(none)``."""
    values = series.astype(object).to_numpy()
    return np.array([_NONE_LABEL if pd.isna(v) else str(v) for v in values], dtype=object)


def _order(by: str, labels: npt.NDArray[np.object_]) -> list[str]:
    """Labels present, in the design's order for agent types and categories, else sorted."""
    present = {str(v) for v in labels}
    fixed: Sequence[str] = {"agent_type": AGENT_TYPES, "agent_category": AGENT_CATEGORIES}.get(
        by, ()
    )
    return [v for v in fixed if v in present] + sorted(present.difference(fixed))


def _colors(by: str, order: Sequence[str]) -> dict[str, str]:
    fixed = {"agent_type": AGENT_COLORS, "agent_category": CATEGORY_COLORS}.get(by, {})
    others = (v for v in order if v not in fixed)
    extra = {v: _FALLBACK[i % len(_FALLBACK)] for i, v in enumerate(others)}
    return {v: fixed.get(v) or extra[v] for v in order}


def _floats(series: pd.Series[Any]) -> Floats:
    return pd.to_numeric(series, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)


def _periods(series: pd.Series[Any]) -> pd.DatetimeIndex:
    """Bucket starts as naive UTC timestamps, so the axis shows UTC whatever the browser."""
    index = pd.DatetimeIndex(pd.to_datetime(series, utc=True))
    return index.tz_convert("UTC").tz_localize(None)


def _bucket(periods: pd.Series[Any]) -> str | None:
    """``day``, ``week`` or ``month`` when the bucket starts show it, else ``None``."""
    starts = pd.DatetimeIndex(periods.dropna().unique()).sort_values()
    if len(starts) < 2 or not (starts == starts.normalize()).all():
        return None
    days = np.diff(starts.to_numpy()) / np.timedelta64(1, "D")
    if (starts.day == 1).all() and (days >= 28).all():
        return "month"
    if (starts.day_of_week == 0).all() and (days % 7 == 0).all():
        return "week"
    return "day" if days.min() == 1 else None


def _tidy(df: pd.DataFrame, by: str | None, numeric: Sequence[str]) -> pd.DataFrame:
    """A new frame: ``group`` labels, naive-UTC ``period`` if present, numeric columns as floats."""
    data: dict[Hashable, Any] = {}
    if by is not None:
        data["group"] = _labels(df[by])
    if "period" in df.columns:
        data["period"] = _periods(df["period"])
    for name in numeric:
        data[name] = _floats(df[name])
    return pd.DataFrame(data, index=pd.RangeIndex(len(df)))


def _text(value: object, limit: int | None = None) -> str:
    """Plotly pseudo-HTML-safe text, optionally cut to ``limit`` characters on one line."""
    text = _NONE_LABEL if value is None or value is pd.NA or value != value else str(value)
    if limit is not None:
        text = " ".join(text.split())
        if len(text) > limit:
            text = text[: max(limit - 1, 1)].rstrip() + "…"
        return html.escape(text)
    return html.escape(text).replace("\n", "<br>")


def _figure(title: str, **layout: Any) -> go.Figure:
    fig = go.Figure()
    fig.update_layout(template=_TEMPLATE, title={"text": title, "x": 0.02}, **layout)
    return fig


def _empty_figure(title: str, message: str = NO_DATA) -> go.Figure:
    fig = _figure(title)
    fig.add_annotation(
        text=message, x=0.5, y=0.5, xref="paper", yref="paper", showarrow=False, font={"size": 16}
    )
    fig.update_xaxes(visible=False)
    fig.update_yaxes(visible=False)
    return fig


def _format_duration(seconds: float) -> str:
    """``250 ms``, ``12.3 s``, ``1 min 30 s``, ``2 h 5 min``, ``1 d 6 h``."""
    if not math.isfinite(seconds):
        return "n/a"
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 59.5:
        return f"{seconds:.3g} s"
    if seconds < 3570:
        minutes, rest = divmod(round(seconds), 60)
        return f"{minutes} min" + (f" {rest} s" if rest else "")
    if seconds < 86370:
        hours, rest = divmod(round(seconds / 60), 60)
        return f"{hours} h" + (f" {rest} min" if rest else "")
    days, rest = divmod(round(seconds / 3600), 24)
    return f"{days} d" + (f" {rest} h" if rest else "")


def _duration_ticks(top: float) -> tuple[list[float], list[str]]:
    step = next((s for s in _NICE_SECONDS if top / s <= 6), None)
    if step is None:
        step = _NICE_SECONDS[-1] * math.ceil(top / _NICE_SECONDS[-1] / 6)
    values = [i * step for i in range(math.floor(top / step) + 1)]
    return values, ["0" if v == 0 else _format_duration(v) for v in values]


# ---------------------------------------------------------------- figures


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
    fig = _figure(title, showlegend=False, bargap=0.25)
    fig.add_bar(
        x=frame["success_rate"],
        y=order,
        orientation="h",
        marker_color=[colors[v] for v in order],
        customdata=frame[numeric[:3]].to_numpy(),
        text=["" if np.isnan(v) else f"{v:.0%}" for v in frame["success_rate"]],
        textposition="auto",
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


def success_heatmap(
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
    by = _check_by(by, "success_heatmap")
    _require(df, "success_heatmap", ["period", by, "success_rate"])
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
        marker; the axis is in seconds, labelled ``30 s``, ``5 min``, ``2 h``.
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
            hovertemplate=f"<b>%{{y}}</b><br>{name} %{{customdata[0]}} (%{{x:,.1f}} s)"
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
        hovertemplate="<b>%{y}</b><br>max %{customdata} (%{x:,.1f} s)<extra></extra>",
    )
    top = float(np.nanmax(frame[numeric[1:]].to_numpy(), initial=0.0))
    top = top if top > 0 else 1.0
    tickvals, ticktext = _duration_ticks(top)
    fig.update_xaxes(
        title_text="Duration (seconds)",
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


def business_over_time(
    df: pd.DataFrame, /, *, by: str = "agent_category", title: str | None = None
) -> go.Figure:
    """Estimated revenue and market size per group over time, from :func:`business_metrics`.

    Args:
        df: Columns ``period``, ``<by>``, ``sum_estimated_revenue_usd``, ``sum_market_size_usd``.
        by: The group column.
        title: Figure title.

    Returns:
        Two stacked subplots sharing the time axis, dollar axes with k/M/B suffixes.
    """
    by = _check_by(by, "business_over_time")
    money = {"sum_estimated_revenue_usd": "Estimated revenue", "sum_market_size_usd": "Market size"}
    _require(df, "business_over_time", ["period", by, *money])
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
                hovertemplate=f"<b>%{{fullData.name}}</b><br>%{{x|{date}}}<br>{name} "
                "$%{y:,.0f}<extra></extra>",
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


def failures_over_time(
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
    by = _check_by(by, "failures_over_time")
    _require(df, "failures_over_time", ["period", by, "failed"])
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
