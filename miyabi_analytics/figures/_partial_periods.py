"""Periods a window covers only in part, and how a figure marks them.

A 28-day report window that starts on a Wednesday cuts its first and last ISO weeks: their
bars and points count fewer days than the others and look like real dips. The report keeps
the window (its numbers match the headline KPIs) and marks those periods instead, so the reader
is told rather than left to guess. :func:`mark_partial_periods` is re-exported by
:mod:`miyabi_analytics.figures`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Final

import pandas as pd
import plotly.graph_objects as go

from miyabi_analytics._db.buckets import Freq, check_freq
from miyabi_analytics._validate import as_time_bound
from miyabi_analytics.errors import ValidationError

__all__ = ["PERIOD_WORDS", "PartialPeriod", "mark_partial_periods", "partial_periods"]

PERIOD_WORDS: Final[dict[Freq, str]] = {"D": "day", "W": "week", "M": "month"}
_SHADE: Final = "rgba(127, 127, 127, 0.1)"
_MARK: Final = "#7F7F7F"
_HOLLOW: Final = "circle-open"


@dataclass(frozen=True, slots=True)
class PartialPeriod:
    """A UTC day, ISO week or month that the window ``[since, until)`` covers only in part."""

    start: pd.Timestamp
    """The period's first instant (aware UTC): the ``period`` value the aggregates give it."""
    end: pd.Timestamp
    """The next period's first instant."""
    covered: pd.Timedelta
    """How much of the period lies inside the window."""
    freq: Freq

    @property
    def word(self) -> str:
        """``day``, ``week`` or ``month``."""
        return PERIOD_WORDS[self.freq]

    def coverage(self) -> str:
        """``5 of 7 days in the window`` (fractions of a day with up to three digits)."""
        days = self.covered / pd.Timedelta(days=1)
        length = (self.end - self.start) / pd.Timedelta(days=1)
        return f"{days:.3g} of {length:g} days in the window"

    def describe(self) -> str:
        """``week of 2026-04-27: 5 of 7 days in the window``."""
        return f"{self.word} of {self.start:%Y-%m-%d}: {self.coverage()}"


def _start_of(instant: pd.Timestamp, freq: Freq) -> pd.Timestamp:
    day = instant.normalize()
    if freq == "W":
        return day - pd.Timedelta(days=day.weekday())
    return day.replace(day=1) if freq == "M" else day


def _after(start: pd.Timestamp, freq: Freq) -> pd.Timestamp:
    if freq == "M":
        return start + pd.offsets.MonthBegin(1)
    return start + pd.Timedelta(days=7 if freq == "W" else 1)


def partial_periods(since: object, until: object, freq: object) -> tuple[PartialPeriod, ...]:
    """The periods of ``freq`` that ``[since, until)`` cuts: at most its first and its last.

    Args:
        since: The window's first instant (aware datetime, date or ISO text; dates are UTC).
        until: The first instant after the window.
        freq: ``"D"``, ``"W"`` (ISO weeks, Monday) or ``"M"`` (calendar months), UTC.

    Raises:
        ValidationError: A bad bound or ``freq``, or ``until`` not after ``since``.
    """
    bucket = check_freq(freq)
    lo = pd.Timestamp(as_time_bound("since", since)).tz_convert("UTC")
    hi = pd.Timestamp(as_time_bound("until", until)).tz_convert("UTC")
    if hi <= lo:
        raise ValidationError("until", until, "must be after since")
    found = []
    last = hi - pd.Timedelta(microseconds=1)
    for start in dict.fromkeys((_start_of(lo, bucket), _start_of(last, bucket))):
        end = _after(start, bucket)
        inside = min(end, hi) - max(start, lo)
        if inside < end - start:
            found.append(PartialPeriod(start, end, inside, bucket))
    return tuple(found)


def _naive(values: Sequence[Any] | None) -> list[pd.Timestamp | None]:
    """Axis values as naive UTC timestamps (how the figures plot periods); None if not a date."""
    out: list[pd.Timestamp | None] = []
    for value in values if values is not None else ():
        try:
            stamp = pd.Timestamp(value)
        except (TypeError, ValueError):
            out.append(None)
            continue
        if pd.isna(stamp):
            out.append(None)
        else:
            out.append(stamp.tz_convert("UTC").tz_localize(None) if stamp.tzinfo else stamp)
    return out


def _note(template: Any, text: str) -> Any:
    if not isinstance(template, str):
        return template
    at = template.find("<extra>")
    return template + text if at < 0 else template[:at] + text + template[at:]


