"""``watch`` yields every transition another writer commits after the call, once, filtered.

The writers here are not this package: a separate process writing through the bare driver
(tests/db/watch_writer.py) or plain SQL on another engine. Both databases.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import Engine, text
from sqlalchemy.engine import URL

import miyabi_analytics as ma
from miyabi_analytics.live import TransitionEvent
from tests.db.test_tenant_isolation import Tenancy, tenancy  # noqa: F401 (fixture)

REPO = uuid.UUID("6a1c43a1-0c5e-4d7e-9c39-3b0d3f0a9e11")
OTHER = uuid.UUID("0b5e8f0e-7a35-4f5b-8d0e-9b2b6f3f2c10")
WRITER = Path(__file__).with_name("watch_writer.py")
PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


def run_writer(url: URL, repository_id: uuid.UUID, count: int, *extra: str) -> list[str]:
    """Run the bare-driver writer in its own process; its output lines."""
    done = subprocess.run(
        [sys.executable, str(WRITER), url.render_as_string(hide_password=False),
         str(repository_id), str(count), *extra],
        capture_output=True, text=True, check=True, timeout=60,
    )
    return done.stdout.splitlines()


def sql_insert(engine: Engine, repository_id: uuid.UUID, agent_type: str, status: str) -> str:
    execution_id = str(uuid.uuid4())
    with engine.begin() as conn:
        conn.execute(
            text("INSERT INTO agent_executions (id, repository_id, agent_type, status) "
                 "VALUES (:id, :repo, :agent, :status)"),
            {"id": execution_id, "repo": str(repository_id), "agent": agent_type,
             "status": status},
        )
    return execution_id


def sql_move(engine: Engine, execution_id: str, status: str) -> None:
    with engine.begin() as conn:
        conn.execute(
            text("UPDATE agent_executions SET status = :status WHERE id = :id"),
            {"status": status, "id": execution_id},
        )


def table(engine: Engine) -> list[tuple[Any, ...]]:
    """The transitions as stored: id, execution id, from, to, at."""
    with engine.connect() as conn:
        rows = conn.execute(text(
            "SELECT id, execution_id, from_status, to_status FROM agent_execution_transitions "
            "ORDER BY id"
        )).all()
    return [(int(r[0]), uuid.UUID(str(r[1])), r[2], r[3]) for r in rows]


def take(events: Any, count: int) -> list[TransitionEvent]:
    out = []
    for event in events:
        out.append(event)
        if len(out) == count:
            break
    return out


def other_engine(url: URL) -> Engine:
    """A second engine on the same database, as another application would have."""
    return ma.connect(url)


def test_events_from_another_process(engine: Engine, db_url: URL) -> None:
    before = sql_insert(engine, REPO, "SalesAgent", "pending")  # committed before: not yielded
    events = ma.watch(engine, timeout=10)
    lines = run_writer(db_url, REPO, 2)
    got = take(events, 6)
    events.close()
    stored = {row[0]: row for row in table(engine)}
    assert len(got) == 6
    assert [e.execution_id for e in got] == [uuid.UUID(line.split()[0]) for line in lines]
    assert [e.to_status for e in got] == ["pending", "running", "completed"] * 2
    assert [e.from_status for e in got] == [None, "pending", "running"] * 2
    assert all(e.repository_id == REPO and e.agent_type == "SalesAgent" for e in got)
    assert all(e.at.utcoffset() == timedelta(0) for e in got)
    for event in got:
        row = stored[event.transition_id]
        assert (row[1], row[2], row[3]) == (event.execution_id, event.from_status, event.to_status)
    assert uuid.UUID(before) not in {e.execution_id for e in got}
    assert [e.transition_id for e in got] == sorted(e.transition_id for e in got)


def test_filters(engine: Engine, db_url: URL) -> None:
    writer = other_engine(db_url)
    events = ma.watch(engine, timeout=10, repository_id=[REPO], agent_type="SalesAgent",
                      status=("completed", "FAILED"))
    sql_insert(writer, OTHER, "SalesAgent", "pending")
    noise = sql_insert(writer, REPO, "CRMAgent", "running")
    sql_move(writer, noise, "completed")                     # wrong agent type
    wrong_repo = sql_insert(writer, OTHER, "SalesAgent", "running")
    sql_move(writer, wrong_repo, "failed")                   # wrong repository
    wanted = sql_insert(writer, REPO, "SalesAgent", "running")  # running: wrong status
    sql_move(writer, wanted, "completed")
    also = sql_insert(writer, REPO, "SalesAgent", "failed")
    got = take(events, 2)
    rest = list(ma.watch(engine, timeout=0.3, agent_types=["SalesAgent"]))
    events.close()
    writer.dispose()
    assert [(str(e.execution_id), e.to_status) for e in got] == [
        (wanted, "completed"), (also, "failed"),
    ]
    assert rest == []  # nothing after the call


@pytest.mark.parametrize(
    ("filters", "field"),
    [
        ({"colour": "red"}, "colour"),
        ({"statuses_": "completed"}, "statuses_"),
        ({"status": "done"}, "statuses"),
        ({"repository_id": "not-a-uuid"}, "repository_id"),
        ({"agent_type": ""}, "agent_types"),
        ({"agent_type": "A", "agent_types": ["B"]}, "agent_type"),
        ({"timeout": -1}, "timeout"),
    ],
)
def test_bad_filters(engine: Engine, filters: dict[str, Any], field: str) -> None:
    with pytest.raises(ma.ValidationError) as info:
        ma.watch(engine, **filters)
    assert info.value.field == field


def test_rollback_yields_nothing(engine: Engine, db_url: URL) -> None:
    writer = other_engine(db_url)
    events = ma.watch(engine, timeout=10)
    with writer.connect() as conn:
        conn.execute(
            text("INSERT INTO agent_executions (id, repository_id, agent_type, status) "
                 "VALUES (:id, :repo, 'SalesAgent', 'pending')"),
            {"id": str(uuid.uuid4()), "repo": str(REPO)},
        )
        conn.rollback()
    marker = sql_insert(writer, REPO, "CRMAgent", "pending")
    first = next(events)
    events.close()
    writer.dispose()
    assert str(first.execution_id) == marker


def test_timeout_ends_the_iterator(engine: Engine) -> None:
    sql_insert(engine, REPO, "SalesAgent", "pending")
    assert list(ma.watch(engine, timeout=0.2)) == []
    assert list(ma.watch(engine, timeout=0)) == []


def test_timeout_counts_from_the_last_event(engine: Engine, db_url: URL) -> None:
    """Events keep the iterator alive past ``timeout`` seconds in total."""
    writer = other_engine(db_url)
    done = threading.Event()

    def write() -> None:
        for _ in range(6):
            sql_insert(writer, REPO, "SalesAgent", "pending")
            done.wait(0.1)

    events = ma.watch(engine, timeout=0.5)  # before the first write
    thread = threading.Thread(target=write)
    thread.start()
    got = list(events)
    thread.join()
    writer.dispose()
    assert len(got) == 6


def test_many_writers_each_event_once(engine: Engine, db_url: URL) -> None:
    events = ma.watch(engine, timeout=15)
    writers = [
        threading.Thread(target=run_writer, args=(db_url, REPO, 20)) for _ in range(3)
    ]
    for thread in writers:
        thread.start()
    got = take(events, 180)
    for thread in writers:
        thread.join()
    events.close()
    ids = [e.transition_id for e in got]
    assert len(ids) == len(set(ids)) == 180
    assert set(ids) == {row[0] for row in table(engine)}


@PG_ONLY
def test_scoped_engine_sees_only_its_repositories(tenancy: Tenancy) -> None:  # noqa: F811
    with tenancy.owner.begin() as conn:
        conn.execute(text(f'GRANT SELECT ON agent_execution_transitions TO "{tenancy.role}"'))
    scoped = tenancy.scoped(tenancy.repo_a)
    events = ma.watch(scoped, timeout=10)
    unscoped = ma.watch(tenancy.owner, timeout=10)
    for repository_id in (tenancy.repo_b, tenancy.repo_a, tenancy.repo_b, tenancy.repo_a):
        run_writer(tenancy.url, repository_id, 1)
    mine = take(events, 6)
    everyone = take(unscoped, 12)
    more = list(ma.watch(scoped, timeout=0.3, repository_id=tenancy.repo_b))
    events.close()
    unscoped.close()
    assert {e.repository_id for e in mine} == {tenancy.repo_a}
    assert len(mine) == 6
    assert {e.repository_id for e in everyone} == {tenancy.repo_a, tenancy.repo_b}
    assert more == []


@PG_ONLY
def test_no_connection_leaks(empty_url: URL) -> None:
    engine = ma.connect(empty_url)
    ma.migrate(engine)
    admin = ma.connect(empty_url)

    def backends() -> int:
        with admin.connect() as conn:
            return int(conn.execute(text(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND pid <> pg_backend_pid()"
            )).scalar_one())

    list(ma.watch(engine, timeout=0))  # the engine's pool holds its one connection from now
    baseline = backends()
    for n in range(60):
        events = ma.watch(engine, timeout=5)
        assert engine.pool.checkedout() == 0  # type: ignore[attr-defined]
        if n % 3 == 0:
            events.close()
        elif n % 3 == 1:
            sql_insert(admin, REPO, "SalesAgent", "pending")
            for _ in events:
                break  # and the generator is dropped
        del events  # garbage: closed by its finaliser
    opened = [ma.watch(engine) for _ in range(5)]
    assert backends() == baseline + 5
    for events in opened:
        events.close()
    deadline = time.monotonic() + 10  # a closed backend leaves pg_stat_activity a moment later
    while backends() != baseline and time.monotonic() < deadline:
        time.sleep(0.02)
    assert backends() == baseline
    engine.dispose()
    admin.dispose()


@PG_ONLY
def test_sqlite_memory_is_refused_and_pg_password_never_shown(engine: Engine) -> None:
    memory = ma.connect("sqlite://")
    with pytest.raises(ma.ValidationError) as info:
        ma.watch(memory)
    assert info.value.field == "engine"
    with ma.watch(engine, timeout=0) as events:
        assert "password" not in repr(events)
        assert "open" in repr(events)
    assert "closed" in repr(events)
    assert list(events) == []
