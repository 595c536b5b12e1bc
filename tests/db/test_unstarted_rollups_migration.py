"""Revision 0012 on a database with history: never-started executions join the rollups, and
its downgrade takes them out again (0011's readers take those executions from the table)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

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
