"""One retry policy: only what can succeed on a retry is retried, everything else fails at once.

Attempts are counted by SQLAlchemy's ``handle_error`` hook, listened to on the ``Engine`` class
(so it sees engines the CLI makes too): every failed database call, including a connection that
could not be opened, is one event. A successful attempt adds none, so a call that failed once and
then succeeded shows one event and one ``miyabi_analytics.retry`` warning.
"""

import logging
import sqlite3
import threading
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import URL, Engine, create_engine, event, text, update
from sqlalchemy.exc import DBAPIError

import miyabi_analytics as ma
from miyabi_analytics._db.retry import Failure, classify
from miyabi_analytics._db.schema import executions
from miyabi_analytics.cli import main

AGENT = ma.SalesAgent()
PG_ONLY = pytest.mark.parametrize("dialect", ["postgresql"], indirect=True)


@pytest.fixture
def failures() -> Iterator[list[BaseException]]:
    """Every failed database call of any engine while the test runs."""
    seen: list[BaseException] = []

    def count(context: Any) -> None:
        seen.append(context.sqlalchemy_exception or context.original_exception)

    event.listen(Engine, "handle_error", count)
    yield seen
    event.remove(Engine, "handle_error", count)


@pytest.fixture
def retries(caplog: pytest.LogCaptureFixture) -> Callable[[], int]:
    caplog.set_level(logging.WARNING, logger="miyabi_analytics.retry")
    return lambda: sum(1 for r in caplog.records if r.name == "miyabi_analytics.retry")


def cli(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str]:
    status = main(list(argv))
    err = capsys.readouterr().err
    assert "Traceback" not in err
    return status, err


def stuck(engine: Engine) -> ma.AgentExecutionResult:
    """A running execution silent for two days: reap("1h") fails it."""
    record = AGENT.builder(uuid.uuid4()).status("running").started_at(
        datetime.now(UTC) - timedelta(days=2)
    ).build()
    AGENT.save_execution(engine, record)
    # Its last heartbeat two days ago: one that never beat is not judged by stale_after.
    with engine.begin() as conn:
        conn.execute(
            update(executions)
            .where(executions.c.id == record.id)
            .values(last_heartbeat_at=datetime.now(UTC) - timedelta(days=2))
        )
    return record


def unreachable(dialect: str, db_url: URL, tmp_path: Path) -> dict[str, str]:
    """Databases that cannot be used, by what is wrong, as URLs."""
    if dialect == "sqlite":
        return {"no such directory": f"sqlite:///{tmp_path / 'missing' / 'x.db'}"}
    render = lambda url: url.render_as_string(hide_password=False)  # noqa: E731
    return {
        "unknown host": render(db_url.set(host="miyabi-no-such-host.invalid")),
        "no such database": render(db_url.set(database="miyabi_no_such_database")),
        "unknown role": render(db_url.set(username="miyabi_no_such_role")),
        "closed port": render(db_url.set(port=1)),
    }


# -- permanent: exactly one attempt -----------------------------------------------------------


def test_reap_on_an_unreachable_database_is_tried_once(dialect, db_url, tmp_path, failures,
                                                       retries, capsys):
    for what, url in unreachable(dialect, db_url, tmp_path).items():
        failures.clear()
        engine = ma.connect(url)
        try:
            with pytest.raises(DBAPIError) as caught:
                ma.ExecutionStore(engine).reap("1h")
        finally:
            engine.dispose()
        assert classify(caught.value) is Failure.PERMANENT, what
        assert len(failures) == 1, what
        failures.clear()
        status, err = cli(capsys, "reap", "--url", url, "--stale-after", "1h")
        assert status == 1, (what, err)  # the database cannot be reached: exit 1
        assert err.startswith("miyabi-analytics: database error: ")
        assert len(failures) == 1, what
    assert retries() == 0


def test_reap_on_an_unmigrated_database_is_tried_once(empty_url, failures, retries, capsys):
    engine = ma.connect(empty_url)
    try:
        with pytest.raises(DBAPIError) as caught:
            ma.ExecutionStore(engine).reap("1h")
    finally:
        engine.dispose()
    assert classify(caught.value) is Failure.PERMANENT
    assert len(failures) == 1
    url = empty_url.render_as_string(hide_password=False)
    status, err = cli(capsys, "reap", "--url", url, "--stale-after", "1h")
    assert status == 1
    assert "agent_executions" in err  # names what is missing
    assert len(failures) == 2
    assert retries() == 0


