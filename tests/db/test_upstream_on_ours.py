"""The upstream writer's statements on a fresh database of ours at head (issue 14 item 8).

The SQL is tests/upstream.py's, verbatim from the Rust writers: PostgreSQL only.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Connection, Engine, text
from sqlalchemy.exc import IntegrityError

import miyabi_analytics as ma
from tests.conftest import create_pg_database, drop_pg_database
from tests.upstream import UpstreamWriter

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
LIFECYCLE_SQLSTATE = "23M01"  # documented in miyabi_analytics/_db/rules


@pytest.fixture
def ours(dialect: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database of ours, migrated to head."""
    url = create_pg_database()
    ma.migrate(url)
    engine = ma.connect(url)
    yield engine
    engine.dispose()
    drop_pg_database(url)


def _row(conn: Connection, key: uuid.UUID) -> Any:
    return conn.execute(text("SELECT * FROM agent_executions WHERE id = :id"), {"id": key}).one()


def _refused(ours: Engine, key: uuid.UUID, status: str) -> None:
    with ours.connect() as conn:
        before = tuple(_row(conn, key))
    with pytest.raises(IntegrityError) as info, ours.begin() as conn:
        UpstreamWriter(conn).update_execution(key, status, T0, "again", {"x": 1}, 5, 6)
    assert getattr(info.value.orig, "sqlstate", None) == LIFECYCLE_SQLSTATE
    with ours.connect() as conn:
        assert tuple(_row(conn, key)) == before  # the stored row exactly as it was


def test_the_insert_without_id_gets_id_and_times_from_the_database(ours):
    repo = uuid.uuid4()
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        key = writer.create_execution(repo, 4, "SalesAgent", "completed", T0,
                                      T0 + timedelta(seconds=30), None, {"ok": True}, 77, 12)
        pending = writer.create_execution(repo, 5, "SalesAgent", "pending")
        row = _row(conn, key)
    assert isinstance(key, uuid.UUID)
    assert key.version == 4
    assert pending != key
    assert row.created_at is not None
    assert row.updated_at == row.created_at
    assert (row.status, row.quality_score, row.pr_number, row.started_at) == (
        "completed", 77, 12, T0)


def test_the_upstream_workflow_moves_legally_and_gets_started_at(ours):
    """Upstream's ``test_execution_update_workflow``: pending -> running -> completed."""
    with ours.begin() as conn:
        key = UpstreamWriter(conn).create_execution(uuid.uuid4(), 1, "CRMAgent", "pending")
        created = _row(conn, key)
    assert created.started_at is None
    with ours.begin() as conn:
        assert UpstreamWriter(conn).update_execution(key, "running") == 1
        running = _row(conn, key)
    assert running.started_at is not None  # the UPDATE never writes it: the database stamps it
    assert running.updated_at > created.updated_at
    with ours.begin() as conn:
        assert UpstreamWriter(conn).update_execution(
            key, "completed", None, None, {"done": True}, 93, 41) == 1
        done = _row(conn, key)
    assert done.started_at == running.started_at
    assert done.completed_at is not None  # completed_at = NULL from the writer: stamped
    assert done.completed_at >= done.started_at
    assert (done.status, done.quality_score, done.pr_number) == ("completed", 93, 41)


def test_the_service_flow_stamps_through_its_own_now(ours):
    repo, user = uuid.uuid4(), uuid.uuid4()
    with ours.begin() as conn:
        created = UpstreamWriter(conn).insert_pending(user, repo, "CRMAgent", 8)
    with ours.begin() as conn:
        started = UpstreamWriter(conn).start(created["id"])
    with ours.begin() as conn:
        failed = UpstreamWriter(conn).complete(created["id"], "failed", None, "boom")
    assert (created["status"], created["user_id"], created["started_at"]) == ("pending", user, None)
    assert started["status"] == "running"
    assert started["started_at"] is not None
    assert failed["status"] == "failed"
    assert failed["completed_at"] >= started["started_at"]
    record = ma.ExecutionStore(ours).get_execution(created["id"])
    assert record.error_message == "boom"


