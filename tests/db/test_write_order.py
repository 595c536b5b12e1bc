"""Rows of one instant keep the order they were written in (issue 12, items 3 and 4).

Logs read back by ``logged_at``, then in the order written; the latest analytics row of an
execution is the one of the latest ``created_at``, then the last written. The write order is
the database's (PostgreSQL ``seq`` identity, SQLite ``rowid``), so plain SQL writers get it too.
The rows are given descending ids wherever the store makes them, so the old tie-break (the
larger id) picks the opposite row.
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pandas as pd
import pyarrow.parquet as pq
import pytest
from pandas.testing import assert_frame_equal
from sqlalchemy import URL, Engine, bindparam, func, inspect, select, text

import miyabi_analytics as ma
from miyabi_analytics import aggregates
from miyabi_analytics._db.schema import analytics, logs
from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText
from miyabi_analytics._db.views import summary
from miyabi_analytics.reader import _read_summary_simple
from miyabi_analytics.store import _shared as store_shared

T0 = datetime(2026, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
WRITE_ORDER_REVISION = "0007_write_order"
BEFORE = "0006_bucket_statistics"


@contextmanager
def descending_ids() -> Iterator[None]:
    """Within it, ``uuid.uuid4()`` counts down: each new row's id is smaller than the last."""
    countdown = itertools.count(2**128 - 1, -1)
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr(uuid, "uuid4", lambda: uuid.UUID(int=next(countdown)))
        yield


def started(
    engine: Engine, agent: ma.PersistableAgent, n: int = 1
) -> list[ma.AgentExecutionResult]:
    records = [
        agent.builder(uuid.uuid4()).status("running").started_at(T0 - timedelta(hours=1)).build()
        for _ in range(n)
    ]
    for record in records:
        agent.save_execution(engine, record)
    return records


def frozen_clock(monkeypatch: pytest.MonkeyPatch, at: datetime = T0) -> None:
    """Every timestamp the store takes is ``at``: writes within one clock tick."""
    monkeypatch.setattr(store_shared, "now", lambda: at)


# -- logs ---------------------------------------------------------------------------------------


def test_log_many_reads_back_in_written_order(engine, monkeypatch):
    frozen_clock(monkeypatch)  # log_many's one timestamp, and "earlier" before it
    agent = ma.SalesAgent()
    [record] = started(engine, agent)
    other = started(engine, agent)[0]
    messages = [f"line {n:03d}" for n in range(100)]
    entries = [ma.LogEntry(record.id, "info", m) for m in messages]
    # interleaved with another execution's lines, and one line of an earlier instant last
    entries[50:50] = [ma.LogEntry(other.id, "debug", f"other {n}") for n in range(5)]
    entries.append(ma.LogEntry(record.id, "warning", "earlier", None, T0 - timedelta(days=1)))
    with descending_ids():
        assert ma.ExecutionStore(engine).log_many(entries, batch_size=30) == len(entries)

    frame = ma.read_logs(engine, execution_id=record.id)
    assert frame["message"].tolist() == ["earlier", *messages]
    batch = frame["logged_at"].iloc[1:]
    assert batch.nunique() == 1  # one timestamp for the whole call
    assert not frame["id"].iloc[1:].is_monotonic_increasing  # the old tie-break fails
    both = ma.read_logs(engine, execution_id=[record.id, other.id], levels=["info", "debug"])
    assert both["message"].tolist() == [
        *messages[:50], *(f"other {n}" for n in range(5)), *messages[50:]
    ]
    assert ma.read_logs(engine, since=T0)["message"].tolist() == [
        *messages[:50], *(f"other {n}" for n in range(5)), *messages[50:]
    ]


def test_agent_log_calls_within_one_tick_read_back_in_order(engine, monkeypatch):
    agent = ma.CRMAgent()
    [record] = started(engine, agent)
    frozen_clock(monkeypatch)
    messages = [f"step {n}" for n in range(40)]
    with descending_ids():
        ids = [agent.log(engine, record.id, "INFO", m) for m in messages]
    assert ids == sorted(ids, reverse=True)
    frame = ma.read_logs(engine, execution_id=record.id)
    assert frame["logged_at"].unique().tolist() == [pd.Timestamp(T0)]
    assert frame["message"].tolist() == messages
    assert frame["id"].tolist() == [str(i) for i in ids]


