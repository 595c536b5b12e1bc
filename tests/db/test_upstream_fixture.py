"""The upstream fixture (tests/upstream.py) behaves as the upstream database does (issue 14 item 8).

PostgreSQL only: the upstream schema and SQL are.
"""

from __future__ import annotations

import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import URL, Connection, Engine, create_engine, inspect, text
from sqlalchemy.exc import ProgrammingError

from miyabi_analytics.vocabulary import AGENT_TYPES
from tests.conftest import create_pg_database, drop_pg_database
from tests.upstream import (
    FLEET_TYPES,
    SQLX_MIGRATIONS,
    UNRELATED_ENUM,
    UNRELATED_VIEW,
    UpstreamWriter,
    build_upstream,
    fill_upstream,
    upstream_url,  # noqa: F401 (the fixture)
)

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


@pytest.fixture
def up(upstream_url: URL) -> Iterator[Engine]:  # noqa: F811
    engine = create_engine(upstream_url)
    yield engine
    engine.dispose()


def _repo(conn: Connection, n: int = 1) -> uuid.UUID:
    writer = UpstreamWriter(conn)
    user = writer.insert_user(n, f"u{n}@example.com")
    found = writer.insert_repository(user, n, f"repo{n}")
    assert isinstance(found, uuid.UUID)
    return found


def _row(conn: Connection, key: uuid.UUID) -> Any:
    return conn.execute(text("SELECT * FROM agent_executions WHERE id = :id"), {"id": key}).one()


def test_the_insert_without_id_gets_the_defaults(up):
    with up.begin() as conn:
        repo = _repo(conn)
        key = UpstreamWriter(conn).create_execution(repo, 3, "CoordinatorAgent", "completed",
                                                     result={"ok": True}, quality_score=88)
        row = _row(conn, key)
    assert isinstance(key, uuid.UUID)
    assert key.version == 4
    assert row.created_at is not None
    assert row.created_at == row.updated_at
    assert row.options == {}
    assert row.user_id is None  # persistence.rs never writes it
    assert (row.status, row.quality_score, row.result) == ("completed", 88, {"ok": True})


