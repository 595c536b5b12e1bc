"""Every aggregate gives the same frame, bit for bit, on SQLite and on PostgreSQL.

The same seeded random history (rates such as 0.01, 33.33, -12.34 and 99999.99, ties, nulls,
durations from a microsecond to days, money up to 10**15 a row; sums past 64 bits have a test
of their own) is written to a SQLite file and to PostgreSQL. Each aggregate, with and without
``by`` / ``freq`` / filters, must give frames that ``pandas.testing.assert_frame_equal(...,
check_exact=True)`` finds equal, and equal to an independent computation in plain Python: exact
arithmetic (``Fraction``, ``Decimal``) rounded to a float once, so "equal" means the correctly
rounded value, not a tolerance.
"""

from __future__ import annotations

import math
import random
import shutil
import uuid
from collections import defaultdict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sqlalchemy import URL, Engine, create_engine, make_url, table, text

import miyabi_analytics as ma
from miyabi_analytics.records import AgentExecutionResult

AGENTS = (
    "AIEntrepreneurAgent",  # strategy
    "SelfAnalysisAgent",  # strategy
    "MarketingAgent",  # marketing
    "ContentCreationAgent",  # marketing
    "SalesAgent",  # operations
    "JonathanIveDesignAgent",  # design
)
RATES = (
    0.01, -0.01, 0.07, 0.1, 0.2, 0.3, 1.15, 2.67, 33.33, -12.34, 66.67, -66.67, 12.5,
    999.99, -999.99, 0.0,
)
ROIS = (*RATES, 99999.99, -99999.99, 12345.67, -0.05)
DURATIONS = (  # microseconds: ties, sub-second, around a day, days
    0, 1, 2, 333_333, 1_000_000, 1_000_001, 9_999_999, 86_399_999_999, 86_400_000_000,
    86_400_000_001, 3 * 86_400_000_000 + 7,
)
START = datetime(2024, 1, 29, 23, 59, 59, 999_999, tzinfo=UTC)  # Monday night, month end
SPAN_MICROS = 70 * 86_400 * 1_000_000
MESSAGES = ("timeout", "Timeout", "rate limit", "line 1\nline 2", "", None)
INT_METRICS = (
    "competitors_analyzed",
    "market_size_usd",
    "target_audience_size",
    "estimated_revenue_usd",
    "reach_estimate",
)
RATE_METRICS = ("growth_rate_percent", "conversion_rate", "roi_percent")


# -- the history ------------------------------------------------------------------------------


@dataclass
class History:
    records: list[AgentExecutionResult]
    metrics: dict[uuid.UUID, dict[str, Any]]


def _uuid(rng: random.Random) -> uuid.UUID:
    return uuid.UUID(int=rng.getrandbits(128), version=4)


def history(seed: int, size: int = 260) -> History:
    rng = random.Random(seed)
    repos = [_uuid(rng) for _ in range(2)]
    users = [_uuid(rng), _uuid(rng), None]
    tied_start = START + timedelta(days=3, microseconds=rng.randrange(10**6))
    records = []
    for i in range(size):
        agent = AGENTS[i % len(AGENTS)] if i % 7 else rng.choice(AGENTS)
        builder = (
            ma.ExecutionResultBuilder(rng.choice(repos), agent)
            .id(_uuid(rng))
            .user_id(rng.choice(users))
        )
        if i % 17 == 3:  # never started
            builder.status(rng.choice(["pending", "failed"]))
        else:
            start = tied_start if i % 11 == 0 else START + timedelta(
                microseconds=rng.randrange(SPAN_MICROS)
            )
            builder.started_at(start)
            status = rng.choices(["running", "completed", "failed"], weights=[1, 6, 3])[0]
            builder.status(status)
            if status != "running":
                micros = (
                    rng.choice(DURATIONS)
                    if rng.random() < 0.6
                    else rng.randrange(4 * 86_400 * 10**6)
                )
                builder.completed_at(start + timedelta(microseconds=micros))
        if builder.build().status == "failed":
            builder.error_message(rng.choice(MESSAGES))
        if rng.random() < 0.7:
            builder.quality_score(rng.choice([0, 100, 33, 67, rng.randrange(101)]))
        records.append(builder.build())
    metrics = {r.id: _metrics(rng) for r in records if rng.random() < 0.7}
    return History(records, metrics)


