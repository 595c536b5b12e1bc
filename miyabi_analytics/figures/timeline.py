"""The timeline of one execution, as :func:`~miyabi_analytics.replay` returns it: a Gantt chart."""

from __future__ import annotations

from typing import Any, Final

import numpy as np
import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics.figures._kit import (
    _FALLBACK,
    _empty_figure,
    _figure,
    _format_duration,
    _periods,
    _require,
    _text,
)
from miyabi_analytics.vocabulary import LOG_LEVELS, ExecutionStatus

__all__ = ["LEVEL_COLORS", "STATUS_COLORS", "timeline_figure"]

STATUS_COLORS: Final[dict[str, str]] = {
    "pending": "#BAB0AC",
    "running": "#4E79A7",
    "completed": "#59A14F",
    "failed": "#E15759",
}
"""One fixed colour per execution status (the bars and the end markers)."""
LEVEL_COLORS: Final[dict[str, str]] = dict(
    zip(LOG_LEVELS, ("#9C9C9C", "#4E79A7", "#F28E2B", "#E15759", "#7B1E1E"), strict=True)
)
"""One fixed colour per log level, debug to critical (the log markers)."""
LOG_LANE: Final = "logs"
"""The row of the chart holding the log markers, under the state rows."""

_TERMINAL: Final = frozenset(s.value for s in ExecutionStatus if s.is_terminal)
_COLUMNS: Final = ("at", "kind", "status", "to_status", "end", "duration", "level", "message")


def _color(value: str, fixed: dict[str, str], order: list[str]) -> str:
    return fixed.get(value) or _FALLBACK[order.index(value) % len(_FALLBACK)]


def _lanes(values: pd.Series[Any]) -> list[str]:
    """Statuses present: the lifecycle's order, then other writers' statuses by name."""
    present = {str(v) for v in values.dropna()}
    known = [s.value for s in ExecutionStatus]
    return [s for s in known if s in present] + sorted(present.difference(known))


def _spans(states: pd.DataFrame, last: pd.Timestamp, lanes: list[str], fig: go.Figure) -> None:
    """One bar trace per status: each time the execution spent in it."""
    start = _periods(states["at"])
    stop = _periods(states["end"].fillna(last))
    for lane in lanes:
        mask = (states["to_status"].astype(object) == lane).to_numpy() & ~states[
            "to_status"
        ].astype(object).isin(_TERMINAL).to_numpy()
        if not mask.any():
            continue
        rows = states[mask]
        derived = (rows["kind"].astype(object) == "execution").to_numpy()
        open_ = rows["end"].isna().to_numpy()
        lengths = (stop[mask] - start[mask]) / pd.Timedelta(milliseconds=1)
        notes = [
            "derived from started_at" if d else ("still current" if o else "recorded")
            for d, o in zip(derived, open_, strict=True)
        ]
        spent = [
            "so far" if o else _format_duration(v.total_seconds())
            for v, o in zip(rows["duration"], open_, strict=True)
        ]
        color = _color(lane, STATUS_COLORS, lanes)
        fig.add_bar(
            y=[lane] * len(rows),
            x=np.asarray(lengths, dtype=np.float64),
            base=list(start[mask]),
            orientation="h",
            name=lane,
            marker={
                "color": color,
                "pattern": {"shape": ["/" if d else "" for d in derived], "fgcolor": "white"},
            },
            customdata=np.column_stack([start[mask].strftime("%H:%M:%S.%f"), spent, notes]),
            hovertemplate=f"<b>{_text(lane)}</b> from %{{customdata[0]}} UTC"
            "<br>%{customdata[1]} (%{customdata[2]})<extra></extra>",
        )


def _ends(states: pd.DataFrame, lanes: list[str], fig: go.Figure) -> None:
    """The final states as markers at the instant the execution entered them."""
    final = states[states["to_status"].astype(object).isin(_TERMINAL).to_numpy()]
    if final.empty:
        return
    names = [str(v) for v in final["to_status"]]
    fig.add_scatter(
        x=list(_periods(final["at"])),
        y=names,
        mode="markers",
        name="finished",
        marker={
            "symbol": "diamond",
            "size": 12,
            "color": [_color(n, STATUS_COLORS, lanes) for n in names],
            "line": {"color": "#333333", "width": 1},
        },
        customdata=_periods(final["at"]).strftime("%H:%M:%S.%f"),
        hovertemplate="<b>%{y}</b> at %{customdata} UTC<extra></extra>",
    )


def _markers(lines: pd.DataFrame, fig: go.Figure) -> None:
    """One marker trace per log level, on the logs row; the hover shows the message."""
    order = [str(v) for v in lines["level"].astype("category").cat.categories]
    present = [v for v in order if (lines["level"].astype(object) == v).any()]
    for level in present:
        rows = lines[(lines["level"].astype(object) == level).to_numpy()]
        fig.add_scatter(
            x=list(_periods(rows["at"])),
            y=[LOG_LANE] * len(rows),
            mode="markers",
            name=f"log: {level}",
            marker={"symbol": "circle", "size": 10, "color": _color(level, LEVEL_COLORS, order)},
            customdata=np.column_stack([
                [_text(m, 200) for m in rows["message"].astype(object)],
                [_text(s) for s in rows["status"].astype(object)],
                _periods(rows["at"]).strftime("%H:%M:%S.%f"),
            ]),
            hovertemplate=f"<b>{_text(level)}</b> at %{{customdata[2]}} UTC (while "
            "%{customdata[1]})<br>%{customdata[0]}<extra></extra>",
        )


def timeline_figure(timeline: pd.DataFrame, /, *, title: str | None = None) -> go.Figure:
    """A Gantt chart of one execution's states, with its log lines as markers.

    Args:
        timeline: A frame of :func:`~miyabi_analytics.replay` (columns ``at``, ``kind``,
            ``status``, ``to_status``, ``end``, ``duration``, ``level``, ``message``).
        title: Figure title.

    Returns:
        One horizontal bar trace per non-final status (pending, running, ...), each bar the
        time spent in it: hatched where derived from the execution's ``started_at`` rather
        than recorded, and a state still current drawn up to the timeline's last row (the
        figure reads no clock). Final states (completed, failed) are diamond markers at the
        instant they were entered. Log lines are markers on a ``logs`` row, one trace per
        level in its colour (:data:`LEVEL_COLORS`), the message in the hover. Times in UTC.
    """
    _require(timeline, "timeline_figure", _COLUMNS)
    title = title or "Execution timeline"
    if timeline.empty:
        return _empty_figure(title)
    kinds = timeline["kind"].astype(object)
    states = timeline[(kinds != "log").to_numpy()]
    lines = timeline[(kinds == "log").to_numpy()]
    lanes = _lanes(states["to_status"])
    last = pd.Timestamp(timeline["at"].max())
    fig = _figure(title, barmode="overlay", legend_title_text="State / log level")
    _spans(states, last, lanes, fig)
    _ends(states, lanes, fig)
    _markers(lines, fig)
    rows = [*lanes, LOG_LANE] if not lines.empty else lanes
    fig.update_xaxes(type="date", title_text="Time (UTC)")
    fig.update_yaxes(
        title_text="State", categoryorder="array", categoryarray=rows, autorange="reversed"
    )
    return fig
