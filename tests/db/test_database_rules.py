"""The database's own rules (revision 0008) hold for plain SQL writers, on both databases.

The statements below are the upstream Rust writer's (``persistence.rs``), with named bound
parameters instead of ``$n``; on SQLite, ``NOW()`` is a bound UTC time.
"""

from __future__ import annotations

import itertools
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, bindparam, text
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from miyabi_analytics._db.dialect import Dialect
from miyabi_analytics._db.rules import LIFECYCLE_SQLSTATE, MESSAGE, allowed_moves, refused_move
from miyabi_analytics._db.types import JsonDocument, UtcDateTime, UuidText
from miyabi_analytics.store import bulk as store_bulk
from miyabi_analytics.vocabulary import ExecutionStatus

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
UPSTREAM_COLUMNS = (
    "repository_id", "issue_number", "agent_type", "status", "started_at", "completed_at",
    "error_message", "result", "quality_score", "pr_number",
)
UPSTREAM_INSERT = (
    "INSERT INTO agent_executions (repository_id, issue_number, agent_type, status, started_at, "
    "completed_at, error_message, result, quality_score, pr_number) VALUES (:repository_id, "
    ":issue_number, :agent_type, :status, :started_at, :completed_at, :error_message, :result, "
    ":quality_score, :pr_number) RETURNING id"
)
UPSTREAM_UPDATE = (
    "UPDATE agent_executions SET status = :status, completed_at = :completed_at, "
    "error_message = :error_message, result = :result, quality_score = :quality_score, "
    "pr_number = :pr_number, updated_at = NOW() WHERE id = :id"
)
TYPES = {
    "id": UuidText(), "repository_id": UuidText(), "execution_id": UuidText(),
    "started_at": UtcDateTime(), "completed_at": UtcDateTime(), "now": UtcDateTime(),
    "result": JsonDocument, "metrics": JsonDocument,
}


def _bound(sql: str, values: dict[str, Any]) -> Any:
    return text(sql).bindparams(*(bindparam(k, type_=TYPES[k]) for k in values if k in TYPES))


def upstream_insert(conn: Connection, **values: Any) -> uuid.UUID:
    """persistence.rs ``create_execution``: only the upstream columns, ``RETURNING id``."""
    row = dict.fromkeys(UPSTREAM_COLUMNS)
    row.update(values)
    sql = UPSTREAM_INSERT
    found = conn.execute(_bound(sql, row).columns(id=UuidText()), row).scalar_one()
    assert isinstance(found, uuid.UUID)
    return found


def upstream_update(conn: Connection, execution_id: uuid.UUID, **values: Any) -> int:
    """persistence.rs ``update_execution``: never writes started_at; ``updated_at = NOW()``."""
    row: dict[str, Any] = {
        "id": execution_id, "status": None, "completed_at": None, "error_message": None,
        "result": None, "quality_score": None, "pr_number": None,
    }
    row.update(values)
    sql = UPSTREAM_UPDATE
    if not Dialect.of(conn).is_postgresql:  # SQLite has no NOW(): the writer's clock
        sql, row["now"] = sql.replace("NOW()", ":now"), datetime.now(UTC)
    return int(conn.execute(_bound(sql, row), row).rowcount)


def raw_row(conn: Connection, execution_id: uuid.UUID) -> Any:
    """The stored row as the database has it (text on PostgreSQL, raw values on SQLite)."""
    key = {"id": execution_id}
    if Dialect.of(conn).is_postgresql:
        sql = "SELECT CAST(t AS text), xmin::text FROM agent_executions t WHERE id = :id"
    else:
        sql = "SELECT rowid, * FROM agent_executions WHERE id = :id"
    return tuple(conn.execute(_bound(sql, key), key).one())


def stored(engine: Engine, execution_id: uuid.UUID) -> ma.AgentExecutionResult:
    return ma.ExecutionStore(engine).get_execution(execution_id)


# -- 1. defaults ---------------------------------------------------------------------------------