def _metrics(rng: random.Random) -> dict[str, Any]:
    doc: dict[str, Any] = {"note": "json only"}
    for name in INT_METRICS:
        if rng.random() < 0.75:
            doc[name] = rng.randrange(10**15) if "usd" in name else rng.randrange(2**31)
    if rng.random() < 0.75:
        doc["engagement_score"] = rng.choice([0, 1, 33, 67, 99, 100, rng.randrange(101)])
    for name in RATE_METRICS:
        if rng.random() < 0.75:
            values = ROIS if name == "roi_percent" else RATES
            bound = 99999.99 if name == "roi_percent" else 999.99
            doc[name] = (
                rng.choice(values) if rng.random() < 0.6 else round(rng.uniform(-bound, bound), 2)
            )
    return doc


def load(engine: Engine, data: History) -> None:
    store = ma.ExecutionStore(engine)
    assert store.save_executions(data.records) == len(data.records)
    assert store.save_analysis_metrics_many(data.metrics.items()) == len(data.metrics)


# -- one SQLite file and one PostgreSQL database with the same rows ---------------------------


def _emptied(url: URL) -> None:
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            names = conn.execute(
                text(
                    "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
                    "AND tablename <> 'alembic_version'"
                )
            ).scalars().all()
            for name in names:
                conn.execute(table(name).delete())
    finally:
        engine.dispose()


@pytest.fixture
def pair(
    request: pytest.FixtureRequest, tmp_path: Path, sqlite_template: Path
) -> Iterator[tuple[Engine, Engine]]:
    """(SQLite engine, PostgreSQL engine), both migrated and empty."""
    pg_url: URL = request.getfixturevalue("pg_session_url")
    _emptied(pg_url)
    path = tmp_path / "exact.db"
    shutil.copyfile(sqlite_template, path)
    lite, pg = ma.connect(make_url(f"sqlite:///{path}")), ma.connect(pg_url)
    yield lite, pg
    lite.dispose()
    pg.dispose()


# -- the plain-Python reference ---------------------------------------------------------------


def _bucket(ts: datetime, freq: str) -> datetime:
    day = ts.replace(hour=0, minute=0, second=0, microsecond=0)
    if freq == "D":
        return day
    if freq == "W":
        return day - timedelta(days=day.weekday())
    return day.replace(day=1)


def _key(record: AgentExecutionResult, name: str) -> Any:
    if name == "agent_type":
        return record.agent_type
    if name == "agent_category":
        return ma.agent_category(record.agent_type)
    value = getattr(record, name)
    return None if value is None else str(value)


def _order(name: str, value: Any) -> Any:
    if name == "agent_type":
        return ma.AGENT_TYPES.index(value)
    if name == "agent_category":
        return ma.AGENT_CATEGORIES.index(value)
    return (value is None, value or "")


def _groups(
    records: Sequence[AgentExecutionResult], by: Sequence[str], freq: str | None
) -> list[tuple[dict[str, Any], list[AgentExecutionResult]]]:
    groups: dict[tuple[Any, ...], list[AgentExecutionResult]] = defaultdict(list)
    for r in records:
        if freq is not None and r.started_at is None:
            continue
        period = () if freq is None else (_bucket(r.started_at, freq),)  # type: ignore[arg-type]
        groups[period + tuple(_key(r, name) for name in by)].append(r)
    names = (["period"] if freq else []) + list(by)

    def order(key: tuple[Any, ...]) -> tuple[Any, ...]:
        return tuple(
            v if n == "period" else _order(n, v) for n, v in zip(names, key, strict=True)
        )

    return [(dict(zip(names, k, strict=True)), groups[k]) for k in sorted(groups, key=order)]


def _float(value: Fraction | None) -> float:
    """The exact value rounded to the nearest double once; NaN where undefined."""
    return math.nan if value is None else float(value)


def _mean(values: Sequence[Fraction | int]) -> float:
    return _float(Fraction(sum(values), len(values)) if values else None)


def _micros(r: AgentExecutionResult) -> int:
    assert r.started_at is not None
    assert r.completed_at is not None
    delta = r.completed_at - r.started_at
    return (delta.days * 86_400 + delta.seconds) * 10**6 + delta.microseconds


