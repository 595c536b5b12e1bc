"""Aggregates against an independent computation in plain Python from the records written.

The expected values never come from ``read_summary``: they are computed from the records and
metrics this module writes, with exact arithmetic (``Fraction``) where the contract promises
exactness, and compared on both dialects.
"""

from __future__ import annotations

import math
import random
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import Engine, select

import miyabi_analytics as ma
from miyabi_analytics._db.schema import analytics, executions
from miyabi_analytics._db.summary import (
    DurationSeconds,
    agent_category_of,
    is_latest_analytics,
)
from miyabi_analytics._db.views import TYPED_METRICS, summary
from miyabi_analytics.records import AgentExecutionResult

REPOS = (
    uuid.UUID("00000000-0000-4000-8000-00000000000a"),
    uuid.UUID("00000000-0000-4000-8000-00000000000b"),
)
USERS = (
    uuid.UUID("00000000-0000-4000-8000-0000000000c1"),
    uuid.UUID("00000000-0000-4000-8000-0000000000c2"),
    None,
)
AGENTS = ("MarketingAgent", "SalesAgent", "CRMAgent", "AIEntrepreneurAgent", "YouTubeAgent")
ERRORS = ("timeout", "Timeout", "rate limit", "API error: 500", None)
NO_FINISH_AGENT = "JonathanIveDesignAgent"  # only running / pending: success_rate NaN

# Bucket edges: the last microsecond of a day / ISO week / month / year and the first of the next.
EDGE_STARTS = (
    datetime(2023, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),  # Sunday, last µs of 2023
    datetime(2024, 1, 1, 0, 0, 0, 0, tzinfo=UTC),  # Monday, New Year
    datetime(2024, 1, 7, 23, 59, 59, 999999, tzinfo=UTC),  # Sunday
    datetime(2024, 1, 8, 0, 0, 0, 0, tzinfo=UTC),  # Monday
    datetime(2024, 1, 31, 23, 59, 59, 999500, tzinfo=UTC),  # rounds to Feb 1 in milliseconds
    datetime(2024, 2, 1, 0, 0, 0, 0, tzinfo=UTC),
    datetime(2024, 2, 29, 12, 0, 0, 1, tzinfo=UTC),  # leap day
    datetime(2024, 3, 3, 23, 59, 59, 999999, tzinfo=UTC),  # Sunday
    datetime(2024, 3, 4, 0, 0, 0, 0, tzinfo=UTC),  # Monday
)
RANGE_START = datetime(2023, 12, 20, tzinfo=UTC)
RANGE_SECONDS = 80 * 86400

INT_METRICS = (
    "competitors_analyzed",
    "market_size_usd",
    "target_audience_size",
    "estimated_revenue_usd",
    "reach_estimate",
)
RATE_METRICS = ("growth_rate_percent", "conversion_rate", "roi_percent")


# -- the data set -----------------------------------------------------------------------------


@dataclass
class Data:
    records: list[AgentExecutionResult]
    latest_metrics: dict[uuid.UUID, dict[str, Any]] = field(default_factory=dict)


def _record(rng: random.Random, i: int) -> AgentExecutionResult:
    agent = AGENTS[i % len(AGENTS)]
    builder = (
        ma.ExecutionResultBuilder(REPOS[rng.randrange(2)], agent)
        .user_id(USERS[rng.randrange(3)])
    )
    if i % 13 == 5:  # never started: pending, or failed before starting
        if rng.random() < 0.5:
            return builder.status("pending").build()
        return builder.status("failed").error_message(rng.choice(ERRORS)).build()
    if i < 2 * len(EDGE_STARTS):
        start = EDGE_STARTS[i % len(EDGE_STARTS)]
    else:
        start = RANGE_START + timedelta(
            seconds=rng.randrange(RANGE_SECONDS), microseconds=rng.randrange(1_000_000)
        )
    builder.started_at(start)
    status = rng.choices(["running", "completed", "failed"], weights=[1, 5, 2])[0]
    builder.status(status)
    if status != "running":
        micros = rng.choice(
            [0, 1, 1_500_000, 999_999, rng.randrange(2 * 86400 * 1_000_000)]
        )
        builder.completed_at(start + timedelta(microseconds=micros))
    if status == "failed":
        builder.error_message(rng.choice(ERRORS))
    scored = 0.75 if status == "completed" else 0.2 if status == "failed" else 0.0
    if rng.random() < scored:
        builder.quality_score(rng.randrange(101))
    return builder.build()


