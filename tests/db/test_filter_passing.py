"""A SummaryFilters passed through gives the frames the keywords give, on both dialects; the
dashboard hands every aggregate of a refresh the one object its filter state made.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

import pandas as pd
import pytest
from sqlalchemy import Engine

import miyabi_analytics as ma
from miyabi_analytics import aggregates
from miyabi_analytics._dashboard import DashboardFilters, DashboardModel
from miyabi_analytics.demo import load_demo
from miyabi_analytics.filters import FILTER_KEYWORDS, SummaryFilters

END = datetime(2026, 3, 11, 15, 30, tzinfo=UTC)
SINCE = datetime(2026, 2, 11, tzinfo=UTC)
UNTIL = datetime(2026, 3, 11, tzinfo=UTC)

CALLS: dict[str, Callable[..., pd.DataFrame]] = {
    "success_rates": lambda e, **f: ma.success_rates(e, freq="W", **f),
    "quality_trend": lambda e, **f: ma.quality_trend(e, by="agent_category", **f),
    "duration_stats": lambda e, **f: ma.duration_stats(e, **f),
    "business_metrics": lambda e, **f: ma.business_metrics(e, freq=None, **f),
    "error_analysis": lambda e, **f: ma.error_analysis(e, **f),
    "business_metrics_with_unstarted": lambda e, **f: aggregates.business_metrics_with_unstarted(
        e, by="agent_category", freq="W", unstarted=True, **f
    ),
}


@pytest.fixture
def seeded(engine: Engine) -> Engine:
    load_demo(engine, 400, seed=11, end=END)
    return engine


def _filter_sets(engine: Engine) -> list[dict[str, Any]]:
    repos = sorted(map(str, ma.read_summary(engine, columns=["repository_id"])["repository_id"]))
    return [
        {},
        {"since": SINCE, "until": "2026-03-11"},
        {"repository_id": repos[0], "statuses": ["failed", "COMPLETED"]},
        {"agent_types": ["SalesAgent", "CRMAgent", "MarketingAgent"], "since": "2026-01-01"},
        {"statuses": "failed", "until": UNTIL, "repository_id": [repos[0], repos[-1]]},
    ]


def test_a_filters_object_gives_the_frames_the_keywords_give(seeded: Engine) -> None:
    for keywords in _filter_sets(seeded):
        built = SummaryFilters.build(**keywords)
        for name, call in CALLS.items():
            expected = call(seeded, **keywords)
            got = call(seeded, filters=built)
            pd.testing.assert_frame_equal(got, expected, check_exact=True, obj=name)
    # the filters do filter: not every set gives the unfiltered frame
    everything = ma.success_rates(seeded)
    assert int(everything["executions"].sum()) == 400
    failed = ma.success_rates(seeded, filters=SummaryFilters.build(statuses="failed"))
    assert 0 < int(failed["executions"].sum()) < 400
    assert int(failed["completed"].sum()) == 0


def test_the_dashboard_gives_every_query_its_one_filters_object(
    seeded: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    seen: list[tuple[str, dict[str, Any]]] = []
    lock = threading.Lock()

    def spy(name: str, real: Callable[..., pd.DataFrame]) -> Callable[..., pd.DataFrame]:
        def wrapper(bind: Any, **kwargs: Any) -> pd.DataFrame:
            with lock:
                seen.append((name, kwargs))
            return real(bind, **kwargs)

        return wrapper

    for name in (
        "success_rates",
        "quality_trend",
        "duration_stats",
        "business_metrics",
        "business_metrics_with_unstarted",
        "error_analysis",
    ):
        monkeypatch.setattr(aggregates, name, spy(name, getattr(aggregates, name)))
    state = DashboardFilters.build(
        since=SINCE, until=UNTIL, categories=["operations"], statuses=["failed", "completed"]
    )
    model = DashboardModel(seeded, state)
    data = model.refresh()
    assert seen
    now, before = state.summary_filters(), state.previous_period()
    assert before is not None
    objects = {id(kwargs["filters"]) for _, kwargs in seen}
    for name, kwargs in seen:
        assert not FILTER_KEYWORDS & set(kwargs), (name, kwargs)
        assert kwargs["filters"] in (now, before.summary_filters()), name
    assert len(objects) == 2  # one object for the period, one for the previous period
    assert sum(kwargs["filters"] == now for _, kwargs in seen) == 7
    assert now.agent_types == ("SalesAgent", "CRMAgent", "AnalyticsAgent")
    # and the frames are those of the keywords
    pd.testing.assert_frame_equal(
        data.frames["durations"],
        ma.duration_stats(
            seeded,
            agent_types=["SalesAgent", "CRMAgent", "AnalyticsAgent"],
            statuses=["failed", "completed"],
            since=SINCE,
            until=UNTIL,
        ),
        check_exact=True,
    )