@pytest.mark.parametrize(
    "url",
    [
        "postgresql://miyabi:pw@db.example:notaport/miyabi",
        "mysql://miyabi@db.example/miyabi",
        "postgresql+psycopg2://miyabi@db.example/miyabi",
        "not a url at all",
    ],
)
def test_reap_with_a_bad_url_is_bad_input(url, failures, retries, capsys):
    with pytest.raises(ma.ValidationError):
        ma.connect(url)
    status, err = cli(capsys, "reap", "--url", url, "--stale-after", "1h")
    assert status == 2
    assert err.startswith("miyabi-analytics: error: url=")
    assert failures == []  # refused before any attempt
    assert retries() == 0


@PG_ONLY
@pytest.mark.parametrize(
    ("statement", "sqlstate"),
    [
        ("SELECT * FROM miyabi_no_such_table", "42P01"),  # undefined table
        ("SELECT miyabi_no_such_column FROM agent_executions", "42703"),  # undefined column
        ("SELEC 1", "42601"),  # syntax error
        ("SELECT 1 / 0", "22012"),  # bad data
    ],
)
def test_real_permanent_server_errors_are_tried_once(engine, statement, sqlstate, failures,
                                                     retries):
    from miyabi_analytics._db.tx import write

    with pytest.raises(DBAPIError) as caught:
        write(engine, lambda conn: conn.execute(text(statement)), what="test")
    assert getattr(caught.value.orig, "sqlstate", None) == sqlstate
    assert classify(caught.value) is Failure.PERMANENT
    assert len(failures) == 1
    assert retries() == 0


@PG_ONLY
def test_permission_denied_is_tried_once(engine, db_url, failures, retries):
    role = f"miyabi_noperm_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(text(f'CREATE ROLE "{role}" LOGIN'))
    limited = ma.connect(db_url.set(username=role))
    try:
        with pytest.raises(DBAPIError) as caught:
            ma.ExecutionStore(limited).reap("1h")
        assert getattr(caught.value.orig, "sqlstate", None) == "42501"
        assert classify(caught.value) is Failure.PERMANENT
        assert len(failures) == 1
        assert retries() == 0
    finally:
        limited.dispose()
        with engine.begin() as conn:
            conn.execute(text(f'DROP ROLE "{role}"'))


# -- transient: retried, and then it works -----------------------------------------------------


@pytest.fixture
def admin(db_url: URL) -> Iterator[Engine]:
    engine = create_engine(db_url.set(database="postgres"), isolation_level="AUTOCOMMIT")
    yield engine
    engine.dispose()


def kill_first_reap(admin: Engine, target: Any) -> tuple[list[int], Callable[..., None]]:
    """Terminate the backend under the first reap UPDATE, just before it runs."""
    killed: list[int] = []

    def hook(conn, cursor, statement, parameters, context, executemany):
        if statement.startswith("UPDATE agent_executions") and not killed:
            pid = conn.connection.dbapi_connection.info.backend_pid
            cursor.execute("SELECT 1")  # the transaction is open on the server now
            with admin.connect() as other:
                # The timeout makes it wait until the backend is gone, not just signalled.
                sql = text("SELECT pg_terminate_backend(:pid, 5000)")
                assert other.execute(sql, {"pid": pid}).scalar()
            killed.append(pid)

    event.listen(target, "before_cursor_execute", hook)
    return killed, hook


@PG_ONLY
def test_reap_whose_connection_is_killed_mid_transaction_is_retried(engine, admin, failures,
                                                                    retries):
    record = stuck(engine)
    killed, _ = kill_first_reap(admin, engine)
    assert ma.ExecutionStore(engine).reap("1h") == 1
    assert len(killed) == 1
    assert len(failures) == 1
    assert classify(failures[0]) is Failure.TRANSIENT
    assert retries() == 1
    assert ma.ExecutionStore(engine).get_execution(record.id).status == "failed"


