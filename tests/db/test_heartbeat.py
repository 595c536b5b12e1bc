"""Heartbeats, stuck executions and ``miyabi-analytics reap`` (migration 0004_heartbeat)."""

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine, select, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions
from miyabi_analytics.cli import main

NOW = datetime.now(UTC)
AGENT = ma.SalesAgent()


def stored(engine: Engine, execution_id: uuid.UUID) -> dict[str, Any]:
    with engine.connect() as conn:
        row = conn.execute(select(executions).where(executions.c.id == execution_id)).one()
    return row._asdict()


def set_heartbeat(engine: Engine, execution_id: uuid.UUID, when: datetime | None) -> None:
    with engine.begin() as conn:
        conn.execute(
            update(executions)
            .where(executions.c.id == execution_id)
            .values(last_heartbeat_at=when)
        )


def running(engine: Engine, started: datetime | None, **changes: Any) -> ma.AgentExecutionResult:
    builder = AGENT.builder(uuid.uuid4()).status("running")
    if started is not None:
        builder = builder.started_at(started)
    record: ma.AgentExecutionResult = builder.build()
    if changes:
        record = record.evolve(**changes)
    AGENT.save_execution(engine, record)
    return record


# -- heartbeat ---------------------------------------------------------------------------------


def test_heartbeat_stamps_a_running_execution(engine):
    record = running(engine, NOW - timedelta(minutes=5))
    before = stored(engine, record.id)
    assert before["last_heartbeat_at"] is None

    stamped = AGENT.heartbeat(engine, record.id)
    after = stored(engine, record.id)
    assert after["last_heartbeat_at"] == stamped
    assert stamped.tzinfo is not None
    assert abs(stamped - datetime.now(UTC)) < timedelta(minutes=1)
    assert after["updated_at"] == before["updated_at"]  # a heartbeat is not a save
    assert ma.ExecutionStore(engine).heartbeat(str(record.id)) > stamped


@pytest.mark.parametrize("path", ["single", "bulk"])
def test_saving_the_record_keeps_its_heartbeat(engine, path):
    record = running(engine, NOW - timedelta(minutes=5))
    stamped = AGENT.heartbeat(engine, record.id)
    store = ma.ExecutionStore(engine)
    again = record.evolve(quality_score=7)
    done = record.evolve(status="completed", completed_at=NOW)
    for step in (again, done):
        if path == "single":
            AGENT.save_execution(engine, step)
        else:
            store.save_executions([step])
        assert stored(engine, record.id)["last_heartbeat_at"] == stamped
    assert stored(engine, record.id)["status"] == "completed"
    # The record read back has no heartbeat field; reading it still works.
    assert store.get_execution(record.id).status is ma.ExecutionStatus.COMPLETED


def test_heartbeat_of_an_unknown_execution_is_not_found(engine):
    missing = uuid.uuid4()
    with pytest.raises(ma.NotFound, match=str(missing)):
        AGENT.heartbeat(engine, missing)
    with pytest.raises(ma.ValidationError, match="execution_id"):
        AGENT.heartbeat(engine, "not-a-uuid")


@pytest.mark.parametrize("status", ["pending", "completed", "failed"])
def test_only_running_executions_take_a_heartbeat(engine, status):
    builder = AGENT.builder(uuid.uuid4()).status(status)
    if status != "pending":
        builder = builder.started_at(NOW - timedelta(hours=1)).completed_at(NOW)
    record = builder.build()
    AGENT.save_execution(engine, record)
    before = stored(engine, record.id)
    with pytest.raises(ma.ValidationError, match=f"'{status}'") as caught:
        AGENT.heartbeat(engine, record.id)
    assert caught.value.field == "status"
    assert caught.value.value == status
    assert stored(engine, record.id) == before


def test_an_agent_cannot_heartbeat_another_agents_execution(engine):
    record = running(engine, NOW)
    with pytest.raises(ma.ValidationError, match="belongs to SalesAgent") as caught:
        ma.CRMAgent().heartbeat(engine, record.id)
    assert caught.value.field == "agent_type"
    assert stored(engine, record.id)["last_heartbeat_at"] is None


# -- reap --------------------------------------------------------------------------------------


