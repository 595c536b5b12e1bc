"""Revision 0010: every status an execution enters is recorded by the database, for every writer.

Plain SQL writers (the upstream Rust writer's statements), the package's store and its bulk
writer all leave the same history; nothing is recorded for an UPDATE that keeps the status, a
refused move or a rolled-back transaction. PostgreSQL announces each row after commit.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from miyabi_analytics._db.rules import CHANNEL, RESTORING
from miyabi_analytics._db.rules.history import ANNOUNCED_ROWS
from tests.db.test_database_rules import upstream_insert
from tests.db.test_tenant_isolation import Tenancy, seed, tenancy  # noqa: F401 (fixture)

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
REPO = uuid.UUID("6a1c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


def history(engine: Engine, execution_id: uuid.UUID | None = None) -> list[tuple[Any, ...]]:
    sql = "SELECT execution_id, from_status, to_status, at, quality_score, error_message FROM "
    sql += "agent_execution_transitions"
    params: dict[str, Any] = {}
    if execution_id is not None:
        sql += " WHERE execution_id = :id"
        params["id"] = str(execution_id)
    with engine.connect() as conn:
        rows = conn.execute(text(sql + " ORDER BY id"), params).all()
    return [(uuid.UUID(str(r[0])), *r[1:]) for r in rows]


def _insert_rolled_back(engine: Engine) -> None:
    with engine.connect() as conn:
        upstream_insert(conn, repository_id=REPO, agent_type="SalesAgent", status="pending")
        conn.rollback()


def _when(value: Any) -> datetime:
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))


def _sql_update(engine: Engine, execution_id: uuid.UUID, **values: Any) -> None:
    sets = ", ".join(f"{k} = :{k}" for k in values)
    with engine.begin() as conn:
        conn.execute(
            text(f"UPDATE agent_executions SET {sets} WHERE id = :id"),  # noqa: S608 (test)
            {**values, "id": str(execution_id)},
        )


def test_plain_sql_lifecycle_is_recorded_once_per_status(engine: Engine) -> None:
    with engine.begin() as conn:
        ex = upstream_insert(conn, repository_id=REPO, agent_type="SalesAgent", status="pending")
    _sql_update(engine, ex, last_heartbeat_at=None)  # no status change: nothing recorded
    _sql_update(engine, ex, status="running")
    _sql_update(engine, ex, status="running", error_message="still going")  # same status
    _sql_update(engine, ex, status="failed", error_message="boom", quality_score=12)
    rows = history(engine, ex)
    assert [(r[1], r[2]) for r in rows] == [
        (None, "pending"), ("pending", "running"), ("running", "failed")
    ]
    assert rows[-1][4:] == (12, "boom")
    with engine.connect() as conn:
        stamps = conn.execute(
            text("SELECT created_at, started_at, completed_at FROM agent_executions")
        ).one()
    # at is the row's own stamp for the status it entered
    assert [_when(r[3]) for r in rows] == [_when(s) for s in stamps]


def test_refused_move_and_rollback_record_nothing(engine: Engine) -> None:
    with engine.begin() as conn:
        ex = upstream_insert(
            conn, repository_id=REPO, agent_type="SalesAgent", status="completed",
            started_at=T0, completed_at=T0 + timedelta(seconds=5), quality_score=90,
        )
    before = history(engine)
    with pytest.raises(IntegrityError):
        _sql_update(engine, ex, status="running")
    _insert_rolled_back(engine)
    assert history(engine) == before
    assert [(r[1], r[2], _when(r[3])) for r in before] == [
        (None, "completed", T0 + timedelta(seconds=5))
    ]


def test_store_and_bulk_writes_are_recorded_at_their_own_times(engine: Engine) -> None:
    agent = ma.SalesAgent()
    store = ma.ExecutionStore(engine)
    done = [
        agent.builder(REPO).status("completed").started_at(T0 + timedelta(hours=n))
        .completed_at(T0 + timedelta(hours=n, seconds=30)).quality_score(40 + n).build()
        for n in range(50)
    ]
    ma.ExecutionStore(engine).save_executions(done)
    pending = agent.builder(REPO).build()
    store.save_execution(pending)
    store.save_execution(pending.evolve(status="running"))
    rows = history(engine)
    assert len(rows) == 52
    by_id = {r[0]: r for r in rows[:50]}
    for execution in done:
        row = by_id[execution.id]
        assert (row[1], row[2], _when(row[3]), row[4]) == (
            None, "completed", execution.completed_at, execution.quality_score
        )
    assert [(r[1], r[2]) for r in rows[50:]] == [(None, "pending"), ("pending", "running")]


def test_history_goes_with_its_execution(engine: Engine) -> None:
    with engine.begin() as conn:
        ex = upstream_insert(conn, repository_id=REPO, agent_type="SalesAgent", status="running")
    _sql_update(engine, ex, status="completed")
    assert len(history(engine, ex)) == 2
    with engine.begin() as conn:
        conn.execute(text("DELETE FROM agent_executions WHERE id = :id"), {"id": str(ex)})
    assert history(engine) == []


def _listener(url: URL) -> psycopg.Connection[Any]:
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    conn = psycopg.connect(dsn, autocommit=True)
    conn.execute(f"LISTEN {CHANNEL}")
    return conn


@PG_ONLY
def test_notifications_after_commit_only(engine: Engine, db_url: URL) -> None:
    listener = _listener(db_url)
    try:
        _insert_rolled_back(engine)
        with engine.begin() as conn:
            ex = upstream_insert(
                conn, repository_id=REPO, agent_type="SalesAgent", status="pending"
            )
            conn.execute(
                text("UPDATE agent_executions SET status = 'running' WHERE id = :id"),
                {"id": str(ex)},
            )
        _sql_update(engine, ex, status="completed", quality_score=77)
        got = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=3)]
    finally:
        listener.close()
    assert [(g["id"], g["from"], g["to"]) for g in got] == [
        (str(ex), None, "pending"),
        (str(ex), "pending", "running"),
        (str(ex), "running", "completed"),
    ]
    ids = [row[0] for row in _ids(engine)]
    assert [g["transition"] for g in got] == ids
    assert {g["repository_id"] for g in got} == {str(REPO)}
    assert {g["agent_type"] for g in got} == {"SalesAgent"}
    assert len({g["txid"] for g in got}) == 2  # two transactions
    assert all(isinstance(g["txid"], int) for g in got)


def _ids(engine: Engine) -> list[tuple[Any, ...]]:
    with engine.connect() as conn:
        return [tuple(r) for r in conn.execute(text(
            "SELECT id FROM agent_execution_transitions ORDER BY id"
        ))]


@PG_ONLY
@pytest.mark.parametrize("rows", [ANNOUNCED_ROWS, ANNOUNCED_ROWS + 1])
def test_bulk_insert_announces_each_row_or_the_statement(
    engine: Engine, db_url: URL, rows: int
) -> None:
    agent = ma.SalesAgent()
    done = [
        agent.builder(REPO).status("completed").started_at(T0 + timedelta(minutes=n))
        .completed_at(T0 + timedelta(minutes=n, seconds=9)).build()
        for n in range(rows)
    ]
    listener = _listener(db_url)
    try:
        ma.ExecutionStore(engine).save_executions(done)
        got = [json.loads(n.payload) for n in listener.notifies(timeout=2, stop_after=rows)]
    finally:
        listener.close()
    ids = [row[0] for row in _ids(engine)]
    if rows <= ANNOUNCED_ROWS:  # one notification per row, in id order
        assert sorted(g["id"] for g in got) == sorted(str(e.id) for e in done)
        assert [g["transition"] for g in got] == ids
        return
    # more rows: one notification for the statement, which names its rows
    assert len(got) == 1
    assert got[0]["count"] == rows
    assert (got[0]["first"], got[0]["last"]) == (ids[0], ids[-1])
    with engine.connect() as conn:
        txids = conn.execute(text("SELECT DISTINCT txid FROM agent_execution_transitions"))
        assert txids.scalars().all() == [got[0]["txid"]]


@PG_ONLY
def test_restoring_setting_silences_history_and_notifications(engine: Engine, db_url: URL) -> None:
    listener = _listener(db_url)
    try:
        with engine.begin() as conn:
            conn.execute(text(f"SET LOCAL {RESTORING} = 'on'"))
            ex = upstream_insert(
                conn, repository_id=REPO, agent_type="SalesAgent", status="running"
            )
            conn.execute(
                text("UPDATE agent_executions SET status = 'completed' WHERE id = :id"),
                {"id": str(ex)},
            )
        got = list(listener.notifies(timeout=0.5))
    finally:
        listener.close()
    assert got == []
    assert history(engine) == []
    _sql_update(engine, ex, quality_score=5)  # later transactions are not silenced
    with engine.begin() as conn:
        ex2 = upstream_insert(conn, repository_id=REPO, agent_type="SalesAgent", status="pending")
    assert [r[0] for r in history(engine)] == [ex2]


def test_migration_backfills_then_downgrade_removes(empty_url: URL) -> None:
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine, "0009_upstream_superset")
        with engine.begin() as conn:
            old = upstream_insert(
                conn, repository_id=REPO, agent_type="SalesAgent", status="completed",
                started_at=T0, completed_at=T0 + timedelta(seconds=3), quality_score=64,
            )
            running = upstream_insert(
                conn, repository_id=REPO, agent_type="SalesAgent", status="running",
                started_at=T0 + timedelta(minutes=1),
            )
        ma.migrate(engine)
        rows = history(engine)
        assert [(r[0], r[1], r[2], _when(r[3]), r[4]) for r in rows] == [
            (old, None, "completed", T0 + timedelta(seconds=3), 64),
            (running, None, "running", T0 + timedelta(minutes=1), None),
        ]
        ma.downgrade(engine, "0009_upstream_superset")
        with engine.connect() as conn:
            names = set(engine.dialect.get_table_names(conn))
        assert "agent_execution_transitions" not in names
        _sql_update(engine, running, status="completed")  # no trigger left behind
        ma.migrate(engine)
        assert [(r[0], r[2]) for r in history(engine)] == [
            (old, "completed"), (running, "completed")
        ]
    finally:
        engine.dispose()


@PG_ONLY
def test_scoped_writer_without_grant_records_and_reads_only_its_history(
    tenancy: Tenancy,  # noqa: F811 (the fixture imported above)
) -> None:
    seed(tenancy.owner, tenancy.repo_b, "b")  # another tenant's history
    writer = tenancy.scoped(tenancy.repo_a)  # may write executions; no grant on the history
    mine = seed(writer, tenancy.repo_a, "a")
    with tenancy.owner.begin() as conn:
        conn.execute(text(f'GRANT SELECT ON agent_execution_transitions TO "{tenancy.role}"'))
    with writer.connect() as conn:
        seen = conn.execute(
            text("SELECT DISTINCT execution_id FROM agent_execution_transitions")
        ).scalars().all()
    assert sorted(str(s) for s in seen) == sorted(str(m) for m in mine)
    assert len(history(tenancy.owner)) > len(seen)


@PG_ONLY
def test_a_writers_temporary_table_cannot_take_the_history(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text(
            "CREATE TEMPORARY TABLE agent_execution_transitions "
            "(LIKE public.agent_execution_transitions INCLUDING DEFAULTS)"
        ))
        ex = upstream_insert(conn, repository_id=REPO, agent_type="SalesAgent", status="pending")
        taken = conn.execute(text("SELECT count(*) FROM pg_temp.agent_execution_transitions"))
        assert taken.scalar_one() == 0
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT execution_id FROM public.agent_execution_transitions"
        )).scalars().all()
    assert [str(r) for r in rows] == [str(ex)]
