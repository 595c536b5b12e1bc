"""A watcher whose connection is killed reconnects and catches up: no transition lost or repeated.

While a writer process commits 200 transitions over about three seconds, the listening backend is
terminated twice (``pg_terminate_backend``); the watcher must still yield every transition id of
the table exactly once. PostgreSQL only: SQLite's watcher has no server connection to lose.
"""

from __future__ import annotations

import threading
import uuid
from collections import Counter

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

import miyabi_analytics as ma
from miyabi_analytics.live import TransitionEvent
from miyabi_analytics.live._postgres import APPLICATION_NAME
from tests.db.test_tenant_isolation import Tenancy, tenancy  # noqa: F401 (fixture)
from tests.db.test_watch import REPO, run_writer, table

pytestmark = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)

EXECUTIONS = 67  # 3 transitions each: 201


def kill_watchers(engine: Engine) -> int:
    """Terminate the listening backends of this database; how many there were."""
    with engine.connect() as conn:
        killed = conn.execute(text(
            "SELECT count(*) FILTER (WHERE pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = :name"
        ), {"name": APPLICATION_NAME}).scalar_one()
    return int(killed)


def test_killed_backend_loses_and_repeats_nothing(engine: Engine, db_url: URL) -> None:
    events = ma.watch(engine, timeout=3)
    got: list[TransitionEvent] = []
    # about 3 s of commits, so the second kill comes after the horizon was refreshed
    writer = threading.Thread(target=run_writer, args=(db_url, REPO, EXECUTIONS, "0.012"))
    writer.start()
    kills = []
    for event in events:
        got.append(event)
        if len(got) in (20, 150):
            kills.append(kill_watchers(engine))
        if len(got) == 3 * EXECUTIONS:
            break
    writer.join()
    extra = list(events)  # nothing more within 3 s of the last commit: no late repeats
    events.close()
    assert kills == [1, 1]
    ids = [e.transition_id for e in got]
    assert max(Counter(ids).values()) == 1
    assert set(ids) == {row[0] for row in table(engine)}
    assert extra == []


def test_killed_while_idle_then_catches_up(engine: Engine, db_url: URL) -> None:
    """Commits made while the watcher is reconnecting are read from the table."""
    events = ma.watch(engine, timeout=20)
    assert kill_watchers(engine) == 1
    lines = run_writer(db_url, REPO, 3)  # likely before the watcher notices: catch-up
    got = [next(events) for _ in range(9)]
    events.close()
    assert [e.execution_id for e in got] == [uuid.UUID(line.split()[0]) for line in lines]
    assert [e.transition_id for e in got] == [row[0] for row in table(engine)]


def test_scoped_catch_up_reads_only_its_repositories(tenancy: Tenancy) -> None:  # noqa: F811
    """The catch-up runs under the scope on the watcher's own connection."""
    with tenancy.owner.begin() as conn:
        conn.execute(text(f'GRANT SELECT ON agent_execution_transitions TO "{tenancy.role}"'))
    scoped = tenancy.scoped(tenancy.repo_a)
    events = ma.watch(scoped, timeout=3)
    assert kill_watchers(tenancy.owner) == 1
    for repository_id in (tenancy.repo_b, tenancy.repo_a, tenancy.repo_b):
        run_writer(tenancy.url, repository_id, 2)
    got = list(events)
    assert len(got) == 6
    assert {e.repository_id for e in got} == {tenancy.repo_a}
