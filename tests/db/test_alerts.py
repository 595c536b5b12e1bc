"""``alerts.check`` (issue 15, item 5): each rule breached and not, on planted histories."""

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import update

import miyabi_analytics as ma
from miyabi_analytics._db.migrate import head_revision
from miyabi_analytics._db.schema import executions
from miyabi_analytics.alerts import Verdict, check, verdict_lines, verdicts_json

NOW = datetime(2026, 12, 4, 12, 0, tzinfo=UTC)
SINCE_TEXT = "2026-12-03T12:00:00Z"
AGENT = ma.SalesAgent()
REPO = uuid.uuid4()


def finished(status, started, quality=None):
    builder = (
        AGENT.builder(REPO)
        .status(status)
        .started_at(started)
        .completed_at(started + timedelta(minutes=3))
    )
    if quality is not None:
        builder = builder.quality_score(quality)
    return builder.build()


def plant(engine, records):
    ma.ExecutionStore(engine).save_executions(records, progress=False)


def running(engine, started, beat=None):
    record = AGENT.builder(REPO).status("running").started_at(started).build()
    AGENT.save_execution(engine, record)
    if beat is not None:
        with engine.begin() as conn:
            conn.execute(
                update(executions)
                .where(executions.c.id == record.id)
                .values(last_heartbeat_at=beat)
            )


def outcomes(engine, completed, failed, *, started=NOW - timedelta(hours=2)):
    plant(
        engine,
        [finished("completed", started) for _ in range(completed)]
        + [finished("failed", started) for _ in range(failed)],
    )


def test_failure_rate_breached_counts_only_finished_runs_of_the_window(engine):
    outcomes(engine, 35, 5)
    outcomes(engine, 0, 20, started=NOW - timedelta(hours=30))  # before the window
    running(engine, NOW - timedelta(minutes=5))  # not finished: not in the rate
    plant(engine, [AGENT.builder(REPO).build()])  # pending, never started
    [verdict] = check(engine, max_failure_rate=0.1, now=NOW)
    assert verdict == Verdict(
        rule="failure-rate",
        breached=True,
        value=0.125,
        limit=0.1,
        executions=40,
        message=(
            f"failure-rate: 12.5% of 40 finished executions failed since {SINCE_TEXT} "
            "(limit 10.0%)"
        ),
    )
    assert verdict_lines([verdict]) == [f"BREACHED {verdict.message}"]


def test_failure_rate_at_the_limit_is_not_breached(engine):
    outcomes(engine, 36, 4)
    [verdict] = check(engine, max_failure_rate=0.1, now=NOW)
    assert (verdict.breached, verdict.value, verdict.executions) == (False, 0.1, 40)
    assert verdict_lines([verdict]) == [
        f"OK failure-rate: 10.0% of 40 finished executions failed since {SINCE_TEXT} "
        "(limit 10.0%)"
    ]


def test_failure_rate_window_follows_since(engine):
    outcomes(engine, 10, 0, started=NOW - timedelta(hours=2))
    outcomes(engine, 0, 10, started=NOW - timedelta(hours=5))
    [short] = check(engine, since="3h", max_failure_rate=0.5, now=NOW)
    [long] = check(engine, since=timedelta(hours=6), max_failure_rate=0.5, now=NOW)
    assert (short.breached, short.value, short.executions) == (False, 0.0, 10)
    assert (long.breached, long.value, long.executions) == (False, 0.5, 20)
    [strict] = check(engine, since="6h", max_failure_rate=0.49, now=NOW)
    assert strict.breached


def test_quality_below_minimum_is_breached_over_scored_runs(engine):
    plant(
        engine,
        [finished("completed", NOW - timedelta(hours=1), q) for q in (60, 70, 65)]
        + [finished("completed", NOW - timedelta(hours=1))]  # unscored: not in the mean
        + [finished("completed", NOW - timedelta(days=3), 10)],  # before the window
    )
    [verdict] = check(engine, min_quality=70, now=NOW)
    assert verdict == Verdict(
        rule="quality",
        breached=True,
        value=65.0,
        limit=70.0,
        executions=3,
        message=f"quality: mean 65.0 over 3 scored executions since {SINCE_TEXT} (minimum 70.0)",
    )
    [relaxed] = check(engine, min_quality=65, now=NOW)
    assert not relaxed.breached


def test_rules_without_data_are_not_breached_and_say_so(engine):
    running(engine, NOW - timedelta(minutes=1))
    verdicts = check(engine, max_failure_rate=0.0, min_quality=100, now=NOW)
    assert [(v.rule, v.breached, v.value, v.executions) for v in verdicts] == [
        ("failure-rate", False, None, 0),
        ("quality", False, None, 0),
    ]
    assert verdict_lines(verdicts) == [
        f"OK failure-rate: no finished executions since {SINCE_TEXT} (limit 0.0%); "
        f"quality: no scored executions since {SINCE_TEXT} (minimum 100.0)"
    ]


