"""The bulk and fast paths give exactly what the simple paths give, on both databases.

Reads: ``read_summary`` (ADBC + Arrow on PostgreSQL, raw rows + Arrow on SQLite),
``read_summary_arrow``, ``iter_summary`` and ``export_summary`` against
``_read_summary_simple`` (plain SQLAlchemy, row by row). Writes: ``save_executions``,
``save_analysis_metrics_many`` and ``log_many`` against one ``save_execution`` /
``save_analysis_metrics`` / ``log`` per item, and what a batch failing half-way leaves stored.
"""

import dataclasses
import itertools
import json
import math
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy import Connection, Engine, delete, func, select

import miyabi_analytics as ma
from miyabi_analytics._db.schema import analytics, executions, logs
from miyabi_analytics._db.types import json_loads
from miyabi_analytics.reader import _read_summary_simple

T0 = datetime(2026, 4, 1, 12, 0, 0, 250001, tzinfo=UTC)
SUMMARY_COLUMNS = (
    "id", "repository_id", "user_id", "agent_type", "issue_number", "status", "started_at",
    "completed_at", "error_message", "result", "quality_score", "pr_number", "created_at",
    "updated_at", "duration_seconds", "agent_category", "competitors_analyzed", "market_size_usd",
    "growth_rate_percent", "conversion_rate", "target_audience_size", "estimated_revenue_usd",
    "engagement_score", "reach_estimate", "roi_percent",
)
METRIC_COLUMNS = (
    "competitors_analyzed", "market_size_usd", "growth_rate_percent", "conversion_rate",
    "target_audience_size", "estimated_revenue_usd", "engagement_score", "reach_estimate",
    "roi_percent",
)
CLOCK_COLUMNS = ["created_at", "updated_at"]

STRANGE_TEXT = (
    "'; DROP TABLE agent_executions; --",
    'Robert"); DROP TABLE business_agent_analytics;--',
    "back\\slash \\n \\u0000 \\\\ \\'",
    "100% done %s %(name)s %% LIKE '%_'",
    "$1 $$ ? :name {0} {}",
    "絵文字 😀🚀👩‍👩‍👧 and CJK 日本語のエラー",
    "e\u0301 combining: Å vs A\u030a",
    "עברית RTL \u202eoverride\u202c مرحبا",
    "tab\tnewline\ncarriage\r",
    "",
)
STRANGE_RESULTS: tuple[Any, ...] = (
    {
        "'; DROP TABLE agent_executions; --": "x",
        "キー": ["値", {"深い": [1, 2.5, None, True, False]}],
        "%s": "%(x)s",
        "back\\slash": "quote'\"\\u0000",
        "": "empty key",
        "😀": {"e\u0301": "\u202eRTL"},
    },
    {"nested": {"deep": [[1, 2], [3, [4, {"five": 5}]]]}, "big": 2**63 - 1, "neg": -(2**63)},
    {"floats": [0.1, 0.30000000000000004, -2.5, 1e-7, 123456.789], "zero": 0, "t": True},
    [1, "two", {"three": 3.0}, [], {}],
    {},
    [],
    None,
    {"a" * 200: "b" * 2000},
)


# -- helpers -----------------------------------------------------------------------------------


def arrow_type_of(column: str) -> pa.DataType:
    if column in ("started_at", "completed_at", "created_at", "updated_at"):
        return pa.timestamp("us", tz="UTC")
    if column in ("duration_seconds", "growth_rate_percent", "conversion_rate", "roi_percent"):
        return pa.float64()
    if column in ("issue_number", "quality_score", "pr_number") or column in METRIC_COLUMNS:
        return pa.int64()
    return pa.string()  # uuids, text, categories and the JSON document


def python_values(series: pd.Series) -> list[Any]:
    """A simple-path column as the plain values ``read_summary_arrow`` should hold."""
    out: list[Any] = []
    for value in series.tolist():
        missing = value is None or value is pd.NA or value is pd.NaT
        if missing or (isinstance(value, float) and math.isnan(value)):
            out.append(None)
        elif isinstance(value, pd.Timestamp):
            out.append(value.to_pydatetime())
        else:
            out.append(value)
    return out


def check_arrow(table: pa.Table, simple: pd.DataFrame, label: str) -> None:
    assert table.column_names == list(simple.columns), label
    assert table.num_rows == len(simple), label
    for name in simple.columns:
        assert table.schema.field(name).type == arrow_type_of(name), (label, name)
        got = table.column(name).to_pylist()
        if name == "result":
            # The database's JSON text: jsonb prints a float like 1e23 as integer digits, which
            # the package's own loads (integers beyond 64 bits are floats) reads back as saved.
            got = [None if text is None else json_loads(text) for text in got]
        expected = python_values(simple[name])
        assert got == expected, (label, name)
        # NaN is not a missing value: a null in the frame must be a null in Arrow
        assert table.column(name).null_count == sum(v is None for v in expected), (label, name)


def check_chunks(
    bind: Engine | Connection, simple: pd.DataFrame, chunksize: int, filters: dict[str, Any]
) -> None:
    label = f"iter_summary(chunksize={chunksize}, {filters!r})"
    chunks = list(ma.iter_summary(bind, chunksize=chunksize, **filters))
    assert sum(len(c) for c in chunks) == len(simple), label
    assert len(chunks) == math.ceil(len(simple) / chunksize), label
    for chunk in chunks:
        assert 1 <= len(chunk) <= chunksize, label
        assert chunk.dtypes.equals(simple.dtypes), label
        assert isinstance(chunk.index, pd.RangeIndex), label
    if chunks:
        joined = pd.concat(chunks, ignore_index=True)
        assert_frame_equal(joined, simple, obj=label)


