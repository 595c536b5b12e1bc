"""Issue 15, item 4 in a real browser: another process commits, the served dashboard shows it.

``miyabi-analytics serve`` on a PostgreSQL demo history; once the page is up, a separate Python
process (plain SQL through psycopg, not this package) completes running executions, then
inserts failed ones. Each time a KPI tile (success rate, executions) and the Success tab's
success-rate chart must change within 2 s of that process's commit, measured from the commit
(both clocks are this machine's), with no error in the browser's console.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL

import miyabi_analytics as ma
from miyabi_analytics._serve import READY
from miyabi_analytics.demo import load_demo
from tests.conftest import create_pg_database, drop_pg_database, require_postgres

pytestmark = pytest.mark.slow

LIVE_SECONDS = 2.0
LOCAL = "http://127.0.0.1:"

# The other process: plain SQL, one transaction; prints the time right after its commit.
WRITER = r"""
import sys, time, uuid
import psycopg

dsn, what, repository = sys.argv[1:4]
with psycopg.connect(dsn) as conn:
    with conn.transaction():
        if what == "complete":
            conn.execute(
                "UPDATE agent_executions SET status = 'completed', completed_at = now(), "
                "quality_score = 93 WHERE repository_id = %s AND status = 'running'",
                (repository,),
            )
        else:
            for _ in range(5):
                conn.execute(
                    "INSERT INTO agent_executions (id, repository_id, agent_type, status, "
                    "started_at, completed_at, error_message, created_at, updated_at) VALUES "
                    "(%s, %s, 'SalesAgent', 'failed', now() - interval '3 minutes', now(), "
                    "'live test', now(), now())",
                    (str(uuid.uuid4()), repository),
                )
    print(repr(time.time()), flush=True)
"""

TILE = """(label) => { const d = [...document.querySelectorAll('div')]
    .find(e => e.textContent === label && e.nextElementSibling);
    return d ? d.nextElementSibling.textContent : null; }"""
SUCCESS_CHART = """() => { const p = [...document.querySelectorAll('.js-plotly-plot')]
    .find(g => g.layout && g.layout.title && g.layout.title.text === 'Success rate');
    return p && p.data ? JSON.stringify(p.data.map(t => [t.x, t.y, t.customdata])) : null; }"""
SHOWN = f"""() => [({TILE})('Executions'), ({TILE})('Success rate'), ({SUCCESS_CHART})()]"""
CHANGED = f"""(before) => {{ const now = ({SHOWN})();
    return (now[0] !== before[0] || now[1] !== before[1]) && now[2] !== before[2]; }}"""
LIVE_LINE = "() => (document.querySelector('.miyabi-live') || {}).textContent || ''"


@pytest.fixture
def database() -> Iterator[tuple[URL, uuid.UUID]]:
    """A migrated PostgreSQL demo history ending now, plus 20 executions running for 10 min.

    Yields the URL and the repository of the running ones.
    """
    require_postgres()
    url = create_pg_database()
    engine = ma.connect(url)
    try:
        ma.migrate(engine)
        load_demo(engine, 2000, seed=5)
        repository = uuid.uuid4()
        started = datetime.now(UTC) - timedelta(minutes=10)
        ma.ExecutionStore(engine).save_executions(
            ma.agent_for("SalesAgent")
            .builder(repository)
            .status("running")
            .started_at(started)
            .build()
            for _ in range(20)
        )
    finally:
        engine.dispose()
    yield url, repository
    drop_pg_database(url)


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def served(database: tuple[URL, uuid.UUID], tmp_path: Path) -> Iterator[str]:
    url, _ = database
    port = free_port()
    log_path = tmp_path / "serve.log"
    shown = url.render_as_string(hide_password=False)
    with log_path.open("wb") as log:
        server = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "miyabi_analytics",
                "serve",
                "--url",
                shown,
                "--port",
                str(port),
            ],
            cwd=tmp_path,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group: stopped with its kernels below
        )
        try:
            deadline = time.monotonic() + 240
            while READY not in log_path.read_text(errors="replace"):
                if server.poll() is not None:
                    pytest.fail(f"serve exited ({server.returncode}): {log_path.read_text()}")
                if time.monotonic() > deadline:
                    pytest.fail(f"serve never got ready: {log_path.read_text()}")
                time.sleep(0.2)
            yield f"{LOCAL}{port}/"
        finally:
            served_log = log_path.read_text(errors="replace")
            if server.poll() is None:
                os.killpg(server.pid, signal.SIGTERM)
                server.wait(timeout=30)
    assert "Traceback" not in served_log, served_log


def commit_in_another_process(url: URL, what: str, repository: uuid.UUID) -> subprocess.Popen[str]:
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    return subprocess.Popen(
        [sys.executable, "-c", WRITER, dsn, what, str(repository)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )


def seconds_until_shown(page: Any, url: URL, what: str, repository: uuid.UUID) -> float:
    """Seconds from the other process's commit until a tile and the chart changed on the page."""
    before = page.evaluate(SHOWN)
    assert all(v is not None for v in before), before
    writer = commit_in_another_process(url, what, repository)
    page.wait_for_function(CHANGED, arg=before, polling=25, timeout=30_000)
    seen = time.time()
    out, err = writer.communicate(timeout=30)
    assert writer.returncode == 0, err
    committed = float(out.strip())
    assert committed <= seen
    return seen - committed


def test_another_process_commit_shows_within_2_s(
    chromium: Any, served: str, database: tuple[URL, uuid.UUID], artifacts: Path, watch: Any
) -> None:
    url, repository = database
    page = chromium.new_page(viewport={"width": 1300, "height": 1000})
    problems = watch(page, allowed=(LOCAL, "blob:", "data:"))
    try:
        page.goto(served, wait_until="commit", timeout=120_000)
        page.wait_for_selector(".js-plotly-plot .main-svg", state="visible", timeout=180_000)
        page.get_by_text("Success", exact=True).first.click()
        page.wait_for_function(f"() => ({SUCCESS_CHART})() !== null", timeout=60_000)
        page.wait_for_function(f"() => ({LIVE_LINE})().includes('live')", timeout=30_000)
        assert "reconnecting" not in page.evaluate(LIVE_LINE)

        completed = seconds_until_shown(page, url, "complete", repository)  # 20 more completed
        page.wait_for_function(f"() => ({LIVE_LINE})().includes('last change')", timeout=5_000)
        inserted = seconds_until_shown(page, url, "insert", uuid.uuid4())  # 5 failures more
        (artifacts / "live-dashboard-seconds.txt").write_text(
            f"complete {completed:.3f}\ninsert {inserted:.3f}\n"
        )
        page.screenshot(path=str(artifacts / "live-dashboard.png"), full_page=True)
    finally:
        page.close()
    assert completed < LIVE_SECONDS, f"shown {completed:.2f} s after the commit"
    assert inserted < LIVE_SECONDS, f"shown {inserted:.2f} s after the commit"
    assert problems.errors == []
    assert problems.blocked == []