def test_the_shape_is_upstreams_and_ours_is_absent(up):
    with up.connect() as conn:
        names = set(inspect(conn).get_table_names())
        views = set(inspect(conn).get_view_names())
        enums = conn.execute(text("SELECT typname FROM pg_type WHERE typtype = 'e'")).scalars()
        versions = conn.execute(text(
            "SELECT version, description, success FROM _sqlx_migrations ORDER BY version")).all()
        kinds = dict(conn.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'agent_executions'")).all())
        triggers = set(conn.execute(text("SELECT tgname FROM pg_trigger WHERE NOT tgisinternal"))
                       .scalars())
    assert {"users", "repositories", "agent_executions", "execution_logs", "tasks", "workflows",
            "business_agent_analytics", "agent_execution_logs", "_sqlx_migrations"} <= names
    assert "alembic_version" not in names
    assert views == {"v_business_agent_summary", UNRELATED_VIEW}
    assert set(enums) == {UNRELATED_ENUM}
    expected = [(v, n.replace("_", " ")) for v, n in SQLX_MIGRATIONS]
    assert [(v, d) for v, d, _ in versions] == expected
    assert all(ok for *_, ok in versions)
    assert kinds["created_at"] == kinds["started_at"] == "timestamp with time zone"
    assert kinds["options"] == "jsonb"
    assert "last_heartbeat_at" not in kinds
    assert {"update_agent_executions_updated_at",
            "update_business_agent_analytics_updated_at"} <= triggers


def test_the_view_repeats_logs_per_analytics_row(up):
    with up.begin() as conn:
        writer, repo = UpstreamWriter(conn), _repo(conn)
        same = writer.insert_pending(None, repo, "SalesAgent", 1)["id"]
        differ = writer.insert_pending(None, repo, "CodeGenAgent", 2)["id"]
        bare = writer.insert_pending(None, None, "ReviewAgent", 3)["id"]
        for key in (same, differ):
            for level in ("info", "warn", "error"):
                writer.insert_log(key, level, level)
        for score in (40, 40):
            writer.insert_analytics(same, "SalesAgent", {}, engagement_score=score)
        for score in (40, 70):
            writer.insert_analytics(differ, "CodeGenAgent", {}, engagement_score=score)
        rows = writer.query_view()
    got = Counter((r["execution_id"], r["log_count"], r["error_count"]) for r in rows)
    assert got == Counter({(same, 6, 2): 1, (differ, 3, 1): 2, (bare, 0, 0): 1})
    assert sorted(r["engagement_score"] for r in rows if r["execution_id"] == differ) == [40, 70]


def test_any_update_bumps_updated_at_through_the_trigger(up):
    with up.begin() as conn:
        key = UpstreamWriter(conn).create_execution(_repo(conn), 1, "SalesAgent", "running")
        before = _row(conn, key).updated_at
    with up.begin() as conn:  # save_analysis_metrics names no updated_at
        assert UpstreamWriter(conn).save_analysis_metrics(key, {"page_views": 3}) == 1
        after = _row(conn, key).updated_at
    assert after > before
    with up.begin() as conn:
        analytics = UpstreamWriter(conn).insert_analytics(key, "SalesAgent", {"a": 1})
        conn.execute(text("UPDATE business_agent_analytics SET roi_percent = 1 WHERE id = :id"),
                     {"id": analytics["id"]})
    with up.begin() as conn:
        conn.execute(text("UPDATE business_agent_analytics SET roi_percent = 2 WHERE id = :id"),
                     {"id": analytics["id"]})
        bumped = conn.execute(text("SELECT updated_at FROM business_agent_analytics")).scalar()
    assert bumped > analytics["updated_at"]


def test_jsonb_set_lands_metrics_beside_the_result(up):
    with up.begin() as conn:
        writer, repo = UpstreamWriter(conn), _repo(conn)
        kept = writer.create_execution(repo, 1, "SalesAgent", "completed", result={"ok": True})
        empty = writer.create_execution(repo, 2, "SalesAgent", "running")
        writer.save_analysis_metrics(kept, {"market_size_usd": 5})
        writer.save_analysis_metrics(kept, {"competitors_analyzed": 4})  # replaces, no merge
        writer.save_analysis_metrics(empty, {"bounce_rate": 0.5})
        rows = dict(conn.execute(text(
            "SELECT id, result -> 'analysis_metrics' FROM agent_executions")).all())
        results = dict(conn.execute(text("SELECT id, result FROM agent_executions")).all())
    assert rows == {kept: {"competitors_analyzed": 4}, empty: {"bounce_rate": 0.5}}
    assert results[kept]["ok"] is True
    with up.begin() as conn:  # the upstream UPDATE overwrites result wholesale
        UpstreamWriter(conn).update_execution(kept, "completed", result=None)
        assert _row(conn, kept).result is None


def test_load_history_is_newest_first_and_per_repository(up):
    keys = []
    with up.begin() as conn:
        repo, other = _repo(conn, 1), _repo(conn, 2)
        UpstreamWriter(conn).create_execution(other, 0, "SalesAgent", "pending")
    for n in range(3):
        with up.begin() as conn:  # separate transactions: distinct NOW()
            keys.append(UpstreamWriter(conn).create_execution(repo, n, "SalesAgent", "pending"))
    with up.connect() as conn:
        writer = UpstreamWriter(conn)
        history = writer.load_history("SalesAgent", repo, 10)
        assert [r["id"] for r in history] == keys[::-1]
        assert [r["id"] for r in writer.load_history("SalesAgent", repo, 2)] == keys[:0:-1]
        assert writer.get_latest_execution("SalesAgent", repo)["id"] == keys[-1]
        assert writer.get_latest_execution("CRMAgent", repo) is None


@pytest.mark.parametrize("dirty", [False, True])
def test_the_oracle_matches_the_database(up, dirty):
    with up.connect() as conn:
        oracle = fill_upstream(UpstreamWriter(conn), seed=7, executions=80, dirty=dirty)
        per_agent = conn.execute(text(
            "SELECT agent_type, count(*), count(*) FILTER (WHERE status = 'completed'), "
            "count(*) FILTER (WHERE status = 'failed') FROM agent_executions GROUP BY 1")).all()
        scores = conn.execute(text(
            "SELECT agent_type, array_agg(quality_score ORDER BY quality_score) FROM "
            "agent_executions WHERE quality_score IS NOT NULL GROUP BY 1")).all()
        logs = conn.execute(text(
            "SELECT execution_id, count(*), count(*) FILTER (WHERE log_level = 'error') "
            "FROM agent_execution_logs GROUP BY 1")).all()
        latest = dict(conn.execute(text(
            "SELECT e.id, CASE WHEN a.created_at IS NULL OR (e.result ? 'analysis_metrics' "
            "AND e.updated_at > a.created_at) THEN e.result -> 'analysis_metrics' "
            "ELSE a.metrics END FROM agent_executions e LEFT JOIN LATERAL (SELECT metrics, "
            "created_at FROM business_agent_analytics b WHERE b.execution_id = e.id "
            "ORDER BY created_at DESC LIMIT 1) a ON true")).all())
        statuses = set(conn.execute(text("SELECT DISTINCT status FROM agent_executions")).scalars())
        started = dict(conn.execute(text(
            "SELECT id, started_at IS NOT NULL FROM agent_executions")).all())
        no_repo = conn.execute(text(
            "SELECT count(*) FROM agent_executions WHERE repository_id IS NULL")).scalar_one()
    assert {a: [n, c, f] for a, n, c, f in per_agent} == {
        a: [v["executions"], v["completed"], v["failed"]] for a, v in oracle.per_agent().items()
    }
    assert dict(scores) == oracle.quality_scores()
    assert {k: (n, e) for k, n, e in logs} == {
        k: (n, oracle.errors[k]) for k, n in oracle.logs.items() if n
    }
    assert {k: v for k, v in latest.items() if v is not None} == oracle.latest_metrics()
    assert started == oracle.started
    assert set(oracle.levels) == {"debug", "info", "warn", "error"}
    assert set(oracle.per_agent()) & set(FLEET_TYPES)
    assert set(oracle.per_agent()) & set(AGENT_TYPES)
    assert False in started.values()  # upstream rows without started_at
    both = [k for k in oracle.analytics_rows if oracle.json_metrics(k) is not None]
    assert both  # some executions carry both kinds of metrics
    if dirty:
        assert "cancelled" in statuses
        assert max(max(s) for s in oracle.quality_scores().values()) == 150
        assert no_repo >= 1
    else:
        assert statuses == {"pending", "running", "completed", "failed"}
        assert no_repo == 0


def test_without_quality_columns_the_writer_fails_as_upstream_would(dialect):
    url = create_pg_database()
    engine = create_engine(url)
    try:
        with engine.begin() as conn:
            build_upstream(conn, quality_columns=False)
            cols = [c["name"] for c in inspect(conn).get_columns("v_business_agent_summary")]
        assert "quality_score" not in cols
        assert cols[0] == "execution_id"
        assert cols[-2:] == ["log_count", "error_count"]
        with pytest.raises(ProgrammingError, match="quality_score"), engine.begin() as conn:
            UpstreamWriter(conn).create_execution(None, 1, "SalesAgent", "pending")
    finally:
        engine.dispose()
        drop_pg_database(url)