def check_all_paths(
    bind: Engine | Connection,
    tmp_path: Path | None = None,
    *,
    chunksizes: tuple[int | None, ...] = (7,),
    **filters: Any,
) -> pd.DataFrame:
    """The fast readers against the simple one; returns the simple frame.

    ``read_summary`` and ``read_summary_arrow`` always; ``iter_summary`` for each chunk size
    (``None``: more than the row count); ``export_summary`` when given a ``tmp_path``. (Each
    fast read on PostgreSQL opens an ADBC connection, ~50 ms: the cases are chosen, not all
    multiplied.)
    """
    label = f"filters={filters!r}"
    simple = _read_summary_simple(bind, **filters)
    fast = ma.read_summary(bind, **filters)
    assert_frame_equal(fast, simple, obj=f"read_summary({label})")
    assert isinstance(fast.index, pd.RangeIndex)

    table = ma.read_summary_arrow(bind, **filters)
    check_arrow(table, simple, label)

    for size in chunksizes:
        check_chunks(bind, simple, size or len(simple) + 5, filters)

    if tmp_path is not None:
        path = tmp_path / f"export-{uuid.uuid4().hex}.parquet"
        assert ma.export_summary(bind, path, **filters) == len(simple), label
        back = pq.read_table(path)
        assert back.schema.equals(table.schema), label
        assert back.equals(table), label
        assert not list(tmp_path.glob(".*.partial")), label
    return simple


def store_records(
    engine: Engine, records: list[ma.AgentExecutionResult], batch_size: int = 100
) -> None:
    assert ma.ExecutionStore(engine).save_executions(records, batch_size=batch_size) == len(records)


def table_count(engine: Engine, table: Any) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.count()).select_from(table)).scalar_one())


