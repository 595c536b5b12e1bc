"""On an adopted upstream Miyabi database, the Rust agents' own statements leave the history.

The writer is upstream's (persistence.rs / business_agent_service.rs statements, tests/upstream.py)
under a role of its own that was granted the upstream tables only, as a deployed agent's role
would be: the history table is the database's to write (SECURITY DEFINER), so the agents need no
new grant, and a watcher and the replay see their lifecycle.
"""

from __future__ import annotations

import secrets
import uuid
from collections.abc import Iterator

import pytest
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import URL

import miyabi_analytics as ma
from tests.upstream import UpstreamWriter, upstream_url  # noqa: F401 (fixture)

PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
UPSTREAM_TABLES = "users, repositories, agent_executions, business_agent_analytics, " \
    "agent_execution_logs"


@pytest.fixture
def agent_role(upstream_url: URL) -> Iterator[URL]:  # noqa: F811
    """The adopted database's URL for a role with upstream's grants only."""
    owner = ma.connect(upstream_url)
    ma.migrate(owner)
    role = f"miyabi_agent_{uuid.uuid4().hex[:10]}"
    password = secrets.token_hex(12)
    with owner.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN PASSWORD \'{password}\''))
        conn.execute(text(f'GRANT USAGE ON SCHEMA public TO "{role}"'))
        conn.execute(text(f'GRANT SELECT, INSERT, UPDATE ON {UPSTREAM_TABLES} TO "{role}"'))
    try:
        yield upstream_url.set(username=role, password=password)
    finally:
        with owner.begin() as conn:
            conn.execute(text(f'DROP OWNED BY "{role}"'))
            conn.execute(text(f'DROP ROLE "{role}"'))
        owner.dispose()


@PG_ONLY
def test_upstream_agents_lifecycle_is_recorded_watched_and_replayed(
    upstream_url: URL, agent_role: URL  # noqa: F811
) -> None:
    owner = ma.connect(upstream_url)
    agent: Engine = create_engine(agent_role)
    try:
        with agent.begin() as conn:
            writer = UpstreamWriter(conn)
            user = writer.insert_user(4242, "agent@example.com")
            repo = writer.insert_repository(user, 777, "fleet")
        events = ma.watch(owner, timeout=10, repository_id=repo)
        with agent.begin() as conn:
            writer = UpstreamWriter(conn)
            row = writer.insert_pending(user, repo, "SalesAgent", 12)
        with agent.begin() as conn:
            UpstreamWriter(conn).start(row["id"])
        with agent.begin() as conn:
            writer = UpstreamWriter(conn)
            writer.save_analysis_metrics(row["id"], {"roi_percent": 12.5})  # not a move
            writer.complete(row["id"], "completed", result={"ok": True}, quality_score=88)
        got = []
        for event in events:
            got.append(event)
            if len(got) == 3:
                break
        events.close()
        history = ma.read_transitions(owner, execution_id=row["id"])
        timeline = ma.replay(owner, row["id"])
    finally:
        agent.dispose()
        owner.dispose()
    moves = [(e.from_status, e.to_status) for e in got]
    assert moves == [(None, "pending"), ("pending", "running"), ("running", "completed")]
    assert {e.execution_id for e in got} == {row["id"]}
    assert history["to_status"].astype(str).tolist() == ["pending", "running", "completed"]
    assert history["quality_score"].tolist()[-1] == 88
    states = timeline[timeline["kind"] == "transition"]
    assert states["to_status"].astype(str).tolist() == ["pending", "running", "completed"]