def test_completed_back_to_running_is_refused_and_the_row_kept(ours):
    with ours.begin() as conn:
        key = UpstreamWriter(conn).create_execution(uuid.uuid4(), 1, "SalesAgent", "completed",
                                                    T0, T0, None, {"ok": 1}, 80, 3)
    _refused(ours, key, "running")


def test_pending_straight_to_completed_is_refused(ours):
    """Upstream allows it (PERSISTENCE.md example 2); our lifecycle does not (doc §4.7)."""
    with ours.begin() as conn:
        key = UpstreamWriter(conn).create_execution(uuid.uuid4(), 1, "SalesAgent", "pending")
    _refused(ours, key, "completed")
    with ours.begin() as conn:  # service flow's complete() is the same move
        pending = UpstreamWriter(conn).insert_pending(None, uuid.uuid4(), "CRMAgent", 2)["id"]
    with pytest.raises(IntegrityError) as info, ours.begin() as conn:
        UpstreamWriter(conn).complete(pending, "completed", {"ok": True})
    assert getattr(info.value.orig, "sqlstate", None) == LIFECYCLE_SQLSTATE
    assert ma.ExecutionStore(ours).get_execution(pending).status is ma.ExecutionStatus.PENDING


def test_jsonb_set_metrics_land_in_the_result_and_bump_updated_at(ours):
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        done = writer.create_execution(uuid.uuid4(), 1, "SalesAgent", "completed", T0, T0,
                                       None, {"ok": True}, 70)
        bare = writer.create_execution(uuid.uuid4(), 2, "SalesAgent", "running", T0)
        before = _row(conn, done).updated_at
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        assert writer.save_analysis_metrics(done, {"market_size_usd": 9}) == 1
        assert writer.save_analysis_metrics(bare, {"page_views": 3}) == 1
        stored = {k: _row(conn, k) for k in (done, bare)}
    assert stored[done].result == {"ok": True, "analysis_metrics": {"market_size_usd": 9}}
    assert stored[bare].result == {"analysis_metrics": {"page_views": 3}}
    assert stored[done].updated_at > before
    assert stored[done].status == "completed"  # a same-status save is no move


def test_load_history_and_latest_read_our_rows_newest_first(ours):
    repo, keys = uuid.uuid4(), []
    for n in range(3):
        with ours.begin() as conn:
            keys.append(UpstreamWriter(conn).create_execution(repo, n, "SalesAgent", "pending"))
    with ours.connect() as conn:
        writer = UpstreamWriter(conn)
        assert [r["id"] for r in writer.load_history("SalesAgent", repo, 5)] == keys[::-1]
        assert writer.get_latest_execution("SalesAgent", repo)["id"] == keys[-1]
        assert writer.get_latest_execution("SalesAgent", uuid.uuid4()) is None
    ours_history = ma.SalesAgent().load_history(ours, repo)
    assert {r.id for r in ours_history} == set(keys)


def test_rows_written_upstream_read_back_through_read_summary(ours):
    repo = uuid.uuid4()
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        done = writer.create_execution(repo, 1, "SalesAgent", "completed", T0,
                                       T0 + timedelta(minutes=2), None, {"ok": True}, 88, 7)
        failed = writer.create_execution(repo, 2, "CRMAgent", "failed", T0, T0, "boom")
        pending = writer.insert_pending(None, repo, "AnalyticsAgent", 3)["id"]
        writer.insert_log(done, "info", "fine")
        writer.insert_analytics(done, "SalesAgent", {"engagement_score": 61},
                                engagement_score=61)
    summary = ma.read_summary(ours, repository_id=repo).set_index("id")
    assert summary.loc[str(done), ["status", "quality_score", "engagement_score"]].tolist() == [
        "completed", 88, 61]
    assert summary.loc[str(done), "duration_seconds"] == 120.0
    assert summary.loc[str(failed), "status"] == "failed"
    assert summary.loc[str(pending), "status"] == "pending"
    assert summary.loc[str(done), "agent_category"] == "operations"
    assert ma.read_logs(ours, execution_id=done)["message"].tolist() == ["fine"]