def stored_rows(engine: Engine, table: Any, drop: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """Every row of a table as dicts (without ``drop``), in a clock-independent order."""
    with engine.connect() as conn:
        rows = [r._asdict() for r in conn.execute(select(table))]
    for row in rows:
        for name in drop:
            row.pop(name)
    return sorted(rows, key=lambda r: json.dumps(r, sort_keys=True, default=str))


def summary_by_id(engine: Engine) -> pd.DataFrame:
    """The simple summary without the clock columns, in id order (clock-independent)."""
    frame = _read_summary_simple(engine).drop(columns=CLOCK_COLUMNS)
    return frame.sort_values("id", ignore_index=True)


def wipe(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(delete(logs))
        conn.execute(delete(analytics))
        conn.execute(delete(executions))


def record_for(i: int, repos: list[uuid.UUID], users: list[uuid.UUID | None]) -> Any:
    """A varied record: every status, nulls here and there, strange text, ties on started_at."""
    agent = ma.agent_for(ma.AGENT_TYPES[i % len(ma.AGENT_TYPES)])
    builder = agent.builder(repos[i % len(repos)]).user_id(users[i % len(users)])
    builder.result(STRANGE_RESULTS[i % len(STRANGE_RESULTS)])
    if i % 7:
        builder.issue_number(i)
    if i % 4 == 0:
        builder.pr_number(2**31 - 1 - i)
    kind = i % 5
    if kind == 0:
        return builder.build()  # pending, never started
    # groups of rows share started_at exactly (and created_at, per bulk batch): id decides
    started = T0 + timedelta(hours=i % 24, microseconds=7 * (i // 24 % 3))
    builder.started_at(started)
    if kind == 1:
        return builder.status("running").build()
    finished = started + timedelta(seconds=i, microseconds=(i * 130_001) % 1_000_000)
    builder.completed_at(finished)
    if kind == 3:
        return builder.status("failed").error_message(STRANGE_TEXT[i % len(STRANGE_TEXT)]).build()
    if kind == 2:
        builder.quality_score(i % 101)
    return builder.status("completed").build()


def metrics_for(i: int) -> dict[str, Any]:
    if i % 4 == 0:
        return {"note": STRANGE_TEXT[i % len(STRANGE_TEXT)]}  # a row with every column null
    full: dict[str, Any] = {
        "competitors_analyzed": i,
        "market_size_usd": 2**62 + i,
        "growth_rate_percent": -12.345 + i / 100,
        "conversion_rate": 3.14159,
        "target_audience_size": 2**31 - 1,
        "estimated_revenue_usd": i * 1_000_003,
        "engagement_score": i % 101,
        "reach_estimate": 0,
        "roi_percent": 99999.99 - i,
        "extra": {"キー": [i, None]},
    }
    keep = [k for n, k in enumerate(full) if (n + i) % 3]  # some typed columns left null
    return {k: full[k] for k in keep}


@pytest.fixture
def world(engine: Engine) -> dict[str, Any]:
    """240 executions of every agent and status, 3 repositories, 4 users (one None), analytics
    on a third of them (several rows on some, the latest not the last inserted)."""
    repos = [uuid.uuid4() for _ in range(3)]
    users: list[uuid.UUID | None] = [uuid.uuid4(), uuid.uuid4(), uuid.uuid4(), None]
    records = [record_for(i, repos, users) for i in range(240)]
    store_records(engine, records, batch_size=100)
    entries = []
    for i, record in enumerate(records):
        if i % 3:
            continue
        entries.append(ma.MetricsEntry(record.id, metrics_for(i), T0))
        if i % 9 == 0:
            entries.append(ma.MetricsEntry(record.id, metrics_for(i + 1), T0 + timedelta(hours=2)))
            entries.append(ma.MetricsEntry(record.id, metrics_for(i + 2), T0 + timedelta(hours=1)))
    ma.ExecutionStore(engine).save_analysis_metrics_many(entries)
    return {"engine": engine, "repos": repos, "users": users, "records": records}


# -- reads: empty results and null columns -------------------------------------------------------


def test_empty_database(engine, tmp_path):
    for columns in (None, ["result"], ["status", "id"], ["roi_percent"]):
        simple = check_all_paths(engine, tmp_path, columns=columns)
        assert simple.empty
        assert list(simple.columns) == list(columns or SUMMARY_COLUMNS)
    check_all_paths(engine, statuses="failed", since=T0, until=T0 + timedelta(days=1))


def test_filters_matching_nothing(world, tmp_path):
    engine = world["engine"]
    nothing: list[dict[str, Any]] = [
        {"repository_id": uuid.uuid4()},
        {"user_id": [uuid.uuid4(), uuid.uuid4()]},
        {"since": T0 + timedelta(days=30)},
        {"until": T0 - timedelta(days=1)},
        {"repository_id": world["repos"][0], "statuses": "pending", "since": T0},
        {"agent_types": "SalesAgent", "repository_id": world["repos"][1],
         "columns": ["result", "agent_category"]},
    ]
    for n, filters in enumerate(nothing):
        simple = check_all_paths(engine, tmp_path if n == 5 else None, **filters)
        assert simple.empty, filters
        full = _read_summary_simple(engine, columns=filters.get("columns"))
        assert len(full) == len(world["records"])
        assert simple.dtypes.equals(full.dtypes), filters


def test_all_null_columns(engine, tmp_path):
    agent = ma.CRMAgent()
    repo = uuid.uuid4()
    store_records(engine, [agent.builder(repo).build() for _ in range(5)])
    # one started elsewhere, so the unstarted ones are also checked among others
    store_records(engine, [ma.SalesAgent().builder(uuid.uuid4()).status("running")
                           .started_at(T0).build()])
    simple = check_all_paths(engine, tmp_path, chunksizes=(1, 2), repository_id=repo)
    assert len(simple) == 5
    null_columns = ("user_id", "issue_number", "started_at", "completed_at", "error_message",
                    "result", "quality_score", "pr_number", "duration_seconds", *METRIC_COLUMNS)
    for name in null_columns:
        assert simple[name].isna().all(), name
    check_all_paths(engine, columns=["started_at"], repository_id=repo)
    check_all_paths(engine, columns=["roi_percent", "user_id", "market_size_usd"],
                    chunksizes=(3,), repository_id=repo)
    whole = check_all_paths(engine, chunksizes=(None,))
    assert pd.isna(whole["started_at"].iloc[-1])  # never-started rows come last
    assert whole["started_at"].notna().sum() == 1


def test_analytics_with_every_metric_null(engine, tmp_path):
    agent = ma.MarketingAgent()
    records = [agent.builder(uuid.uuid4()).build() for _ in range(3)]
    store_records(engine, records)
    store = ma.ExecutionStore(engine)
    store.save_analysis_metrics_many([(r.id, {"only": "json"}) for r in records])
    simple = check_all_paths(engine, tmp_path)
    assert table_count(engine, analytics) == 3
    for name in METRIC_COLUMNS:
        assert simple[name].isna().all(), name


# -- reads: filters ----------------------------------------------------------------------------


def test_id_filters(world):
    engine = world["engine"]
    repos, users = world["repos"], world["users"]
    cases: list[dict[str, Any]] = [
        {},
        {"repository_id": repos[0]},
        {"repository_id": str(repos[1])},
        {"repository_id": [repos[0], str(repos[2])]},
        {"user_id": users[0]},
        {"user_id": [users[1], str(users[2])]},
    ]
    total = len(world["records"])
    for n, filters in enumerate(cases):
        simple = check_all_paths(engine, chunksizes=((7,), (None,))[n % 2], **filters)
        assert 0 < len(simple) <= total, filters
        assert (len(simple) == total) == (not filters), filters


def test_type_status_and_time_filters(world):
    engine = world["engine"]
    cases: list[dict[str, Any]] = [
        {"agent_types": "JonathanIveDesignAgent"},
        {"agent_types": ["SalesAgent", "CRMAgent", "AIEntrepreneurAgent"]},
        {"statuses": "pending"},
        {"statuses": [ma.ExecutionStatus.FAILED, "COMPLETED"]},
        {"since": T0 + timedelta(hours=6)},
        {"until": T0 + timedelta(hours=18, microseconds=7)},
        {"until": "2026-04-02"},
    ]
    total = len(world["records"])
    for n, filters in enumerate(cases):
        simple = check_all_paths(engine, chunksizes=((7,), (None,))[n % 2], **filters)
        assert 0 < len(simple) < total, filters


def test_filters_combined(world, tmp_path):
    engine = world["engine"]
    repos, users = world["repos"], world["users"]
    cases: list[dict[str, Any]] = [
        {"since": T0 + timedelta(hours=3), "until": T0 + timedelta(hours=9, microseconds=7)},
        # bounds on an exact started_at shared by a tie group: inclusive since, exclusive until
        {"since": T0 + timedelta(hours=1), "until": T0 + timedelta(hours=1, microseconds=1)},
        {"repository_id": repos[0], "statuses": ["completed", "failed"]},
        {"user_id": [users[0], users[1]], "agent_types": ["SalesAgent", "MarketingAgent",
                                                          "PersonaAgent"]},
        {"repository_id": [repos[1], repos[2]], "user_id": users[2], "statuses": "running",
         "since": (T0 + timedelta(hours=1)).astimezone(timezone(timedelta(hours=9))),
         "until": T0 + timedelta(days=1)},
        {"agent_types": list(ma.AGENT_TYPES[:8]), "statuses": ["failed"], "since": T0},
    ]
    for n, filters in enumerate(cases):
        simple = check_all_paths(
            engine, tmp_path if n < 2 else None, chunksizes=((1,), (7,), (None,))[n % 3],
            **filters,
        )
        assert len(simple) > 0, filters
    tie = _read_summary_simple(engine, **cases[1])
    assert tie["started_at"].nunique() == 1
    assert tie["created_at"].duplicated().any()  # rows 1 and 73: same start, same bulk batch
    by_created_then_id = tie.sort_values(["created_at", "id"], ignore_index=True)
    assert tie["id"].tolist() == by_created_then_id["id"].tolist()


# -- reads: column subsets ---------------------------------------------------------------------


SUBSETS: list[list[str]] = [
    ["result"],
    ["id"],
    ["status"],
    ["roi_percent"],
    ["quality_score", "result", "agent_category", "error_message"],  # no sort key at all
    ["duration_seconds", "agent_type", "status", "result"],
    ["created_at", "user_id"],
    ["status", "id", "id"],
    list(reversed(SUMMARY_COLUMNS)),
]


def test_column_subsets(world):
    engine = world["engine"]
    for n, columns in enumerate(SUBSETS):
        simple = check_all_paths(engine, chunksizes=((7,), ())[n % 2], columns=columns)
        assert list(simple.columns) == list(dict.fromkeys(columns))
        assert len(simple) == len(world["records"])


def test_column_subsets_filtered(world, tmp_path):
    engine = world["engine"]
    for columns in (["result"], SUBSETS[4], ["agent_category"], ["started_at"]):
        simple = check_all_paths(
            engine, tmp_path, chunksizes=(1,), columns=columns, statuses="failed",
            repository_id=world["repos"][2],
        )
        assert len(simple) > 0
    # the order of a subset is the full read's order, even without the sort keys
    full = _read_summary_simple(engine)
    some = ma.read_summary(engine, columns=["quality_score", "error_message", "result"])
    assert_frame_equal(some, full[["quality_score", "error_message", "result"]])


# -- reads: strange values ---------------------------------------------------------------------


def test_unicode_and_injection_strings(engine, tmp_path):
    agent = ma.ContentCreationAgent()
    repo = uuid.uuid4()
    records = []
    for n, text in enumerate(STRANGE_TEXT):
        result = {text: text, "list": [text, {text: [text]}], "n": n} if text else {"": ""}
        records.append(
            agent.builder(repo).status("failed").started_at(T0 + timedelta(microseconds=n))
            .completed_at(T0 + timedelta(seconds=1)).error_message(text).result(result).build()
        )
    store_records(engine, records)
    for n, record in enumerate(records):
        ma.ExecutionStore(engine).save_analysis_metrics(
            record.id, {STRANGE_TEXT[n] or "k": STRANGE_TEXT[-n - 1], "reach_estimate": n}
        )
    simple = check_all_paths(engine, tmp_path, chunksizes=(1,))
    assert table_count(engine, executions) == len(records)  # nothing was dropped
    assert simple["error_message"].tolist() == list(STRANGE_TEXT)
    assert simple["result"].tolist() == [r.result for r in records]
    assert simple["reach_estimate"].tolist() == list(range(len(records)))
    check_all_paths(engine, columns=["error_message", "result"], statuses="failed")


def test_nested_results_and_edge_numbers(engine, tmp_path):
    agent = ma.AnalyticsAgent()
    repo = uuid.uuid4()
    deep: Any = {"leaf": "葉"}
    for level in range(30):
        deep = {f"level{level}": [deep, level]}
    results = [*STRANGE_RESULTS, deep, {"max": 2**63 - 1, "min": -(2**63), "u": 2**53 + 1},
               {"tiny": 5e-324, "neg_zero": -0.0, "dup": [1, 1.0, "1"]}]
    records = [agent.builder(repo).result(r).build() for r in results]
    store_records(engine, records)
    simple = check_all_paths(engine, tmp_path)
    by_id = dict(zip(simple["id"], simple["result"], strict=True))
    for record in records:
        assert by_id[str(record.id)] == record.result


@pytest.mark.parametrize(
    "dialect",
    [
        "sqlite",
        "postgresql",
    ],
    indirect=True,
)
def test_large_exponent_floats_in_result(engine):
    saved = {"a": 1e23, "b": 1.5e300, "c": [-1e22, 6.02214076e23]}
    record = ma.YouTubeAgent().builder(uuid.uuid4()).result(saved).build()
    store_records(engine, [record])
    fast = ma.read_summary(engine)
    assert fast["result"].tolist() == [saved]
    simple = _read_summary_simple(engine)
    assert simple["result"].tolist() == [saved]  # reads back as saved (the contract)
    check_all_paths(engine)


def test_latest_of_several_analytics_rows(engine, tmp_path):
    agent = ma.MarketResearchAgent()
    records = [agent.builder(uuid.uuid4()).build() for _ in range(4)]
    store_records(engine, records)
    entries = []
    for n, record in enumerate(records):
        entries += [
            ma.MetricsEntry(record.id, {"reach_estimate": 1, "roi_percent": 1.5}, T0),
            ma.MetricsEntry(record.id, {"reach_estimate": 2 + n}, T0 + timedelta(hours=2)),
            ma.MetricsEntry(record.id, {"reach_estimate": 3, "engagement_score": 9},
                            T0 + timedelta(hours=1)),
        ]
    ma.ExecutionStore(engine).save_analysis_metrics_many(entries, batch_size=5)
    simple = check_all_paths(engine, tmp_path)
    assert len(simple) == len(records)
    assert table_count(engine, analytics) == 3 * len(records)
    assert sorted(simple["reach_estimate"].tolist()) == [2, 3, 4, 5]
    assert simple["roi_percent"].isna().all()  # the whole latest row, not a mix
    assert simple["engagement_score"].isna().all()


def test_latest_analytics_ties_fall_to_the_last_written(engine, tmp_path, monkeypatch):
    """Analytics rows stored at one instant: the view keeps the one written last.

    The rows get descending ids, so the old rule (the larger id) would keep the first one.
    Whole reads on PostgreSQL keep each execution's latest row themselves; every path must
    pick the row the view picks, with filters and column subsets too.
    """
    agent = ma.MarketResearchAgent()
    records = [agent.builder(uuid.uuid4()).build() for _ in range(6)]
    store_records(engine, records)
    entries = [
        ma.MetricsEntry(record.id, {"reach_estimate": 10 * n + k, "roi_percent": k / 4}, T0)
        for n, record in enumerate(records)
        for k in range(5)
    ]
    entries.append(ma.MetricsEntry(records[0].id, {"reach_estimate": 999}, T0 - timedelta(days=1)))
    countdown = itertools.count(2**128 - 1, -1)
    with monkeypatch.context() as patched:
        patched.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(countdown)))
        ma.ExecutionStore(engine).save_analysis_metrics_many(entries, batch_size=4)
    with engine.connect() as conn:
        rows = conn.execute(
            select(analytics.c.execution_id, analytics.c.id, analytics.c.reach_estimate)
            .where(analytics.c.created_at == T0)
        ).all()
    largest = {}
    for execution_id, row_id, reach in rows:
        if execution_id not in largest or row_id.bytes > largest[execution_id][0].bytes:
            largest[execution_id] = (row_id, reach)
    assert {reach for _, reach in largest.values()} == {10 * n for n in range(6)}
    simple = check_all_paths(engine, tmp_path)
    by_id = dict(zip(simple["id"], simple["reach_estimate"], strict=True))
    assert by_id == {str(r.id): 10 * n + 4 for n, r in enumerate(records)}
    check_all_paths(engine, repository_id=records[2].repository_id)
    for columns in (["reach_estimate"], ["id", "roi_percent", "status"]):
        assert_frame_equal(
            ma.read_summary(engine, columns=columns),
            _read_summary_simple(engine, columns=columns),
        )


def test_ties_fall_to_id(engine, tmp_path):
    agents = [ma.SalesAgent(), ma.PersonaAgent()]
    records = [
        agents[n % 2].builder(uuid.uuid4()).status("running")
        .started_at(T0 + timedelta(microseconds=n // 10)).build()
        for n in range(30)
    ] + [agents[n % 2].builder(uuid.uuid4()).build() for n in range(10)]
    store_records(engine, records)  # one batch: one created_at for every row
    simple = check_all_paths(engine, tmp_path, chunksizes=(1, 7))
    assert simple["created_at"].nunique() == 1
    expected = sorted(records, key=lambda r: (r.started_at is None, r.started_at or T0, str(r.id)))
    assert simple["id"].tolist() == [str(r.id) for r in expected]
    assert simple["started_at"].iloc[0].microsecond == 250001


def test_microseconds_and_extreme_timestamps(engine, tmp_path):
    agent = ma.FunnelDesignAgent()
    stamps = [
        datetime(1, 1, 1, tzinfo=UTC),
        datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
        datetime(1970, 1, 1, tzinfo=UTC),
        T0,
        T0 + timedelta(microseconds=1),
        datetime(2262, 4, 11, 23, 47, 16, 854776, tzinfo=UTC),  # past the datetime64[ns] range
        datetime(9999, 12, 31, 23, 59, 59, 999998, tzinfo=UTC),
    ]
    records = [
        agent.builder(uuid.uuid4()).status("completed").started_at(stamp)
        .completed_at(stamp + timedelta(microseconds=1)).build()
        for stamp in stamps
    ]
    store_records(engine, records)
    simple = check_all_paths(engine, tmp_path, chunksizes=(1,))
    assert simple["started_at"].tolist() == [pd.Timestamp(s) for s in stamps]
    assert simple["duration_seconds"].tolist() == [1e-6] * len(stamps)
    check_all_paths(engine, since=datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
                    until=T0 + timedelta(microseconds=1))


def test_several_hundred_rows_in_many_chunks(world, tmp_path):
    simple = check_all_paths(world["engine"], tmp_path, chunksizes=(1, 7, 64, None))
    assert len(simple) == 240
    assert simple["created_at"].nunique() <= 3  # bulk batches of 100 share their created_at
    assert simple["status"].value_counts().to_dict() == {
        "pending": 48, "running": 48, "completed": 96, "failed": 48,
    }
    assert simple["competitors_analyzed"].notna().any()
    assert simple["competitors_analyzed"].isna().any()


def test_reading_through_a_connection(world):
    engine = world["engine"]
    with engine.connect() as conn:
        check_all_paths(conn)
        check_all_paths(conn, chunksizes=(None,), statuses="failed",
                        columns=["error_message", "result", "status"])
    with engine.begin() as conn:  # inside the caller's transaction: sees its own writes
        ma.ExecutionStore(conn).save_execution(ma.SalesAgent().builder(uuid.uuid4()).build())
        simple = check_all_paths(conn)
        assert len(simple) == 241


# -- writes: save_executions -------------------------------------------------------------------


def varied_records() -> list[ma.AgentExecutionResult]:
    repo = uuid.uuid4()
    bare = [ma.agent_for(t).builder(repo).build() for t in ma.AGENT_TYPES[:3]]
    everything = (
        ma.SalesAgent().builder(repo).user_id(uuid.uuid4()).issue_number(0).pr_number(2**31 - 1)
        .status("completed").started_at(T0).completed_at(T0 + timedelta(microseconds=1))
        .quality_score(100).result(STRANGE_RESULTS[0]).error_message(STRANGE_TEXT[0]).build()
    )
    strange = [
        ma.CRMAgent().builder(repo).status("failed").started_at(T0 - timedelta(days=400))
        .completed_at(T0).error_message(text).result(STRANGE_RESULTS[n % len(STRANGE_RESULTS)])
        .quality_score(0).build()
        for n, text in enumerate(STRANGE_TEXT)
    ]
    other_zone = (
        ma.PersonaAgent().builder(repo).status("running")
        .started_at(datetime(2026, 4, 1, 21, 0, 0, 1, tzinfo=timezone(timedelta(hours=9))))
        .result([{"x": [None]}]).build()
    )
    return [*bare, everything, *strange, other_zone]


def test_bulk_stores_what_one_by_one_stores(engine):
    records = varied_records()
    store = ma.ExecutionStore(engine)
    assert store.save_executions(records, batch_size=4) == len(records)
    bulk = summary_by_id(engine)
    bulk_rows = stored_rows(engine, executions, drop=("created_at", "updated_at"))
    bulk_loaded = [store.get_execution(r.id) for r in records]

    wipe(engine)
    for record in records:
        ma.agent_for(record.agent_type).save_execution(engine, record)
    assert_frame_equal(bulk, summary_by_id(engine))
    assert bulk_rows == stored_rows(engine, executions, drop=("created_at", "updated_at"))
    single_loaded = [store.get_execution(r.id) for r in records]
    for before, after in zip(bulk_loaded, single_loaded, strict=True):
        assert dataclasses.replace(before, created_at=None, updated_at=None) == (
            dataclasses.replace(after, created_at=None, updated_at=None)
        )
    assert len(bulk) == len(records)
    assert bulk["result"].tolist() == [
        r.result for r in sorted(records, key=lambda r: str(r.id))
    ]


def lifecycle(agent: ma.PersistableAgent, repo: uuid.UUID, n: int) -> list[Any]:
    pending = agent.builder(repo).issue_number(n).result({"step": "pending"}).build()
    running = pending.evolve(
        status="running", started_at=T0 + timedelta(minutes=n), result={"step": "running"}
    )
    done = running.evolve(
        status="completed", completed_at=T0 + timedelta(minutes=n, seconds=5, microseconds=n),
        quality_score=90, issue_number=None, result={"step": "completed", "n": n},
    )
    return [pending, running, done]


def test_updates_in_one_bulk_call_apply_in_order(engine):
    repo = uuid.uuid4()
    steps = [lifecycle(ma.agent_for(t), repo, n) for n, t in enumerate(ma.AGENT_TYPES[:5])]
    # interleaved: every execution's pending, then every running, then every completed
    records = [chain[k] for k in range(3) for chain in steps]
    failed = steps[0][0].evolve(id=uuid.uuid4())
    # with its completed_at: one the database stamped would differ between the two runs
    records += [failed, failed.evolve(status="failed", error_message="gave up", completed_at=T0)]
    store = ma.ExecutionStore(engine)
    assert store.save_executions(records) == len(records)
    bulk = summary_by_id(engine)
    assert sorted(bulk["status"].tolist()) == ["completed"] * 5 + ["failed"]
    assert bulk["issue_number"].isna().sum() == 5  # None cleared the issue number

    wipe(engine)
    for record in records:
        store.save_execution(record)
    assert_frame_equal(bulk, summary_by_id(engine))


def test_bulk_update_of_stored_rows_keeps_created_at_and_clears_nones(engine):
    store = ma.ExecutionStore(engine)
    full = varied_records()[3]  # every field set, completed
    running = full.evolve(id=uuid.uuid4(), status="running", completed_at=None, quality_score=None)
    store.save_executions([running])
    created = store.get_execution(running.id).created_at
    cleared = running.evolve(
        status="failed", user_id=None, issue_number=None, pr_number=None, result=None,
        error_message=None, started_at=None, completed_at=None,
    )
    other = ma.CRMAgent().builder(uuid.uuid4()).status("running").start_now().build()
    assert store.save_executions([cleared, other]) == 2
    loaded = store.get_execution(running.id)
    assert loaded.created_at == created
    assert loaded.updated_at is not None
    assert loaded.updated_at >= created
    bulk = summary_by_id(engine)

    wipe(engine)
    store.save_execution(running)
    store.save_execution(cleared)
    store.save_execution(other)
    single = summary_by_id(engine)
    # Entering failed stamps the missing completed_at (revision 0008), at each run's own time.
    stamped = ["completed_at"]
    assert_frame_equal(bulk.drop(columns=stamped), single.drop(columns=stamped))
    row = bulk.set_index("id").loc[str(running.id)]
    assert row["result"] is None
    assert pd.notna(row["completed_at"])
    assert pd.notna(single.set_index("id").loc[str(running.id)]["completed_at"])
    for name in ("user_id", "issue_number", "pr_number", "error_message", "started_at",
                 "duration_seconds"):
        assert pd.isna(row[name]), name


def test_stored_pending_then_running_and_completed_in_one_batch(engine):
    store = ma.ExecutionStore(engine)
    pending, running, done = lifecycle(ma.SalesAgent(), uuid.uuid4(), 1)
    store.save_execution(pending)
    assert store.save_executions([running, done]) == 2
    assert store.get_execution(done.id).status == ma.ExecutionStatus.COMPLETED


def test_stored_completed_then_running_in_a_batch_is_refused(engine):
    store = ma.ExecutionStore(engine)
    _, _, done = lifecycle(ma.SalesAgent(), uuid.uuid4(), 1)
    store.save_execution(done)
    before = stored_rows(engine, executions)
    with pytest.raises(ma.InvalidStatusTransition):
        store.save_execution(done.evolve(status="running"))
    with pytest.raises(ma.InvalidStatusTransition):
        store.save_executions([done.evolve(status="running"), done.evolve(error_message="new")])
    assert stored_rows(engine, executions) == before


def fresh_records(n: int) -> list[ma.AgentExecutionResult]:
    repo = uuid.uuid4()
    return [
        ma.agent_for(ma.AGENT_TYPES[i % 15]).builder(repo).issue_number(i)
        .result({"i": i, "text": STRANGE_TEXT[i % len(STRANGE_TEXT)]}).build()
        for i in range(n)
    ]


def nan_after_build() -> ma.AgentExecutionResult:
    record = ma.SalesAgent().builder(uuid.uuid4()).result({"ok": 1, "list": [1.0]}).build()
    record.result["list"][0] = float("nan")  # changed in place after validation
    return record


def replaced_out_of_range() -> ma.AgentExecutionResult:
    record = ma.SalesAgent().builder(uuid.uuid4()).build()
    return dataclasses.replace(record, quality_score=101)  # bypasses evolve()'s validation


BAD_ITEMS: dict[str, Callable[[], Any]] = {
    "none": lambda: None,
    "dict": lambda: {"id": uuid.uuid4(), "agent_type": "SalesAgent"},
    "string": lambda: "'; DROP TABLE agent_executions; --",
    "nan_in_result_after_build": nan_after_build,
    "infinity_in_result_after_build": lambda: dataclasses.replace(
        nan_after_build(), result={"x": [float("inf")]}
    ),
    "quality_score_101": replaced_out_of_range,
    "naive_started_at": lambda: dataclasses.replace(
        ma.SalesAgent().builder(uuid.uuid4()).build(),
        started_at=datetime(2026, 1, 1),  # noqa: DTZ001 - naive on purpose
    ),
}


@pytest.mark.parametrize("bad", list(BAD_ITEMS))
def test_invalid_item_halfway_stores_nothing_of_its_batch(engine, bad):
    store = ma.ExecutionStore(engine)
    stored_before = fresh_records(2)
    store.save_executions(stored_before)
    before = stored_rows(engine, executions)

    # one batch: nothing of it is stored, the rows already there are untouched
    good = fresh_records(6)
    update = stored_before[0].evolve(status="failed", error_message="should not stick")
    with pytest.raises(ma.ValidationError):
        store.save_executions([*good[:3], update, BAD_ITEMS[bad](), *good[3:]])
    assert stored_rows(engine, executions) == before

    # batches of 4: the first batch stays stored, the failing one and the rest do not
    records = fresh_records(10)
    with pytest.raises(ma.ValidationError):
        store.save_executions([*records[:5], BAD_ITEMS[bad](), *records[5:]], batch_size=4)
    stored_ids = {row["id"] for row in stored_rows(engine, executions)}
    assert stored_ids == {r.id for r in stored_before} | {r.id for r in records[:4]}
    assert table_count(engine, executions) == 6

    # and what did get stored is what the one-by-one path stores
    bulk = summary_by_id(engine)
    wipe(engine)
    for record in [*stored_before, *records[:4]]:
        store.save_execution(record)
    assert_frame_equal(bulk, summary_by_id(engine))


def test_nan_in_an_update_halfway_stores_nothing_of_its_batch(engine):
    store = ma.ExecutionStore(engine)
    pending = ma.SalesAgent().builder(uuid.uuid4()).result({"n": [1.0]}).build()
    store.save_execution(pending)
    before = stored_rows(engine, executions)
    running = pending.evolve(status="running", started_at=T0, result={"n": [2.0]})
    running.result["n"][0] = float("nan")  # changed in place after validation
    records = fresh_records(3)
    with pytest.raises(ma.ValidationError):
        store.save_executions([records[0], running, *records[1:]])
    assert stored_rows(engine, executions) == before


def test_backwards_move_halfway_stores_nothing_of_its_batch(engine):
    store = ma.ExecutionStore(engine)
    _, _, done = lifecycle(ma.MarketingAgent(), uuid.uuid4(), 3)
    store.save_execution(done)
    before = stored_rows(engine, executions)
    records = fresh_records(9)
    with pytest.raises(ma.InvalidStatusTransition):
        store.save_executions(
            [*records[:4], records[4], done.evolve(status="running"), *records[5:]], batch_size=4
        )
    after = stored_rows(engine, executions)
    assert [row for row in after if row["id"] == done.id] == before
    assert {row["id"] for row in after} == {done.id} | {r.id for r in records[:4]}


def test_other_agents_id_halfway_stores_nothing_of_its_batch(engine):
    store = ma.ExecutionStore(engine)
    mine = ma.SalesAgent().builder(uuid.uuid4()).build()
    store.save_execution(mine)
    theirs = dataclasses.replace(mine, agent_type="CRMAgent")
    records = fresh_records(3)
    with pytest.raises(ma.ValidationError) as info:
        store.save_executions([records[0], theirs, *records[1:]])
    assert info.value.field == "agent_type"
    assert table_count(engine, executions) == 1
    assert store.get_execution(mine.id).agent_type == "SalesAgent"


def test_nan_after_build_is_a_validation_error_on_the_single_path_too(engine):
    store = ma.ExecutionStore(engine)
    with pytest.raises(ma.ValidationError):
        store.save_executions([nan_after_build()])
    with pytest.raises(ma.ValidationError):
        store.save_execution(nan_after_build())
    assert table_count(engine, executions) == 0


# -- writes: metrics and logs ------------------------------------------------------------------


def test_metrics_many_stores_what_one_by_one_stores(engine):
    records = fresh_records(6)
    store_records(engine, records)
    store = ma.ExecutionStore(engine)
    documents = [
        (records[i % 6].id, {**metrics_for(i), "label": STRANGE_TEXT[i % len(STRANGE_TEXT)]})
        for i in range(15)
    ]
    documents.append((records[0].id, {"growth_rate_percent": 1.005, "roi_percent": -99999.994}))
    entries = [
        ma.MetricsEntry(*doc) if n % 2 else (str(doc[0]), doc[1])
        for n, doc in enumerate(documents)
    ]
    assert store.save_analysis_metrics_many(entries, batch_size=4) == len(documents)
    bulk_rows = stored_rows(engine, analytics, drop=("id", "created_at"))
    assert len(bulk_rows) == len(documents)

    with engine.begin() as conn:
        conn.execute(delete(analytics))
    agents = {r.id: ma.agent_for(r.agent_type) for r in records}
    for execution_id, metrics in documents:
        agents[execution_id].save_analysis_metrics(engine, execution_id, metrics)
    assert bulk_rows == stored_rows(engine, analytics, drop=("id", "created_at"))
    for row in bulk_rows:  # the execution's agent type is filled in
        assert row["agent_type"] == next(r.agent_type for r in records
                                         if r.id == row["execution_id"])


def test_metrics_many_failing_batch_stores_nothing_of_it(engine):
    records = fresh_records(3)
    store_records(engine, records)
    store = ma.ExecutionStore(engine)
    good = [(records[i % 3].id, {"reach_estimate": i}) for i in range(9)]
    bad_cases: list[tuple[Any, type[Exception]]] = [
        ((records[0].id, {"engagement_score": 101}), ma.ValidationError),
        ((records[0].id, {"note": float("nan")}), ma.ValidationError),
        ((records[0].id, {"roi_percent": True}), ma.ValidationError),
        ((records[0].id, "not a mapping"), ma.ValidationError),
        (("not-a-uuid", {"reach_estimate": 1}), ma.ValidationError),
        ((uuid.uuid4(), {"reach_estimate": 1}), ma.NotFound),
    ]
    for bad, error in bad_cases:
        with engine.begin() as conn:
            conn.execute(delete(analytics))
        with pytest.raises(error):
            store.save_analysis_metrics_many([*good[:5], bad, *good[5:]], batch_size=4)
        stored = [row["reach_estimate"] for row in stored_rows(engine, analytics)]
        assert sorted(stored) == [0, 1, 2, 3], bad  # the first batch of 4 only
        with pytest.raises(error):
            store.save_analysis_metrics_many([*good[:5], bad, *good[5:]])
        assert table_count(engine, analytics) == 4, bad


def test_log_many_stores_what_one_by_one_stores(engine):
    records = fresh_records(4)
    store_records(engine, records)
    store = ma.ExecutionStore(engine)
    entries = [
        ma.LogEntry(
            records[i % 4].id if i % 2 else str(records[i % 4].id),
            ["DEBUG", "info", "Warning", "error", " CRITICAL "][i % 5],
            STRANGE_TEXT[i % len(STRANGE_TEXT)],
            None if i % 3 == 0 else {"i": i, STRANGE_TEXT[i % len(STRANGE_TEXT)]: [i, None]},
            T0 + timedelta(microseconds=i // 2),
        )
        for i in range(23)
    ]
    assert store.log_many(entries, batch_size=5) == len(entries)

    def frame() -> pd.DataFrame:
        logs_frame = ma.read_logs(engine).drop(columns=["id"])
        keys = logs_frame.assign(meta=logs_frame["metadata"].map(json.dumps))
        order = keys.sort_values(["logged_at", "execution_id", "message", "meta"]).index
        return logs_frame.loc[order].reset_index(drop=True)

    bulk = frame()
    bulk_rows = stored_rows(engine, logs, drop=("id",))
    assert len(bulk) == len(entries)
    with engine.begin() as conn:
        conn.execute(delete(logs))
    for entry in entries:
        store.log(entry.execution_id, entry.level, entry.message, entry.metadata,
                  logged_at=entry.logged_at)
    assert_frame_equal(bulk, frame())
    assert stored_rows(engine, logs, drop=("id",)) == bulk_rows
    assert bulk["log_level"].tolist().count("critical") == 4  # " CRITICAL " normalised


def test_log_many_failing_batch_stores_nothing_of_it(engine):
    records = fresh_records(2)
    store_records(engine, records)
    store = ma.ExecutionStore(engine)
    good = [ma.LogEntry(records[i % 2].id, "info", f"line {i}") for i in range(9)]
    bad_cases: list[tuple[Any, type[Exception]]] = [
        (ma.LogEntry(records[0].id, "verbose", "x"), ma.ValidationError),
        (ma.LogEntry(records[0].id, "info", "nul \x00"), ma.ValidationError),
        (ma.LogEntry(records[0].id, "info", "x", {"x": float("nan")}), ma.ValidationError),
        (ma.LogEntry(records[0].id, "info", "x", logged_at=datetime(2026, 1, 1)),  # noqa: DTZ001
         ma.ValidationError),
        (ma.LogEntry(uuid.uuid4(), "info", "x"), ma.NotFound),
    ]
    for bad, error in bad_cases:
        with engine.begin() as conn:
            conn.execute(delete(logs))
        with pytest.raises(error):
            store.log_many([*good[:5], bad, *good[5:]], batch_size=4)
        messages = sorted(row["message"] for row in stored_rows(engine, logs))
        assert messages == ["line 0", "line 1", "line 2", "line 3"], bad
        with pytest.raises(error):  # the single form refuses it too
            store.log(bad.execution_id, bad.level, bad.message, bad.metadata,
                      logged_at=bad.logged_at)
        assert table_count(engine, logs) == 4, bad


def test_durations_and_categories_made_client_side_match_the_view(engine, tmp_path):
    """read_summary computes duration_seconds and agent_category itself; the view is the rule.

    Spans from a microsecond to almost ten thousand years (past 2**53 microseconds, where a
    count of microseconds stops being an exact double), negative never (validation refuses
    them), and every agent type's category.
    """
    start = datetime(1, 1, 1, 0, 0, 0, 1, tzinfo=UTC)
    spans = [
        timedelta(microseconds=1),
        timedelta(days=1, microseconds=1),
        timedelta(days=365 * 285, microseconds=123_457),  # just past 2**53 microseconds
        datetime(9999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC) - start,
        timedelta(days=3_000_000, microseconds=999_999),
    ]
    records = [
        ma.agent_for(ma.AGENT_TYPES[i % len(ma.AGENT_TYPES)]).builder(uuid.uuid4())
        .status("completed").started_at(start).completed_at(start + span).build()
        for i, span in enumerate(spans)
    ]
    records += [
        ma.agent_for(name).builder(uuid.uuid4()).build() for name in ma.AGENT_TYPES
    ]
    store_records(engine, records)
    simple = check_all_paths(engine, tmp_path)
    got = dict(zip(simple["id"], simple["duration_seconds"], strict=True))
    for record, span in zip(records, spans, strict=False):
        micros = span // timedelta(microseconds=1)
        assert got[str(record.id)] == pytest.approx(micros / 1e6, rel=1e-15)
    for columns in (["duration_seconds"], ["agent_category", "id"], ["agent_category"]):
        fast = ma.read_summary(engine, columns=columns)
        pd.testing.assert_frame_equal(
            fast, _read_summary_simple(engine, columns=columns), check_exact=True
        )