def test_stale_counts_stuck_runs_as_reap_would(engine):
    now = datetime.now(UTC)
    running(engine, now - timedelta(hours=2), beat=now - timedelta(minutes=45))  # silent 45m
    running(engine, now - timedelta(hours=2), beat=now - timedelta(minutes=1))  # alive
    running(engine, now - timedelta(minutes=40))  # no heartbeat, runs 40m: under 2 x 30m
    [verdict] = check(engine, stale_after="30m")
    assert (verdict.rule, verdict.breached, verdict.value, verdict.limit) == ("stale", True, 1, 0)
    assert verdict.message == (
        "stale: 1 running execution is stuck now (no heartbeat for 30m, or running for more "
        "than 1h without a heartbeat)"
    )
    assert ma.ExecutionStore(engine).count_stuck("30m", max_runtime="1h") == 1
    [shorter] = check(engine, stale_after="30m", max_runtime="20m")
    assert (shorter.breached, shorter.value) == (True, 2)
    [none] = check(engine, stale_after="1h")
    assert not none.breached
    assert none.message == (
        "stale: no running execution is stuck now (no heartbeat for 1h, or running for more "
        "than 2h without a heartbeat)"
    )


def test_stale_is_not_limited_to_the_window(engine):
    running(engine, datetime.now(UTC) - timedelta(days=3))  # stuck for days: keeps alerting
    [verdict] = check(engine, since="1h", max_runtime="2h")
    assert (verdict.breached, verdict.value) == (True, 1)
    assert verdict.message == (
        "stale: 1 running execution is stuck now (running for more than 2h without a heartbeat)"
    )


def test_all_rules_together_and_json(engine):
    outcomes(engine, 9, 1)
    plant(engine, [finished("completed", NOW - timedelta(hours=1), 90)])
    verdicts = check(engine, max_failure_rate=0.05, min_quality=50, stale_after="30m", now=NOW)
    assert [(v.rule, v.breached) for v in verdicts] == [
        ("failure-rate", True),
        ("quality", False),
        ("stale", False),
    ]
    assert verdict_lines(verdicts) == [
        f"BREACHED failure-rate: 9.1% of 11 finished executions failed since {SINCE_TEXT} "
        "(limit 5.0%)"
    ]
    document = verdicts_json(verdicts, NOW - timedelta(hours=24), timedelta(hours=24))
    assert document["ok"] is False
    assert document["since"] == SINCE_TEXT
    assert document["rules"][1] == {
        "rule": "quality",
        "breached": False,
        "value": 90.0,
        "limit": 50.0,
        "executions": 1,
        "message": f"quality: mean 90.0 over 1 scored execution since {SINCE_TEXT} (minimum 50.0)",
    }


@pytest.mark.parametrize(
    ("arguments", "field"),
    [
        ({}, "rules"),
        ({"max_failure_rate": 1.5}, "max_failure_rate"),
        ({"max_failure_rate": -0.1}, "max_failure_rate"),
        ({"max_failure_rate": float("nan")}, "max_failure_rate"),
        ({"max_failure_rate": True}, "max_failure_rate"),
        ({"max_failure_rate": "0.1"}, "max_failure_rate"),
        ({"min_quality": 100.5}, "min_quality"),
        ({"min_quality": -1}, "min_quality"),
        ({"min_quality": 50, "since": "0h"}, "since"),
        ({"min_quality": 50, "since": timedelta(0)}, "since"),
        ({"stale_after": "soon"}, "stale_after"),
        ({"max_runtime": "-2h"}, "max_runtime"),
        ({"min_quality": 50, "now": datetime(2026, 1, 1)}, "now"),  # noqa: DTZ001 (naive on purpose)
    ],
)
def test_bad_arguments_are_refused_naming_them(engine, arguments, field):
    with pytest.raises(ma.ValidationError) as refused:
        check(engine, **arguments)
    assert refused.value.field == field


def test_unmigrated_database_is_refused(empty_url):
    engine = ma.connect(empty_url)
    try:
        with engine.begin():
            pass  # the SQLite file exists now, with no tables
        with pytest.raises(ma.ValidationError) as refused:
            check(engine, max_failure_rate=0.1)
    finally:
        engine.dispose()
    assert refused.value.field == "url"
    assert f"not {head_revision()}; run miyabi-analytics migrate first" in str(refused.value)


def test_missing_sqlite_file_is_refused_and_not_created(tmp_path: Path):
    path = tmp_path / "absent.db"
    engine = ma.connect(f"sqlite:///{path}")
    with pytest.raises(ma.ValidationError, match="no such SQLite database file"):
        check(engine, max_failure_rate=0.1)
    engine.dispose()
    assert not path.exists()