def _plain_log_insert() -> Any:
    """An outside writer's INSERT: only the columns of the upstream schema, no order column."""
    return text(
        "INSERT INTO agent_execution_logs (id, execution_id, log_level, message, metadata, "
        "logged_at) VALUES (:id, :execution_id, 'info', :message, NULL, :logged_at)"
    ).bindparams(
        bindparam("id", type_=UuidText()),
        bindparam("execution_id", type_=UuidText()),
        bindparam("logged_at", type_=UtcDateTime()),
    )


def _plain_analytics_insert() -> Any:
    return text(
        "INSERT INTO business_agent_analytics (id, execution_id, agent_type, metrics, "
        "reach_estimate, created_at) VALUES (:id, :execution_id, :agent_type, :metrics, "
        ":reach_estimate, :created_at)"
    ).bindparams(
        bindparam("id", type_=UuidText()),
        bindparam("execution_id", type_=UuidText()),
        bindparam("metrics", type_=JsonDocument),
        bindparam("created_at", type_=UtcDateTime()),
    )


def test_plain_sql_writers_get_the_write_order(engine):
    agent = ma.AnalyticsAgent()
    [record] = started(engine, agent)
    with engine.begin() as conn:
        for n in range(10):  # one statement per row, each with a smaller id
            conn.execute(_plain_log_insert(), {
                "id": uuid.UUID(int=1000 - n), "execution_id": record.id,
                "message": f"plain {n}", "logged_at": T0,
            })
        conn.execute(_plain_log_insert(), [  # and an executemany
            {"id": uuid.UUID(int=500 - n), "execution_id": record.id,
             "message": f"many {n}", "logged_at": T0}
            for n in range(5)
        ])
        for n in range(4):
            conn.execute(_plain_analytics_insert(), {
                "id": uuid.UUID(int=100 - n), "execution_id": record.id,
                "agent_type": agent.agent_type, "metrics": {"reach_estimate": n},
                "reach_estimate": n, "created_at": T0,
            })
    frame = ma.read_logs(engine, execution_id=record.id)
    assert frame["message"].tolist() == [
        *(f"plain {n}" for n in range(10)), *(f"many {n}" for n in range(5))
    ]
    assert ma.read_summary(engine, columns=["reach_estimate"])["reach_estimate"].tolist() == [3]
    simple = _read_summary_simple(engine, columns=["reach_estimate"])
    assert simple["reach_estimate"].tolist() == [3]


def test_the_order_column_is_the_databases(engine, dialect):
    """PostgreSQL: an identity column the models leave out; SQLite: the rowid, no column."""
    inspector = inspect(engine)
    for table in (analytics.name, logs.name):
        columns = {c["name"]: c for c in inspector.get_columns(table)}
        assert "id" in columns
        if dialect == "postgresql":
            seq = columns["seq"]
            assert str(seq["type"]) == "BIGINT"
            assert not seq["nullable"]
            assert seq["identity"]["always"] is False  # by default: a copy may keep its numbers
        else:
            assert "seq" not in columns
    for table in (analytics, logs):
        assert "seq" not in table.c  # writers never name it


# -- the latest analytics row -------------------------------------------------------------------


