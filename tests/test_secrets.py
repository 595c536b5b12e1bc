"""The database password appears nowhere: logs, errors, tracebacks, CLI output, files written.

A PostgreSQL role with a password owns a fresh database; everything connects to it through
``postgresql://role:password@127.0.0.1/...``. (The test server may trust every local login: the
password is then not checked, which does not matter here, the point is the string.) Every log
record at DEBUG (sqlalchemy, alembic, psycopg, miyabi_analytics: the root logger), every
exception text and traceback, the CLI's stdout and stderr, and every file written (Parquet
archives, reports) are searched for the password, raw and URL-encoded.
"""

import logging
import secrets
import traceback
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import quote

import pytest
from psycopg import sql
from sqlalchemy import URL, create_engine, text

import miyabi_analytics as ma
from miyabi_analytics.cli import main
from miyabi_analytics.retention import purge


class Secret:
    def __init__(self, url: URL, password: str) -> None:
        self.url = url
        self.password = password
        self.plain = url.render_as_string(hide_password=False)
        self.seen: list[str] = []

    def keep(self, *texts: object) -> None:
        self.seen.extend(str(t) for t in texts)

    def expect_error(self, action: Callable[[], object], *kinds: type[BaseException]) -> None:
        try:
            action()
        except kinds as exc:
            self.keep(str(exc), repr(exc), "".join(traceback.format_exception(exc)))
        else:
            raise AssertionError(f"line {action.__code__.co_firstlineno}: raised nothing")

    def assert_hidden(self, caplog: pytest.LogCaptureFixture, files: list[Path]) -> None:
        corpus = list(self.seen)
        corpus.append(caplog.text)
        for record in caplog.records:
            corpus.append(record.getMessage())
            corpus.append(repr(record.args))
            if record.exc_info:
                corpus.append("".join(traceback.format_exception(*record.exc_info)))
        for path in files:
            corpus.append(path.read_bytes().decode("utf-8", "replace"))
        needles = {self.password, quote(self.password, safe="")}
        leaks = [c for c in corpus if any(n in c for n in needles)]
        print(
            f"\nsearched {len(corpus)} texts ({sum(map(len, corpus)):,} characters: "
            f"{len(caplog.records)} log records, {len(files)} files) for the password: "
            f"{len(leaks)} found"
        )
        assert leaks == [], leaks[0][:2000]


