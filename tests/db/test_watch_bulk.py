"""A bulk INSERT is announced once on PostgreSQL; ``watch`` still yields each of its rows once.

Both databases: SQLite's polling never relied on notifications, so it is the same contract.
"""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

from sqlalchemy import Engine
from sqlalchemy.engine import URL

import miyabi_analytics as ma
from miyabi_analytics._db.rules.history import ANNOUNCED_ROWS
from tests.db.test_watch import OTHER, REPO, table, take

T0 = datetime(2026, 2, 1, tzinfo=UTC)


def _history(repository_id: uuid.UUID, count: int) -> list[ma.AgentExecutionResult]:
    agent = ma.SalesAgent()
    return [
        agent.builder(repository_id).status("completed").started_at(T0 + timedelta(minutes=n))
        .completed_at(T0 + timedelta(minutes=n, seconds=5)).quality_score(50).build()
        for n in range(count)
    ]


def test_bulk_insert_rows_each_yielded_once_and_filtered(engine: Engine, db_url: URL) -> None:
    size = ANNOUNCED_ROWS * 3
    mine, theirs = _history(REPO, size), _history(OTHER, size)
    writer = ma.connect(db_url)  # another application's engine
    events = ma.watch(engine, timeout=10, repository_id=REPO)
    try:
        thread = threading.Thread(
            target=lambda: [ma.ExecutionStore(writer).save_executions(h) for h in (theirs, mine)]
        )
        thread.start()
        got = take(events, size)
        thread.join()
    finally:
        events.close()
        writer.dispose()
    assert sorted(e.execution_id for e in got) == sorted(r.id for r in mine)
    assert len({e.transition_id for e in got}) == size
    stored = {row[0]: row for row in table(engine)}
    assert all(stored[e.transition_id][1] == e.execution_id for e in got)
    assert [e.transition_id for e in got] == sorted(e.transition_id for e in got)
