"""The dashboard and the report say how fresh the rollups are (answers stay exact either way)."""

from __future__ import annotations

import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics._dashboard import DashboardModel
from miyabi_analytics._dashboard_parts import _status_html
from miyabi_analytics.cli import main
from miyabi_analytics.demo import load_demo

END = datetime(2026, 6, 1, tzinfo=UTC)


def test_the_dashboard_status_line_names_the_rollups_freshness(engine):
    load_demo(engine, 300, seed=2, end=END)
    model = DashboardModel(engine)
    stale = model.refresh()
    assert "never refreshed" in stale.rollup
    assert "changed since" in stale.rollup
    assert 'class="miyabi-rollup"' in _status_html(stale, "read in 0.1 s")
    ma.refresh_rollups(engine)
    fresh = model.refresh(force=True)
    assert re.fullmatch(r"rollup refreshed \d{4}-\d\d-\d\d \d\d:\d\d UTC, up to date", fresh.rollup)
    assert fresh.kpis == stale.kpis  # exact either way


@pytest.mark.slow
def test_the_report_says_how_fresh_the_rollups_were(db_url: URL, tmp_path) -> None:
    engine = ma.connect(db_url)
    try:
        load_demo(engine, 400, seed=3, end=END)
    finally:
        engine.dispose()
    out = tmp_path / "report.html"
    url = db_url.render_as_string(hide_password=False)
    assert main(["report", "--url", url, "--since", "2026-05-04", "--until", "2026-06-01",
                 "--output", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    line = re.search(r'class="miyabi-rollup">Aggregates: (rollup [^<]*)</small>', page)
    assert line is not None
    assert "changed since" in line.group(1)
    assert "read from the executions" in line.group(1)