@pytest.fixture
def secret(pg_session_url: URL) -> Iterator[Secret]:
    """A role with a password and a database it owns; both dropped afterwards."""
    admin = create_engine(pg_session_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    suffix = uuid.uuid4().hex[:10]
    role, database = f"miyabi_secret_{suffix}", f"miyabi_secret_db_{suffix}"
    # With characters a URL must escape, so the encoded form is searched for too.
    password = f"S3cr3t-{secrets.token_hex(8)}-@#%!:/"
    with admin.connect() as conn:
        raw = conn.connection.dbapi_connection
        assert raw is not None
        raw.execute(
            sql.SQL("CREATE ROLE {} LOGIN PASSWORD {}").format(
                sql.Identifier(role), sql.Literal(password)
            )
        )
        conn.execute(text(f"CREATE DATABASE {database} OWNER {role}"))
    url = pg_session_url.set(
        username=role, password=password, host="127.0.0.1", database=database
    )
    try:
        yield Secret(url, password)
    finally:
        with admin.connect() as conn:
            conn.execute(text(f"DROP DATABASE IF EXISTS {database} WITH (FORCE)"))
            conn.execute(text(f"DROP ROLE IF EXISTS {role}"))
        admin.dispose()


@pytest.fixture
def debug_logs(caplog: pytest.LogCaptureFixture) -> pytest.LogCaptureFixture:
    # Before any engine exists: SQLAlchemy decides whether to log statements when it creates one.
    caplog.set_level(logging.DEBUG)
    for name in ("sqlalchemy", "sqlalchemy.engine", "sqlalchemy.pool", "alembic", "psycopg",
                 "miyabi_analytics"):
        caplog.set_level(logging.DEBUG, logger=name)
    return caplog


def test_api_never_shows_the_password(secret, debug_logs, tmp_path):
    s = secret
    engine = ma.connect(s.plain)
    s.keep(repr(engine), str(engine), str(engine.url), repr(engine.url), ma.mask_url(engine.url))
    ma.migrate(s.plain)
    ma.migrate(engine)
    store = ma.ExecutionStore(engine)
    s.keep(repr(store))

    agent = ma.MarketingAgent()
    old = datetime.now(UTC) - timedelta(days=100)
    record = agent.builder(uuid.uuid4()).status("running").started_at(old).build()
    agent.save_execution(engine, record)
    store.save_executions([agent.builder(uuid.uuid4()).build() for _ in range(20)])
    agent.heartbeat(engine, record.id)
    agent.save_analysis_metrics(engine, record.id, {"roi_percent": 10.5})
    agent.log(engine, record.id, "INFO", "hello", {"url_hint": "none"})
    s.keep(store.count_stuck("1h"), store.reap("1s"))
    s.keep(ma.read_summary(engine).to_string(), ma.read_logs(engine).to_string())
    s.keep(ma.success_rates(engine).to_string())
    export = tmp_path / "summary.parquet"
    ma.export_summary(engine, export)

    # Errors: bad input, unknown ids, refused steps, refused URLs.
    s.expect_error(lambda: agent.save_execution(engine, record.evolve(status="pending")),
                   ma.InvalidStatusTransition)
    s.expect_error(lambda: agent.log(engine, uuid.uuid4(), "info", "x"), ma.NotFound)
    s.expect_error(lambda: agent.heartbeat(engine, uuid.uuid4()), ma.NotFound)
    s.expect_error(lambda: store.reap("forever"), ma.ValidationError)
    s.expect_error(lambda: ma.read_summary(engine, statuses=["lost"]), ma.ValidationError)
    for bad in (
        s.url.set(drivername="mysql").render_as_string(hide_password=False),
        s.url.set(drivername="postgresql+asyncpg").render_as_string(hide_password=False),
        s.plain.replace("://", ":/"),
    ):
        s.expect_error(lambda bad=bad: ma.ExecutionStore(ma.connect(bad)).exists(uuid.uuid4()),
                       ma.ValidationError)
    # The password given (also) as a query parameter.
    in_query = ma.connect(f"{s.plain}?password={quote(s.password, safe='')}")
    s.keep(repr(in_query), repr(ma.ExecutionStore(in_query)), ma.mask_url(in_query.url))
    assert not ma.ExecutionStore(in_query).exists(uuid.uuid4())
    in_query.dispose()
    archive = tmp_path / "archive"
    s.keep(purge(engine, "30d", archive_dir=archive, dry_run=True))
    s.keep(purge(engine, "30d", archive_dir=archive))

    # An unreachable server, with the password in the URL.
    unreachable = ma.connect(s.url.set(port=1))
    s.keep(repr(unreachable))
    s.expect_error(lambda: ma.ExecutionStore(unreachable).save_execution(record), Exception)
    s.expect_error(lambda: ma.migrate(unreachable), Exception)
    s.expect_error(lambda: ma.read_summary(unreachable), Exception)
    unreachable.dispose()
    engine.dispose()

    files = [p for p in tmp_path.rglob("*") if p.is_file()]
    assert len(files) >= 4
    s.assert_hidden(debug_logs, files)


def _cli(s: Secret, capfd: pytest.CaptureFixture[str], argv: list[str]) -> int | str | None:
    try:
        status: int | str | None = main(argv)
    except SystemExit as exc:
        status = exc.code
    out = capfd.readouterr()
    s.keep(out.out, out.err)
    return status


def test_cli_never_shows_the_password(secret, debug_logs, capfd, tmp_path):
    s = secret
    assert _cli(s, capfd, ["migrate", "--url", s.plain]) == 0
    assert _cli(s, capfd, ["reap", "--url", s.plain, "--stale-after", "1h"]) == 0
    assert _cli(s, capfd, ["purge", "--url", s.plain, "--older-than", "1d", "--dry-run"]) == 0
    assert _cli(s, capfd, ["reap", "--url", s.plain, "--stale-after", "never"]) == 2
    unreachable = s.url.set(port=1).render_as_string(hide_password=False)
    assert _cli(s, capfd, ["migrate", "--url", unreachable]) == 1
    assert _cli(s, capfd, ["purge", "--url", unreachable, "--older-than", "1d"]) == 1
    mysql = s.url.set(drivername="mysql").render_as_string(hide_password=False)
    assert _cli(s, capfd, ["migrate", "--url", mysql]) == 2
    assert any("database error" in text for text in s.seen)
    s.assert_hidden(debug_logs, [])


@pytest.mark.slow
def test_cli_demo_and_report_never_show_the_password(secret, debug_logs, capfd, tmp_path):
    s = secret
    report = tmp_path / "demo.html"
    assert _cli(s, capfd, ["demo", "--url", s.plain, "--executions", "40", "--seed", "3",
                           "--output", str(report)]) == 0
    second = tmp_path / "report.ipynb"
    status = _cli(s, capfd, ["report", "--url", s.plain, "--format", "ipynb",
                             "--output", str(second)])
    assert status == 0
    engine = ma.connect(s.url)
    try:
        runs = ma.read_report_runs(engine)
        s.keep(runs.to_string(), runs.to_dict("records"))
    finally:
        engine.dispose()
    s.assert_hidden(debug_logs, [report, second])
