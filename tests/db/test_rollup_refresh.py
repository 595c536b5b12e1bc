"""What marks a day pending, and what ``refresh_rollups`` guarantees beside live writers."""

from __future__ import annotations

import threading
import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy import Engine, func, insert, select, text, update

import miyabi_analytics as ma
from miyabi_analytics._db.rollup import refresh as refresh_module
from miyabi_analytics._db.schema import executions, rollup_pending, rollups
from miyabi_analytics.cli import main
from miyabi_analytics.errors import ValidationError

DAY = datetime(2026, 5, 4, tzinfo=UTC)
REPO = uuid.UUID("7b0c1b9e-2f3a-4d5e-8f60-1a2b3c4d5e6f")


def _row(started: datetime | None, status: str = "completed", **extra: object) -> dict:
    return {
        "id": uuid.uuid4(), "repository_id": REPO, "agent_type": "SalesAgent",
        "status": status, "started_at": started,
        "completed_at": started + timedelta(minutes=3) if started and status == "completed"
        else None,
        "quality_score": 80 if status == "completed" else None,
        "created_at": DAY, "updated_at": DAY, **extra,
    }


def _days(engine: Engine, n: int = 3, per_day: int = 4) -> list[dict]:
    rows = [_row(DAY + timedelta(days=d, hours=h)) for d in range(n) for h in range(per_day)]
    with engine.begin() as conn:
        conn.execute(insert(executions), rows)
    return rows


def _pending(engine: Engine) -> set[datetime]:
    with engine.connect() as conn:
        return set(conn.execute(select(rollup_pending.c.day).distinct()).scalars())


def _rolled_total(engine: Engine) -> int:
    with engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.sum(rollups.c.executions), 0)))
                   .scalar_one())


def test_a_new_database_has_a_fresh_empty_rollup(engine):
    status = ma.rollup_status(engine)
    assert status.pending_days == 0
    assert not status.stale
    assert "never refreshed" in status.describe()


def test_plain_sql_inserts_mark_their_days_and_unstarted_rows_their_creation_day(engine):
    _days(engine, n=3)
    queued = DAY - timedelta(days=5)
    with engine.begin() as conn:
        conn.execute(insert(executions), [_row(None, status="pending", created_at=queued)])
    assert _pending(engine) == {DAY + timedelta(days=d) for d in range(3)} | {queued}
    done = ma.refresh_rollups(engine)
    assert (done.days, done.remaining) == (4, 0)
    assert _pending(engine) == set()
    assert _rolled_total(engine) == 13  # the pending row under the day it was created
    with engine.connect() as conn:
        unstarted = conn.execute(
            select(rollups.c.day, rollups.c.executions).where(~rollups.c.started)
        ).all()
    assert unstarted == [(queued, 1)]
    assert ma.success_rates(engine, by=None)["executions"].tolist() == [13]
    # a window (on started_at) never counts it, whichever bound it has
    assert ma.success_rates(engine, by=None, since=queued)["executions"].tolist() == [12]
    assert ma.success_rates(engine, by=None, until=DAY + timedelta(days=1))[
        "executions"].tolist() == [4]
    assert ma.success_rates(engine, by=None, freq="D")["executions"].sum() == 12


def test_an_unstarted_row_that_starts_moves_from_its_creation_day(engine):
    queued = DAY - timedelta(days=5)
    row = _row(None, status="pending", created_at=queued)
    with engine.begin() as conn:
        conn.execute(insert(executions), [row])
    ma.refresh_rollups(engine)
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == row["id"])
                     .values(status="running", started_at=DAY))
    assert _pending(engine) == {queued, DAY}
    assert ma.success_rates(engine, by=None, since=DAY)["executions"].tolist() == [1]
    ma.refresh_rollups(engine)
    with engine.connect() as conn:
        assert conn.execute(select(rollups.c.day, rollups.c.started)).all() == [(DAY, True)]
    other = _row(None, status="pending", created_at=queued)
    with engine.begin() as conn:  # another queued row, whose creation is then restated
        conn.execute(insert(executions), [other])
    ma.refresh_rollups(engine)
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == other["id"])
                     .values(created_at=queued - timedelta(days=1)))
    assert _pending(engine) == {queued, queued - timedelta(days=1)}
    ma.refresh_rollups(engine)
    with engine.connect() as conn:
        assert sorted(conn.execute(select(rollups.c.day, rollups.c.started)).all()) == [
            (queued - timedelta(days=1), False), (DAY, True)]
    assert ma.success_rates(engine, by=None)["executions"].tolist() == [2]


def test_a_heartbeat_marks_nothing_and_a_rescore_marks_its_day(engine):
    rows = _days(engine, n=2)
    ma.refresh_rollups(engine)
    with engine.begin() as conn:
        conn.execute(text("UPDATE agent_executions SET last_heartbeat_at = created_at"))
    assert _pending(engine) == set()
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == rows[-1]["id"])
                     .values(quality_score=3))
    assert _pending(engine) == {DAY + timedelta(days=1)}
    status = ma.rollup_status(engine)
    assert status.stale
    assert "2026-05-05" in status.describe()


def test_moving_a_start_marks_the_day_left_and_the_day_entered(engine):
    rows = _days(engine, n=1)
    ma.refresh_rollups(engine)
    with engine.begin() as conn:
        conn.execute(update(executions).where(executions.c.id == rows[0]["id"]).values(
            started_at=DAY - timedelta(days=9), completed_at=DAY - timedelta(days=9) +
            timedelta(seconds=1)))
    assert _pending(engine) == {DAY, DAY - timedelta(days=9)}