def _percentile(ordered: Sequence[int], p: Fraction) -> Fraction:
    pos = p * (len(ordered) - 1)
    lo, hi = math.floor(pos), math.ceil(pos)
    return ordered[lo] + (pos - lo) * (ordered[hi] - ordered[lo])


def expect_success(records, by, freq):
    rows = []
    for keys, group in _groups(records, by, freq):
        done = sum(r.status == "completed" for r in group)
        failed = sum(r.status == "failed" for r in group)
        rate = Fraction(done, done + failed) if done + failed else None
        rows.append({**keys, "executions": len(group), "completed": done, "failed": failed,
                     "success_rate": _float(rate)})
    return rows


def expect_quality(records, by, freq):
    rows = []
    for keys, group in _groups([r for r in records if r.quality_score is not None], by, freq):
        scores = [r.quality_score for r in group]
        rows.append({**keys, "executions": len(scores), "mean_quality": _mean(scores),
                     "min_quality": min(scores), "max_quality": max(scores)})
    return rows


def expect_durations(records, by):
    timed = [r for r in records if r.started_at is not None and r.completed_at is not None]
    rows = []
    for keys, group in _groups(timed, by, None):
        micros = sorted(_micros(r) for r in group)
        rows.append({
            **keys,
            "executions": len(micros),
            "mean_seconds": _float(Fraction(sum(micros), len(micros) * 10**6)),
            "p50_seconds": _float(_percentile(micros, Fraction(1, 2)) / 10**6),
            "p95_seconds": _float(_percentile(micros, Fraction(95, 100)) / 10**6),
            "max_seconds": _float(Fraction(micros[-1], 10**6)),
        })
    return rows


def expect_business(data: History, records, by, freq):
    rows = []
    for keys, group in _groups([r for r in records if r.id in data.metrics], by, freq):
        docs = [data.metrics[r.id] for r in group]
        row: dict[str, Any] = {**keys, "executions": len(group)}
        for name in INT_METRICS:
            values = [d[name] for d in docs if name in d]
            row[f"sum_{name}"] = sum(values) if values else None
        for name in ("growth_rate_percent", "conversion_rate", "engagement_score",
                     "roi_percent"):
            values = [Fraction(Decimal(str(d[name]))) for d in docs if name in d]
            row[f"mean_{name}"] = _mean(values)
        rows.append(row)
    return rows


def expect_errors(records):
    groups: dict[str | None, list[AgentExecutionResult]] = defaultdict(list)
    for r in records:
        if r.status == "failed":
            groups[r.error_message].append(r)
    rows = []
    for message, group in groups.items():
        starts = [r.started_at for r in group if r.started_at is not None]
        rows.append({
            "error_message": message,
            "failures": len(group),
            "agent_types": ", ".join(sorted({r.agent_type for r in group})),
            "first_seen": min(starts) if starts else None,
            "last_seen": max(starts) if starts else None,
        })
    rows.sort(key=lambda r: (-r["failures"], r["error_message"] is None, r["error_message"] or ""))
    return rows


def _plain(value: Any) -> Any:
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, pd.Timestamp):
        return value.to_pydatetime()
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, float | np.floating):
        return None if math.isnan(value) else float(value)
    return value


def assert_same_values(frame: pd.DataFrame, expected: list[dict[str, Any]], what: str) -> None:
    """Every value equal to the reference's: floats bit for bit (NaN where NaN)."""
    got = [
        {name: _plain(v) for name, v in zip(frame.columns, row, strict=True)}
        for row in frame.itertuples(index=False)
    ]
    assert len(got) == len(expected), what
    for have, want in zip(got, expected, strict=True):
        assert list(have) == list(want), what
        for name, value in want.items():
            if isinstance(value, float) and math.isnan(value):
                assert have[name] is None, (what, name, have[name], value, have)
            elif isinstance(value, float):
                assert isinstance(have[name], float), (what, name, have[name], value, have)
                assert have[name] == value, (what, name, have[name].hex(), value.hex(), have)
            else:
                assert have[name] == value, (what, name, have[name], value, have)