def test_a_plain_insert_of_the_upstream_columns_gets_what_the_store_gives(engine):
    repo = uuid.uuid4()
    with engine.begin() as conn:
        done = upstream_insert(
            conn, repository_id=repo, issue_number=7, agent_type="SalesAgent",
            status="completed", started_at=T0, completed_at=T0 + timedelta(seconds=90),
            result={"ok": True}, quality_score=81, pr_number=12,
        )
        pending = upstream_insert(conn, repository_id=repo, agent_type="SalesAgent",
                                  status="pending")
    for key in (done, pending):
        assert key.version == 4
        record = stored(engine, key)
        assert record.created_at is not None
        assert record.updated_at == record.created_at
        assert record.created_at.tzinfo is not None
    record = stored(engine, done)
    assert (record.status, record.quality_score, record.pr_number, record.result) == (
        ExecutionStatus.COMPLETED, 81, 12, {"ok": True}
    )
    assert record.started_at == T0

    history = ma.SalesAgent().load_history(engine, repo)
    assert [r.id for r in history] == [pending, done]  # never started first
    summary = ma.read_summary(engine, repository_id=repo).set_index("id")
    assert summary.loc[str(done), "duration_seconds"] == 90.0
    assert summary.loc[str(done), "agent_category"] == "operations"
    rates = ma.success_rates(engine, repository_id=repo)
    assert rates[["executions", "completed", "success_rate"]].iloc[0].tolist() == [2, 1, 1.0]


def test_plain_inserts_of_metrics_and_logs_get_ids_times_and_an_empty_document(engine):
    with engine.begin() as conn:
        key = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent",
                              status="running", started_at=T0)
        values = {"execution_id": key}
        conn.execute(_bound(
            "INSERT INTO business_agent_analytics (execution_id, agent_type, engagement_score) "
            "VALUES (:execution_id, 'CRMAgent', 55)", values), values)
        conn.execute(_bound(
            "INSERT INTO agent_execution_logs (execution_id, log_level, message) "
            "VALUES (:execution_id, 'info', 'plain')", values), values)
        ids = conn.execute(_bound(
            "SELECT a.id, a.metrics, a.created_at, l.id, l.logged_at "
            "FROM business_agent_analytics a JOIN agent_execution_logs l "
            "ON l.execution_id = a.execution_id WHERE a.execution_id = :execution_id",
            values).columns(metrics=JsonDocument), values).one()
    assert uuid.UUID(str(ids[0])).version == 4
    assert uuid.UUID(str(ids[3])).version == 4
    assert ids[1] == {}
    assert ids[2] is not None
    assert ids[4] is not None
    logs = ma.read_logs(engine, execution_id=key)
    assert logs["message"].tolist() == ["plain"]
    assert logs["logged_at"].notna().all()
    summary = ma.read_summary(engine).set_index("id")
    assert summary.loc[str(key), "engagement_score"] == 55
    assert ma.business_metrics(engine, freq=None)["mean_engagement_score"].tolist() == [55.0]


@pytest.mark.parametrize("dialect", ["sqlite"], indirect=True)  # the stored text forms
def test_sqlite_defaults_are_in_the_stored_forms(engine, dialect):
    with engine.begin() as conn:
        upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent", status="pending")
        upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent", status="pending")
        rows = conn.execute(text("SELECT id, created_at, updated_at FROM agent_executions")).all()
    assert len({row[0] for row in rows}) == 2
    for key, created, updated in rows:
        parsed = uuid.UUID(key)
        assert (str(parsed), parsed.version, parsed.variant) == (key, 4, uuid.RFC_4122)
        assert len(created) == len(updated) == 32
        assert created.endswith("+00:00")
        assert datetime.fromisoformat(created).tzinfo is not None


# -- 2. the lifecycle ------------------------------------------------------------------------------


def test_the_upstream_update_cannot_move_completed_back_to_running(engine, dialect):
    with engine.begin() as conn:
        key = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="SalesAgent",
                              status="completed", started_at=T0, completed_at=T0)
        before = raw_row(conn, key)
    with pytest.raises(IntegrityError) as info, engine.begin() as conn:
        upstream_update(conn, key, status="running", error_message="again")
    orig = info.value.orig
    if dialect == "postgresql":
        assert getattr(orig, "sqlstate", None) == LIFECYCLE_SQLSTATE == "23M01"
        assert orig.diag.message_primary == (  # type: ignore[union-attr]
            f"{MESSAGE}: execution {key} cannot move from 'completed' to 'running'"
        )
        assert orig.diag.constraint_name == "miyabi_lifecycle_guard"  # type: ignore[union-attr]
    else:
        assert str(orig).startswith(f"{MESSAGE}: legal moves are pending -> running")
    assert refused_move(info.value) is not None
    with engine.connect() as conn:
        assert raw_row(conn, key) == before  # byte for byte (and no new row version)