def _metrics(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {"notes": "kept in JSON only"}
    for name in INT_METRICS:
        if rng.random() < 0.7:
            doc[name] = rng.randrange(10**12) if "usd" in name else rng.randrange(10**6)
    if rng.random() < 0.7:
        doc["engagement_score"] = rng.randrange(101)
    for name in RATE_METRICS:
        if rng.random() < 0.7:
            bound = 999 if name != "roi_percent" else 99999
            doc[name] = round(rng.uniform(-bound, bound), 2)
    return doc


@pytest.fixture
def data(engine: Engine) -> Data:
    rng = random.Random(20241126)
    records = [_record(rng, i) for i in range(160)]
    designer = ma.ExecutionResultBuilder(REPOS[0], NO_FINISH_AGENT)
    records += [
        designer.id(uuid.uuid4()).status("running")
        .started_at(datetime(2024, 1, 2, 9, tzinfo=UTC)).build(),
        designer.id(uuid.uuid4()).status("pending").started_at(None).build(),
    ]
    assert ma.ExecutionStore(engine).save_executions(records) == len(records)
    out = Data(records)
    for record in records:
        if rng.random() < 0.45:
            agent = ma.agent_for(record.agent_type)
            for _ in range(rng.choice([1, 1, 2])):  # the latest row is the one that counts
                metrics = _metrics(rng) if rng.random() < 0.9 else {"only": "untyped"}
                agent.save_analysis_metrics(engine, record.id, metrics)
                out.latest_metrics[record.id] = metrics
    return out


# -- plain-Python reference -------------------------------------------------------------------


def _bucket(ts: datetime, freq: str) -> datetime:
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if freq == "D":
        return day
    if freq == "W":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _key(record: AgentExecutionResult, name: str) -> str | None:
    if name == "agent_type":
        return record.agent_type
    if name == "agent_category":
        return ma.agent_category(record.agent_type)
    if name == "repository_id":
        return str(record.repository_id)
    return None if record.user_id is None else str(record.user_id)


def _sort_value(name: str, value: Any) -> Any:
    if name == "agent_type":
        return ma.AGENT_TYPES.index(value)
    if name == "agent_category":
        return ma.AGENT_CATEGORIES.index(value)
    return (value is None, value or "")


def _group(
    records: Iterable[AgentExecutionResult], by: Sequence[str], freq: str | None
) -> list[tuple[dict[str, Any], list[AgentExecutionResult]]]:
    groups: dict[tuple[Any, ...], list[AgentExecutionResult]] = defaultdict(list)
    for record in records:
        if freq is not None and record.started_at is None:
            continue
        period = () if freq is None else (_bucket(record.started_at, freq),)  # type: ignore[arg-type]
        groups[period + tuple(_key(record, name) for name in by)].append(record)
    names = (["period"] if freq else []) + list(by)

    def order(key: tuple[Any, ...]) -> tuple[Any, ...]:
        pairs = zip(names, key, strict=True)
        return tuple(v if n == "period" else _sort_value(n, v) for n, v in pairs)

    return [(dict(zip(names, key, strict=True)), groups[key]) for key in sorted(groups, key=order)]


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, float) and math.isnan(value):
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return None if np.isnan(value) else float(value)
    return value


def _rows(frame: pd.DataFrame) -> list[dict[str, Any]]:
    return [
        {name: _plain(value) for name, value in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False)
    ]


def _assert_rows(
    actual: pd.DataFrame, expected: list[dict[str, Any]], *, abs_tol: float = 0.0
) -> None:
    assert list(actual.columns) == list(expected[0]) if expected else True
    got = _rows(actual)
    assert len(got) == len(expected), (got, expected)
    for have, want in zip(got, expected, strict=True):
        assert have.keys() == want.keys()
        for name, value in want.items():
            if isinstance(value, float | Fraction):
                assert have[name] is not None, (name, have, want)
                assert math.isclose(have[name], value, rel_tol=1e-12, abs_tol=abs_tol), (
                    name,
                    have,
                    want,
                )
            else:
                assert have[name] == value, (name, have, want)


BY_CASES: list[Any] = [
    "agent_type",
    "agent_category",
    "repository_id",
    "user_id",
    ["agent_category", "user_id"],
    ["repository_id", "agent_type"],
    [],
]


def _by_list(by: str | list[str]) -> list[str]:
    return [by] if isinstance(by, str) else by


# -- success_rates ----------------------------------------------------------------------------


def _expected_success(
    records: Iterable[AgentExecutionResult], by: Sequence[str], freq: str | None
) -> list[dict[str, Any]]:
    out = []
    for keys, group in _group(records, by, freq):
        completed = sum(r.status == "completed" for r in group)
        failed = sum(r.status == "failed" for r in group)
        rate = completed / (completed + failed) if completed + failed else None
        out.append(
            {
                **keys,
                "executions": len(group),
                "completed": completed,
                "failed": failed,
                "success_rate": rate,
            }
        )
    return out


@pytest.mark.parametrize("freq", [None, "D", "W", "M"])
def test_success_rates(engine, data, freq):
    for by in BY_CASES:
        frame = ma.success_rates(engine, by=by, freq=freq)
        _assert_rows(frame, _expected_success(data.records, _by_list(by), freq))


def test_success_rate_nan_without_finished_executions(engine, data):
    frame = ma.success_rates(engine)
    designer = frame[frame["agent_type"] == NO_FINISH_AGENT]
    assert designer["executions"].tolist() == [2]
    assert designer["completed"].tolist() == [0]
    assert np.isnan(designer["success_rate"].iloc[0])
    daily = ma.success_rates(engine, freq="D", agent_types=NO_FINISH_AGENT)
    assert daily["period"].tolist() == [pd.Timestamp("2024-01-02", tz="UTC")]  # pending dropped


def test_buckets_at_the_edges(engine):
    agent = ma.SalesAgent()
    records = [
        agent.builder(REPOS[0]).status("running").started_at(ts).build() for ts in EDGE_STARTS
    ]
    ma.ExecutionStore(engine).save_executions(records)
    expect: dict[Any, list[str]] = {
        "D": ["2023-12-31", "2024-01-01", "2024-01-07", "2024-01-08", "2024-01-31",
              "2024-02-01", "2024-02-29", "2024-03-03", "2024-03-04"],
        "W": ["2023-12-25", "2024-01-01", "2024-01-01", "2024-01-08", "2024-01-29",
              "2024-01-29", "2024-02-26", "2024-02-26", "2024-03-04"],
        "M": ["2023-12-01", "2024-01-01", "2024-01-01", "2024-01-01", "2024-01-01",
              "2024-02-01", "2024-02-01", "2024-03-01", "2024-03-01"],
    }
    for freq, starts in expect.items():
        frame = ma.success_rates(engine, freq=freq)
        counts = pd.Series(starts).value_counts().sort_index()
        assert frame["period"].tolist() == [pd.Timestamp(d, tz="UTC") for d in counts.index]
        assert frame["executions"].tolist() == counts.tolist()
        assert str(frame["period"].dtype) == "datetime64[us, UTC]"


# -- quality_trend ----------------------------------------------------------------------------


