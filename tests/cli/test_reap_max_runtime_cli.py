"""``miyabi-analytics reap --max-runtime`` (issue 14, item 7): what it prints and refuses."""

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions
from miyabi_analytics.cli import main

NOW = datetime.now(UTC)
AGENT = ma.SalesAgent()


def running(engine, started, beat=None):
    record = AGENT.builder(uuid.uuid4()).status("running").started_at(started).build()
    AGENT.save_execution(engine, record)
    if beat is not None:
        with engine.begin() as conn:
            conn.execute(
                update(executions)
                .where(executions.c.id == record.id)
                .values(last_heartbeat_at=beat)
            )
    return record.id


def messages(engine):
    with engine.connect() as conn:
        rows = conn.execute(select(executions.c.status, executions.c.error_message)).all()
    return sorted((status, message or "") for status, message in rows)


def test_cli_reap_max_runtime_alone(engine, db_url, capsys):
    url = db_url.render_as_string(hide_password=False)
    for _ in range(2):
        running(engine, NOW - timedelta(hours=3))
    running(engine, NOW - timedelta(hours=3), beat=NOW - timedelta(hours=3))
    running(engine, NOW - timedelta(minutes=10))
    assert main(["reap", "--url", url, "--max-runtime", "2h"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert out == "reaped 2 running executions that ran for more than 2h without a heartbeat\n"
    assert messages(engine) == [
        ("failed", "reaped: running for more than 2h without a heartbeat"),
        ("failed", "reaped: running for more than 2h without a heartbeat"),
        ("running", ""),
        ("running", ""),
    ]


def test_cli_reap_both_rules(engine, db_url, capsys):
    url = db_url.render_as_string(hide_password=False)
    running(engine, NOW - timedelta(hours=3))
    running(engine, NOW - timedelta(hours=3), beat=NOW - timedelta(hours=1))
    running(engine, NOW - timedelta(hours=3), beat=NOW - timedelta(minutes=1))
    assert main(["reap", "--url", url, "--stale-after", "30m", "--max-runtime", "2h"]) == 0
    out = capsys.readouterr().out
    print(out)
    assert out == (
        "reaped 2 running executions with no heartbeat for 30m, "
        "or that ran for more than 2h without a heartbeat\n"
    )
    assert messages(engine) == [
        ("failed", "reaped: no heartbeat for 30m"),
        ("failed", "reaped: running for more than 2h without a heartbeat"),
        ("running", ""),
    ]


def test_cli_reap_without_a_rule_exits_2(engine, db_url, capsys):
    url = db_url.render_as_string(hide_password=False)
    running(engine, NOW - timedelta(days=3))
    assert main(["reap", "--url", url]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1
    assert "--max-runtime" in err
    assert "--stale-after" in err
    assert messages(engine) == [("running", "")]


@pytest.mark.parametrize("value", ["", "2", "h", "1.5h", "-2h", "0h", "2w", "10000000d", "soon"])
def test_cli_reap_bad_max_runtime_exits_2(engine, db_url, capsys, value):
    url = db_url.render_as_string(hide_password=False)
    running(engine, NOW - timedelta(days=3))
    with pytest.raises(SystemExit) as exited:
        main(["reap", "--url", url, "--max-runtime", value])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert "--max-runtime" in err
    assert "Traceback" not in err
    assert messages(engine) == [("running", "")]