@pytest.mark.parametrize(
    ("old", "new"), list(itertools.product(ExecutionStatus, ExecutionStatus))
)
def test_every_move_is_allowed_exactly_when_the_vocabulary_allows_it(engine, old, new):
    with engine.begin() as conn:
        key = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="SalesAgent",
                              status=old.value, started_at=T0, completed_at=T0)
    legal = old.can_transition_to(new)
    assert legal == (old is new or (old, new) in allowed_moves())
    values = {"id": key, "status": new.value}
    move = _bound("UPDATE agent_executions SET status = :status WHERE id = :id", values)
    if legal:
        with engine.begin() as conn:
            assert conn.execute(move, values).rowcount == 1
        assert stored(engine, key).status is new
    else:
        with pytest.raises(IntegrityError), engine.begin() as conn:
            conn.execute(move, values)
        assert stored(engine, key).status is old


def test_an_insert_in_any_state_is_not_a_move(engine):
    with engine.begin() as conn:
        for status in ExecutionStatus:
            upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent",
                            status=status.value, started_at=T0, completed_at=T0)
    assert len(ma.read_summary(engine)) == len(ExecutionStatus)


def test_upstream_workflow_gets_its_timestamps_stamped(engine):
    """Integration test ``test_execution_update_workflow``: pending -> running -> completed."""
    with engine.begin() as conn:
        key = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="SalesAgent",
                              status="pending")
    created = stored(engine, key)
    assert created.started_at is None
    assert created.completed_at is None
    with engine.begin() as conn:
        assert upstream_update(conn, key, status="running") == 1
    running = stored(engine, key)
    assert running.started_at is not None  # entering running stamps it
    assert running.completed_at is None
    assert running.started_at >= created.created_at - timedelta(milliseconds=1)
    assert running.updated_at >= created.updated_at
    with engine.begin() as conn:
        assert upstream_update(conn, key, status="completed", quality_score=90) == 1
    done = stored(engine, key)
    assert done.started_at == running.started_at  # kept
    assert done.completed_at is not None
    assert done.completed_at >= done.started_at
    assert done.quality_score == 90
    row = ma.read_summary(engine).set_index("id").loc[str(key)]
    assert row["duration_seconds"] >= 0


def test_an_insert_in_a_final_state_is_stamped_and_a_given_time_kept(engine):
    with engine.begin() as conn:
        failed = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent",
                                 status="failed", started_at=T0)
        running = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent",
                                  status="running")
        given = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent",
                                status="completed", started_at=T0, completed_at=T0)
    assert stored(engine, failed).completed_at is not None
    assert stored(engine, failed).completed_at >= T0  # type: ignore[operator]
    assert stored(engine, running).started_at is not None
    assert stored(engine, given).completed_at == T0
    for key in (failed, running):  # the stamp is not an update of the record
        record = stored(engine, key)
        assert record.updated_at == record.created_at


# -- updated_at ----------------------------------------------------------------------------------


def test_updated_at_follows_a_change_unless_the_writer_sets_it(engine):
    with engine.begin() as conn:
        key = upstream_insert(conn, repository_id=uuid.uuid4(), agent_type="CRMAgent",
                              status="running", started_at=T0)
    first = stored(engine, key).updated_at
    assert first is not None
    time.sleep(0.002)  # SQLite's clock counts milliseconds
    values: dict[str, Any] = {"id": key}
    with engine.begin() as conn:  # a psql writer changing the record, not updated_at
        conn.execute(_bound(
            "UPDATE agent_executions SET error_message = 'psql' WHERE id = :id", values), values)
    moved = stored(engine, key).updated_at
    assert moved is not None
    assert moved > first
    with engine.begin() as conn:  # nothing changed: nothing moves
        conn.execute(_bound(
            "UPDATE agent_executions SET error_message = 'psql' WHERE id = :id", values), values)
    assert stored(engine, key).updated_at == moved
    explicit = {"id": key, "now": T0}
    with engine.begin() as conn:  # a writer that sets it keeps its value
        conn.execute(_bound(
            "UPDATE agent_executions SET pr_number = 3, updated_at = :now WHERE id = :id",
            explicit), explicit)
    assert stored(engine, key).updated_at == T0
    ma.ExecutionStore(engine).heartbeat(key)  # a heartbeat is not an update of the record
    assert stored(engine, key).updated_at == T0


# -- the store maps the database's refusal ----------------------------------------------------


def _done(engine: Engine) -> ma.AgentExecutionResult:
    record = (
        ma.SalesAgent().builder(uuid.uuid4()).status("completed").started_at(T0)
        .completed_at(T0 + timedelta(seconds=1)).build()
    )
    ma.SalesAgent().save_execution(engine, record)
    return record


