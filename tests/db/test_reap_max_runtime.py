"""``reap(max_runtime=...)``: executions that never send a heartbeat (issue 14, item 7).

The upstream Rust writers never send heartbeats, so heartbeat age must not fail their running
executions; a runtime limit does, counted from ``started_at`` (``created_at`` without one).
"""

import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, event, select, text, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions

NOW = datetime.now(UTC)
AGENT = ma.SalesAgent()
RUNTIME_2H = "reaped: running for more than 2h without a heartbeat"
STALE_30M = "reaped: no heartbeat for 30m"


def stored(engine: Engine, execution_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(executions).where(executions.c.id == execution_id)).one()
    return row._asdict()


def change(engine: Engine, execution_id: uuid.UUID, **values: Any) -> None:
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == execution_id).values(**values))


def running(
    engine: Engine,
    started: datetime | None,
    *,
    beat: datetime | None = None,
    created: datetime | None = None,
) -> uuid.UUID:
    builder = AGENT.builder(uuid.uuid4()).status("running")
    if started is not None:
        builder = builder.started_at(started)
    record = builder.build()
    AGENT.save_execution(engine, record)
    if beat is not None:
        change(engine, record.id, last_heartbeat_at=beat)
    if started is None:
        # Entering running stamps started_at (revision 0008); clear it as plain SQL can.
        change(engine, record.id, started_at=None, created_at=created or NOW)
    return record.id


@pytest.fixture
def fleet(engine: Engine) -> dict[str, uuid.UUID]:
    ago = lambda **kw: NOW - timedelta(**kw)  # noqa: E731
    ids = {
        "never_beat_old": running(engine, ago(hours=3)),
        "never_beat_young": running(engine, ago(hours=1)),
        "never_started_old": running(engine, None, created=ago(hours=3)),
        "never_started_young": running(engine, None, created=ago(hours=1)),
        "beating": running(engine, ago(hours=3), beat=ago(minutes=1)),
        "stale_beat": running(engine, ago(hours=3), beat=ago(minutes=40)),
        "ancient_never_beat": running(engine, ago(days=30)),
    }
    done = AGENT.builder(uuid.uuid4()).status("completed").started_at(ago(days=30))
    record = done.completed_at(ago(days=29)).build()
    AGENT.save_execution(engine, record)
    ids["completed"] = record.id
    return ids


def statuses(engine: Engine, ids: dict[str, uuid.UUID]) -> dict[str, tuple[str, str | None]]:
    out = {}
    for name, key in ids.items():
        row = stored(engine, key)
        out[name] = (row["status"], row["error_message"])
    return out


def test_stale_after_alone_leaves_executions_that_never_beat(engine, fleet):
    store = ma.ExecutionStore(engine)
    assert store.count_stuck("30m") == 1
    assert store.reap(timedelta(minutes=30)) == 1
    got = statuses(engine, fleet)
    assert got["stale_beat"] == ("failed", STALE_30M)
    # Thirty days without a heartbeat, yet not reaped by heartbeat age: it never sent one.
    assert got["ancient_never_beat"] == ("running", None)
    assert got["never_started_old"] == ("running", None)
    assert sum(status == "failed" for status, _ in got.values()) == 1


def test_max_runtime_alone_fails_only_the_long_runs_that_never_beat(engine, fleet):
    store = ma.ExecutionStore(engine)
    before = {name: stored(engine, key) for name, key in fleet.items()}
    assert store.count_stuck(max_runtime="2h") == 3
    reaped = store.reap(max_runtime=timedelta(hours=2))
    print(f"\nreap --max-runtime 2h: {reaped} of {len(fleet)} executions reaped")
    assert reaped == 3
    failed = {"never_beat_old", "never_started_old", "ancient_never_beat"}
    for name, key in fleet.items():
        row = stored(engine, key)
        if name in failed:
            assert (row["status"], row["error_message"]) == ("failed", RUNTIME_2H), name
            assert abs(row["completed_at"] - datetime.now(UTC)) < timedelta(minutes=1)
            assert row["updated_at"] == row["completed_at"]
            assert row["started_at"] == before[name]["started_at"]
        else:
            # The stale heartbeat is not max_runtime's to judge: it sends heartbeats.
            assert row == before[name], name
    assert store.reap(max_runtime="2h") == 0


