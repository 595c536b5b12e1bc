"""Shared pieces of the figures: colours, frame checks, tidy frames, axes, empty figures.

Private to :mod:`miyabi_analytics.figures`, whose modules (by subject) build on these.
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

from miyabi_analytics.errors import ValidationError
from miyabi_analytics.formatting import format_duration
from miyabi_analytics.vocabulary import AGENT_CATEGORIES, AGENT_TYPES

Floats = npt.NDArray[np.float64]

NO_DATA: Final = "No data for this selection"
"""Text of the annotation on the figure drawn for a frame without rows."""
MIN_TEXT_SIZE: Final = 11
"""Smallest font size, in px, of text drawn on a figure (bar labels): readable on a screen."""

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




_format_duration = format_duration  # the hover text of a duration, as the tiles and report read

# unit, seconds in one, axis steps in that unit (at most about six ticks)
_DURATION_UNITS: Final = (
    ("seconds", 1.0, (0.1, 0.2, 0.5, 1, 2, 5, 10, 15, 20, 30)),
    ("minutes", 60.0, (1, 2, 5, 10, 15, 20, 30, 60)),
    ("hours", 3600.0, (1, 2, 3, 4, 6, 12, 24)),
    ("days", 86400.0, (1, 2, 5, 7, 14, 30, 60, 90, 180, 365)),
)


def _duration_axis(top: float) -> tuple[str, list[float], list[str]]:
    """``(unit, tick values in seconds, tick labels in that unit)`` for an axis up to ``top`` s.

    One unit for the whole axis, the one its title names: seconds below two minutes, minutes
    below two hours, hours below five days, else days. Labels are plain numbers in that unit.
    """
    unit, size, steps = next(
        (u for u in _DURATION_UNITS if top < 120 * u[1]), _DURATION_UNITS[-1]
    )
    scaled = top / size
    step = next((s for s in steps if scaled / s <= 6), None)
    if step is None:
        step = steps[-1] * math.ceil(scaled / steps[-1] / 6)
    values = [i * step for i in range(math.floor(scaled / step + 1e-9) + 1)]
    return unit, [v * size for v in values], [f"{v:g}" for v in values]