# -- the cases --------------------------------------------------------------------------------

BYS: list[Any] = [
    "agent_type",
    "agent_category",
    "repository_id",
    "user_id",
    ["agent_category", "user_id"],
    None,
]
FREQS = [None, "D", "W", "M"]


def _by(by: Any) -> list[str]:
    return [] if by is None else [by] if isinstance(by, str) else list(by)


def cases(data: History) -> Iterator[tuple[str, Callable[..., pd.DataFrame], dict[str, Any],
                                           list[dict[str, Any]]]]:
    """(label, aggregate, keyword arguments, expected rows) for every combination."""
    records = data.records
    for by in BYS:
        keys = _by(by)
        for freq in FREQS:
            yield (f"success_rates({by}, {freq})", ma.success_rates, {"by": by, "freq": freq},
                   expect_success(records, keys, freq))
            yield (f"quality_trend({by}, {freq})", ma.quality_trend, {"by": by, "freq": freq},
                   expect_quality(records, keys, freq))
            yield (f"business_metrics({by}, {freq})", ma.business_metrics,
                   {"by": by, "freq": freq}, expect_business(data, records, keys, freq))
        yield (f"duration_stats({by})", ma.duration_stats, {"by": by},
               expect_durations(records, keys))
    yield "error_analysis()", ma.error_analysis, {}, expect_errors(records)
    # filtered: one repository, a window cutting weeks and months
    repo = records[0].repository_id
    since, until = START + timedelta(days=9, hours=5), START + timedelta(days=40, minutes=7)
    chosen = [
        r for r in records
        if r.repository_id == repo and r.started_at is not None and since <= r.started_at < until
    ]
    window = {"repository_id": repo, "since": since, "until": until}
    by = ["agent_type", "user_id"]
    yield ("success_rates(window)", ma.success_rates, {"by": by, "freq": "W", **window},
           expect_success(chosen, by, "W"))
    yield ("quality_trend(window)", ma.quality_trend, {"by": by, **window},
           expect_quality(chosen, by, "D"))
    yield ("duration_stats(window)", ma.duration_stats, {"by": by, **window},
           expect_durations(chosen, by))
    yield ("business_metrics(window)", ma.business_metrics, {"by": by, **window},
           expect_business(data, chosen, by, "M"))
    yield "error_analysis(window)", ma.error_analysis, window, expect_errors(chosen)
    # the same window without users: answered from the rollup's whole days and the edges' rows
    by = ["agent_type"]
    yield ("success_rates(window, rollup)", ma.success_rates, {"by": by, "freq": "W", **window},
           expect_success(chosen, by, "W"))
    yield ("quality_trend(window, rollup)", ma.quality_trend, {"by": by, **window},
           expect_quality(chosen, by, "D"))
    yield ("duration_stats(window, rollup)", ma.duration_stats, {"by": by, **window},
           expect_durations(chosen, by))
    yield ("business_metrics(window, rollup)", ma.business_metrics, {"by": by, **window},
           expect_business(data, chosen, by, "M"))


def _diff(lite: pd.DataFrame, pg: pd.DataFrame) -> list[str]:
    """The float cells that differ, with their bits (for the failure message)."""
    out = []
    if lite.shape != pg.shape or list(lite.columns) != list(pg.columns):
        return [f"shapes {lite.shape} / {pg.shape}"]
    for name in lite.columns:
        if lite[name].dtype != "float64" or pg[name].dtype != "float64":
            continue
        for i, (a, b) in enumerate(zip(lite[name], pg[name], strict=True)):
            if not (a == b or (math.isnan(a) and math.isnan(b))):
                out.append(f"{name}[{i}]: sqlite {a!r} ({a.hex()}) postgresql {b!r} ({b.hex()})")
    return out