def test_reap_fails_silent_running_executions_only(engine):
    store = ma.ExecutionStore(engine)
    old = NOW - timedelta(hours=2)
    silent = running(engine, old)  # started 2h ago, beat once, 90 minutes ago
    set_heartbeat(engine, silent.id, NOW - timedelta(minutes=90))
    never_beat = running(engine, old)  # started 2h ago, never beat: not judged by silence
    beating = running(engine, old)  # started 2h ago, beat a minute ago
    set_heartbeat(engine, beating.id, NOW - timedelta(minutes=1))
    stale_beat = running(engine, old)  # its last beat is 40 minutes old
    set_heartbeat(engine, stale_beat.id, NOW - timedelta(minutes=40))
    fresh = running(engine, NOW - timedelta(minutes=5))  # started recently, no beat yet
    never_started = running(engine, None)  # goes by created_at, which is now
    pending = AGENT.builder(uuid.uuid4()).started_at(old).build()
    AGENT.save_execution(engine, pending)
    done = AGENT.builder(uuid.uuid4()).status("completed").started_at(old).completed_at(old)
    done_record = done.build()
    AGENT.save_execution(engine, done_record)
    untouched = {
        r.id: stored(engine, r.id)
        for r in (never_beat, beating, fresh, never_started, pending, done_record)
    }

    assert store.count_stuck(timedelta(minutes=30)) == 2
    reaped = store.reap(timedelta(minutes=30))
    print(f"\nreap --stale-after 30m: {reaped} of 8 executions reaped")
    assert reaped == 2
    for record in (silent, stale_beat):
        row = stored(engine, record.id)
        assert row["status"] == "failed"
        assert row["error_message"] == "reaped: no heartbeat for 30m"
        assert abs(row["completed_at"] - datetime.now(UTC)) < timedelta(minutes=1)
        assert row["updated_at"] == row["completed_at"]
        assert row["started_at"] == old
    for key, row in untouched.items():
        assert stored(engine, key) == row
    assert store.count_stuck("30m") == 0
    assert store.reap("30m") == 0  # nothing left to do

    # The lifecycle holds: a late "completed" from the lost agent is refused.
    with pytest.raises(ma.InvalidStatusTransition):
        AGENT.save_execution(engine, silent.evolve(status="completed", completed_at=NOW))
    # ... and a reaped execution takes no heartbeat.
    with pytest.raises(ma.ValidationError, match="'failed'"):
        AGENT.heartbeat(engine, silent.id)


def test_never_started_running_executions_go_by_created_at(engine):
    # Updated for issue 14: with no heartbeat ever, stale_after leaves it alone and
    # max_runtime judges it by created_at.
    store = ma.ExecutionStore(engine)
    record = running(engine, None)
    with engine.begin() as conn:
        # Entering running stamps started_at (revision 0008): a never-started running row is
        # one whose started_at was cleared afterwards (a re-save with None, plain SQL).
        conn.execute(
            update(executions)
            .where(executions.c.id == record.id)
            .values(created_at=NOW - timedelta(days=2), started_at=None)
        )
    assert store.count_stuck("1d") == 0
    assert store.reap("1d") == 0
    assert store.count_stuck(max_runtime="1d") == 1
    assert store.reap(max_runtime="1d") == 1
    row = stored(engine, record.id)
    assert (row["status"], row["error_message"]) == (
        "failed", "reaped: running for more than 1d without a heartbeat"
    )
    assert row["started_at"] is None


@pytest.mark.parametrize(
    "bad", [timedelta(0), timedelta(seconds=-1), timedelta(days=40_000), "0s", "5 minutes", 30]
)
def test_reap_refuses_bad_durations(engine, bad):
    running(engine, NOW - timedelta(days=1))
    store = ma.ExecutionStore(engine)
    with pytest.raises(ma.ValidationError, match="stale_after"):
        store.reap(bad)
    with pytest.raises(ma.ValidationError, match="stale_after"):
        store.count_stuck(bad)
    assert store.count_stuck(max_runtime="1h") == 1  # never beat: max_runtime's to judge


# -- CLI ---------------------------------------------------------------------------------------


def test_cli_reap(engine, db_url, capsys):
    url = db_url.render_as_string(hide_password=False)
    for _ in range(3):
        record = running(engine, NOW - timedelta(hours=3))
        set_heartbeat(engine, record.id, NOW - timedelta(hours=3))
    running(engine, NOW - timedelta(hours=3))  # never beat: not reaped by --stale-after
    running(engine, NOW)
    assert main(["reap", "--url", url, "--stale-after", "2h"]) == 0
    out = capsys.readouterr().out
    assert out.strip() == "reaped 3 running executions with no heartbeat for 2h"
    assert main(["reap", "--url", url, "--stale-after", "7200s"]) == 0
    assert capsys.readouterr().out.startswith("reaped 0 ")
    with engine.connect() as conn:
        messages = set(conn.execute(select(executions.c.error_message)).scalars())
    assert messages == {"reaped: no heartbeat for 2h", None}


@pytest.mark.parametrize("value", ["", "30", "m", "1.5h", "-5m", "0m", "2w", "10000000d", "1h30m"])
def test_cli_reap_bad_duration_exits_2(db_url, capsys, value):
    url = db_url.render_as_string(hide_password=False)
    with pytest.raises(SystemExit) as exited:
        main(["reap", "--url", url, "--stale-after", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--stale-after" in err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("text", "expected"),
    [("90s", timedelta(seconds=90)), ("30m", timedelta(minutes=30)), ("2h", timedelta(hours=2)),
     ("7d", timedelta(days=7)), (" 15M ", timedelta(minutes=15))],
)
def test_duration_syntax(text, expected):
    from miyabi_analytics._durations import format_duration, parse_duration

    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected
