"""``replay`` reads the execution, its transitions and its logs from one snapshot (PostgreSQL).

A status change that commits between its statements must not show in the later ones.
"""

from __future__ import annotations

import uuid
from typing import Any

import pytest
from sqlalchemy import Engine, event, text

import miyabi_analytics as ma
from tests.db.test_database_rules import upstream_insert

REPO = uuid.UUID("0c1c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


@PG_ONLY
def test_a_move_committed_mid_replay_is_not_half_seen(engine: Engine, db_url: Any) -> None:
    with engine.begin() as conn:
        ex = upstream_insert(conn, repository_id=REPO, agent_type="SalesAgent", status="running")
    other = ma.connect(db_url)
    fired: list[bool] = []

    def between(conn: Any, cursor: Any, statement: str, *args: Any) -> None:
        if "agent_execution_transitions" in statement and not fired:
            fired.append(True)
            with other.begin() as writer:  # commits while the replay is between statements
                writer.execute(
                    text("UPDATE agent_executions SET status = 'completed' WHERE id = :id"),
                    {"id": str(ex)},
                )

    event.listen(engine, "before_cursor_execute", between)
    try:
        timeline = ma.replay(engine, ex)
    finally:
        event.remove(engine, "before_cursor_execute", between)
        other.dispose()
    assert fired == [True]
    assert timeline["to_status"].dropna().astype(str).tolist() == ["running"]
    assert ma.replay(engine, ex)["to_status"].dropna().astype(str).tolist() == [
        "running", "completed"
    ]