def _write_tied_metrics(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> tuple[list[ma.AgentExecutionResult], dict[str, int]]:
    """Executions of two repositories, each with analytics rows of one created_at.

    Written in bulk and one by one (a frozen clock), with descending ids; returns the records
    and each execution's reach_estimate of the row written last.
    """
    market, youtube = ma.MarketResearchAgent(), ma.YouTubeAgent()
    records = [
        agent.builder(uuid.uuid4()).status("completed")
        .started_at(T0 - timedelta(hours=n + 1)).completed_at(T0).build()
        for n, agent in enumerate([market, youtube] * 3)
    ]
    ma.ExecutionStore(engine).save_executions(records)
    entries = [
        ma.MetricsEntry(record.id, {"reach_estimate": 100 * n + k, "estimated_revenue_usd": k}, T0)
        for n, record in enumerate(records[:4])
        for k in range(6)
    ]
    # created_at still comes first: a row written last but created earlier does not win
    entries.append(ma.MetricsEntry(records[0].id, {"reach_estimate": 999}, T0 - timedelta(1)))
    expected = {str(r.id): 100 * n + 5 for n, r in enumerate(records[:4])}
    frozen_clock(monkeypatch)
    with descending_ids():
        ma.ExecutionStore(engine).save_analysis_metrics_many(entries, batch_size=4)
        for n, record in enumerate(records[4:], start=4):
            agent = market if record.agent_type == market.agent_type else youtube
            for k in range(6):
                agent.save_analysis_metrics(
                    engine, record.id, {"reach_estimate": 100 * n + k, "estimated_revenue_usd": k}
                )
            expected[str(record.id)] = 100 * n + 5
    return records, expected


def test_latest_analytics_is_the_last_written(engine, monkeypatch, tmp_path: Path):
    records, expected = _write_tied_metrics(engine, monkeypatch)
    with engine.connect() as conn:
        tied = conn.execute(
            select(analytics.c.execution_id, analytics.c.id, analytics.c.reach_estimate)
            .where(analytics.c.created_at == T0)
        ).all()
    assert len(tied) == 6 * len(records)
    by_larger_id: dict[str, tuple[uuid.UUID, int]] = {}
    for execution_id, row_id, reach in tied:
        key = str(execution_id)
        if key not in by_larger_id or row_id.bytes > by_larger_id[key][0].bytes:
            by_larger_id[key] = (row_id, reach)
    assert all(by_larger_id[k][1] != v for k, v in expected.items())  # the old rule's pick

    def reach(frame: pd.DataFrame) -> dict[str, int]:
        return dict(zip(frame["id"], frame["reach_estimate"].tolist(), strict=True))

    # the view itself
    with engine.connect() as conn:
        view = dict(conn.execute(select(summary.c.id, summary.c.reach_estimate)).all())
    assert {str(k): v for k, v in view.items()} == expected

    whole = ma.read_summary(engine)
    assert reach(whole) == expected
    assert_frame_equal(whole, _read_summary_simple(engine))
    assert reach(ma.read_summary_arrow(engine).to_pandas()) == expected
    chunks = pd.concat(list(ma.iter_summary(engine, chunksize=4)), ignore_index=True)
    assert_frame_equal(chunks, whole)
    path = tmp_path / "summary.parquet"
    assert ma.export_summary(engine, path) == len(records)
    assert reach(pq.read_table(path).to_pandas()) == expected

    repo = records[3].repository_id
    filtered = ma.read_summary(engine, repository_id=repo)
    assert reach(filtered) == {str(records[3].id): expected[str(records[3].id)]}
    assert_frame_equal(filtered, _read_summary_simple(engine, repository_id=repo))
    for columns in (["reach_estimate", "id"], ["id", "estimated_revenue_usd", "status"]):
        subset = ma.read_summary(engine, columns=columns)
        assert_frame_equal(subset, _read_summary_simple(engine, columns=columns))
    assert ma.read_summary(engine, columns=["estimated_revenue_usd"])[
        "estimated_revenue_usd"
    ].tolist() == [5] * len(records)
    typed = ma.read_summary(engine, agent_types=["YouTubeAgent"], columns=["id", "reach_estimate"])
    assert reach(typed) == {str(r.id): expected[str(r.id)] for r in records[1::2]}

    # the aggregates, and the dashboard's own latest-analytics query
    metrics = ma.business_metrics(engine, by="agent_type", freq=None)
    sums = dict(zip(metrics["agent_type"].astype(str), metrics["sum_reach_estimate"], strict=True))
    assert sums == {
        agent: sum(expected[str(r.id)] for r in records if r.agent_type == agent)
        for agent in ("MarketResearchAgent", "YouTubeAgent")
    }
    dashboard = aggregates.business_metrics_with_unstarted(
        engine, by="agent_category", freq="M", unstarted=True
    )
    assert dashboard["sum_reach_estimate"].sum() == sum(expected.values())
    assert dashboard["sum_estimated_revenue_usd"].sum() == 5 * len(records)


# -- rows stored before the revision ------------------------------------------------------------


@pytest.fixture
def migrated_to_before(empty_url: URL) -> Iterator[Engine]:
    engine = ma.connect(empty_url)
    ma.migrate(engine, BEFORE)
    yield engine
    engine.dispose()


def test_rows_stored_before_the_revision_keep_their_insertion_order(migrated_to_before):
    """Upgrading numbers existing rows in their stored order: ties resolve as they were written.

    On SQLite the analytics table is rebuilt by the revision (its constraint names), which
    copies rows in rowid order.
    """
    engine = migrated_to_before

    def latest_reach(engine: Engine) -> list[int]:
        # The plain reader: what is tested here is the rows. (The Arrow reader of an SQLite file
        # links a second SQLite library into the process; after its first read it misses later
        # writes of this engine's open connections: a defect of its own, reported separately.)
        return _read_summary_simple(engine, columns=["reach_estimate"])["reach_estimate"].tolist()

    agent = ma.PersonaAgent()
    [record] = started(engine, agent)
    with engine.begin() as conn:
        conn.execute(_plain_log_insert(), [
            {"id": uuid.UUID(int=900 - n), "execution_id": record.id,
             "message": f"old {n}", "logged_at": T0}
            for n in range(20)
        ])
        conn.execute(_plain_analytics_insert(), [
            {"id": uuid.UUID(int=90 - n), "execution_id": record.id,
             "agent_type": agent.agent_type, "metrics": {"reach_estimate": n},
             "reach_estimate": n, "created_at": T0}
            for n in range(7)
        ])
    old = latest_reach(engine)
    assert old == [0]  # before: the larger id

    ma.migrate(engine)
    assert ma.read_logs(engine)["message"].tolist() == [f"old {n}" for n in range(20)]
    assert latest_reach(engine) == [6]
    # new rows come after the old ones
    ma.ExecutionStore(engine).log(record.id, "info", "new", logged_at=T0)
    assert ma.read_logs(engine)["message"].tolist()[-1] == "new"
    with engine.begin() as conn:
        conn.execute(_plain_analytics_insert(), {
            "id": uuid.UUID(int=1), "execution_id": record.id, "agent_type": agent.agent_type,
            "metrics": {"reach_estimate": 77}, "reach_estimate": 77, "created_at": T0,
        })
    assert latest_reach(engine) == [77]

    ma.downgrade(engine, BEFORE)
    assert latest_reach(engine) == [0]
    with engine.connect() as conn:  # this code reads logs in the write order: count them
        assert conn.execute(select(func.count()).select_from(logs)).scalar_one() == 21
    ma.migrate(engine)
    assert latest_reach(engine) == [77]
    assert ma.read_logs(engine)["message"].tolist() == [*(f"old {n}" for n in range(20)), "new"]


# -- a scoped writer: row-level security makes the bulk paths stage their rows ------------------


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_scoped_writer_keeps_the_order(empty_url: URL, monkeypatch) -> None:
    """Under row-level security COPY goes to a temporary table first, then one INSERT ... SELECT:
    the rows still get their numbers in the order given. A role that may only INSERT into the
    tables (no right on the identity's sequence) gets them too."""
    owner = ma.connect(empty_url)
    ma.migrate(owner)
    role = f"miyabi_order_{uuid.uuid4().hex[:12]}"
    password = secrets.token_hex(16)
    tables = "agent_executions, business_agent_analytics, agent_execution_logs, " + summary.name
    with owner.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{password}\''))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE, DELETE ON {tables} TO "{role}"'))
    repository = uuid.uuid4()
    role_url = empty_url.set(username=role, password=password)
    scoped = ma.connect(role_url, repository_ids=[repository])
    try:
        frozen_clock(monkeypatch)
        agent = ma.ContentCreationAgent()
        record = agent.builder(repository).status("running").started_at(T0).build()
        agent.save_execution(scoped, record)
        store_ = ma.ExecutionStore(scoped)
        messages = [f"line {n:03d}" for n in range(150)]
        with descending_ids():
            store_.log_many([ma.LogEntry(record.id, "info", m) for m in messages])
            store_.save_analysis_metrics_many(
                [ma.MetricsEntry(record.id, {"reach_estimate": n}) for n in range(8)]
            )
        assert ma.read_logs(scoped)["message"].tolist() == messages
        assert ma.read_summary(scoped)["reach_estimate"].tolist() == [7]
        assert _read_summary_simple(scoped)["reach_estimate"].tolist() == [7]
    finally:
        scoped.dispose()
        with owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        owner.dispose()