@pytest.mark.parametrize("refreshed", [False, True], ids=["rows", "rollup"])
@pytest.mark.parametrize("seed", [1, 20241126, 7777])
def test_every_aggregate_is_bit_identical_on_both_databases(pair, seed, refreshed):
    """Rows: every day pending, the answer comes from the executions; rollup: after
    ``refresh_rollups`` every whole day comes from the rollup, sums past 2**32 a row included."""
    lite, pg = pair
    data = history(seed)
    load(lite, data)
    load(pg, data)
    if refreshed:
        for engine in (lite, pg):
            assert ma.refresh_rollups(engine).days > 60
            assert not ma.rollup_status(engine).stale
    failures = []
    checked = 0
    for label, aggregate, kwargs, expected in cases(data):
        on_sqlite, on_pg = aggregate(lite, **kwargs), aggregate(pg, **kwargs)
        try:
            pd.testing.assert_frame_equal(on_sqlite, on_pg, check_exact=True)
        except AssertionError:
            failures.append(f"{label}: " + "; ".join(_diff(on_sqlite, on_pg)[:4]))
        for engine, frame in (("sqlite", on_sqlite), ("postgresql", on_pg)):
            try:
                assert_same_values(frame, expected, label)
            except AssertionError as exc:
                failures.append(f"{label} on {engine} against the reference: {exc}")
        checked += 1
    assert failures == [], "\n".join(failures)
    assert checked == 6 * 4 * 3 + 6 + 1 + 5 + 4


def test_means_that_naive_float_arithmetic_gets_wrong(pair):
    """Three rates of 0.1 average to 0.1 (naive float sums give 0.10000000000000002)."""
    lite, pg = pair
    agent = ma.MarketingAgent()
    repo = uuid.UUID(int=1, version=4)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    records = [
        agent.builder(repo).status("completed").started_at(start)
        .completed_at(start + timedelta(microseconds=100_000)).quality_score(q).build()
        for q in (1, 1, 2)
    ]
    docs = [{"conversion_rate": 0.1, "roi_percent": 33.33, "growth_rate_percent": -12.34}] * 3
    for engine in (lite, pg):
        ma.ExecutionStore(engine).save_executions(records)
        ma.ExecutionStore(engine).save_analysis_metrics_many(
            zip((r.id for r in records), docs, strict=True)
        )
    for engine in (lite, pg):
        business = ma.business_metrics(engine, by=None, freq=None)
        assert business["mean_conversion_rate"].tolist() == [0.1]
        assert business["mean_roi_percent"].tolist() == [33.33]
        assert business["mean_growth_rate_percent"].tolist() == [-12.34]
        quality = ma.quality_trend(engine, by=None, freq=None)
        assert quality["mean_quality"].tolist() == [float(Fraction(4, 3))]
        durations = ma.duration_stats(engine, by=None)
        assert durations["mean_seconds"].tolist() == [0.1]
        assert durations["p95_seconds"].tolist() == [0.1]


def test_sums_beyond_64_bits_fail_the_same_way_on_both(pair):
    """Money sums are exact ``Int64``; one that does not fit is the same error on both."""
    from miyabi_analytics import AggregateOverflowError

    lite, pg = pair
    agent = ma.MarketingAgent()
    repo = uuid.UUID(int=2, version=4)
    start = datetime(2024, 3, 1, tzinfo=UTC)
    records = [agent.builder(repo).status("completed").started_at(start).build() for _ in range(3)]
    big = 2**63 - 1
    docs = [{"market_size_usd": big}, {"market_size_usd": big}, {"estimated_revenue_usd": 5}]
    for engine in (lite, pg):
        ma.ExecutionStore(engine).save_executions(records)
        ma.ExecutionStore(engine).save_analysis_metrics_many(
            zip((r.id for r in records), docs, strict=True)
        )
    messages = []
    for engine in (lite, pg):
        with pytest.raises(AggregateOverflowError) as info:
            ma.business_metrics(engine, by=None, freq=None)
        assert isinstance(info.value, ma.MiyabiError)
        assert isinstance(info.value, OverflowError)
        assert info.value.column == "sum_market_size_usd"
        assert info.value.value == 2 * big
        messages.append(str(info.value))
    assert messages[0] == messages[1]
    # one row fewer and the sum fits, exactly, on both
    for engine in (lite, pg):
        with engine.begin() as conn:
            conn.execute(text("DELETE FROM agent_executions WHERE id = :id"),
                         {"id": str(records[1].id)})
        frame = ma.business_metrics(engine, by=None, freq=None)
        assert frame["sum_market_size_usd"].tolist() == [big]
        assert frame["sum_estimated_revenue_usd"].tolist() == [5]
