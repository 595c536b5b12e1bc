"""The rollups' later revisions on a database with history.

0012: never-started executions join the rollups, and its downgrade takes them out again (0011's
readers take those executions from the table). 0014: the yearly rollups are filled from the
months already rolled up, so all time is exact at once, before any refresh.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pandas as pd
from sqlalchemy import Engine, insert, text

import miyabi_analytics as ma
from miyabi_analytics._db.schema import executions

DAY = datetime(2026, 2, 10, tzinfo=UTC)
QUEUED = datetime(2026, 1, 20, 8, tzinfo=UTC)  # another month than every start


def _row(status: str, started: datetime | None) -> dict[str, object]:
    return {
        "id": uuid.uuid4(), "repository_id": uuid.uuid4(), "agent_type": "CRMAgent",
        "status": status, "started_at": started,
        "completed_at": started + timedelta(minutes=5) if status == "completed" else None,
        "quality_score": 90 if status == "completed" else None,
        "error_message": "refused" if status == "failed" else None,
        "created_at": started or QUEUED, "updated_at": started or QUEUED,
    }


def _sql(engine: Engine, statement: str) -> list[tuple[object, ...]]:
    with engine.connect() as conn:
        return [tuple(row) for row in conn.execute(text(statement))]


def test_upgrade_rolls_up_the_queue_and_downgrade_takes_it_out(empty_url):
    engine = ma.connect(empty_url)
    try:
        ma.migrate(engine, "0011_rollups")
        with engine.begin() as conn:
            conn.execute(insert(executions), [
                _row("completed", DAY), _row("completed", DAY + timedelta(days=1)),
                _row("pending", None), _row("failed", None),
            ])
        # 0011 marked the started days only
        assert len(_sql(engine, "SELECT DISTINCT day FROM agent_execution_rollup_pending")) == 2
        ma.migrate(engine)
        assert len(_sql(engine, "SELECT DISTINCT day FROM agent_execution_rollup_pending")) == 3
        assert ma.success_rates(engine, by=None)["executions"].tolist() == [4]
        assert ma.refresh_rollups(engine).days == 3
        assert _sql(engine, "SELECT sum(executions) FROM agent_execution_rollups "
                            "WHERE NOT started") == [(2,)]
        assert ma.success_rates(engine, by=None)["executions"].tolist() == [4]
        assert ma.error_analysis(engine)["failures"].tolist() == [1]

        ma.downgrade(engine, "0011_rollups")
        assert _sql(engine, "SELECT sum(executions) FROM agent_execution_rollups") == [(2,)]
        assert _sql(engine, "SELECT sum(executions) FROM agent_execution_rollups_monthly") == [
            (2,)]
        with engine.begin() as conn:  # 0011's triggers again: a queued row marks nothing
            conn.execute(insert(executions), [_row("pending", None)])
        assert _sql(engine, "SELECT count(*) FROM agent_execution_rollup_pending") == [(0,)]
    finally:
        engine.dispose()


def test_yearly_rollups_are_filled_from_the_months(empty_url):
    engine = ma.connect(empty_url)
    years_sql = ("SELECT day, next_year, sum(executions), max(quality_max) "
                 "FROM agent_execution_rollups_yearly GROUP BY day, next_year ORDER BY day")
    try:
        ma.migrate(engine)
        stamps = [datetime(2024, 12, 31, 23, 59, tzinfo=UTC), datetime(2025, 1, 1, tzinfo=UTC),
                  datetime(2025, 6, 15, 12, tzinfo=UTC), datetime(2025, 12, 31, 23, tzinfo=UTC)]
        with engine.begin() as conn:
            conn.execute(insert(executions), [_row("completed", at) for at in stamps])
        ma.refresh_rollups(engine)
        expected = ma.quality_trend(engine, by=None, freq=None)
        years = _sql(engine, years_sql)
        assert [row[2] for row in years] == [1, 3]
        ma.downgrade(engine, "0013_duration_totals")
        ma.migrate(engine)  # 0014 again: its fill from the months gives the same years
        assert _sql(engine, years_sql) == years
        pd.testing.assert_frame_equal(ma.quality_trend(engine, by=None, freq=None), expected)
        assert ma.quality_trend(engine, by=None, freq=None)["executions"].tolist() == [4]
    finally:
        engine.dispose()
