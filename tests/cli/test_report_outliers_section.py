"""The report's section on the slowest and the most retried executions, on the demo history."""

import html
import re
from datetime import UTC, datetime

import pytest
from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics.aggregates import most_retried, slowest_executions
from miyabi_analytics.cli import main
from miyabi_analytics.demo import load_demo

END = datetime(2026, 6, 1, tzinfo=UTC)
SINCE, UNTIL = "2026-05-04", "2026-06-01"


@pytest.mark.slow
def test_the_report_lists_the_slowest_and_the_most_retried(db_url: URL, tmp_path) -> None:
    engine = ma.connect(db_url)
    try:
        load_demo(engine, 1500, seed=1, end=END)
        window = {"since": SINCE, "until": UNTIL}
        slowest = slowest_executions(engine, limit=10, **window)
        retried = most_retried(engine, limit=10, **window)
    finally:
        engine.dispose()
    assert len(slowest) == 10
    assert not retried.empty  # the demo reruns some issues
    out = tmp_path / "report.html"
    url = db_url.render_as_string(hide_password=False)
    assert main(["report", "--url", url, "--since", SINCE, "--until", UNTIL,
                 "--output", str(out)]) == 0
    page = out.read_text(encoding="utf-8")
    assert re.search(r"<h2[^>]*>Slowest and most retried executions\b", page)
    section = page[page.index("Slowest and most retried executions"):]
    # every listed id, the slowest first, in the order the function gives
    shown = [section.index(i) for i in slowest["execution_id"]]
    assert shown == sorted(shown)
    first = retried.iloc[0]
    assert html.escape(str(first["repository_id"])) in section
    assert f"ran <strong>{first['executions']}</strong> times" in section
