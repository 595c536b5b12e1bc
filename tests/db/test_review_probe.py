"""Outside review of issue 12's fixes: probes that found a defect, kept as regression tests."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import Engine, select

import miyabi_analytics as ma
from miyabi_analytics._db.views import summary
from miyabi_analytics.archive import restore
from miyabi_analytics.retention import purge
from tests.db.test_write_order import descending_ids, frozen_clock, started


def _latest_reach(engine: Engine) -> dict[str, int | None]:
    with engine.connect() as conn:
        rows = conn.execute(select(summary.c.id, summary.c.reach_estimate)).all()
    return {str(k): v for k, v in rows}


def test_purge_then_restore_keeps_the_write_order(
    engine: Engine, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Rows of one instant come back in the order written, not in id order.

    The archive's parts were sorted by ``id`` and ``restore`` lets the database number the rows
    anew, so after a purge and a restore the latest analytics row of an execution became the
    one of the largest id and logs of one ``logged_at`` read back in id order.
    """
    agent = ma.MarketResearchAgent()
    frozen_clock(monkeypatch)  # every row of one instant, T0 (months before today)
    [record] = started(engine, agent)
    messages = [f"step {n}" for n in range(10)]
    with descending_ids():  # each new id smaller than the last: id order = reverse write order
        for k in range(6):
            agent.save_analysis_metrics(engine, record.id, {"reach_estimate": k})
        for message in messages:
            agent.log(engine, record.id, "info", message)
    assert _latest_reach(engine) == {str(record.id): 5}
    assert ma.read_logs(engine, execution_id=record.id)["message"].tolist() == messages

    report = purge(engine, timedelta(days=1), archive_dir=tmp_path / "archive")
    assert report.executions == 1
    assert _latest_reach(engine) == {}
    assert restore(engine, tmp_path / "archive", [record.id]) == 1

    assert _latest_reach(engine) == {str(record.id): 5}
    assert ma.read_logs(engine, execution_id=record.id)["message"].tolist() == messages