@PG_ONLY
def test_cli_reap_whose_connection_is_killed_is_retried(engine, db_url, admin, failures,
                                                         retries, capsys):
    stuck(engine)
    killed, hook = kill_first_reap(admin, Engine)  # the CLI makes its own engine
    try:
        url = db_url.render_as_string(hide_password=False)
        status = main(["reap", "--url", url, "--stale-after", "1h"])
    finally:
        event.remove(Engine, "before_cursor_execute", hook)
    assert status == 0
    assert capsys.readouterr().out.startswith("reaped 1 running execution")
    assert len(killed) == 1
    assert retries() == 1


def test_sqlite_database_is_locked_is_retried(tmp_path, failures, retries):
    path = tmp_path / "locked.db"
    engine = ma.connect(f"sqlite:///{path}")
    ma.migrate(engine)
    record = stuck(engine)
    # No busy wait for this test: "database is locked" comes at once instead of after 30 s.
    event.listen(engine, "connect", lambda dbapi, _: dbapi.execute("PRAGMA busy_timeout = 0"))
    engine.dispose()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")  # another process holds the write lock

    def release(context: Any) -> None:
        holder.execute("ROLLBACK")  # ... until the first attempt has failed on it

    event.listen(engine, "handle_error", release, once=True)
    try:
        assert ma.ExecutionStore(engine).reap("1h") == 1
    finally:
        holder.close()
        engine.dispose()
    assert len(failures) == 1
    assert getattr(failures[0], "orig", None).sqlite_errorname == "SQLITE_BUSY"
    assert retries() == 1
    engine = ma.connect(f"sqlite:///{path}")
    try:
        assert ma.ExecutionStore(engine).get_execution(record.id).status == "failed"
    finally:
        engine.dispose()


@PG_ONLY
def test_real_serialization_failure_is_transient(engine):
    """Write skew under SERIALIZABLE: the server's own 40001."""
    a, b = stuck(engine), stuck(engine)
    barrier = threading.Barrier(2, timeout=10)
    errors: list[BaseException] = []

    def skew(mine: uuid.UUID) -> None:
        conn = engine.connect().execution_options(isolation_level="SERIALIZABLE")
        try:
            with conn.begin():
                conn.execute(text("SELECT count(*) FROM agent_executions WHERE status = 'running'"))
                barrier.wait()
                conn.execute(text("UPDATE agent_executions SET quality_score = 1 WHERE id = :id"),
                             {"id": mine})
                barrier.wait()
        except DBAPIError as exc:
            errors.append(exc)
        except threading.BrokenBarrierError:
            pass
        finally:
            conn.close()

    threads = [threading.Thread(target=skew, args=(r.id,)) for r in (a, b)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert [getattr(e.orig, "sqlstate", None) for e in errors] == ["40001"]  # type: ignore[attr-defined]
    assert classify(errors[0]) is Failure.TRANSIENT


def test_sqlite_errors_are_classified_by_result_code(tmp_path):
    path = tmp_path / "codes.db"
    first = sqlite3.connect(path, isolation_level=None, timeout=0)
    second = sqlite3.connect(path, isolation_level=None, timeout=0)
    try:
        first.execute("CREATE TABLE t (x PRIMARY KEY)")
        first.execute("INSERT INTO t VALUES (1)")
        first.execute("BEGIN IMMEDIATE")
        cases: list[tuple[Callable[[], object], Failure]] = [
            (lambda: second.execute("BEGIN IMMEDIATE"), Failure.TRANSIENT),  # database is locked
            (lambda: second.execute("SELECT * FROM nope"), Failure.PERMANENT),  # no such table
            (lambda: first.execute("INSERT INTO t VALUES (1)"), Failure.PERMANENT),  # unique
            (lambda: sqlite3.connect(tmp_path / "no" / "x.db"), Failure.PERMANENT),  # cannot open
        ]
        for action, expected in cases:
            with pytest.raises(sqlite3.Error) as caught:
                action()
            assert classify(caught.value) is expected, caught.value
            wrapped = DBAPIError("statement", {}, caught.value)
            assert classify(wrapped) is expected, caught.value
    finally:
        first.close()
        second.close()