def _axis_key(trace_axis: str | None) -> str:
    """``"x"`` -> ``"xaxis"``, ``"x2"`` -> ``"xaxis2"``: the layout key of a trace's x axis."""
    return "xaxis" + (trace_axis or "x")[1:]


def mark_partial_periods(
    fig: go.Figure, /, *, since: object, until: object, freq: object
) -> go.Figure:
    """A copy of ``fig`` with the periods ``[since, until)`` cuts marked as partial.

    Points and bars whose ``x`` is a cut period's start (as the aggregates' ``period``) are
    marked: hollow markers on a grey band over the period (lines and markers), hatched bars,
    or a dotted outline and a "partial" tick label (heatmap columns, also ``"%Y-%m"`` labels).
    Their hover says how much of the period is in the window; a legend entry (when the figure
    has one) and the subtitle name the "partial week" (day, month). A figure without such
    periods comes back unchanged (as a copy).

    Raises:
        ValidationError: A bad ``since``, ``until`` or ``freq`` (see :func:`partial_periods`).
    """
    if not isinstance(fig, go.Figure):
        raise ValidationError("fig", type(fig).__name__, "expected a plotly Figure")
    cut = {p.start.tz_localize(None): p for p in partial_periods(since, until, freq)}
    out = go.Figure(fig)
    if not cut:
        return out
    word = next(iter(cut.values())).word
    banded: set[tuple[pd.Timestamp, str, str]] = set()
    hollow = outlined = False
    for trace in out.data:
        xs = _naive(trace.x)
        flags = [x is not None and x in cut for x in xs]
        if not any(flags):
            continue
        axis = trace.xaxis or "x"
        if trace.type == "heatmap":
            outlined = True
            _outline_columns(out, trace, flags, word)
            continue
        if isinstance(trace.hovertemplate, str):
            trace.hovertemplate = [
                _note(trace.hovertemplate, f"<br><i>partial {word}: {cut[x].coverage()}</i>")
                if f and x is not None
                else trace.hovertemplate
                for x, f in zip(xs, flags, strict=True)
            ]
        if trace.type == "bar":
            trace.marker.pattern.shape = ["/" if f else "" for f in flags]
            hollow = True
        elif "markers" in (trace.mode or ""):
            symbol = trace.marker.symbol if isinstance(trace.marker.symbol, str) else "circle"
            trace.marker.symbol = [_HOLLOW if f else symbol for f in flags]
            hollow = True
        yaxis = trace.yaxis or "y"
        for x, f in zip(xs, flags, strict=True):
            if f and x is not None and (x, axis, yaxis) not in banded:
                banded.add((x, axis, yaxis))  # one band per period and subplot
                end = cut[x].end.tz_localize(None)
                out.add_shape(
                    type="rect", xref=axis, yref=f"{yaxis} domain", x0=x, x1=end, y0=0, y1=1,
                    fillcolor=_SHADE, line={"width": 0}, layer="below",
                )
    legend = []
    if hollow:
        out.add_scatter(
            x=[None], y=[None], mode="markers", name=f"partial {word} (hollow, on grey)",
            marker={"symbol": _HOLLOW, "color": _MARK, "size": 8}, hoverinfo="skip",
            showlegend=True, legendrank=2000,
        )
        legend.append(f"hollow markers on grey: partial {word}s")
    if outlined:
        legend.append(f"dotted outline: partial {word}s")
    if legend:
        note = "; ".join(legend) + ", only partly inside the window"
        subtitle = out.layout.title.subtitle.text
        out.update_layout(
            title_subtitle_text=f"{subtitle} · {note}" if subtitle else note.capitalize()
        )
    return out


def _outline_columns(fig: go.Figure, trace: Any, flags: list[bool], word: str) -> None:
    """Dotted boxes around a heatmap's partial columns and "partial" under their labels."""
    axis = trace.xaxis or "x"
    layout_axis = fig.layout[_axis_key(axis)]
    labels = [str(x) for x in trace.x]
    order = list(layout_axis.categoryarray or labels)
    partial = {label for label, f in zip(labels, flags, strict=True) if f}
    layout_axis.update(
        tickmode="array",
        tickvals=order,
        ticktext=[f"{c}<br><i>partial {word}</i>" if c in partial else c for c in order],
    )
    for index, column in enumerate(order):
        if column in partial:
            fig.add_shape(
                type="rect", xref=axis, yref="paper", x0=index - 0.5, x1=index + 0.5,
                y0=0, y1=1, line={"color": _MARK, "dash": "dot", "width": 2},
                fillcolor="rgba(0, 0, 0, 0)", layer="above",
            )