def _expected_quality(
    records: Iterable[AgentExecutionResult], by: Sequence[str], freq: str | None
) -> list[dict[str, Any]]:
    scored = [r for r in records if r.quality_score is not None]
    out = []
    for keys, group in _group(scored, by, freq):
        scores = [r.quality_score for r in group]
        out.append(
            {
                **keys,
                "executions": len(scores),
                "mean_quality": Fraction(sum(scores), len(scores)),  # type: ignore[arg-type]
                "min_quality": min(scores),  # type: ignore[type-var]
                "max_quality": max(scores),  # type: ignore[type-var]
            }
        )
    return out


@pytest.mark.parametrize("freq", ["D", "W", "M", None])
def test_quality_trend(engine, data, freq):
    for by in BY_CASES:
        frame = ma.quality_trend(engine, by=by, freq=freq)
        _assert_rows(frame, _expected_quality(data.records, _by_list(by), freq))


def test_quality_trend_default_is_daily_by_agent(engine, data):
    frame = ma.quality_trend(engine)
    assert list(frame.columns) == [
        "period", "agent_type", "executions", "mean_quality", "min_quality", "max_quality",
    ]
    _assert_rows(frame, _expected_quality(data.records, ["agent_type"], "D"))


# -- duration_stats ---------------------------------------------------------------------------


def _micros(record: AgentExecutionResult) -> int:
    assert record.started_at is not None
    assert record.completed_at is not None
    delta = record.completed_at - record.started_at
    return (delta.days * 86400 + delta.seconds) * 1_000_000 + delta.microseconds