def test_both_rules_in_one_update_each_row_says_why(engine, fleet):
    updates: list[str] = []

    def spy(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE"):
            updates.append(statement)

    event.listen(engine, "before_cursor_execute", spy)
    try:
        reaped = ma.ExecutionStore(engine).reap("30m", max_runtime="2h")
    finally:
        event.remove(engine, "before_cursor_execute", spy)
    assert reaped == 4
    assert len(updates) == 1  # set-based: one statement for both rules
    got = statuses(engine, fleet)
    assert got["stale_beat"] == ("failed", STALE_30M)
    for name in ("never_beat_old", "never_started_old", "ancient_never_beat"):
        assert got[name] == ("failed", RUNTIME_2H)
    for name in ("never_beat_young", "never_started_young", "beating"):
        assert got[name] == ("running", None)
    assert got["completed"] == ("completed", None)


def test_upstream_row_without_started_at_goes_by_created_at(engine):
    # A row as the upstream writer leaves it: plain SQL naming only its columns, no heartbeat.
    key = uuid.uuid4()
    with engine.begin() as conn:
        conn.execute(
            executions.insert().values(
                id=key, repository_id=uuid.uuid4(), agent_type="SalesAgent",
                status="pending", created_at=NOW - timedelta(hours=5), updated_at=NOW,
            )
        )
        conn.execute(update(executions).where(executions.c.id == key).values(status="running"))
        conn.execute(update(executions).where(executions.c.id == key).values(started_at=None))
    store = ma.ExecutionStore(engine)
    assert store.reap("1m") == 0
    assert store.reap(max_runtime="6h") == 0
    assert store.reap(max_runtime="4h") == 1
    row = stored(engine, key)
    assert (row["status"], row["error_message"]) == (
        "failed", "reaped: running for more than 4h without a heartbeat"
    )


@pytest.mark.parametrize(
    "bad", [timedelta(0), timedelta(seconds=-1), timedelta(days=40_000), "0h", "-2h",
            "two hours", "2 h", 7200]
)
def test_bad_max_runtime_is_refused_naming_the_field(engine, fleet, bad):
    store = ma.ExecutionStore(engine)
    before = statuses(engine, fleet)
    for call in (store.reap, store.count_stuck):
        with pytest.raises(ma.ValidationError) as caught:
            call("30m", max_runtime=bad)
        assert caught.value.field == "max_runtime"
        assert "max_runtime" in str(caught.value)
    assert statuses(engine, fleet) == before


def test_no_rule_at_all_is_refused(engine, fleet):
    store = ma.ExecutionStore(engine)
    before = statuses(engine, fleet)
    with pytest.raises(ma.ValidationError, match="max_runtime"):
        store.reap()
    with pytest.raises(ma.ValidationError, match="max_runtime"):
        store.count_stuck()
    assert statuses(engine, fleet) == before


def _wait_until_blocked(engine: Engine, dialect: str) -> None:
    if dialect == "sqlite":
        time.sleep(0.5)  # reap waits for the write lock (busy timeout); nothing to observe
        return
    deadline = time.monotonic() + 10
    with engine.connect() as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                text(
                    "SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' "
                    "AND datname = current_database()"
                )
            ).scalar_one()
            conn.rollback()  # pg_stat_activity is a snapshot per transaction
            if waiting:
                return
            time.sleep(0.05)
    raise AssertionError("reap never waited for the row lock")


def test_an_execution_completed_meanwhile_is_skipped_not_overwritten(engine, dialect):
    key = running(engine, NOW - timedelta(hours=3))
    result: dict[str, Any] = {}
    with engine.connect() as writer:
        writer.begin()
        # The concurrent writer completes it and holds the row (PostgreSQL) or the database
        # (SQLite) until it commits.
        writer.execute(
            update(executions)
            .where(executions.c.id == key)
            .values(status="completed", completed_at=datetime.now(UTC))
        )
        def reap() -> None:
            try:
                result["n"] = ma.ExecutionStore(engine).reap(max_runtime="2h")
            except BaseException as exc:  # shown by the assertion below
                result["error"] = exc

        thread = threading.Thread(target=reap)
        thread.start()
        _wait_until_blocked(engine, dialect)
        writer.commit()
        thread.join(30)
    assert not thread.is_alive()
    assert result == {"n": 0}  # skipped: neither overwritten nor refused by the trigger
    row = stored(engine, key)
    assert (row["status"], row["error_message"]) == ("completed", None)
