"""Regression: an SQLite database nobody ANALYZEd read the whole summary view in quadratic time.

Without ``sqlite_stat1`` the planner took the view's error-log count through the ``log_level``
index: for each execution it walked every ``'error'`` log of the whole table (103 s for a
whole-view read of 40,000 executions, 0.4 s once analysed). Revision 0011's index on
``(execution_id, log_level)`` serves both equalities, so the count reads the execution's own
entries whatever the planner knows.
"""

from __future__ import annotations

from pathlib import Path

from sqlalchemy import text

import miyabi_analytics as ma

BEFORE = "0010_transitions"


def _error_count_plan(path: Path) -> str:
    engine = ma.connect(f"sqlite:///{path}")
    try:
        with engine.connect() as conn:
            assert conn.execute(
                text("SELECT count(*) FROM sqlite_master WHERE name = 'sqlite_stat1'")
            ).scalar_one() == 0  # nobody ran ANALYZE
            plan = [row[3] for row in conn.execute(
                text("EXPLAIN QUERY PLAN SELECT * FROM v_business_agent_summary"))]
    finally:
        engine.dispose()
    (line,) = [p for p in plan if p.startswith("SEARCH l_err")]
    return line


def test_the_error_count_reads_the_executions_own_logs(tmp_path):
    path = tmp_path / "unanalysed.db"
    engine = ma.connect(f"sqlite:///{path}")
    ma.migrate(engine, BEFORE)
    engine.dispose()
    assert "ix_agent_execution_logs_log_level" in _error_count_plan(path)  # the defect
    engine = ma.connect(f"sqlite:///{path}")
    ma.migrate(engine)
    engine.dispose()
    line = _error_count_plan(path)
    assert "ix_agent_execution_logs_execution_id_log_level" in line
    assert "(execution_id=? AND log_level=?)" in line