def _percentile(sorted_values: Sequence[Fraction], p: Fraction) -> Fraction:
    pos = p * (len(sorted_values) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return sorted_values[lo] + (pos - lo) * (sorted_values[hi] - sorted_values[lo])


def _expected_durations(
    records: Iterable[AgentExecutionResult], by: Sequence[str]
) -> list[dict[str, Any]]:
    timed = [r for r in records if r.started_at is not None and r.completed_at is not None]
    out = []
    for keys, group in _group(timed, by, None):
        seconds = sorted(Fraction(_micros(r), 1_000_000) for r in group)
        out.append(
            {
                **keys,
                "executions": len(seconds),
                "mean_seconds": sum(seconds) / len(seconds),
                "p50_seconds": _percentile(seconds, Fraction("0.5")),
                "p95_seconds": _percentile(seconds, Fraction("0.95")),
                "max_seconds": seconds[-1],
            }
        )
    return out


def test_duration_stats(engine, data):
    for by in BY_CASES:
        frame = ma.duration_stats(engine, by=by)
        # Exact to well under a microsecond (the error left is the float64 rounding).
        _assert_rows(frame, _expected_durations(data.records, _by_list(by)), abs_tol=1e-7)


def test_duration_percentiles_interpolate_exactly(engine):
    agent = ma.CRMAgent()
    start = datetime(2024, 5, 5, 23, 59, 59, 999999, tzinfo=UTC)
    micros = [4_000_000, 1_000_000, 10_000_001, 3_000_000, 2_000_000]  # 1, 2, 3, 4, 10.000001 s
    records = [
        agent.builder(REPOS[1]).status("completed").started_at(start)
        .completed_at(start + timedelta(microseconds=m)).build()
        for m in micros
    ]
    records.append(agent.builder(REPOS[1]).status("running").started_at(start).build())
    ma.ExecutionStore(engine).save_executions(records)
    row = _rows(ma.duration_stats(engine))[0]
    assert row["executions"] == 5
    assert row["p50_seconds"] == 3.0
    assert row["p95_seconds"] == pytest.approx(8.8000008, abs=1e-9)  # 4 + 0.8 * 6.000001
    assert row["max_seconds"] == 10.000001
    assert row["mean_seconds"] == pytest.approx(4.0000002, abs=1e-9)
    # a single row is its own percentile; two rows interpolate
    other = ma.YouTubeAgent()
    ma.ExecutionStore(engine).save_executions(
        [
            other.builder(REPOS[0]).status("completed").started_at(start)
            .completed_at(start + timedelta(microseconds=m)).build()
            for m in (1, 2)
        ]
    )
    youtube = _rows(ma.duration_stats(engine, agent_types="YouTubeAgent"))[0]
    assert youtube["p50_seconds"] == pytest.approx(1.5e-6, abs=1e-12)
    assert youtube["p95_seconds"] == pytest.approx(1.95e-6, abs=1e-12)


# -- business_metrics -------------------------------------------------------------------------


def _expected_business(
    data: Data, by: Sequence[str], freq: str | None
) -> list[dict[str, Any]]:
    with_metrics = [r for r in data.records if r.id in data.latest_metrics]
    out = []
    for keys, group in _group(with_metrics, by, freq):
        docs = [data.latest_metrics[r.id] for r in group]
        row: dict[str, Any] = {**keys, "executions": len(group)}
        for name in INT_METRICS:
            values = [d[name] for d in docs if name in d]
            row[f"sum_{name}"] = sum(values) if values else None
        for name in ("growth_rate_percent", "conversion_rate", "engagement_score", "roi_percent"):
            values = [Fraction(str(d[name])) for d in docs if name in d]
            row[f"mean_{name}"] = sum(values) / len(values) if values else None
        out.append(row)
    return out


@pytest.mark.parametrize("freq", ["M", "W", None])
def test_business_metrics(engine, data, freq):
    for by in BY_CASES:
        frame = ma.business_metrics(engine, by=by, freq=freq)
        _assert_rows(frame, _expected_business(data, _by_list(by), freq))
    frame = ma.business_metrics(engine, freq=freq)
    assert frame["sum_market_size_usd"].dtype == "Int64"
    assert frame["mean_roi_percent"].dtype == "float64"


def test_business_metrics_count_untyped_analytics_rows(engine):
    agent = ma.MarketingAgent()
    start = datetime(2024, 1, 31, 23, 59, 59, 999999, tzinfo=UTC)
    record = agent.builder(REPOS[0]).status("completed").started_at(start).build()
    agent.save_execution(engine, record)
    agent.save_analysis_metrics(engine, record.id, {"market_size_usd": 5})
    agent.save_analysis_metrics(engine, record.id, {"free_text": "no typed metric"})
    row = _rows(ma.business_metrics(engine))[0]
    assert row["period"] == datetime(2024, 1, 1, tzinfo=UTC)
    assert row["executions"] == 1
    assert row["sum_market_size_usd"] is None  # the latest row has no typed metric
    assert row["mean_roi_percent"] is None


# -- error_analysis ---------------------------------------------------------------------------


def _expected_errors(records: Iterable[AgentExecutionResult]) -> list[dict[str, Any]]:
    groups: dict[str | None, list[AgentExecutionResult]] = defaultdict(list)
    out: list[dict[str, Any]] = []
    for record in records:
        if record.status == "failed":
            groups[record.error_message].append(record)
    for message, group in groups.items():
        starts = [r.started_at for r in group if r.started_at is not None]
        out.append(
            {
                "error_message": message,
                "failures": len(group),
                "agent_types": ", ".join(sorted({r.agent_type for r in group})),
                "first_seen": min(starts) if starts else None,
                "last_seen": max(starts) if starts else None,
            }
        )
    out.sort(key=lambda r: (-r["failures"], r["error_message"] is None, r["error_message"] or ""))
    return out


def test_error_analysis(engine, data):
    frame = ma.error_analysis(engine)
    expected = _expected_errors(data.records)
    assert len(expected) >= 4
    _assert_rows(frame, expected)
    assert frame["first_seen"].dtype == "datetime64[us, UTC]"


def test_error_analysis_ties_and_sorting(engine):
    start = datetime(2024, 1, 1, tzinfo=UTC)
    records = []
    for agent, message, offset in [
        ("SNSStrategyAgent", "b", 0),
        ("SalesAgent", "b", 2),
        ("SalesAgent", "a", 1),
        ("AnalyticsAgent", "a", 3),
        ("AnalyticsAgent", "c", 5),
    ]:
        records.append(
            ma.ExecutionResultBuilder(REPOS[0], agent).status("failed")
            .started_at(start + timedelta(microseconds=offset)).error_message(message).build()
        )
    ma.ExecutionStore(engine).save_executions(records)
    rows = _rows(ma.error_analysis(engine))
    assert [(r["error_message"], r["failures"]) for r in rows] == [("a", 2), ("b", 2), ("c", 1)]
    assert rows[0]["agent_types"] == "AnalyticsAgent, SalesAgent"
    assert rows[1]["agent_types"] == "SNSStrategyAgent, SalesAgent"  # code point order
    assert rows[0]["first_seen"] == start + timedelta(microseconds=1)
    assert rows[0]["last_seen"] == start + timedelta(microseconds=3)


# -- filters ----------------------------------------------------------------------------------

SINCE = datetime(2024, 1, 1, tzinfo=UTC)
UNTIL = datetime(2024, 2, 1, tzinfo=UTC)


def _matches(record: AgentExecutionResult) -> bool:
    return (
        record.repository_id == REPOS[0]
        and record.agent_type in ("MarketingAgent", "CRMAgent")
        and record.started_at is not None
        and SINCE <= record.started_at < UNTIL
    )


def test_filters(engine, data):
    kwargs: dict[str, Any] = {
        "repository_id": str(REPOS[0]),
        "agent_types": ["MarketingAgent", "CRMAgent"],
        "since": SINCE,
        "until": UNTIL,
    }
    chosen = [r for r in data.records if _matches(r)]
    assert 0 < len(chosen) < len(data.records)
    by = ["agent_type", "user_id"]
    _assert_rows(
        ma.success_rates(engine, by=by, freq="W", **kwargs),
        _expected_success(chosen, by, "W"),
    )
    _assert_rows(
        ma.quality_trend(engine, by=by, **kwargs), _expected_quality(chosen, by, "D")
    )
    _assert_rows(
        ma.duration_stats(engine, by=by, **kwargs), _expected_durations(chosen, by), abs_tol=1e-7
    )
    chosen_data = Data(chosen, data.latest_metrics)
    _assert_rows(
        ma.business_metrics(engine, by=by, **kwargs), _expected_business(chosen_data, by, "M")
    )
    _assert_rows(ma.error_analysis(engine, **kwargs), _expected_errors(chosen))

    users = [USERS[0]]
    statuses = ["completed", "failed"]
    subset = [r for r in data.records if r.user_id in users and r.status in statuses]
    _assert_rows(
        ma.success_rates(engine, user_id=users, statuses=statuses),
        _expected_success(subset, ["agent_type"], None),
    )


# -- the aggregates' expressions are the view's definitions ---------------------------------


def test_expressions_agree_with_the_view(engine, data):
    view = select(
        summary.c.id, summary.c.duration_seconds, summary.c.agent_category,
        *(summary.c[name] for name in TYPED_METRICS),
    )
    tables = select(
        executions.c.id,
        DurationSeconds(executions.c.started_at, executions.c.completed_at),
        agent_category_of(executions.c.agent_type),
    )
    latest, newer = analytics.alias("latest"), analytics.alias("newer")
    metrics = select(latest.c.execution_id, *(latest.c[name] for name in TYPED_METRICS)).where(
        is_latest_analytics(latest, newer)
    )
    with engine.connect() as conn:
        from_view = {row[0]: tuple(row[1:]) for row in conn.execute(view)}
        computed = {row[0]: tuple(row[1:]) for row in conn.execute(tables)}
        latest_rows = {row[0]: tuple(row[1:]) for row in conn.execute(metrics)}
    assert from_view.keys() == computed.keys()
    assert len(latest_rows) == len(data.latest_metrics)
    for key, row in from_view.items():
        assert row[:2] == computed[key]  # durations bit for bit, categories
        assert row[2:] == latest_rows.get(key, (None,) * len(TYPED_METRICS))
        if row[0] is not None:
            record = next(r for r in data.records if r.id == key)
            assert row[0] == _micros(record) / 1_000_000


# -- empty results, dtypes, bad arguments -----------------------------------------------------

AGGREGATES: dict[str, Callable[..., pd.DataFrame]] = {
    "success_rates": ma.success_rates,
    "quality_trend": ma.quality_trend,
    "duration_stats": ma.duration_stats,
    "business_metrics": ma.business_metrics,
    "error_analysis": ma.error_analysis,
}

COLUMNS = {
    "success_rates": ["executions", "completed", "failed", "success_rate"],
    "quality_trend": ["executions", "mean_quality", "min_quality", "max_quality"],
    "duration_stats": ["executions", "mean_seconds", "p50_seconds", "p95_seconds", "max_seconds"],
    "business_metrics": [
        "executions",
        "sum_competitors_analyzed",
        "sum_market_size_usd",
        "sum_target_audience_size",
        "sum_estimated_revenue_usd",
        "sum_reach_estimate",
        "mean_growth_rate_percent",
        "mean_conversion_rate",
        "mean_engagement_score",
        "mean_roi_percent",
    ],
    "error_analysis": ["error_message", "failures", "agent_types", "first_seen", "last_seen"],
}

KEY_DTYPES = {
    "period": "datetime64[us, UTC]",
    "agent_type": pd.CategoricalDtype(list(ma.AGENT_TYPES)),
    "agent_category": pd.CategoricalDtype([*ma.AGENT_CATEGORIES, "other"]),
}


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_empty_results_keep_columns_and_dtypes(engine, data, name):
    function = AGGREGATES[name]
    kwargs: dict[str, Any] = {} if name == "error_analysis" else {"by": ["agent_category"]}
    if name in ("success_rates", "quality_trend", "business_metrics"):
        kwargs["freq"] = "W"
    full = function(engine, **kwargs)
    empty = function(engine, since=datetime(2030, 1, 1, tzinfo=UTC), **kwargs)
    assert len(full) > 0
    assert empty.empty
    keys = [] if name == "error_analysis" else (["period"] if "freq" in kwargs else [])
    keys += kwargs.get("by", [])
    assert list(empty.columns) == keys + COLUMNS[name]
    assert empty.dtypes.to_dict() == full.dtypes.to_dict()
    for column in keys:
        assert empty[column].dtype == KEY_DTYPES[column]
    counts = "failures" if name == "error_analysis" else "executions"
    assert empty[counts].dtype == "int64"
    assert full[counts].dtype == "int64"


def test_empty_database(engine):
    for name, function in AGGREGATES.items():
        frame = function(engine)
        assert frame.empty, name
    frame = ma.success_rates(engine, by=["repository_id", "user_id"], freq="M")
    assert list(frame.columns) == [
        "period", "repository_id", "user_id", "executions", "completed", "failed", "success_rate",
    ]
    assert frame["repository_id"].dtype == frame["user_id"].dtype
    assert pd.api.types.is_string_dtype(frame["user_id"].dtype)
    assert frame["success_rate"].dtype == "float64"
    overall = ma.success_rates(engine, by=[])
    assert overall.empty
    assert list(overall.columns) == ["executions", "completed", "failed", "success_rate"]


@pytest.mark.parametrize("name", ["success_rates", "quality_trend", "business_metrics"])
@pytest.mark.parametrize("freq", ["Q", "d", "week", 7, ""])
def test_bad_freq(engine, name, freq):
    with pytest.raises(ma.ValidationError) as info:
        AGGREGATES[name](engine, freq=freq)
    assert info.value.field == "freq"


@pytest.mark.parametrize("name", ["success_rates", "quality_trend", "duration_stats",
                                  "business_metrics"])
@pytest.mark.parametrize(
    "by", ["status", ["agent_type", "nope"], ["agent_type", "agent_type"], 3, [None]]
)
def test_bad_by(engine, name, by):
    with pytest.raises(ma.ValidationError) as info:
        AGGREGATES[name](engine, by=by)
    assert info.value.field == "by"


@pytest.mark.parametrize("name", list(AGGREGATES))
def test_bad_filters(engine, name):
    with pytest.raises(ma.ValidationError) as info:
        AGGREGATES[name](engine, agent_types=["SalesAgent", 7])  # names are open, not types
    assert info.value.field == "agent_types"
    with pytest.raises(ma.ValidationError) as info:
        AGGREGATES[name](engine, since=datetime(2024, 1, 1))  # noqa: DTZ001 (naive on purpose)
    assert info.value.field == "since"


def test_durations_are_correctly_rounded_on_both_sides_of_a_day(engine):
    """Each duration is the double nearest to its exact microseconds, under a day and over.

    PostgreSQL takes a cheaper path for spans under a day than for longer ones; both must give
    the correctly rounded value (what ``float(Fraction(micros, 10**6))`` is).
    """
    start = datetime(2024, 3, 9, 17, 3, 5, 123457, tzinfo=UTC)
    micros = [
        1,
        999_999,
        86_399_999_999,  # the last microsecond under a day
        86_400_000_000,  # exactly a day
        86_400_000_001,
        2 * 86_400_000_000 + 123_456_789,
        40 * 86_400_000_000 + 86_399_999_999,
        3_333_333_333,
    ]
    agents = [ma.agent_for(name) for name in ma.AGENT_TYPES[: len(micros)]]
    ma.ExecutionStore(engine).save_executions(
        agent.builder(REPOS[0]).status("completed").started_at(start)
        .completed_at(start + timedelta(microseconds=m)).build()
        for agent, m in zip(agents, micros, strict=True)
    )
    frame = ma.duration_stats(engine, by="agent_type")
    got = dict(zip(frame["agent_type"].astype(str), frame["max_seconds"], strict=True))
    for agent, m in zip(agents, micros, strict=True):
        assert got[agent.agent_type] == float(Fraction(m, 10**6)), (agent.agent_type, m)


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
@pytest.mark.parametrize(("freq", "buckets"), [("D", 30), ("W", 5), ("M", 1)])
def test_planner_knows_how_many_buckets_there_are(engine, freq, buckets):
    """Revision 0006's statistics match the SQL UtcBucket compiles to, so the planner uses them.

    Without them PostgreSQL assumes 200 distinct values of the expression (and, on 1M rows,
    hundreds of thousands of groups), and sorts instead of hashing.
    """
    from sqlalchemy import text

    from miyabi_analytics._db.buckets import UtcBucket

    agent = ma.SalesAgent()
    start = datetime(2024, 6, 1, tzinfo=UTC)  # a Saturday: June touches 5 ISO weeks
    ma.ExecutionStore(engine).save_executions(
        agent.builder(REPOS[0]).started_at(start + timedelta(hours=i * 720 / 3000)).build()
        for i in range(3000)
    )
    with engine.begin() as conn:
        conn.execute(text("ANALYZE agent_executions"))
        bucket = UtcBucket(executions.c.started_at, freq)
        stmt = select(bucket).group_by(bucket)
        sql = str(stmt.compile(engine, compile_kwargs={"literal_binds": True}))
        plan = conn.execute(text(f"EXPLAIN (FORMAT JSON) {sql}")).scalar_one()
    estimate = plan[0]["Plan"]["Plan Rows"]
    assert buckets <= estimate <= 2 * buckets, (freq, estimate)