def test_analytics_and_deletes_mark_the_execution_day(engine):
    rows = _days(engine, n=2)
    ma.refresh_rollups(engine)
    ma.ExecutionStore(engine).save_analysis_metrics(rows[0]["id"], {"market_size_usd": 5})
    assert _pending(engine) == {DAY}
    ma.refresh_rollups(engine)
    with engine.begin() as conn:
        conn.execute(executions.delete().where(executions.c.id == rows[-1]["id"]))
    assert _pending(engine) == {DAY + timedelta(days=1)}
    ma.refresh_rollups(engine)
    assert _rolled_total(engine) == 7
    assert ma.business_metrics(engine, by=None, freq=None)["sum_market_size_usd"].tolist() == [5]


def test_a_refresh_that_dies_keeps_its_finished_steps_and_the_rest_pending(engine, monkeypatch):
    _days(engine, n=5)
    real = refresh_module._step
    calls = []

    def dying(conn, ceiling, chunk):
        calls.append(chunk)
        if len(calls) == 2:
            raise RuntimeError("killed")
        return real(conn, ceiling, chunk)

    monkeypatch.setattr(refresh_module, "_step", dying)
    with pytest.raises(RuntimeError, match="killed"):
        refresh_module.refresh(engine, chunk=2)
    assert _pending(engine) == {DAY + timedelta(days=d) for d in range(2, 5)}
    assert _rolled_total(engine) == 8
    assert ma.success_rates(engine, by=None)["executions"].tolist() == [20]
    monkeypatch.setattr(refresh_module, "_step", real)
    assert ma.refresh_rollups(engine).days == 3
    assert _rolled_total(engine) == 20


def test_refreshing_twice_changes_nothing(engine):
    _days(engine, n=2)
    assert ma.refresh_rollups(engine).days == 2
    with engine.connect() as conn:
        before = conn.execute(select(rollups).order_by(*rollups.c)).all()
    assert ma.refresh_rollups(engine).days == 0
    with engine.connect() as conn:
        assert conn.execute(select(rollups).order_by(*rollups.c)).all() == before


def test_the_rollup_command(db_url, engine, capsys):
    _days(engine, n=2)
    assert main(["rollup", "--url", db_url.render_as_string(hide_password=False)]) == 0
    out = capsys.readouterr().out
    assert "rolled up 2 changed days" in out
    assert "up to date" in out
    assert not ma.rollup_status(engine).stale


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_scoped_session_may_not_refresh(db_url):
    """Row-level security would hide other repositories' rows from the recomputation."""
    scoped = ma.connect(db_url.update_query_dict({"options": f"-c miyabi.repository_ids={REPO}"}))
    try:
        with pytest.raises(ValidationError, match="unscoped"):
            ma.refresh_rollups(scoped)
    finally:
        scoped.dispose()


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_a_write_committed_during_a_refresh_stays_pending(engine):
    """The writer's mark is not in the refresh's snapshot: never deleted, day stays pending."""
    rows = _days(engine, n=2)
    ma.refresh_rollups(engine)
    with engine.begin() as conn:  # the day is pending, committed: the refresh will take it
        conn.execute(update(executions).where(executions.c.id == rows[1]["id"])
                     .values(quality_score=50))
    writer = engine.connect()
    tx = writer.begin()
    writer.execute(update(executions).where(executions.c.id == rows[0]["id"])
                   .values(quality_score=1))
    assert ma.refresh_rollups(engine).days == 1  # recomputes the day without the open change
    tx.commit()
    writer.close()
    assert _pending(engine) == {DAY}
    assert ma.quality_trend(engine, by=None, freq=None)["min_quality"].tolist() == [1]
    ma.refresh_rollups(engine)
    assert ma.quality_trend(engine, by=None, freq=None)["min_quality"].tolist() == [1]


@pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)
def test_two_refreshes_at_once_write_each_day_once(engine):
    _days(engine, n=40, per_day=2)
    errors: list[BaseException] = []

    def run() -> None:
        try:
            ma.refresh_rollups(engine)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _rolled_total(engine) == 80
    assert _pending(engine) == set()


def test_the_last_day_of_year_9999_rolls_up_and_reads_exactly(engine):
    """No next midnight, no next year: the refresh and the reads bound it on one side only."""
    last = datetime(9999, 12, 31, tzinfo=UTC)
    rows = [_row(last + timedelta(hours=22)), _row(last + timedelta(hours=23), status="failed"),
            _row(None, status="pending", created_at=last + timedelta(hours=1)),
            _row(DAY)]
    with engine.begin() as conn:
        conn.execute(insert(executions), rows)
    before = ma.success_rates(engine, by=None)
    assert ma.refresh_rollups(engine).days == 2
    assert _rolled_total(engine) == 4
    pd.testing.assert_frame_equal(ma.success_rates(engine, by=None), before)
    assert ma.success_rates(engine, by=None)["executions"].tolist() == [4]
    assert ma.error_analysis(engine)["failures"].tolist() == [1]
    with engine.connect() as conn:
        years = conn.execute(text(
            "SELECT sum(executions), count(next_year) FROM agent_execution_rollups_yearly "
            "GROUP BY day ORDER BY day")).all()
    assert [tuple(y) for y in years] == [(1, 1), (3, 0)]