def test_the_store_maps_the_trigger_when_its_own_check_is_bypassed(engine, monkeypatch):
    record = _done(engine)
    with engine.connect() as conn:
        before = raw_row(conn, record.id)
    # A stale guard: the upsert's WHERE lets every stored status through.
    monkeypatch.setattr(
        ExecutionStatus, "allowed_predecessors", lambda self: tuple(ExecutionStatus)
    )
    with pytest.raises(ma.InvalidStatusTransition) as info:
        ma.SalesAgent().save_execution(engine, record.evolve(status="running"))
    assert (info.value.execution_id, info.value.current, info.value.requested) == (
        record.id, "completed", "running"
    )
    assert isinstance(info.value.__cause__, IntegrityError)
    with engine.connect() as conn:
        assert raw_row(conn, record.id) == before


def test_the_bulk_path_maps_the_trigger_when_its_own_check_is_bypassed(engine, monkeypatch):
    record = _done(engine)
    other = _done(engine)
    with engine.connect() as conn:
        before = [raw_row(conn, r.id) for r in (record, other)]
    monkeypatch.setattr(store_bulk, "check_step", lambda *args: None)
    with pytest.raises(ma.InvalidStatusTransition) as info:
        ma.ExecutionStore(engine).save_executions(
            [other.evolve(error_message="fine"), record.evolve(status="pending")]
        )
    assert (info.value.execution_id, info.value.current, info.value.requested) == (
        record.id, "completed", "pending"
    )
    assert isinstance(info.value.__cause__, IntegrityError)  # the database refused it
    with engine.connect() as conn:
        assert [raw_row(conn, r.id) for r in (record, other)] == before  # the batch is undone


def test_a_stored_pending_row_goes_through_running_in_one_batch(engine):
    agent = ma.SalesAgent()
    pending = agent.builder(uuid.uuid4()).build()
    agent.save_execution(engine, pending)
    running = pending.evolve(status="running")  # no started_at: the database stamps it
    done = running.evolve(status="completed", completed_at=T0 + timedelta(days=3650))
    assert ma.ExecutionStore(engine).save_executions([running, done]) == 2
    record = stored(engine, pending.id)
    assert record.status is ExecutionStatus.COMPLETED
    assert record.started_at is None  # the last record's None clears it, as one by one
    assert record.completed_at == done.completed_at


# -- restore: an INSERT that puts an archived row back ----------------------------------------


def test_restore_puts_back_rows_without_their_stamps_and_finished_ones(engine, tmp_path):
    """Rows whose timestamps are missing (cleared, or stored before 0008) come back so."""
    old = T0 - timedelta(days=400)
    agent = ma.SalesAgent()
    cleared = [
        agent.builder(uuid.uuid4()).status("running").started_at(old).build(),
        agent.builder(uuid.uuid4()).status("failed").started_at(old).build(),
    ]
    done = (
        agent.builder(uuid.uuid4()).status("completed").started_at(old)
        .completed_at(old + timedelta(seconds=3)).quality_score(60).build()
    )
    for record in [*cleared, done]:
        agent.save_execution(engine, record)
    with engine.begin() as conn:  # plain SQL clears the stamps (the status does not move)
        for record in cleared:
            values = {"id": record.id, "now": T0}
            conn.execute(_bound(
                "UPDATE agent_executions SET started_at = NULL, completed_at = NULL, "
                "created_at = :now, updated_at = :now WHERE id = :id", values), values)
    ids = [r.id for r in [*cleared, done]]
    with engine.connect() as conn:
        before = {key: raw_row(conn, key) for key in ids}
    for record in cleared:
        assert stored(engine, record.id).started_at is None

    report = ma.retention.purge(engine, "90d", archive_dir=tmp_path / "archive")
    assert report.executions == 3
    assert ma.retention.restore(engine, tmp_path / "archive", ids) == 3
    with engine.connect() as conn:
        after = {key: raw_row(conn, key) for key in ids}
    if Dialect.of(engine).is_postgresql:  # the row text (the row version changes, of course)
        assert {k: v[0] for k, v in after.items()} == {k: v[0] for k, v in before.items()}
    else:  # everything but the rowid, a new row's
        assert {k: v[1:] for k, v in after.items()} == {k: v[1:] for k, v in before.items()}
    for record in cleared:
        back = stored(engine, record.id)
        assert (back.started_at, back.completed_at, back.updated_at) == (None, None, T0)
