"""timeline_figure on hand-built replay frames: empty, refused, and a state still current."""

from datetime import timedelta

import pandas as pd
import pytest

import miyabi_analytics as ma
from miyabi_analytics.figures import NO_DATA, timeline_figure
from miyabi_analytics.figures.timeline import LEVEL_COLORS, STATUS_COLORS
from miyabi_analytics.reader._replay import REPLAY_DTYPES

T0 = pd.Timestamp("2026-03-01 12:00", tz="UTC")


def frame(rows: list[dict]) -> pd.DataFrame:
    data = {name: [r.get(name) for r in rows] for name in REPLAY_DTYPES}
    out = pd.DataFrame(data)
    out["duration"] = pd.to_timedelta(out["duration"])
    return out.astype({k: v for k, v in REPLAY_DTYPES.items() if k != "duration"})


def test_an_empty_timeline_draws_the_empty_figure():
    fig = timeline_figure(frame([]))
    assert fig.data == ()
    assert fig.layout.annotations[0].text == NO_DATA


def test_missing_columns_are_refused_naming_them():
    with pytest.raises(ma.ValidationError, match="duration"):
        timeline_figure(frame([]).drop(columns=["duration"]))


def test_a_current_state_is_drawn_up_to_the_last_row():
    fig = timeline_figure(frame([
        {"at": T0, "kind": "transition", "status": "pending", "to_status": "pending",
         "end": T0 + timedelta(seconds=2), "duration": timedelta(seconds=2)},
        {"at": T0 + timedelta(seconds=2), "kind": "transition", "status": "running",
         "to_status": "running", "end": None, "duration": None},
        {"at": T0 + timedelta(seconds=9), "kind": "log", "status": "running",
         "level": "error", "message": "retrying"},
    ]))
    bars = {t.name: t for t in fig.data if t.type == "bar"}
    assert list(bars) == ["pending", "running"]
    assert list(bars["running"].x) == [7000.0]  # from 2 s to the log at 9 s
    assert bars["running"].customdata[0][1:].tolist() == ["so far", "still current"]
    assert bars["pending"].marker.color == STATUS_COLORS["pending"]
    (log,) = [t for t in fig.data if t.type == "scatter"]
    assert log.name == "log: error"
    assert log.marker.color == LEVEL_COLORS["error"]
    assert list(fig.layout.yaxis.categoryarray) == ["pending", "running", "logs"]
