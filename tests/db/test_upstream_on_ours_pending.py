"""Upstream behaviours on a fresh database of ours that land with revision 0009 (issue 14).

PostgreSQL only (the upstream SQL is).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import Engine, text

import miyabi_analytics as ma
from miyabi_analytics.vocabulary import OTHER_CATEGORY
from tests.conftest import create_pg_database, drop_pg_database
from tests.upstream import UpstreamWriter

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.fixture
def ours(dialect: str) -> Iterator[Engine]:
    """A fresh PostgreSQL database of ours, migrated to head."""
    url = create_pg_database()
    ma.migrate(url)
    engine = ma.connect(url)
    yield engine
    engine.dispose()
    drop_pg_database(url)


# -- (a) the upstream view query works on our view -----------------------------------------------


def test_the_upstream_view_query_runs_on_ours_one_row_per_execution(ours):
    with ours.begin() as conn:
        writer, repo = UpstreamWriter(conn), uuid.uuid4()
        key = writer.create_execution(repo, 1, "SalesAgent", "completed", T0, T0, None, None, 90)
        quiet = writer.create_execution(repo, 2, "CRMAgent", "running", T0)
        for level in ("info", "warn", "error", "critical", "error"):
            writer.insert_log(key, level, level)
        for score in (40, 70):  # upstream would repeat the execution once per analytics row
            writer.insert_analytics(key, "SalesAgent", {}, engagement_score=score)
    with ours.connect() as conn:
        rows = UpstreamWriter(conn).query_view()
    got = {r["execution_id"]: (r["log_count"], r["error_count"]) for r in rows}
    assert len(rows) == 2
    assert got == {key: (5, 2), quiet: (0, 0)}  # error_count: exactly log_level = 'error'


def test_the_upstream_view_columns_keep_their_types_on_ours(ours):
    with ours.connect() as conn:
        kinds = dict(conn.execute(text(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'v_business_agent_summary'")).all())
    assert (kinds.get("execution_id"), kinds.get("log_count"), kinds.get("error_count")) == (
        "uuid", "bigint", "bigint")


# -- (b) metrics saved with jsonb_set count as if saved through the store ------------------------


def test_jsonb_set_metrics_reach_read_summarys_typed_columns(ours):
    repo = uuid.uuid4()
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        key = writer.create_execution(repo, 1, "SalesAgent", "completed", T0,
                                      T0 + timedelta(minutes=1), None, {"ok": True}, 80)
        writer.save_analysis_metrics(key, {"engagement_score": 55, "competitors_analyzed": 4,
                                           "bounce_rate": 0.3})
    row = ma.read_summary(ours, repository_id=repo).iloc[0]
    assert row[["engagement_score", "competitors_analyzed"]].notna().all()
    assert (row["engagement_score"], row["competitors_analyzed"]) == (55, 4)


def test_jsonb_set_metrics_count_in_business_metrics(ours):
    repo = uuid.uuid4()
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        for n, score in enumerate((40, 60)):
            key = writer.create_execution(repo, n, "SalesAgent", "completed", T0, T0)
            writer.save_analysis_metrics(key, {"engagement_score": score})
    found = ma.business_metrics(ours, freq=None, repository_id=repo)
    assert found[["executions", "mean_engagement_score"]].values.tolist() == [[2, 50.0]]


def test_the_later_of_json_and_analytics_row_wins(ours):
    repo = uuid.uuid4()
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        json_last = writer.create_execution(repo, 1, "SalesAgent", "completed", T0, T0)
        row_last = writer.create_execution(repo, 2, "SalesAgent", "completed", T0, T0)
        writer.insert_analytics(json_last, "SalesAgent", {}, engagement_score=10)
        writer.save_analysis_metrics(row_last, {"engagement_score": 20})
    with ours.begin() as conn:  # a later transaction: later NOW(), later updated_at
        writer = UpstreamWriter(conn)
        writer.save_analysis_metrics(json_last, {"engagement_score": 30})
        writer.insert_analytics(row_last, "SalesAgent", {}, engagement_score=40)
    summary = ma.read_summary(ours, repository_id=repo).set_index("id")
    assert summary.loc[str(json_last), "engagement_score"] == 30
    assert summary.loc[str(row_last), "engagement_score"] == 40


# -- (c) the fleet's agent types read as category "other" and filter -------------------------------


def test_fleet_agent_types_read_as_other_and_filter(ours):
    repo = uuid.uuid4()
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        fleet = writer.create_execution(repo, 1, "CoordinatorAgent", "completed", T0, T0)
        writer.create_execution(repo, 2, "SalesAgent", "completed", T0, T0)
    summary = ma.read_summary(ours, repository_id=repo).set_index("id")
    assert summary.loc[str(fleet), "agent_category"] == OTHER_CATEGORY == "other"
    only = ma.read_summary(ours, agent_types=["CoordinatorAgent"])
    assert only["id"].tolist() == [str(fleet)]


def test_upstream_warn_reads_as_warning_and_the_filter_finds_both(ours):
    with ours.begin() as conn:
        writer = UpstreamWriter(conn)
        key = writer.create_execution(uuid.uuid4(), 1, "CoordinatorAgent", "running", T0)
        for level in ("warn", "warning", "info"):
            writer.insert_log(key, level, level)
    logs = ma.read_logs(ours, execution_id=key)
    assert logs["log_level"].astype(object).tolist() == ["warning", "warning", "info"]
    assert sorted(ma.read_logs(ours, levels="warning")["message"]) == ["warn", "warning"]
